"""Value types of the reader (snapshot refs, data files) and partition filters."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, final

import attrs

from ..errors import InvalidInputError
from ..layout import stringify_partition_value
from ..manifest import FileRef

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = ["DataFile", "PartitionFilter", "SnapshotRef", "compile_where"]

PartitionFilter: TypeAlias = "Mapping[str, object] | Callable[[Mapping[str, str]], bool] | None"
"""A ``where=`` argument: see :func:`compile_where`."""


@final
@attrs.frozen
class SnapshotRef:
    """A committed snapshot as seen by a :class:`~aiolode.DatasetReader`.

    Attributes
    ----------
    dataset_id, snapshot_id, parent_id
        Identity and (linear) history.
    created_at
        Commit time (UTC).
    row_count
        Records in the snapshot (``None`` for raw blobs).
    partitions
        Distinct partition values the snapshot touched (``({},)`` when unpartitioned
        and it has files).
    file_count
        Data files it added.
    record_key
        Store key of the commit record that holds its manifest.
    """

    dataset_id: str
    snapshot_id: str
    parent_id: str | None
    created_at: datetime
    row_count: int | None
    partitions: tuple[dict[str, str], ...]
    file_count: int
    record_key: str

    @classmethod
    def from_manifest(cls, manifest: Manifest, record_key: str) -> SnapshotRef:
        """The ref of one manifest."""
        return cls(
            dataset_id=manifest.dataset_id,
            snapshot_id=manifest.snapshot_id,
            parent_id=manifest.parent_id,
            created_at=manifest.created_at,
            row_count=manifest.row_count,
            partitions=tuple(manifest.partitions),
            file_count=manifest.file_count,
            record_key=record_key,
        )


@final
@attrs.frozen
class DataFile:
    """One committed data file, with what is needed to decode it.

    Attributes
    ----------
    file
        The manifest's :class:`~aiolode.FileRef` (key, size, checksum, rows,
        partition values, column statistics).
    snapshot_id
        The snapshot that added it.
    codec, codec_options, compressor, compressor_options
        How it was encoded, from that snapshot's manifest.
    """

    file: FileRef
    snapshot_id: str
    codec: str | None
    compressor: str | None
    codec_options: dict[str, Any] = attrs.field(factory=dict)
    compressor_options: dict[str, Any] = attrs.field(factory=dict)

    @property
    def key(self) -> str:
        """Store key of the file."""
        return self.file.key

    @property
    def size(self) -> int:
        """Stored size in bytes."""
        return self.file.size

    @property
    def partition(self) -> dict[str, str]:
        """Partition values (strings, as in the path; ``{}`` when unpartitioned)."""
        return self.file.partition

    @property
    def checksum(self) -> str | None:
        """``"<algorithm>:<hex>"`` of the stored bytes, or ``None``."""
        return self.file.checksum

    @property
    def row_count(self) -> int | None:
        """Records in the file (``None`` for raw blobs)."""
        return self.file.row_count


_SCALARS = (str, int, float, bool, date, datetime)


def _one(key: str, value: object) -> str:
    if not isinstance(value, _SCALARS):
        raise InvalidInputError(
            f"where[{key!r}] must be a str, int, float, bool, date, datetime or a collection "
            f"of them, not {type(value).__name__}"
        )
    return stringify_partition_value(key, value)


def compile_where(where: object) -> tuple[Callable[[Mapping[str, str]], bool] | None, set[str]]:
    """Turn a ``where=`` argument into a predicate over partition values.

    ``where`` is ``None`` (everything), a mapping ``{key: value}`` or
    ``{key: {v1, v2}}`` (a file matches when, for every key, its value is one of
    those given; values are compared in their path form, so ``{"day": 7}``
    matches the partition ``day=7``), or a callable taking the file's partition
    values (a ``dict[str, str]``) and returning a bool.

    Returns the predicate (``None`` for everything) and the keys a mapping names
    (checked against the dataset's partition keys by the caller).

    Raises
    ------
    InvalidInputError
        Any other type, a non-str key, a value of an unsupported type, or an
        empty collection (it would match nothing, which is surely a mistake).
    """
    if where is None:
        return None, set()
    if isinstance(where, Mapping):
        wanted: dict[str, frozenset[str]] = {}
        for k, v in where.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"where keys are partition names (str), not {k!r}")
            if isinstance(v, Collection) and not isinstance(v, str | bytes):
                values = frozenset(_one(k, x) for x in v)
                if not values:
                    raise InvalidInputError(f"where[{k!r}] is an empty collection")
            else:
                values = frozenset((_one(k, v),))
            wanted[k] = values

        def match(partition: Mapping[str, str]) -> bool:
            return all(partition.get(k) in vs for k, vs in wanted.items())

        return match, set(wanted)
    if callable(where):
        pred = where

        def call(partition: Mapping[str, str]) -> bool:
            # A copy: the predicate must not be able to alter the manifest.
            return bool(pred(dict(partition)))

        return call, set()
    raise InvalidInputError(
        f"where must be None, a mapping of partition values or a callable, not {where!r}"
    )
