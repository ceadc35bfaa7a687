"""Layouts: where datasets' commit logs and data files live in a store."""

from __future__ import annotations

from ._base import Layout as Layout
from ._base import TemplateLayout as TemplateLayout
from ._base import decode_value as decode_value
from ._base import encode_value as encode_value
from ._base import stringify_partition_value as stringify_partition_value
from ._base import validate_dataset_id as validate_dataset_id
from ._layouts import DefaultLayout as DefaultLayout
from ._layouts import FlatLayout as FlatLayout
from ._layouts import HiveLayout as HiveLayout
from ._layouts import layout_from_description as layout_from_description

__all__ = (
    "DefaultLayout",
    "FlatLayout",
    "HiveLayout",
    "Layout",
    "TemplateLayout",
    "decode_value",
    "encode_value",
    "layout_from_description",
    "stringify_partition_value",
    "validate_dataset_id",
)
