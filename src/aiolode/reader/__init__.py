"""DatasetReader: discovery, byte access and the Arrow bridge.

``DatasetReader`` finds datasets through their commit logs and hands out
:class:`~aiolode.Dataset` read handles; its byte-level tools stream and
range-read committed files, verified against their manifests. See
``docs/reader.md``.
"""

from __future__ import annotations

from ..arrow import arrow_dataset as arrow_dataset
from ..arrow import arrow_filesystem as arrow_filesystem
from ..dataset._files import PartitionFilter as PartitionFilter
from ..manifest import DataFile as DataFile
from ..store._ranges import RangeReader as RangeReader
from ..store._ranges import RangeStats as RangeStats
from ._reader import DatasetReader as DatasetReader

__all__ = (
    "DataFile",
    "DatasetReader",
    "PartitionFilter",
    "RangeReader",
    "RangeStats",
    "arrow_dataset",
    "arrow_filesystem",
)
