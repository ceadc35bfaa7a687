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

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from . import _fields as F
from ._converter import converter, register, register_migration
from ._metadata import FrozenDict, Metadata, as_metadata, escape_legacy_metadata

__all__ = [
    "COMMIT_SCHEMA",
    "MANIFEST_SCHEMA",
    "PARTITION_SCHEMA",
    "Checkpoint",
    "CheckpointFile",
    "CheckpointSnapshot",
    "ColumnStats",
    "CommitRecord",
    "DataFile",
    "DatasetDescriptor",
    "ExpiryState",
    "FileRef",
    "KeyMarker",
    "LogOp",
    "Manifest",
    "PartitionManifest",
    "PartitionRef",
    "RowSource",
    "settle_compactions",
]

CHECKPOINT_SCHEMA = "aiolode.dataset.checkpoint"
KEY_SCHEMA = "aiolode.dataset.key"
DESCRIPTOR_SCHEMA = "aiolode.dataset.descriptor"
MANIFEST_SCHEMA = "aiolode.dataset.manifest"
COMMIT_SCHEMA = "aiolode.dataset.commit"
PARTITION_SCHEMA = "aiolode.dataset.partition"

#: What a snapshot's manifest may record as its ``operation``.
OPERATIONS = ("append", "compact", "rewrite")


@attrs.frozen
class ColumnStats:
    """Per-file statistics of one column (JSON scalars; ``None`` when unknown)."""

    min: Any = attrs.field(default=None, validator=F.json_scalar)
    max: Any = attrs.field(default=None, validator=F.json_scalar)
    null_count: int | None = attrs.field(default=None, validator=F.opt_count)


