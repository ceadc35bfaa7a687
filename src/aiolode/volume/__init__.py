"""Sparse, resumable byte-range volumes (see ``docs/volume.md``)."""

from __future__ import annotations

from ._blocks import BlockRef as BlockRef
from ._reader import VolumeReader as VolumeReader
from ._volume import Volume as Volume
from ._volume import VolumeSnapshot as VolumeSnapshot

__all__ = (
    "BlockRef",
    "Volume",
    "VolumeReader",
    "VolumeSnapshot",
)
