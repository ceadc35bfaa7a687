"""Volume lifecycle: expiry of old snapshots, garbage collection, drop.

A volume snapshot holds every block of its parent, so expiry forgets old
*views*, never bytes: it raises the log's low-water mark. What garbage
collection frees is what no retained view uses — blocks staged but never
committed, index segments merged away, roots below the mark — each only once
older than the fence it first commits (a root that is not a snapshot), which
also makes a commit of blocks staged before it fail instead of pointing at
collected bytes. Drop commits a tombstone and sweeps the prefix with the
dataset's rules (:func:`aiolode._history._collect.sweep_dropped`). The safety
argument is in ``docs/lifecycle.md``.
"""

from __future__ import annotations

from contextlib import aclosing
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .._history._collect import (
    ago,
    check_grace,
    older_than_fence,
    record_fence,
    record_seq,
)
from .._history._maintenance import drop_history, finish_gc
from .._history._reports import DropReport, ExpireReport, GCReport
from .._history._uploads import ANY_AGE, abort_uploads, pending_before
from .._validate import check_int, safe_repr
from ..errors import InvalidInputError, VolumeNotFoundError
from ..manifest._ids import parse_volume_snapshot_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..manifest._volume import VolumeRoot
    from ..types import PendingUpload
    from ._index import VolumeIndex
    from ._log import RootLog

    #: Commits a maintenance root: ``(operation, fence, expired_below)``.
    CommitOp = Callable[[str, datetime | None, int], Awaitable[VolumeRoot | None]]

__all__ = ("drop", "dropped_error", "expire", "gc", "resolve_tip")


def dropped_error(volume_id: str) -> VolumeNotFoundError:
    """The error for a volume whose log ends with a drop."""
    return VolumeNotFoundError(f"volume {volume_id!r} was dropped", volume_id=volume_id)


async def resolve_tip(log: RootLog, root: VolumeRoot | None) -> VolumeRoot | None:
    """The commit root of the newest snapshot at or before ``root`` (``None``: none).

    Raises
    ------
    VolumeNotFoundError
        ``root`` drops the volume.
    SnapshotExpiredError, FormatError, StorageError
        The tip's root is collected or damaged, or the store failed.
    """
    if root is None:
        return None
    if root.dropped:
        raise dropped_error(log.spec.owner_id)
    if root.is_snapshot or root.tip is None:
        return root if root.is_snapshot else None
    seq = parse_volume_snapshot_id(root.tip, volume_id=log.spec.owner_id)
    return await log.require(seq, root.tip)


# ---------------------------------------------------------------------- expiry
async def expire(
    log: RootLog,
    commit_op: CommitOp,
    *,
    older_than: object,
    keep_last: object,
    dry_run: bool,
) -> ExpireReport:
    """Expire old snapshots; raises as :meth:`aiolode.Volume.expire`."""
    volume_id = log.spec.owner_id
    if older_than is None and keep_last is None:
        raise InvalidInputError("expire() needs older_than= or keep_last=", volume_id=volume_id)
    if older_than is not None and (
        not isinstance(older_than, timedelta) or older_than < timedelta(0)
    ):
        raise InvalidInputError(f"older_than must be a timedelta >= 0, not {safe_repr(older_than)}")
    if keep_last is not None:
        check_int("keep_last", keep_last, minimum=1)
    cutoff = None if older_than is None else ago(older_than)
    head = await log.refresh()
    if head is not None and head.dropped:
        raise dropped_error(volume_id)
    tip = None if head is None else head.last_snapshot_id
    if head is None or tip is None:
        return ExpireReport(dry_run, (), (), 0, None)
    tip_seq = parse_volume_snapshot_id(tip, volume_id=volume_id)
    floor = head.expired_below
    below = floor
    if isinstance(keep_last, int):
        kept = 0
        async with aclosing(log.walk(floor, tip_seq, newest_first=True)) as roots:
            async for root in roots:
                if root.is_snapshot:
                    kept += 1
                    if kept == keep_last:
                        below = max(below, root.seq)
                        break
    if cutoff is not None:
        # The newest root committed before the cutoff: everything up to it goes.
        older = await log.as_of(ago(timedelta(microseconds=1), since=cutoff))
        if older is not None:
            below = max(below, older.seq + 1)
    below = min(below, tip_seq)  # the latest snapshot is never expired
    if below <= floor:
        return ExpireReport(dry_run, (), (), 0, None)
    record = None
    if not dry_run:
        done = await commit_op("expire", None, below)
        if done is None:
            return ExpireReport(dry_run, (), (), 0, None)
        # Concurrent expiries merge: report what this one moved.
        record, below = done.seq, done.expired_below
        floor = min(floor, below)
    expired: list[str] = []
    async with aclosing(log.walk(floor, below - 1)) as roots:
        async for root in roots:
            if root.snapshot_id is not None:
                expired.append(root.snapshot_id)
    return ExpireReport(dry_run, tuple(expired), (), 0, record)