@attrs.frozen
class RowSource:
    """Rows of a compacted file that came from one source snapshot, in file order.

    Attributes
    ----------
    snapshot_id
        The append snapshot that wrote these rows.
    rows
        How many consecutive rows of the compacted file came from it.
    key
        The file that snapshot wrote them to (it stays while the snapshot is
        retained: time travel reads it, and it serves again if another source
        of the compacted file expires).
    """

    snapshot_id: str = attrs.field(validator=F.str_)
    rows: int = attrs.field(validator=F.count)
    key: str | None = attrs.field(default=None, validator=F.opt_key)


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
    sources
        For a file written by compaction: which snapshots its rows came from,
        in order (so expiring one of them can remove exactly its rows); ``()``
        for a file a write produced.
    """

    key: str = attrs.field(validator=F.key)
    size: int = attrs.field(validator=F.count)
    checksum: str | None = attrs.field(default=None, validator=F.opt_str)
    row_count: int | None = attrs.field(default=None, validator=F.opt_count)
    partition: Mapping[str, str] = attrs.field(
        factory=FrozenDict, converter=F.to_str_map, validator=F.str_map
    )
    stats: Mapping[str, ColumnStats] = attrs.field(
        factory=FrozenDict, converter=F.to_frozen_map, validator=F.map_of(ColumnStats)
    )
    sources: tuple[RowSource, ...] = attrs.field(
        factory=tuple, converter=F.to_tuple, validator=F.tuple_of(RowSource)
    )


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

    partition: Mapping[str, str] = attrs.field(converter=F.to_str_map, validator=F.str_map)
    key: str = attrs.field(validator=F.key)
    file_count: int = attrs.field(validator=F.count)
    row_count: int | None = attrs.field(validator=F.opt_count)
    size: int = attrs.field(validator=F.count)


@attrs.frozen
class PartitionManifest:
    """The files one snapshot added to one partition (written before the commit).

    Named by a per-write token (the snapshot id is only assigned at commit), so
    it is trusted only when a committed record's :class:`PartitionRef` names it.
    """

    dataset_id: str = attrs.field(validator=F.str_)
    token: str = attrs.field(validator=F.str_)
    partition: Mapping[str, str] = attrs.field(converter=F.to_str_map, validator=F.str_map)
    files: tuple[FileRef, ...] = attrs.field(converter=F.to_tuple, validator=F.tuple_of(FileRef))


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
    operation
        ``"append"`` (a write), ``"compact"`` (rewrote small files: no new
        rows) or ``"rewrite"`` (an expiry removed expired rows from compacted
        files: no new rows).
    replaces
        Keys of earlier files this snapshot takes out of the live view (their
        rows are in this snapshot's files, or expired).
    idempotency_key
        The caller's key for this write: a retry with the same key returns this
        snapshot instead of committing again.
    """

    dataset_id: str = attrs.field(validator=F.str_)
    snapshot_id: str = attrs.field(validator=F.str_)
    parent_id: str | None = attrs.field(validator=F.opt_str)
    created_at: datetime = attrs.field(validator=F.aware)
    metadata: Metadata = attrs.field(converter=as_metadata)
    files: tuple[FileRef, ...] = attrs.field(converter=F.to_tuple, validator=F.tuple_of(FileRef))
    row_count: int | None = attrs.field(validator=F.opt_count)
    codec: str | None = attrs.field(validator=F.opt_str)
    compressor: str | None = attrs.field(validator=F.opt_str)
    layout: Mapping[str, Any] = attrs.field(converter=F.to_json_map, validator=F.json_map)
    commit_token: str = attrs.field(validator=F.str_)
    codec_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=F.to_json_map, validator=F.json_map
    )
    compressor_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=F.to_json_map, validator=F.json_map
    )
    min_timestamp: str | None = attrs.field(default=None, validator=F.opt_str)
    max_timestamp: str | None = attrs.field(default=None, validator=F.opt_str)
    partition_manifests: tuple[PartitionRef, ...] = attrs.field(
        factory=tuple, converter=F.to_tuple, validator=F.tuple_of(PartitionRef)
    )
    operation: str = attrs.field(default="append", validator=F.one_of(*OPERATIONS))
    replaces: tuple[str, ...] = attrs.field(
        factory=tuple, converter=F.to_tuple, validator=F.tuple_of(str)
    )
    idempotency_key: str | None = attrs.field(default=None, validator=F.opt_str)

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
    def partitions(self) -> tuple[Mapping[str, str], ...]:
        """Distinct partition values touched by this snapshot, in file order."""
        if self.partition_manifests:
            return tuple(p.partition for p in self.partition_manifests)
        seen: list[Mapping[str, str]] = []
        for f in self.files:
            if f.partition not in seen:
                seen.append(f.partition)
        return tuple(seen)


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
    dataset_id
        The dataset it belongs to.
    """

    file: FileRef = attrs.field(validator=F.is_a(FileRef))
    snapshot_id: str = attrs.field(validator=F.str_)
    codec: str | None = attrs.field(validator=F.opt_str)
    compressor: str | None = attrs.field(validator=F.opt_str)
    codec_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=F.to_json_map, validator=F.json_map
    )
    compressor_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=F.to_json_map, validator=F.json_map
    )
    dataset_id: str | None = attrs.field(default=None, validator=F.opt_str)

    @property
    def key(self) -> str:
        """Store key of the file."""
        return self.file.key

    @property
    def size(self) -> int:
        """Stored size in bytes."""
        return self.file.size

    @property
    def partition(self) -> Mapping[str, str]:
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


@attrs.frozen
class ExpiryState:
    """Which snapshots are expired, as of some record (cumulative).

    Attributes
    ----------
    below
        Every snapshot of every record with a sequence number below this one is
        expired (``1``: none).
    ids
        Further expired snapshot ids, all in records at or above ``below``, sorted.
    """

    below: int = 1
    ids: tuple[str, ...] = attrs.field(
        factory=tuple, converter=F.to_tuple, validator=F.tuple_of(str)
    )

    def covers(self, seq: int, snapshot_id: str) -> bool:
        """Whether the snapshot ``snapshot_id`` (in record ``seq``) is expired."""
        return seq < self.below or snapshot_id in self.ids


@attrs.frozen
class LogOp:
    """A maintenance operation a record commits (besides or instead of snapshots).

    Attributes
    ----------
    kind
        ``"expire"`` (snapshots expired: ``snapshot_ids``), ``"fence"`` (a
        garbage collection's fence: writes started before ``fence`` are refused),
        or ``"drop"`` (the dataset was dropped).
    snapshot_ids
        For ``"expire"``: the snapshots this operation expired.
    fence
        For ``"fence"``: the time before which unreferenced objects may be collected.
    """

    kind: str
    snapshot_ids: tuple[str, ...] = attrs.field(
        factory=tuple, converter=F.to_tuple, validator=F.tuple_of(str)
    )
    fence: datetime | None = None


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
        The manifests, in commit order (ids ``<seq:016d>-<index:04d>``); may be
        empty for a record that only commits maintenance ``ops``.
    ops
        Maintenance operations committed by this record (expiry, a GC fence, a drop).
    compactions
        Manifests of ``operation="compact"`` this record commits: files that
        hold rows of earlier snapshots (their ``sources``) and replace those
        snapshots' files in the live view. Not snapshots: no id a reader lists,
        no new rows; a record with compactions holds no snapshots.
    expiry
        The expiry state after this record, when one of its ops changed it.
    expiry_seq
        The newest record at or before this one whose ``expiry`` is set (0: none):
        any record leads in one step to the current expiry state.
    gc_fence
        The newest fence of every garbage collection so far (cumulative).
    dropped
        The dataset was dropped by this record or an earlier one.
    tip
        For a record without snapshots: the newest snapshot before it (so the
        parent of the next snapshot, and ``latest()``, need no walk back).
    incarnation
        The descriptor's incarnation the writer worked for (``""`` before
        descriptors): a writer of a dropped incarnation can never append again.
    schema
        The dataset's record schema after this record (JSON form of
        :class:`aiolode.Schema`), when this record set or changed it.
    schema_seq
        The newest record at or before this one whose ``schema`` is set (0: none).
    """

    dataset_id: str
    seq: int
    token: str
    created_at: datetime
    snapshots: tuple[Manifest, ...] = attrs.field(
        converter=F.to_tuple, validator=F.tuple_of(Manifest)
    )
    ops: tuple[LogOp, ...] = attrs.field(
        factory=tuple, converter=F.to_tuple, validator=F.tuple_of(LogOp)
    )
    compactions: tuple[Manifest, ...] = attrs.field(
        factory=tuple, converter=F.to_tuple, validator=F.tuple_of(Manifest)
    )
    expiry: ExpiryState | None = None
    expiry_seq: int = 0
    gc_fence: datetime | None = None
    dropped: bool = False
    tip: str | None = None
    incarnation: str = ""
    schema: Mapping[str, Any] | None = attrs.field(
        default=None, converter=F.to_opt_json_map, validator=F.opt_json_map
    )
    schema_seq: int = 0

    def snapshot_ids(self) -> list[str]:
        """The ids of the snapshots this record commits, in order."""
        return [m.snapshot_id for m in self.snapshots]

    @property
    def last_snapshot_id(self) -> str | None:
        """The newest snapshot at or before this record (``None``: none yet)."""
        return self.snapshots[-1].snapshot_id if self.snapshots else self.tip


@attrs.frozen
class CheckpointSnapshot:
    """A retained snapshot, as a checkpoint indexes it."""

    snapshot_id: str
    created_at: datetime
    codec: str | None
    compressor: str | None
    codec_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=F.to_json_map, validator=F.json_map
    )
    compressor_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=F.to_json_map, validator=F.json_map
    )
    operation: str = "append"
    partition_manifests: tuple[str, ...] = attrs.field(
        factory=tuple, converter=F.to_tuple, validator=F.tuple_of(str)
    )
    #: The write's idempotency key: checkpoints index the keys of retained
    #: snapshots, so a retry finds its snapshot even without its key marker.
    idempotency_key: str | None = attrs.field(default=None, validator=F.opt_str)


