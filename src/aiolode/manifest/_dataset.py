"""Dataset manifest models: one snapshot's :class:`Manifest` and the commit
record (:class:`CommitRecord`) that carries one or more consecutive snapshots.

Format (``docs/spec/manifest-v2.md``; v1 still reads): the commit log of a
dataset is a sequence of create-only objects ``<root>_log/<seq:016d>.json``,
each an ``aiolode.dataset.commit`` v2 document holding the manifests of the
snapshots it commits, in order. A standalone manifest (as returned to readers)
is an ``aiolode.dataset.manifest`` v2 document with the same fields.

Partitioned snapshots (v2) do not inline their files: each touched partition's
files sit in one small ``aiolode.dataset.partition`` v1 document under that
partition's prefix, and the snapshot lists a :class:`PartitionRef` summary per
partition, so a reader filtering by partition reads only matching ones.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import attrs

from ..errors import InvalidInputError
from ._converter import converter, register

__all__ = [
    "COMMIT_SCHEMA",
    "MANIFEST_SCHEMA",
    "PARTITION_SCHEMA",
    "ColumnStats",
    "CommitRecord",
    "FileRef",
    "Manifest",
    "PartitionManifest",
    "PartitionRef",
    "check_metadata",
]

MANIFEST_SCHEMA = "aiolode.dataset.manifest"
COMMIT_SCHEMA = "aiolode.dataset.commit"
PARTITION_SCHEMA = "aiolode.dataset.partition"


def check_metadata(metadata: object) -> dict[str, Any]:
    """Validate caller metadata: ``None`` -> ``{}``; a JSON-serialisable mapping.

    Returns a deep copy normalised through JSON (tuples become lists), so the
    snapshot holds exactly what a reader will load back.

    Raises
    ------
    InvalidInputError
        Not a mapping with string keys, not JSON-serialisable (NaN included),
        or holding strings not encodable as UTF-8 (lone surrogates).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        from collections.abc import Mapping

        if not isinstance(metadata, Mapping):
            raise InvalidInputError(
                f"metadata must be a mapping or None, not {type(metadata).__name__}"
            )
        metadata = dict(metadata)
    _check_keys(metadata, "metadata")
    try:
        text = json.dumps(metadata, allow_nan=False, ensure_ascii=False)
        # json.dumps accepts lone surrogates ("\ud800") that no UTF-8 document
        # can hold: the record encode would then fail at commit time, after
        # the data files were written. Refuse them here, before any I/O.
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"metadata is not encodable as UTF-8 (a lone surrogate?): {exc}"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata is not JSON-serialisable: {exc}") from exc
    return json.loads(text)  # type: ignore[no-any-return]


