"""Following a log: every record once, in order, from a durable cursor.

A watcher waits at the first sequence it has not seen. While idle it spends on
average at most one store request per ``poll_interval``: a ``get`` of that next
record (which is absent until someone commits it); every 16th poll also checks,
in the same round trip, whether the record after it exists (every 256th: what
the hint names instead), and polls are spaced ``17/16 × poll_interval`` to pay
for it. So a record missing below the head (damage, or history collected below
a low-water mark that moved past a lagging watcher) is noticed rather than
waited on forever. A commit through the same store object in the same process
wakes its watchers at once (:mod:`._notify`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import anyio

from .._concurrency import reraise
from ..errors import HistoryGapError, TransientStorageError
from . import _notify

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ._log import LogRecord, SequenceLog

__all__ = ["follow"]

R = TypeVar("R", bound="LogRecord")

#: One poll in this many also checks what lies beyond the next record.
_CHECK_EVERY = 16
#: One check in this many reads the hint (a low-water mark past the watcher).
_HINT_EVERY = 16
#: Polls are spaced this much more than ``poll_interval``: the checks' extra
#: request is paid for, the idle rate stays one request per ``poll_interval``.
_SPACING = (_CHECK_EVERY + 1) / _CHECK_EVERY


async def follow(
    log: SequenceLog[R], *, start: int, poll_interval: float
) -> AsyncGenerator[R, None]:
    """Yield the records of ``log`` from sequence ``start`` on, forever, in order.

    Transient store errors are retried with the log's backoff (the watcher then
    resumes where it was); persistent ones are raised. Wrap in
    :func:`contextlib.aclosing`; cancellation is clean at any await.

    Raises
    ------
    HistoryGapError
        A record below the head is missing and is not below the low-water mark.
    FormatError
        A record is unreadable.
    StorageError
        The store kept failing (after the retry policy's attempts).
    """
    seq = max(start, 1)
    polls = 0
    failures = 0
    while True:
        if seq < log.lwm:
            seq = log.lwm  # expired history was collected: nothing to see there
        # Listen before looking: a commit that lands (and notifies) while the
        # look is in flight must still wake us, not leave us a whole poll behind.
        event = _notify.waiter(log.store, log.spec.prefix)
        backoff: float | None = None
        try:
            try:
                if polls % _CHECK_EVERY == _CHECK_EVERY - 1:
                    hint = (polls // _CHECK_EVERY) % _HINT_EVERY == _HINT_EVERY - 1
                    rec = await _checked(log, seq, via_hint=hint)
                else:
                    rec = await log.fetch(seq)
            except TransientStorageError:
                failures += 1
                if failures >= log.retry.attempts:
                    raise
                rec, backoff = None, max(log.retry.delay(failures), min(poll_interval, 1.0))
            else:
                failures = 0
                if rec is None and seq >= log.lwm:
                    polls += 1
                    with anyio.move_on_after(poll_interval * _SPACING):
                        await event.wait()
        finally:
            _notify.forget(log.store, log.spec.prefix, event)
        if backoff is not None:
            await anyio.sleep(backoff)
        elif rec is not None:
            polls = 0
            yield rec
            seq += 1


async def _checked(log: SequenceLog[R], seq: int, *, via_hint: bool) -> R | None:
    """Record ``seq``, and in the same round trip whether a later one exists
    (record ``seq + 1``, or a hint at or past ``seq``).

    A later record while ``seq`` is missing means ``seq`` was collected below
    the low-water mark (``None``: the caller jumps there) or the history was
    damaged (a gap).
    """
    found: list[R | None] = []
    beyond: list[bool] = []

    async def record() -> None:
        found.append(await log.fetch(seq))

    async def later() -> None:
        if via_hint:
            beyond.append(await log.read_hint() >= seq)
        else:
            beyond.append(await log.exists(seq + 1))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(record)
            tg.start_soon(later)
    except BaseExceptionGroup as eg:
        reraise(eg)
    if found[0] is not None or not beyond[0]:
        return found[0]
    # Records are written in order: read again, it exists unless it is gone.
    rec = await log.fetch(seq)
    if rec is not None:
        return rec
    if seq < await log.read_lwm():
        return None  # the caller jumps to the low-water mark
    raise HistoryGapError(
        f"{log.spec.kind} {log.spec.owner_id!r}: record {log.key(seq)!r} is missing below "
        f"a later one; the history was damaged",
        key=log.key(seq),
        sequence=seq,
        **log.spec.ctx(),
    )
