"""copy_dataset: a dataset's history, or a range of it, to another store (or id)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from .._concurrency import bounded_map
from .._history import retrying
from .._retry import Retry
from .._validate import check_int, safe_repr
from ..dataset import Dataset
from ..dataset._checkpoint import CHECKPOINT_INTERVAL, checkpoint_key
from ..dataset._config import descriptor_key
from ..dataset._files import manifest_at, snapshot_position
from ..dataset._log import dataset_log
from ..dataset._state import dropped_error, expiry_of
from ..errors import (
    AiolodeError,
    DatasetNotFoundError,
    FormatError,
    InvalidInputError,
    ManifestFormatError,
    ObjectExistsError,
    ObjectNotFoundError,
    SnapshotConflictError,
    SnapshotExpiredError,
)
from ..layout import validate_dataset_id
from ..manifest._converter import decode, encode
from ..manifest._dataset import (
    Checkpoint,
    CommitRecord,
    DatasetDescriptor,
    ExpiryState,
    FileRef,
    KeyMarker,
    Manifest,
    PartitionManifest,
    PartitionRef,
)
from ..manifest._ids import parse_dataset_snapshot_id
from ..store import Store
from ._engine import Fetched, HistoryCopy
from ._objects import ObjectJob, Transfer
from ._report import CopyReport, Tally, check_progress

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ..dataset import Snapshot
    from ..layout import Layout
    from ._report import CopyProgressCallback

__all__ = ("copy_dataset",)

#: Partition manifests and checkpoints read at once while planning a window.
_DOC_CONCURRENCY = 16


@attrs.frozen
class _Rename:
    """Rewrites keys and ids from one dataset root to another (identity when equal)."""

    src_id: str
    dst_id: str
    src_root: str
    dst_root: str

    @property
    def active(self) -> bool:
        return self.src_id != self.dst_id

    def key(self, key: str) -> str:
        if not self.active or not key.startswith(self.src_root):
            return key
        return self.dst_root + key[len(self.src_root) :]

    def file(self, f: FileRef) -> FileRef:
        sources = tuple(
            attrs.evolve(s, key=self.key(s.key)) if s.key is not None else s for s in f.sources
        )
        return attrs.evolve(f, key=self.key(f.key), sources=sources)

    def manifest(self, m: Manifest) -> Manifest:
        return attrs.evolve(
            m,
            dataset_id=self.dst_id,
            files=tuple(self.file(f) for f in m.files),
            partition_manifests=tuple(
                attrs.evolve(p, key=self.key(p.key)) for p in m.partition_manifests
            ),
            replaces=tuple(self.key(k) for k in m.replaces),
        )

    def record(self, rec: CommitRecord) -> CommitRecord:
        if not self.active:
            return rec
        return attrs.evolve(
            rec,
            dataset_id=self.dst_id,
            snapshots=tuple(self.manifest(m) for m in rec.snapshots),
            compactions=tuple(self.manifest(m) for m in rec.compactions),
        )

    def partition(self, pm: PartitionManifest) -> PartitionManifest:
        return attrs.evolve(pm, dataset_id=self.dst_id, files=tuple(self.file(f) for f in pm.files))

    def checkpoint(self, cp: Checkpoint) -> Checkpoint:
        return attrs.evolve(
            cp,
            dataset_id=self.dst_id,
            snapshots=tuple(
                attrs.evolve(
                    s, partition_manifests=tuple(self.key(k) for k in s.partition_manifests)
                )
                for s in cp.snapshots
            ),
            files=tuple(attrs.evolve(cf, file=self.file(cf.file)) for cf in cp.files),
        )


def _partition_problem(pm: PartitionManifest, ref: PartitionRef, dataset_id: str) -> str | None:
    """How a partition manifest disagrees with the summary that names it (the
    checks a reader makes when it loads one)."""
    rows = [f.row_count for f in pm.files]
    total_rows = None if any(r is None for r in rows) else sum(r or 0 for r in rows)
    directory = ref.key.rsplit("_manifests/", 1)[0]
    if pm.dataset_id != dataset_id:
        return f"belongs to dataset {pm.dataset_id!r}"
    if not pm.token or pm.token not in ref.key:
        return f"was written by another write (token {pm.token!r})"
    if pm.partition != ref.partition or any(f.partition != ref.partition for f in pm.files):
        return f"does not hold partition {dict(ref.partition)!r} only"
    size = sum(f.size for f in pm.files)
    if (len(pm.files), size, total_rows) != (ref.file_count, ref.size, ref.row_count):
        return (
            f"holds {len(pm.files)} files, {size} bytes, {total_rows} rows; the summary says "
            f"{ref.file_count}, {ref.size}, {ref.row_count}"
        )
    if any(not f.key.startswith(directory) for f in pm.files):
        return f"names a file outside its partition {directory!r}"
    return None


class _DatasetCopy(HistoryCopy[CommitRecord]):
    kind: ClassVar[Literal["dataset", "volume"]] = "dataset"

    def __init__(
        self,
        *args: Any,
        layout: Layout,
        rename: _Rename,
        snapshots: tuple[object, object] | None,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.layout = layout
        self.rename = rename
        self.snapshots = snapshots
        self.expiry = ExpiryState()
        #: Per record copied: its snapshots' idempotency keys (and their ids).
        self.keyed: dict[int, list[tuple[str, str]]] = {}

    @property
    def src_id(self) -> str:
        return self.rename.src_id

    # ------------------------------------------------------------------ range
    async def run(self) -> CopyReport:
        try:
            return await super().run()
        except (ObjectNotFoundError, SnapshotExpiredError, ManifestFormatError) as exc:
            # Dropped while being copied: the drop deletes what its history names.
            try:
                head = await retrying(self.retry, lambda: self.src_log.refresh())
            except AiolodeError:
                raise exc from None
            if head is not None and head.dropped:
                raise dropped_error(self.src_id) from exc
            raise

    async def bounds(self, head: CommitRecord, lwm: int) -> tuple[int, int]:
        if head.dropped:
            raise dropped_error(self.src_id)
        first, last = max(lwm, 1), head.seq
        if self.snapshots is None:
            return first, last
        lo, hi = self.snapshots
        # Whole records are copied: a record is one commit, never split.
        if lo is not None:
            seq, idx = snapshot_position(lo, self.src_id)
            await manifest_at(self.src_log, seq, idx)
            first = seq
        if hi is not None:
            seq, idx = snapshot_position(hi, self.src_id)
            await manifest_at(self.src_log, seq, idx)
            last = min(seq, last)
        if first > last:
            raise InvalidInputError(
                f"snapshots={safe_repr(self.snapshots)}: the first snapshot comes after the last",
                dataset_id=self.src_id,
            )
        return first, last

    async def begin(self, head: CommitRecord, start: int, dst_head: CommitRecord | None) -> None:
        # Which snapshots the source has expired (their files may be collected).
        self.expiry = await expiry_of(self.src_log, head)

    # ----------------------------------------------------------------- checks
    def same(self, src: CommitRecord, dst: CommitRecord) -> bool:
        return src.token == dst.token and self.rename.record(src) == dst

    def snapshot_ids(self, record: CommitRecord) -> list[str]:
        return record.snapshot_ids()

    def head_id(self, record: CommitRecord | None) -> str | None:
        return None if record is None else record.last_snapshot_id

    # ------------------------------------------------------------ descriptor
    async def before_records(self) -> None:
        src_store = self.src_log.store
        dst_store = self.dst_log.store
        src_key = descriptor_key(self.layout, self.src_id)
        dst_key = descriptor_key(self.layout, self.rename.dst_id)
        try:
            raw = await retrying(self.retry, lambda: src_store.get(src_key))
        except ObjectNotFoundError:
            return  # written before descriptors: opened from its newest manifest
        desc = decode(raw, DatasetDescriptor, key=src_key)
        if desc.dataset_id != self.src_id:
            raise ManifestFormatError(
                f"descriptor {src_key!r} belongs to dataset {desc.dataset_id!r}",
                key=src_key,
                dataset_id=self.src_id,
            )
        want = attrs.evolve(desc, dataset_id=self.rename.dst_id)
        payload = encode(want) if self.rename.active else raw
        for _ in range(2):
            try:
                found = await retrying(self.retry, lambda: dst_store.get(dst_key))
            except ObjectNotFoundError:
                try:
                    await retrying(
                        self.retry, lambda: dst_store.put(dst_key, payload, mode="create")
                    )
                except ObjectExistsError:
                    continue  # created meanwhile (or our lost reply): compare
                await self.tally.add_bytes(len(payload))
                return
            if found == payload:
                return
            try:
                theirs: DatasetDescriptor | None = decode(found, DatasetDescriptor, key=dst_key)
            except FormatError:
                theirs = None
            if theirs != want:
                incarnation = "?" if theirs is None else theirs.incarnation
                raise SnapshotConflictError(
                    f"dataset {self.rename.dst_id!r} at the destination was created "
                    f"independently of the source (incarnation {incarnation}, the source's "
                    f"is {desc.incarnation}); it is never merged: copy into another id or store",
                    key=dst_key,
                    dataset_id=self.rename.dst_id,
                )
            return

    # ---------------------------------------------------------------- objects
    async def jobs(self, window: list[Fetched[CommitRecord]]) -> AsyncGenerator[ObjectJob, None]:
        rn = self.rename
        src_store = self.src_log.store
        parts: list[tuple[Manifest, PartitionRef, bool]] = []
        for item in window:
            rec = item.record
            item.payload = encode(rn.record(rec)) if rn.active else item.raw
            for m in rec.snapshots:
                optional = self.expiry.covers(rec.seq, m.snapshot_id)
                for f in m.files:
                    yield self._file_job(f, m, optional)
                parts.extend((m, ref, optional) for ref in m.partition_manifests)
                if m.idempotency_key is not None:
                    self.keyed.setdefault(rec.seq, []).append((m.idempotency_key, m.snapshot_id))
                    # Before the record: "look from here on", as a writer marks it.
                    yield self._marker_job(m.idempotency_key, rec.seq, None)
            for m in rec.compactions:
                # A compacted file holding rows of an expired snapshot no longer
                # serves (the source may have collected it): optional then.
                for f in m.files:
                    gone = any(
                        self.expiry.covers(
                            parse_dataset_snapshot_id(s.snapshot_id, dataset_id="")[0],
                            s.snapshot_id,
                        )
                        for s in f.sources
                    )
                    yield self._file_job(f, m, gone)

        async def load(part: tuple[Manifest, PartitionRef, bool]) -> bytes | None:
            key = part[1].key
            try:
                return await retrying(self.retry, lambda: src_store.get(key))
            except ObjectNotFoundError:
                return None

        raws = await bounded_map(load, parts, limit=_DOC_CONCURRENCY)
        for (m, ref, optional), raw in zip(parts, raws, strict=True):
            if raw is None:
                if optional:
                    self.tally.skipped += 1
                    continue
                raise ManifestFormatError(
                    f"partition manifest {ref.key!r} of snapshot {m.snapshot_id} is missing "
                    "at the source",
                    key=ref.key,
                    dataset_id=self.src_id,
                    snapshot_id=m.snapshot_id,
                )
            pm = decode(raw, PartitionManifest, key=ref.key)
            problem = _partition_problem(pm, ref, self.src_id)
            if problem is not None:
                raise ManifestFormatError(
                    f"partition manifest {ref.key!r} of snapshot {m.snapshot_id} {problem}",
                    key=ref.key,
                    dataset_id=self.src_id,
                    snapshot_id=m.snapshot_id,
                )
            payload = encode(rn.partition(pm)) if rn.active else raw
            for f in pm.files:
                yield self._file_job(f, m, optional)
            yield ObjectJob(ref.key, rn.key(ref.key), payload=payload, snapshot_id=m.snapshot_id)
        for item in window:
            if item.record.seq % CHECKPOINT_INTERVAL == 0:
                job = await self._checkpoint_job(item.record.seq)
                if job is not None:
                    yield job

    # ----------------------------------------------------- idempotency keys
    def _marker_job(self, key: str, seq: int, snapshot_id: str | None) -> ObjectJob:
        """The destination's marker of an idempotency key, so that a write retried
        with the key against the copy finds its snapshot instead of committing
        it again (``Dataset._key_hit``): ``after`` is the record before, and the
        snapshot id once its record is there."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        marker_key = f"{self.dst_log.spec.prefix}_keys/{digest}.json"
        doc = KeyMarker(
            dataset_id=self.rename.dst_id, key=key, after=seq - 1, snapshot_id=snapshot_id
        )
        return ObjectJob(marker_key, marker_key, payload=encode(doc), overwrite=True)

    async def after_records(self, window: list[Fetched[CommitRecord]]) -> None:
        jobs = [
            self._marker_job(key, item.record.seq, sid)
            for item in window
            for key, sid in self.keyed.pop(item.record.seq, [])
        ]
        await bounded_map(self.transfer.run, jobs, limit=self.concurrency)

    def _file_job(self, f: FileRef, m: Manifest, optional: bool) -> ObjectJob:
        return ObjectJob(
            f.key,
            self.rename.key(f.key),
            size=f.size,
            checksum=f.checksum,
            optional=optional,
            snapshot_id=m.snapshot_id,
        )

    async def _checkpoint_job(self, seq: int) -> ObjectJob | None:
        """The source's checkpoint at ``seq``, if it has one: derived data that
        keeps the destination's reads as cheap as the source's. Readers check a
        checkpoint against record ``seq`` and ignore it when unsound, at the
        destination as at the source, so it is copied as is (decoded only to be
        rewritten for another id)."""
        key = checkpoint_key(self.src_log, seq)
        store = self.src_log.store
        try:
            raw = await retrying(self.retry, lambda: store.get(key))
        except ObjectNotFoundError:
            return None
        payload = raw
        if self.rename.active:
            try:
                cp = decode(raw, Checkpoint, key=key)
            except FormatError:
                return None
            if cp.dataset_id != self.src_id or cp.seq != seq:
                return None
            payload = encode(self.rename.checkpoint(cp))
        return ObjectJob(key, checkpoint_key(self.dst_log, seq), payload=payload)