def _check_keys(value: object, path: str) -> None:
    # json.dumps would turn int/float/bool/None keys into strings silently; a
    # reader would then see other keys than the writer passed.
    from collections.abc import Mapping

    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"{path} has a non-str key {k!r}: JSON keys are strings")
            _check_keys(v, f"{path}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_keys(v, f"{path}[{i}]")


@attrs.frozen
class ColumnStats:
    """Per-file statistics of one column (JSON scalars; ``None`` when unknown)."""

    min: Any = None
    max: Any = None
    null_count: int | None = None


@attrs.frozen
class FileRef:
    """One data file of a snapshot.

    Attributes
    ----------
    key
        Store key of the file.
    size
        Size in bytes as stored (after compression).
    checksum
        ``"<algorithm>:<hex>"`` of the stored bytes, or ``None``.
    row_count
        Records in the file (``None`` for raw blobs).
    partition
        Partition values (strings, as in the path); ``{}`` when unpartitioned.
    stats
        Column statistics by column name (codecs that compute them).
    """

    key: str
    size: int
    checksum: str | None = None
    row_count: int | None = None
    partition: dict[str, str] = attrs.field(factory=dict)
    stats: dict[str, ColumnStats] = attrs.field(factory=dict)


@attrs.frozen
class PartitionRef:
    """Summary of one partition manifest a (v2, partitioned) snapshot wrote.

    Attributes
    ----------
    partition
        The partition values (strings, as in the path).
    key
        Store key of the :class:`PartitionManifest` listing the files.
    file_count, row_count, size
        Totals over its files (``row_count`` ``None`` for raw blobs), so
        snapshot totals need no extra read.
    """

    partition: dict[str, str]
    key: str
    file_count: int
    row_count: int | None
    size: int


@attrs.frozen
class PartitionManifest:
    """The files one snapshot added to one partition (written before the commit).

    Named by a per-write token (the snapshot id is only assigned at commit), so
    it is trusted only when a committed record's :class:`PartitionRef` names it.
    """

    dataset_id: str
    token: str
    partition: dict[str, str]
    files: list[FileRef]


@attrs.frozen
class Manifest:
    """Everything one snapshot commits.

    Attributes
    ----------
    dataset_id, snapshot_id, parent_id
        Identity and (linear) history; ``parent_id`` is ``None`` for the first.
    created_at
        Commit time (UTC); never earlier than the parent's.
    metadata
        The caller's JSON mapping (``{}`` when none was given).
    files
        Data files added by this snapshot. In a commit record of a partitioned
        snapshot (v2) this is empty and ``partition_manifests`` lists where the
        files are; :class:`aiolode.Dataset` returns manifests with the files
        loaded (:attr:`files_loaded`).
    row_count
        Total records (``None`` for raw blobs).
    min_timestamp, max_timestamp
        Range of the ``timestamp_field`` values (``None`` if not configured).
    codec, codec_options, compressor, compressor_options
        What encoded the files; readers follow these, never the Dataset's args.
    layout
        Layout description (``name``, ``partition_keys``, options).
    commit_token
        Unique per commit attempt; identifies the writer's own commit after a
        lost acknowledgement.
    partition_manifests
        Per touched partition, its :class:`PartitionRef` (partitioned v2
        snapshots); ``[]`` when the files are inline.
    """

    dataset_id: str
    snapshot_id: str
    parent_id: str | None
    created_at: datetime
    metadata: dict[str, Any]
    files: list[FileRef]
    row_count: int | None
    codec: str | None
    compressor: str | None
    layout: dict[str, Any]
    commit_token: str
    codec_options: dict[str, Any] = attrs.field(factory=dict)
    compressor_options: dict[str, Any] = attrs.field(factory=dict)
    min_timestamp: Any = None
    max_timestamp: Any = None
    partition_manifests: list[PartitionRef] = attrs.field(factory=list)

    @property
    def files_loaded(self) -> bool:
        """Whether :attr:`files` holds every file (``False``: only the
        partition summaries of a record were read)."""
        return not self.partition_manifests or bool(self.files)

    @property
    def file_count(self) -> int:
        """Data files added (from the summaries; no read needed)."""
        if self.partition_manifests:
            return sum(p.file_count for p in self.partition_manifests)
        return len(self.files)

    @property
    def partitions(self) -> list[dict[str, str]]:
        """Distinct partition values touched by this snapshot, in file order."""
        if self.partition_manifests:
            return [dict(p.partition) for p in self.partition_manifests]
        seen: list[dict[str, str]] = []
        for f in self.files:
            if f.partition not in seen:
                seen.append(f.partition)
        return seen


@attrs.frozen
class CommitRecord:
    """One object of the commit log: consecutive snapshots committed at once.

    Attributes
    ----------
    dataset_id
        Owner dataset.
    seq
        Position in the log (1-based); the key is ``<root>_log/<seq:016d>.json``.
    token
        Unique per commit attempt (lost-acknowledgement detection).
    created_at
        Commit time; every snapshot in the record shares it.
    snapshots
        The manifests, in commit order (ids ``<seq:016d>-<index:04d>``).
    """

    dataset_id: str
    seq: int
    token: str
    created_at: datetime
    snapshots: list[Manifest]


def _unstructure_any(value: Any) -> Any:
    return value


# JSON values in metadata/stats pass through unchanged.
converter.register_structure_hook(Any, lambda v, _: v)
converter.register_unstructure_hook(Any, _unstructure_any)

# v1 documents have no partition_manifests (the default): the same classes read
# both versions; v2 is what is written.
register(MANIFEST_SCHEMA, 1, Manifest)
register(COMMIT_SCHEMA, 1, CommitRecord)
register(MANIFEST_SCHEMA, 2, Manifest)
register(COMMIT_SCHEMA, 2, CommitRecord)
register(PARTITION_SCHEMA, 1, PartitionManifest)
