"""Checkpoints: the history folded, so that reads cost the same at any length.

A :class:`~aiolode.manifest.Checkpoint` at record ``c`` lists every snapshot
retained at ``c`` and every file they reference (``live`` unless a later
compaction replaced it). Writers fold one every :data:`CHECKPOINT_INTERVAL`
records, alongside their data puts; ``files()``, time travel and ``gc()`` read
the newest checkpoint at or before their target plus the records after it, so
their cost is bounded by the interval instead of growing with the history.

A checkpoint is derived data: create-only (a lost race just skips), checked
against what it claims (dataset, sequence, the tip snapshot of that record),
and ignored when unreadable — the records are always the truth.
"""

from __future__ import annotations

import functools
import weakref
from contextlib import aclosing
from typing import TYPE_CHECKING

import anyio
import attrs

from .._concurrency import bounded_map
from .._history import put_unique, retrying
from ..errors import AiolodeError, FormatError, ObjectExistsError, ObjectNotFoundError
from ..manifest._converter import decode, encode
from ..manifest._dataset import (
    Checkpoint,
    CheckpointFile,
    CheckpointSnapshot,
    ExpiryState,
    Manifest,
    settle_compactions,
)
from ..manifest._ids import parse_dataset_snapshot_id
from ._partitions import load_files
from ._state import expiry_of

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..manifest._dataset import CommitRecord, FileRef
    from ..store import Store
    from ._log import CommitLog

__all__ = [
    "CHECKPOINT_INTERVAL",
    "SPARSE_INTERVAL",
    "Folded",
    "checkpoint_due",
    "checkpoint_kept",
    "checkpoint_key",
    "fold",
    "maybe_checkpoint",
    "refresh_checkpoint",
    "settle",
]

#: A checkpoint every this many records.
CHECKPOINT_INTERVAL = 64
#: Besides the newest few, gc keeps the checkpoints at multiples of this many
#: records (time travel far back folds from the nearest one below).
SPARSE_INTERVAL = 1024
#: Documents larger than this are encoded and decoded in a worker thread.
_OFFLOAD_BYTES = 64 * 1024
#: Views with more files than this are settled (expiry) in a worker thread.
_OFFLOAD_FILES = 4096
#: Checkpoints being folded by this process, per log (one fold per position).
_IN_FLIGHT: weakref.WeakKeyDictionary[object, set[int]] = weakref.WeakKeyDictionary()
#: How many older checkpoint positions a reader probes before folding from scratch.
_PROBES = 3
_CONCURRENCY = 16


def checkpoint_key(log: CommitLog, seq: int) -> str:
    """Where the checkpoint folding records up to ``seq`` lives."""
    return f"{log.spec.prefix}_checkpoints/{seq:016d}.json"


def summary(m: Manifest) -> CheckpointSnapshot:
    """What a checkpoint (and a file listing) keeps of a snapshot's manifest."""
    return CheckpointSnapshot(
        snapshot_id=m.snapshot_id,
        created_at=m.created_at,
        codec=m.codec,
        compressor=m.compressor,
        codec_options=m.codec_options,
        compressor_options=m.compressor_options,
        operation=m.operation,
        partition_manifests=tuple(p.key for p in m.partition_manifests),
        idempotency_key=m.idempotency_key,
    )


@attrs.define
class Folded:
    """A history folded up to ``seq``: a checkpoint being built, or a reader's view.

    ``files`` maps a file key to its entry, in commit order.
    """

    seq: int
    tip: str | None
    snapshots: dict[str, CheckpointSnapshot]
    files: dict[str, CheckpointFile]

    @classmethod
    def start(cls, base: Checkpoint | None) -> Folded:
        """From a checkpoint (or from nothing)."""
        if base is None:
            return cls(0, None, {}, {})
        return cls(
            base.seq,
            base.tip,
            {s.snapshot_id: s for s in base.snapshots},
            {f.file.key: f for f in base.files},
        )

    def add(self, m: Manifest, files: tuple[FileRef, ...]) -> None:
        """Apply one snapshot: its files become live, the files it replaces do not."""
        self.snapshots[m.snapshot_id] = summary(m)
        for key in m.replaces:
            old = self.files.get(key)
            if old is not None:
                self.files[key] = attrs.evolve(old, live=False)
        for f in files:
            self.files[f.key] = CheckpointFile(m.snapshot_id, f, True)
        if m.operation == "append":
            self.tip = m.snapshot_id

    def drop_expired(self, expiry: ExpiryState) -> None:
        """Forget the snapshots ``expiry`` covers, and their files."""

        def gone(sid: str) -> bool:
            seq, _ = parse_dataset_snapshot_id(sid, dataset_id="")
            return expiry.covers(seq, sid)

        dead = {sid for sid in self.snapshots if gone(sid)}
        self.snapshots = {k: v for k, v in self.snapshots.items() if k not in dead}
        self.files = {k: v for k, v in self.files.items() if v.snapshot_id not in dead}
        # Compacted files holding rows of an expired snapshot give way to the
        # files their retained sources wrote.
        unusable, revived = settle_compactions(
            {k: (v.file, v.live) for k, v in self.files.items()}, gone
        )
        for k in unusable:
            del self.files[k]
        for k in revived:
            self.files[k] = attrs.evolve(self.files[k], live=True)

    def checkpoint(self, dataset_id: str, created_at: object, expiry: ExpiryState) -> Checkpoint:
        """As a checkpoint document."""
        return Checkpoint(
            dataset_id=dataset_id,
            seq=self.seq,
            created_at=created_at,  # type: ignore[arg-type]
            tip=self.tip,
            expiry=expiry,
            snapshots=tuple(self.snapshots.values()),
            files=tuple(self.files.values()),
        )