@attrs.frozen
class CheckpointFile:
    """A file a retained snapshot references; ``live`` unless a later compaction
    or rewrite replaced it (time travel still reads it until its snapshot expires)."""

    snapshot_id: str
    file: FileRef
    live: bool = True


@attrs.frozen
class Checkpoint:
    """The history of a dataset folded up to record ``seq``: every retained
    snapshot and every file they reference. ``files()``, time travel and garbage
    collection read the newest checkpoint plus the records after it, so their
    cost does not grow with the history's length.

    Derived data, never the truth: written create-only at
    ``<root>_log/_checkpoints/<seq:016d>.json`` by writers every N commits, and
    checked against the records it summarises (``seq``, ``tip``, totals).
    """

    dataset_id: str
    seq: int
    created_at: datetime
    tip: str | None
    expiry: ExpiryState
    snapshots: tuple[CheckpointSnapshot, ...] = attrs.field(
        converter=F.to_tuple, validator=F.tuple_of(CheckpointSnapshot)
    )
    files: tuple[CheckpointFile, ...] = attrs.field(
        converter=F.to_tuple, validator=F.tuple_of(CheckpointFile)
    )


@attrs.frozen
class KeyMarker:
    """Where to find the write an idempotency key made (``<root>_log/_keys/<hash>.json``).

    Written before the commit with ``after`` (the head when the write began:
    its snapshot, if it committed, is in a later record), then updated with
    ``snapshot_id`` once committed. Only a pointer: the snapshot's own manifest
    carrying the key is what a retry trusts.
    """

    dataset_id: str
    key: str
    after: int
    snapshot_id: str | None = None


