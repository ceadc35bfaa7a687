"""Manifest models and their one converter."""

from __future__ import annotations

from ._converter import decode as decode
from ._converter import encode as encode
from ._dataset import ColumnStats as ColumnStats
from ._dataset import CommitRecord as CommitRecord
from ._dataset import DataFile as DataFile
from ._dataset import FileRef as FileRef
from ._dataset import Manifest as Manifest

__all__ = ("ColumnStats", "CommitRecord", "DataFile", "FileRef", "Manifest", "decode", "encode")
