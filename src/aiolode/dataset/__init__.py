"""Datasets: append-only histories of immutable snapshots with a lock-free commit engine."""

from __future__ import annotations

from .._history._reports import DropReport as DropReport
from .._history._reports import ExpireReport as ExpireReport
from .._history._reports import GCReport as GCReport
from ._dataset import Dataset as Dataset
from ._serve import CONTENT_TYPE_KEY as CONTENT_TYPE_KEY
from ._serve import Blob as Blob
from ._snapshot import Snapshot as Snapshot
from ._write import BlobWriter as BlobWriter

__all__ = (
    "CONTENT_TYPE_KEY",
    "Blob",
    "BlobWriter",
    "Dataset",
    "DropReport",
    "ExpireReport",
    "GCReport",
    "Snapshot",
)