@attrs.frozen
class DatasetDescriptor:
    """What a dataset is, recorded once by its first write (create-only).

    Any process opens the dataset by name alone from it, and an opener whose
    options contradict it is refused before writing anything.

    Attributes
    ----------
    dataset_id
        The dataset.
    created_at
        When the descriptor was written.
    incarnation
        Random id of this life of the name (a dataset dropped and written again
        is a new incarnation).
    codec, codec_options, compressor, compressor_options
        How records are encoded and compressed (``None``: raw blobs / none).
    checksum
        Name of the per-file digest algorithm, or ``None``.
    layout
        The layout's description (``name``, ``partition_keys``, options).
    timestamp_field
        Record field whose min/max manifests record, or ``None``.
    first_seq
        The first record of this incarnation (after a drop, the log goes on
        past the old one's tombstone).
    """

    dataset_id: str
    created_at: datetime
    incarnation: str
    codec: str | None
    compressor: str | None
    checksum: str | None
    layout: Mapping[str, Any] = attrs.field(converter=F.to_json_map, validator=F.json_map)
    codec_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=F.to_json_map, validator=F.json_map
    )
    compressor_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=F.to_json_map, validator=F.json_map
    )
    timestamp_field: str | None = None
    first_seq: int = 1


def _unstructure_any(value: Any) -> Any:
    return value


# JSON values in stats pass through unchanged (frozen by the models).
converter.register_structure_hook(Any, lambda v, _: v)
converter.register_unstructure_hook(Any, _unstructure_any)


def _migrate_manifest_v2(doc: dict[str, Any]) -> dict[str, Any]:
    if "metadata" in doc:
        doc = {**doc, "metadata": escape_legacy_metadata(doc["metadata"])}
    return doc


def _migrate_commit_v2(doc: dict[str, Any]) -> dict[str, Any]:
    snaps = doc.get("snapshots")
    if isinstance(snaps, list):
        doc = {
            **doc,
            "snapshots": [_migrate_manifest_v2(m) if isinstance(m, dict) else m for m in snaps],
        }
    return doc


def settle_compactions(
    files: Mapping[str, tuple[FileRef, bool]], gone: Callable[[str], bool]
) -> tuple[set[str], set[str]]:
    """How expiry changes a live view that holds compacted files.

    ``files`` maps every file a fold knows to ``(reference, live)``; ``gone``
    says whether a snapshot id was expired. A compacted file holding rows of a
    gone snapshot can no longer serve (its other rows are still wanted, the gone
    ones are not): it leaves the view, and the files its retained sources wrote
    serve again, unless another usable compacted file holds their rows. The
    answer does not depend on the order the files were compacted in.

    Returns ``(dead, revived)``: compacted files to forget, files to make live.
    """
    dead: set[str] = set()
    covered: set[str] = set()
    for key, (ref, live) in files.items():
        if not ref.sources:
            continue
        if any(gone(s.snapshot_id) for s in ref.sources):
            dead.add(key)
        elif live:
            covered.update(s.key for s in ref.sources if s.key is not None)
    revived: set[str] = set()
    for key in dead:
        for s in files[key][0].sources:
            k = s.key or ""
            if k in files and not files[k][1] and k not in covered and not gone(s.snapshot_id):
                revived.add(k)
    return dead, revived


# One class per document reads every version: v1 documents have no
# partition_manifests (the default); v1/v2 metadata is plain JSON, escaped by
# the migration so that v3's type tags cannot misread it. v3 is written.
register(MANIFEST_SCHEMA, 1, Manifest)
register(COMMIT_SCHEMA, 1, CommitRecord)
register(MANIFEST_SCHEMA, 2, Manifest)
register(COMMIT_SCHEMA, 2, CommitRecord)
register(MANIFEST_SCHEMA, 3, Manifest)
register(COMMIT_SCHEMA, 3, CommitRecord)
register_migration(MANIFEST_SCHEMA, 1, lambda d: d)
register_migration(COMMIT_SCHEMA, 1, lambda d: d)
register_migration(MANIFEST_SCHEMA, 2, _migrate_manifest_v2)
register_migration(COMMIT_SCHEMA, 2, _migrate_commit_v2)
register(PARTITION_SCHEMA, 1, PartitionManifest)
register(DESCRIPTOR_SCHEMA, 1, DatasetDescriptor)
register(CHECKPOINT_SCHEMA, 1, Checkpoint)
register(KEY_SCHEMA, 1, KeyMarker)
