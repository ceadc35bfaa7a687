"""Expiry, garbage collection and drop: the dataset lifecycle, safe while writers run.

Every operation is a commit (or starts with one), so it is linear with the
writes around it: concurrent appends are rebased, never lost, and concurrent
expiries merge. Deletion is separate and conservative:

- *Expiry* only decides: it commits the new expiry state; an expired snapshot
  leaves every view at once, and its objects stay until ``gc()``.
- *GC* first commits a **fence** (``now - grace``), then deletes only objects
  that no retained snapshot references *and* that are older than the fence. A
  write that began before the fence is refused at its commit with
  :class:`~aiolode.StaleWriteError` (its unreferenced files may be gone), and a
  write that began after it cannot have files older than it. Records below the
  expiry state's ``below`` are deleted only after the low-water mark that tells
  searches to start above them is written. The argument, and its clock-skew
  assumption, are written out in ``docs/lifecycle.md``.
- *Drop* commits a tombstone, removes the descriptor (the name is gone), then
  everything else; log records only once older than ``grace``, so that no
  writer holding a recent view of the log can fill a freed slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .._history import Draft, retrying
from .._history._collect import (
    ago,
    check_grace,
    older_than_fence,
    record_fence,
    record_seq,
)
from .._history._maintenance import drop_history, finish_gc
from .._history._reports import DropReport, ExpireReport, GCReport
from .._history._uploads import dropped_uploads, pending_before
from .._validate import safe_repr
from ..errors import (
    HistoryGapError,
    InvalidInputError,
    ManifestFormatError,
    SnapshotNotFoundError,
)
from ..manifest._dataset import CommitRecord, ExpiryState, LogOp
from ..manifest._ids import dataset_snapshot_id, parse_dataset_snapshot_id
from ._checkpoint import Folded, checkpoint_kept, fold, refresh_checkpoint, settle
from ._commit import record_base
from ._files import snapshot_position
from ._state import dropped_error, expiry_of

if TYPE_CHECKING:
    from ..store import Store
    from ..types import PendingUpload
    from ._commit import Committer
    from ._log import CommitLog

__all__ = ("drop", "expire", "gc")


# ---------------------------------------------------------------------- expiry
async def expire(
    store: Store,
    log: CommitLog,
    committer: Committer,
    *,
    older_than: object = None,
    keep_last: object = None,
    snapshots: object = None,
    dry_run: bool = False,
) -> ExpireReport:
    """Expire snapshots; raises as :meth:`aiolode.Dataset.expire`."""
    dataset_id = log.spec.owner_id
    if older_than is None and keep_last is None and snapshots is None:
        raise InvalidInputError(
            "expire() needs older_than=, keep_last= or snapshots=", dataset_id=dataset_id
        )
    if older_than is not None and (
        not isinstance(older_than, timedelta) or older_than < timedelta(0)
    ):
        raise InvalidInputError(f"older_than must be a timedelta >= 0, not {safe_repr(older_than)}")
    if keep_last is not None and (
        not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1
    ):
        raise InvalidInputError(f"keep_last must be an int >= 1, not {safe_repr(keep_last)}")
    named: set[str] = set()
    if snapshots is not None:
        if isinstance(snapshots, str) or not isinstance(snapshots, Iterable):
            raise InvalidInputError(
                "snapshots must be an iterable of snapshot ids or Snapshots", dataset_id=dataset_id
            )
        for s in snapshots:
            seq, idx = snapshot_position(s, dataset_id)
            named.add(dataset_snapshot_id(seq, idx))
    cutoff = None if older_than is None else ago(older_than)
    found: dict[str, Any] = {}

    async def plan(head: CommitRecord | None) -> tuple[list[str], ExpiryState, ExpiryState]:
        state = await expiry_of(log, head)
        if head is None or head.last_snapshot_id is None:
            if named:
                raise SnapshotNotFoundError(
                    f"dataset {dataset_id!r} has no snapshot {sorted(named)[0]!r}",
                    dataset_id=dataset_id,
                    snapshot_id=sorted(named)[0],
                )
            return [], state, state
        if head.dropped:
            raise dropped_error(dataset_id)
        view = await fold(store, log, head.seq, expiry=state)
        await settle(view, state)
        retained = sorted(
            (s for s in view.snapshots.values() if s.operation == "append"),
            key=lambda s: s.snapshot_id,
        )
        ids = {s.snapshot_id for s in retained}
        for sid in named:
            seq, _ = parse_dataset_snapshot_id(sid, dataset_id=dataset_id)
            if sid not in ids and not state.covers(seq, sid):
                raise SnapshotNotFoundError(
                    f"dataset {dataset_id!r} has no snapshot {sid!r}",
                    dataset_id=dataset_id,
                    snapshot_id=sid,
                )
        chosen = {sid for sid in named if sid in ids}
        if cutoff is not None:
            chosen |= {s.snapshot_id for s in retained if s.created_at < cutoff}
        if keep_last is not None:
            assert isinstance(keep_last, int)
            chosen |= {s.snapshot_id for s in retained[:-keep_last]}
        chosen.discard(head.last_snapshot_id)  # the latest snapshot is never expired
        order = [s.snapshot_id for s in retained if s.snapshot_id in chosen]
        keep = [s.snapshot_id for s in retained if s.snapshot_id not in chosen]
        below = parse_dataset_snapshot_id(keep[0], dataset_id=dataset_id)[0]
        below = max(below, state.below)
        new = ExpiryState(
            below=below,
            ids=sorted(
                i
                for i in (*state.ids, *order)
                if parse_dataset_snapshot_id(i, dataset_id=dataset_id)[0] >= below
            ),
        )
        # What leaves the live view: the chosen snapshots' files, and compacted
        # files holding their rows (the retained rows' own files serve again).
        after = Folded(view.seq, view.tip, dict(view.snapshots), dict(view.files))
        after.drop_expired(new)
        found["files"] = [
            f.file
            for k, f in view.files.items()
            if f.live and not (k in after.files and after.files[k].live)
        ]
        return order, state, new

    if dry_run:
        order, _, _ = await plan(await log.refresh())
        files = found.get("files", [])
        return ExpireReport(
            True, tuple(order), tuple(f.key for f in files), sum(f.size for f in files), None
        )

    async def prepare(
        head: CommitRecord | None, seq: int, token: str
    ) -> Draft[CommitRecord] | None:
        order, _, new = await plan(head)
        if not order:
            found["order"] = []
            return None
        found["order"] = order
        base = record_base(log, head, seq, token, committer.life)
        base.update(expiry=new, expiry_seq=seq)
        return Draft(CommitRecord(snapshots=(), ops=(LogOp("expire", snapshot_ids=order),), **base))

    outcome = await committer.commit_ops(prepare)
    if outcome.error is not None:
        raise outcome.error
    files = found.get("files", []) if outcome.record is not None else []
    return ExpireReport(
        False,
        tuple(found.get("order", [])) if outcome.record is not None else (),
        tuple(f.key for f in files),
        sum(f.size for f in files),
        None if outcome.record is None else outcome.record.seq,
    )


# -------------------------------------------------------------------------- gc
async def _commit_fence(log: CommitLog, committer: Committer, fence: datetime) -> CommitRecord:
    async def prepare(
        head: CommitRecord | None, seq: int, token: str
    ) -> Draft[CommitRecord] | None:
        if head is not None and head.dropped:
            raise dropped_error(log.spec.owner_id)
        base = record_base(log, head, seq, token, committer.life)
        old = base.get("gc_fence")
        base["gc_fence"] = fence if old is None else max(old, fence)
        return Draft(CommitRecord(snapshots=(), ops=(LogOp("fence", fence=fence),), **base))

    outcome = await committer.commit_ops(prepare)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.record is not None
    return outcome.record


def _log_keep(
    log: CommitLog, key: str, below: int, keep_seqs: set[int], head_seq: int
) -> bool | None:
    """For a key under the log prefix: keep it (True), collect it (False); None
    for keys outside the log prefix."""
    prefix = log.spec.prefix
    if not key.startswith(prefix):
        return None
    name = key[len(prefix) :]
    if name in ("_latest.json", "_lwm.json"):
        return True
    if name.startswith("_checkpoints/"):
        stem = name[len("_checkpoints/") :].removesuffix(".json")
        return stem.isdigit() and checkpoint_kept(int(stem), head_seq, below)
    seq = record_seq(log, key)
    if seq is not None:
        return seq >= below or seq in keep_seqs
    return False


async def gc(
    store: Store,
    log: CommitLog,
    committer: Committer,
    root: str,
    descriptor_key: str,
    *,
    grace: object,
    dry_run: bool,
) -> GCReport:
    """Collect what no retained snapshot references; raises as :meth:`aiolode.Dataset.gc`."""
    fence = ago(check_grace(grace))
    head = await log.refresh()
    if head is not None and head.dropped:
        raise dropped_error(log.spec.owner_id)
    if not dry_run and head is not None:
        head = await _commit_fence(log, committer, fence)
    state = await expiry_of(log, head)
    referenced: set[str] = {descriptor_key}
    keep_seqs: set[int] = set()
    head_seq = 0 if head is None else head.seq
    if head is not None:
        view = await fold(store, log, head.seq, expiry=state)
        await settle(view, state)
        referenced |= {f.file.key for f in view.files.values()}
        referenced |= {k for s in view.snapshots.values() for k in s.partition_manifests}
        keep_seqs = {head.seq, head.expiry_seq}
        if head.last_snapshot_id is not None:
            keep_seqs.add(parse_dataset_snapshot_id(head.last_snapshot_id, dataset_id="")[0])
    # Idempotency markers expire with the snapshots they name: a marker older
    # than the oldest retained snapshot (less the grace a write may take) can
    # only name an expired one, or a write that never committed.
    keys_prefix = f"{log.spec.prefix}_keys/"
    oldest = min((s.created_at for s in view.snapshots.values()), default=None) if head else None
    keys_cutoff = None if oldest is None else ago(check_grace(grace), since=oldest)
    doomed: dict[str, int] = {}
    young = 0
    records_fence = record_fence(fence)
    async with aclosing(store.list(root)) as listing:
        async for obj in listing:
            if obj.key.startswith(keys_prefix):
                if keys_cutoff is None or not older_than_fence(
                    store, obj.last_modified, keys_cutoff
                ):
                    continue
                doomed[obj.key] = obj.size
                continue
            keep = _log_keep(log, obj.key, state.below, keep_seqs, head_seq)
            if keep or (keep is None and obj.key in referenced):
                continue
            is_record = record_seq(log, obj.key) is not None
            if not older_than_fence(
                store, obj.last_modified, records_fence if is_record else fence
            ):
                young += 1
                continue
            doomed[obj.key] = obj.size
    # Killed writes' uploads: started before the fence, so refused at commit.
    uploads = await pending_before(store, root, fence)
    report = await finish_gc(
        store,
        log,
        head,
        doomed,
        below=state.below,
        fence=fence,
        young=young,
        uploads=uploads,
        dry_run=dry_run,
    )
    if not dry_run and head is not None:
        await refresh_checkpoint(store, log, head.seq, state)
    return report


# ------------------------------------------------------------------------ drop
class _Drop:
    """A dataset's answers to :func:`drop_history`."""

    def __init__(
        self, store: Store, log: CommitLog, committer: Committer | None, root: str, descriptor: str
    ) -> None:
        self.store, self.log, self.committer = store, log, committer
        self.root, self.descriptor = root, descriptor

    async def old_life(self, head: CommitRecord | None) -> Callable[[str], bool]:
        # What the history names goes at once (a new life never names it); the
        # rest waits for the store clock to pass the tombstone.
        named: set[str] = set()
        if head is not None and not head.dropped:
            try:
                # Expired snapshots' records too while they last: their files
                # may not have been collected yet.
                view = await fold(self.store, self.log, head.seq, floor=1)
            except (HistoryGapError, ManifestFormatError):
                # Some were (a partition manifest is gone): the retained history.
                expiry = await expiry_of(self.log, head)
                view = await fold(self.store, self.log, head.seq, expiry=expiry)
            named |= {f.file.key for f in view.files.values()}
            named |= {k for s in view.snapshots.values() for k in s.partition_manifests}
        return named.__contains__

    async def tombstone(self) -> None:
        if self.committer is None:
            return
        log, life = self.log, self.committer.life

        async def prepare(
            head: CommitRecord | None, seq: int, token: str
        ) -> Draft[CommitRecord] | None:
            if head is not None and head.dropped:
                return None
            base = record_base(log, head, seq, token, life)
            return Draft(CommitRecord(snapshots=(), ops=(LogOp("drop"),), dropped=True, **base))

        outcome = await self.committer.commit_ops(prepare)
        if outcome.error is not None:
            raise outcome.error

    async def forget(self) -> None:
        # The name is gone from here on: nothing opens it, nothing writes to it.
        await retrying(self.log.retry, lambda: self.store.delete(self.descriptor))

    async def new_life(self) -> bool:
        return await self.store.exists(self.descriptor)

    async def uploads(self, head: CommitRecord | None, grace: timedelta) -> list[PendingUpload]:
        return await dropped_uploads(
            self.store, self.log, self.root, head, grace=grace, new_life=self.new_life
        )


async def drop(
    store: Store,
    log: CommitLog,
    committer: Committer | None,
    root: str,
    descriptor_key: str,
    *,
    grace: object,
    dry_run: bool,
) -> DropReport:
    """Drop the dataset; raises as :meth:`aiolode.Dataset.drop`."""
    hooks = _Drop(store, log, committer, root, descriptor_key)
    return await drop_history(store, log, root, hooks, grace=grace, dry_run=dry_run)
