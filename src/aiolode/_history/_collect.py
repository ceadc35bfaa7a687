"""What garbage collection and drop share between datasets and volumes.

Both sweep one prefix listing and delete, with bounded concurrency, what no
retained record references; both keep the records of a dropped history until
no writer can still hold a view of the log from before the drop. Only the
question "what do the retained records reference" differs, and stays with the
caller. The safety argument is written out in ``docs/lifecycle.md``.
"""

from __future__ import annotations

from contextlib import aclosing, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .._concurrency import bounded_map
from .._validate import safe_repr
from ..errors import InvalidInputError, ObjectNotFoundError
from ._calls import retrying
from ._log import WRITER_MAX_WARM_AGE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from ..store import Store
    from ._log import LogRecord, SequenceLog

__all__ = (
    "DELETE_CONCURRENCY",
    "ago",
    "check_grace",
    "delete_keys",
    "older_than_fence",
    "record_fence",
    "record_seq",
    "stored_at",
    "sweep_dropped",
)

#: Deletes in flight at once.
DELETE_CONCURRENCY = 16


def record_fence(fence: datetime) -> datetime:
    """The fence for log records: ``fence``, and never later than twice the
    longest a writer builds on a view of the log without re-reading it.

    A writer appends at the slot after the head it knows; that slot was
    created after its view, so within the window. A collection that deleted a
    younger record below the low-water mark could free exactly that slot, and
    the writer's commit would land below the mark, acknowledged and invisible.
    """
    return min(fence, datetime.now(UTC) - timedelta(seconds=2 * WRITER_MAX_WARM_AGE))


def older_than_fence(store: Store, stamp: datetime | None, fence: datetime) -> bool:
    """Whether an object the store stamped ``stamp`` was surely stored before
    ``fence``, given how coarse its stamps are (no stamp: never)."""
    return stamp is not None and stamp + store.stamp_resolution <= fence


def ago(delta: timedelta, *, since: datetime | None = None) -> datetime:
    """``since - delta`` (``since``: now); the earliest datetime when that is
    before year 1 (an age longer than time: nothing is that old)."""
    try:
        return (datetime.now(UTC) if since is None else since) - delta
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def check_grace(grace: object) -> timedelta:
    """``grace`` as a timedelta >= 0.

    Raises
    ------
    InvalidInputError
        It is not one.
    """
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise InvalidInputError(f"grace must be a timedelta >= 0, not {safe_repr(grace)}")
    return grace


def record_seq(log: SequenceLog[Any], key: str) -> int | None:
    """The sequence number of a record key of this log, else ``None``."""
    prefix = log.spec.prefix
    if not key.startswith(prefix) or not key.endswith(".json"):
        return None
    stem = key[len(prefix) : -len(".json")]
    if stem.isdigit() and len(stem) == log.spec.width:
        return int(stem)
    return None


async def delete_keys(store: Store, log: SequenceLog[Any], keys: Iterable[str]) -> None:
    """Delete ``keys`` (already gone is fine), :data:`DELETE_CONCURRENCY` at a time.

    Raises
    ------
    StorageError
        A delete kept failing.
    """

    async def one(key: str) -> None:
        with suppress(ObjectNotFoundError):
            await retrying(log.retry, lambda: store.delete(key))

    await bounded_map(one, sorted(keys), limit=DELETE_CONCURRENCY)


async def stored_at(store: Store, log: SequenceLog[Any], seq: int) -> datetime | None:
    """When the store stored record ``seq`` (by its own clock), if it says.

    Raises
    ------
    StorageError
        The store kept failing.
    """
    try:
        info = await retrying(log.retry, lambda: store.head(log.key(seq)))
    except ObjectNotFoundError:
        return None
    return info.last_modified


async def sweep_dropped(
    store: Store,
    log: SequenceLog[Any],
    root: str,
    tombstone: LogRecord | None,
    *,
    grace: timedelta,
    dry_run: bool,
    new_life: Callable[[], Awaitable[bool]],
    old_life: Callable[[str], bool] = lambda key: False,
) -> tuple[list[str], list[str]]:
    """Delete what a drop leaves under ``root``; return ``(deleted, remaining)``.

    Objects for which ``old_life(key)`` is true (named by the dropped history,
    which no new life ever names) go at once whatever their stamp.

    Objects other than log records go if the store stored them before the
    tombstone (store clock against store clock: no skew; S3 stamps whole
    seconds, so an object of the tombstone's second waits for a later run): a
    new life of the name may begin as soon as the tombstone is visible, and its
    objects are never older than it. Log records go only once the tombstone is
    older than ``grace`` and than twice the longest a writer builds on a view
    of the log without re-reading it, so such a writer finds its next slot
    taken rather than filling a freed one; then, with no new life begun
    (``new_life()``, asked after listing), the leftovers of the tombstone's
    second go too, the tombstone last but for the low-water mark.

    Raises
    ------
    StorageError
        The store failed.
    """
    dropped = tombstone is not None and tombstone.dropped
    keep_window = max(grace, timedelta(seconds=2 * WRITER_MAX_WARM_AGE))
    log_may_go = (
        tombstone is not None
        and dropped
        and datetime.now(UTC) - tombstone.created_at >= keep_window
    )
    cutoff = (
        await stored_at(store, log, tombstone.seq) if tombstone is not None and dropped else None
    )
    deleted: list[str] = []
    young_records: list[str] = []
    old_records: list[str] = []
    newer: dict[str, datetime] = {}
    async with aclosing(store.list(root)) as listing:
        async for obj in listing:
            if obj.key == log.spec.lwm_key:
                continue
            if record_seq(log, obj.key) is None:
                if (
                    old_life(obj.key)
                    or cutoff is None
                    or obj.last_modified is None
                    or obj.last_modified < cutoff
                ):
                    deleted.append(obj.key)
                else:
                    newer[obj.key] = obj.last_modified
            elif log_may_go:
                old_records.append(obj.key)
            else:
                young_records.append(obj.key)
    if newer and log_may_go and not await new_life():
        old_enough = datetime.now(UTC) - keep_window
        late = {k for k, t in newer.items() if t < old_enough}
        deleted += sorted(late)
        newer = {k: t for k, t in newer.items() if k not in late}
    finished = not young_records and not newer
    if not dry_run:
        await delete_keys(store, log, deleted)
        if finished:
            # The whole log is old enough: it goes too, oldest first, the
            # tombstone last, then the low-water mark that kept searches above
            # the freed slots.
            last = max(old_records, default=None)
            await delete_keys(store, log, [k for k in old_records if k != last])
            if last is not None:
                await delete_keys(store, log, [last])
            await delete_keys(store, log, [log.spec.lwm_key])
    if finished:
        deleted += [*sorted(old_records), log.spec.lwm_key]
        return deleted, []
    return deleted, [*old_records, *young_records, *newer]