def _check_range(snapshots: object) -> tuple[object, object] | None:
    if snapshots is None:
        return None
    if isinstance(snapshots, tuple) and len(snapshots) == 2:
        return snapshots
    raise InvalidInputError(
        "snapshots must be None or a (first, last) tuple of snapshot ids, Snapshots or None, "
        f"not {safe_repr(snapshots)}"
    )


async def copy_dataset(
    src: Dataset,
    dst_store: Store,
    *,
    dst_id: str | None = None,
    snapshots: tuple[str | Snapshot | None, str | Snapshot | None] | None = None,
    progress: CopyProgressCallback | None = None,
    concurrency: int = 8,
) -> CopyReport:
    """Copy a dataset's history — or a range of it — to another store.

    The destination gets the same log records at the same sequence numbers
    (so the same snapshot ids, metadata, times and commit tokens), the same
    data files byte for byte (sizes and recorded checksums verified as they
    are copied), the partition manifests, the descriptor, the source's
    checkpoints, and markers for the snapshots' idempotency keys (a write
    retried with its key against the copy finds the copied snapshot). It is never visible in a half state: the objects a record
    references are stored before it, the descriptor before the first record,
    and the records in order, each create-only; so its history only ever
    shows fully copied snapshots.

    **Incremental and resumable.** The copy starts after the destination's
    head, once that head is shown to be the source's commit at the same
    position. A second run copies only what is new; a run that was killed or
    failed is simply run again: objects already at the destination are
    checked against the source (size and digest, or the bytes) and kept, or
    copied again if they fail. A destination whose history diverged (another
    commit at a position the source holds, another incarnation of the name) is
    refused, never merged. Restoring is copying back.

    **Expiry.** The copy starts at the source's low-water mark (records below
    it were collected). Snapshots the source has expired are copied as records
    (the destination's history is the source's, expiry operations included),
    and their files as far as the source still holds them: files it already
    collected are skipped (counted in :attr:`CopyReport.skipped`). When the
    source collected records the destination never got (a copy that fell
    behind the source's garbage collection), the destination jumps to the
    source's low-water mark; those records held only expired snapshots.

    Parameters
    ----------
    src
        The dataset to copy (its store, id and layout; opened by name, it is
        located as :class:`~aiolode.Dataset` locates it).
    dst_store
        Where to copy it: any store, of any kind.
    dst_id
        The id at the destination (default: the source's). Another id rewrites
        the keys and ids inside every document (records, partition manifests,
        checkpoints, descriptor) consistently; data files stay byte-identical.
    snapshots
        ``(first, last)``: copy only the records holding these snapshots and
        those between (ids or :class:`~aiolode.Snapshot`; ``None`` for an open
        end). Whole records are copied: a group commit is never split. The
        first only matters while the destination is empty; later runs go on
        from the destination's head.
    progress
        Called (sync or async) with a :class:`~aiolode.CopyProgress` after every
        object and record (and every chunk of a streamed object).
    concurrency
        Objects copied at once.

    Returns
    -------
    CopyReport
        What was copied, checked, repaired and skipped, and the destination's head.

    Raises
    ------
    InvalidInputError
        An argument has the wrong type or value, the copy would be onto the
        source itself, or the range would leave a gap after the destination's head.
    InvalidKeyError
        ``dst_id`` is not a valid dataset id.
    DatasetNotFoundError
        The source dataset does not exist, or was dropped (before or while
        being copied: a drop is never copied).
    SnapshotNotFoundError
        ``snapshots`` names a snapshot the source does not have
        (:class:`~aiolode.SnapshotExpiredError`: below its low-water mark).
    SnapshotConflictError
        The destination's history diverged from the source's.
    ObjectNotFoundError
        A file of a snapshot the source has not expired is missing there.
    ChecksumMismatchError, CorruptDataError
        A source file's bytes differ from its recorded digest or size (nothing
        of that record was committed at the destination).
    FormatError
        A record or document of the source (or the destination) is unreadable.
    StorageError
        A store kept failing (run the copy again to resume).

    Notes
    -----
    Cost: at the source, the head search (cold: 3-4 ``get``), 1 ``get`` per
    record copied, per partition manifest and per checkpoint in range, and
    1 ``get`` (streamed above 8 MiB, after a ``head``) per data file; at the
    destination, the head search, 1 ``put`` per object and per record, 1
    ``get`` for the descriptor, 2 ``put`` per snapshot with an idempotency key
    (its marker), and one hint ``put`` per 64 records. Objects
    found present cost 1 ``get`` (or a ``head`` + a streamed ``get``).
    Nothing is listed. Records are put one at a time, in order, while the
    objects of the next 64 records are copied. Memory: at most two windows of
    64 records with their partition manifests, and per object in flight either
    the object (up to 8 MiB) or one 1 MiB chunk (plus the destination's
    multipart buffer).
    """
    if not isinstance(src, Dataset):
        raise InvalidInputError(f"src must be an aiolode Dataset, not {safe_repr(src)}")
    if not isinstance(dst_store, Store):
        raise InvalidInputError(f"dst_store must be an aiolode Store, not {safe_repr(dst_store)}")
    target = validate_dataset_id(src.id if dst_id is None else dst_id)
    if dst_store is src.store and target == src.id:
        raise InvalidInputError(
            f"copying dataset {src.id!r} onto itself: give another dst_store or dst_id",
            dataset_id=src.id,
        )
    span = _check_range(snapshots)
    callback = check_progress(progress)
    limit = check_int("concurrency", concurrency)
    if not await src.exists():
        raise DatasetNotFoundError(
            f"there is no dataset {src.id!r} in {src.store!r}", dataset_id=src.id
        )
    layout = src.layout
    retry = Retry()
    tally = Tally(callback)
    rename = _Rename(src.id, target, layout.root(src.id), layout.root(target))
    job = _DatasetCopy(
        dataset_log(src.store, layout, src.id, retry),
        dataset_log(dst_store, layout, target, retry),
        Transfer(src.store, dst_store, retry, tally, {"dataset_id": src.id}),
        tally,
        retry,
        limit,
        layout=layout,
        rename=rename,
        snapshots=span,
    )
    return await job.run()