# -------------------------------------------------------------------------- gc
async def _referenced(log: RootLog, index: VolumeIndex, head: VolumeRoot) -> set[str]:
    """Every index object a retained root uses, and every committed block."""
    out: set[str] = set()
    async with aclosing(log.walk(head.expired_below, head.seq)) as roots:
        async for root in roots:
            out.update(ref.key for ref in root.segments)
            if root.frozen_key is not None and root.frozen_key not in out:
                out.add(root.frozen_key)
                refs = await index.segment_list(root.frozen_key, root.frozen_digest)
                out.update(ref.key for ref in refs)
    tip = await resolve_tip(log, head)
    if tip is not None:
        # A snapshot holds every block of every earlier one: the newest's are all.
        state = await index.state(tip)
        for run in state.runs:
            prefix = run.key_prefix
            out.update(prefix + name for name in run.names)
    return out


async def gc(
    log: RootLog,
    index: VolumeIndex,
    commit_op: CommitOp,
    *,
    grace: object,
    dry_run: bool,
) -> GCReport:
    """Collect what no retained snapshot references; raises as :meth:`aiolode.Volume.gc`."""
    fence = ago(check_grace(grace))
    store = log.store
    head = await log.refresh()
    if head is not None and head.dropped:
        raise dropped_error(log.spec.owner_id)
    # Listed before the fence is committed: a commit landing in between is in
    # the state read after it, and one landing after it cannot use an object
    # older than the fence (its blocks would be refused).
    listing: list[tuple[str, int, datetime | None]] = []
    async with aclosing(store.list(index.prefix)) as objects:
        async for obj in objects:
            listing.append((obj.key, obj.size, obj.last_modified))
    # Killed writes' uploads: blocks staged before the fence, refused at commit.
    uploads = await pending_before(store, index.prefix, fence)
    if not listing:
        if not dry_run:
            await abort_uploads(store, log, uploads)
        return GCReport(dry_run, fence, (), 0, 0, tuple(uploads))
    if not dry_run:
        head = await commit_op("fence", fence, 1)
    below = 1 if head is None else head.expired_below
    referenced = set() if head is None else await _referenced(log, index, head)
    pointers = {log.spec.hint_key, log.spec.lwm_key}
    doomed: dict[str, int] = {}
    young = 0
    records_fence = record_fence(fence)
    for key, size, stamp in listing:
        if key in pointers or key in referenced:
            continue
        seq = record_seq(log, key)
        if seq is not None and seq >= below:
            continue  # retained, or newer than the head we read (a commit since)
        if not older_than_fence(store, stamp, fence if seq is None else records_fence):
            young += 1
            continue
        doomed[key] = size
    return await finish_gc(
        store,
        log,
        head,
        doomed,
        below=below,
        fence=fence,
        young=young,
        uploads=uploads,
        dry_run=dry_run,
    )


# ------------------------------------------------------------------------ drop
class _Drop:
    """A volume's answers to :func:`drop_history`: a dropped volume has no new
    life, so every block, segment, list and upload under it goes (a writer
    still staging is refused at commit)."""

    def __init__(self, log: RootLog, prefix: str, commit_op: CommitOp) -> None:
        self.log, self.prefix, self.commit_op = log, prefix, commit_op

    async def old_life(self, head: VolumeRoot | None) -> Callable[[str], bool]:
        return lambda key: True

    async def tombstone(self) -> None:
        await self.commit_op("drop", None, 1)

    async def forget(self) -> None:
        pass  # a volume is opened by its id alone

    async def new_life(self) -> bool:
        return False  # no commit is accepted on a dropped head

    async def uploads(self, head: VolumeRoot | None, grace: timedelta) -> list[PendingUpload]:
        return await pending_before(self.log.store, self.prefix, ANY_AGE, exact=True)


async def drop(
    log: RootLog, index: VolumeIndex, commit_op: CommitOp, *, grace: object, dry_run: bool
) -> DropReport:
    """Drop the volume; raises as :meth:`aiolode.Volume.drop`."""
    hooks = _Drop(log, index.prefix, commit_op)
    return await drop_history(log.store, log, index.prefix, hooks, grace=grace, dry_run=dry_run)