async def read_checkpoint(store: Store, log: CommitLog, seq: int) -> Checkpoint | None:
    """The checkpoint at ``seq`` if it exists and is sound; ``None`` otherwise.

    A damaged or foreign checkpoint is ignored (the records are the truth), never
    believed. Cost: one ``get``.
    """
    key = checkpoint_key(log, seq)
    try:
        data = await retrying(log.retry, lambda: store.get(key))
        if len(data) > _OFFLOAD_BYTES:
            cp = await anyio.to_thread.run_sync(
                functools.partial(decode, data, Checkpoint, key=key)
            )
        else:
            cp = decode(data, Checkpoint, key=key)
    except (ObjectNotFoundError, FormatError):
        return None
    if cp.dataset_id != log.spec.owner_id or cp.seq != seq:
        return None
    listed = {s.snapshot_id for s in cp.snapshots}
    if any(f.snapshot_id not in listed for f in cp.files):
        return None  # inconsistent: a file of a snapshot it does not hold
    rec = await log.fetch(seq)
    if rec is None or rec.last_snapshot_id != cp.tip:
        return None
    return cp


async def newest_checkpoint(store: Store, log: CommitLog, upto: int) -> Checkpoint | None:
    """The newest sound checkpoint at or before record ``upto`` (a few probes at most).

    Cost: one ``get`` when the expected checkpoint exists; at most 3 + their
    records otherwise.
    """
    c = (upto // CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL
    probes = [c - i * CHECKPOINT_INTERVAL for i in range(_PROBES)]
    # Then the sparse ones gc keeps for time travel far back.
    sparse = (upto // SPARSE_INTERVAL) * SPARSE_INTERVAL
    probes += [p for p in (sparse, sparse - SPARSE_INTERVAL) if p < probes[-1]]
    for c in probes:
        if c < max(CHECKPOINT_INTERVAL, log.lwm):
            return None
        cp = await read_checkpoint(store, log, c)
        if cp is not None:
            return cp
    return None


def checkpoint_kept(seq: int, head_seq: int, below: int) -> bool:
    """Whether gc keeps the checkpoint at ``seq``: the newest few (readers of the
    head probe them), one per :data:`SPARSE_INTERVAL` records (time travel), and
    never one that folds only expired records."""
    if seq < below - (below % CHECKPOINT_INTERVAL):
        return False
    newest = (head_seq // CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL
    return seq > newest - 2 * CHECKPOINT_INTERVAL or seq % SPARSE_INTERVAL == 0


async def refresh_checkpoint(
    store: Store, log: CommitLog, head_seq: int, expiry: ExpiryState
) -> bool:
    """Rewrite the newest checkpoint at or before ``head_seq`` through ``expiry``
    when it was folded under an older one (gc calls it): otherwise every cold
    read would decode the expired history's files until the next boundary —
    for a dataset no longer written, forever. Best effort (derived data: a
    failure leaves the old one, which readers settle themselves).

    Cost: one ``get`` + one ``put`` when stale; nothing otherwise.
    """
    c = (head_seq // CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL
    if c < CHECKPOINT_INTERVAL:
        return False
    try:
        cp = await read_checkpoint(store, log, c)
        if cp is None or cp.expiry == expiry:
            return False
        view = Folded.start(cp)
        await settle(view, expiry)

        def build() -> bytes:
            return encode(view.checkpoint(log.spec.owner_id, cp.created_at, expiry))

        data = await anyio.to_thread.run_sync(build)  # rare, and large ones stall
        # The same fold of the same records, seen through a newer expiry state:
        # any copy of it a reader finds is sound.
        await retrying(log.retry, lambda: store.put(checkpoint_key(log, c), data, mode="overwrite"))
    except AiolodeError:
        return False
    return True


async def settle(view: Folded, expiry: ExpiryState) -> None:
    """``view.drop_expired(expiry)``, in a worker thread for large views."""
    if len(view.files) > _OFFLOAD_FILES:
        await anyio.to_thread.run_sync(view.drop_expired, expiry)
    else:
        view.drop_expired(expiry)


async def fold(
    store: Store,
    log: CommitLog,
    upto: int,
    *,
    start: int | None = None,
    base: Checkpoint | None = None,
    match: Callable[[Mapping[str, str]], bool] | None = None,
    use_checkpoints: bool = True,
    floor: int = 1,
    expiry: ExpiryState | None = None,
) -> Folded:
    """Fold records into a :class:`Folded` view up to record ``upto`` (inclusive).

    From ``base`` (or the newest checkpoint at or before ``upto``, or — without
    one — the first retained record), reading the records after it (windows of
    16) and the partition manifests their snapshots wrote, pruned by ``match``
    (partitions it refuses are neither read nor listed). Expired snapshots are
    left out as the expiry state *of the head* says, by the caller; records below
    ``floor`` (the expiry state's ``below``) are not read at all. With ``expiry``,
    the snapshots it covers are skipped as they are read (their partition
    manifests may have been collected) and ``floor`` is at least its ``below``.

    Raises
    ------
    HistoryGapError, FormatError, StorageError
        A record or partition manifest is missing or unreadable.
    """
    if base is None and use_checkpoints and start is None:
        base = await newest_checkpoint(store, log, upto)
    view = Folded.start(base)
    first = start if start is not None else (view.seq + 1 if base is not None else 1)
    if expiry is not None:
        floor = max(floor, expiry.below)
    first = max(first, floor)  # records below it hold only expired snapshots
    if first > upto:
        return view
    manifests: list[Manifest] = []
    async with aclosing(log.walk(first, upto)) as records:
        async for rec in records:
            manifests.extend(
                m
                for m in rec.snapshots
                if expiry is None or not expiry.covers(rec.seq, m.snapshot_id)
            )
            manifests.extend(rec.compactions)
            view.seq = rec.seq
            view.tip = rec.last_snapshot_id or view.tip

    async def load(m: Manifest) -> tuple[FileRef, ...]:
        return await load_files(store, m, match)

    loaded = await bounded_map(load, manifests, limit=_CONCURRENCY)
    for m, files in zip(manifests, loaded, strict=True):
        view.add(m, files)
    view.seq = upto
    return view


def checkpoint_due(log: CommitLog) -> bool:
    """Whether the log's known head crossed a checkpoint boundary this object has
    not seen folded (no I/O)."""
    head = log.head
    if head is None:
        return False
    c = (head.seq // CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL
    return c >= CHECKPOINT_INTERVAL and checkpoint_key(log, c) not in log.known


async def maybe_checkpoint(store: Store, log: CommitLog, head: CommitRecord | None) -> bool:
    """Fold and write the checkpoint due at the head's last interval boundary, if
    it is missing. Best effort: a lost race (it exists) or any failure just skips.

    Cost: nothing when not due; otherwise one ``head`` and, when missing, the
    previous checkpoint + up to :data:`CHECKPOINT_INTERVAL` records (most cached
    by a writer that saw them) + their partition manifests + one ``put``.
    """
    if head is None:
        return False
    c = (head.seq // CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL
    if c < CHECKPOINT_INTERVAL or checkpoint_key(log, c) in log.known:
        return False
    key = checkpoint_key(log, c)
    busy = _IN_FLIGHT.setdefault(log, set())
    if c in busy:
        return False  # another task of this process folds it
    busy.add(c)
    try:
        return await _write_checkpoint(store, log, c, key)
    finally:
        busy.discard(c)


async def _write_checkpoint(store: Store, log: CommitLog, c: int, key: str) -> bool:
    try:
        if await store.exists(key):
            log.known.add(key)
            return False
        record = await log.fetch(c)
        if record is None:
            return False
        expiry = await expiry_of(log, record)
        base = await newest_checkpoint(store, log, c - 1)
        view = await fold(store, log, c, base=base, use_checkpoints=False, expiry=expiry)
        await settle(view, expiry)

        def build() -> bytes:
            return encode(view.checkpoint(log.spec.owner_id, record.created_at, expiry))

        data = await anyio.to_thread.run_sync(build)  # rare, and large ones stall
        await put_unique(store, key, data, log.retry)
    except ObjectExistsError:
        pass
    except Exception:
        # Derived data: a failure to fold never fails the write it rides along.
        return False
    log.known.add(key)
    return True
