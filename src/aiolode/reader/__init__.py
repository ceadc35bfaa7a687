"""DatasetReader: discovery, pruning, range reads and the Arrow bridge.

``DatasetReader`` finds datasets, partitions, snapshots and data files through
committed manifests only; :func:`files_of` and :func:`to_arrow_dataset` do the
same for one :class:`~aiolode.Dataset`. See ``docs/reader.md``.
"""

from __future__ import annotations

from ..arrow import arrow_dataset as arrow_dataset
from ..arrow import arrow_filesystem as arrow_filesystem
from ._dataset_api import files_of as files_of
from ._dataset_api import to_arrow_dataset as to_arrow_dataset
from ._ranges import RangeReader as RangeReader
from ._ranges import RangeStats as RangeStats
from ._reader import DatasetReader as DatasetReader
from ._refs import DataFile as DataFile
from ._refs import PartitionFilter as PartitionFilter
from ._refs import SnapshotRef as SnapshotRef

__all__ = [
    "DataFile",
    "DatasetReader",
    "PartitionFilter",
    "RangeReader",
    "RangeStats",
    "SnapshotRef",
    "arrow_dataset",
    "arrow_filesystem",
    "files_of",
    "to_arrow_dataset",
]
