"""The ingestion engine: one bounded buffer, one writer task, exact accounting.

Both policies run on this engine; they differ in parameters only:

============== ============================== ==================================
               Strict                         Buffered
============== ============================== ==================================
capacity       2 batches (one in flight)      ``max_buffer_rows`` / ``_bytes``
batch          ``max_batch_rows`` / ``_bytes`` ``flush_rows`` / ``flush_bytes``
cut a batch    the writer is free, after      a size threshold, the oldest
               ``max_delay``                  record's age, or a full buffer
when full      the emitter waits (FIFO)       ``on_full``
emit returns   once the record is committed   once the record is accepted
============== ============================== ==================================

Every accepted record gets the next ``seq`` (so do records dropped on
arrival), and sits in the buffer until it is *resolved*: written (its batch
committed), or dropped for a counted reason. The capacity counts records being
committed, not only queued ones, so memory is bounded whatever the store does.

One writer task takes batches from the front of the queue and commits them
one at a time, in order: a run's records reach the dataset in ``seq`` order,
and the snapshots of a run are ordered like its batches. A batch that fails
transiently is retried (backoff, forever: the buffer applies backpressure or
its drop policy meanwhile); a commit whose outcome the store would not tell is
looked up by its batch key before anything is retried, so it is never
committed twice; a batch the codec refuses is split in halves until the
culprit record stands alone (a batch may mix values a single write refuses
together, e.g. one column holding ints and strings).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import random
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..errors import (
    AiolodeError,
    ConfigMismatchError,
    InvalidInputError,
    PermissionDeniedError,
    SnapshotConflictError,
    StaleWriteError,
    StorageError,
    TransientStorageError,
    UnsupportedOperationError,
)
from ._progress import find_batch
from ._records import decode_lines, with_seq
from ._stats import BUFFER_FULL, DEADLINE, INVALID, WRITE_FAILED, Counters, Drop, DropLog

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from ..dataset import Dataset, Snapshot
    from ..layout import Layout
    from ._policy import OnFull
    from ._run import Run

__all__ = ("Engine", "Item", "Limits", "Ticket", "Waiter", "commit_batch")

_log = logging.getLogger("aiolode.ingest")

#: Commit times are the committing writer's clock, made monotonic along the log;
#: the batch lookup starts this much before the batch's first attempt.
_LOOKUP_MARGIN = timedelta(minutes=1)
#: Backoff between retries of a failing batch (and of a failing lookup).
_BACKOFF_BASE = 0.02
_BACKOFF_MAX = 2.0

_SPLIT: Final = object()


def _backoff(attempt: int) -> float:
    d = min(_BACKOFF_MAX, _BACKOFF_BASE * (2.0 ** max(0, attempt - 1)))
    return d * (0.5 + random.random() / 2)


class Ticket:
    """What a Strict emitter waits on: its record's outcome."""

    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.error: BaseException | None = None


class Item:
    """One record in the buffer."""

    __slots__ = ("event_type", "nbytes", "record", "seq", "t", "ticket")

    def __init__(
        self, record: dict[str, Any] | bytes, nbytes: int, event_type: str, ticket: Ticket | None
    ) -> None:
        self.record = record
        self.nbytes = nbytes
        self.event_type = event_type
        self.ticket = ticket
        self.seq = 0
        self.t = 0.0


class Waiter:
    """An emit blocked on a full buffer (served first come, first served)."""

    __slots__ = ("error", "event", "item")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.event = anyio.Event()
        self.error: BaseException | None = None


class Limits:
    """The engine's parameters (see the module docstring's table)."""

    __slots__ = (
        "batch_bytes",
        "batch_rows",
        "cap_bytes",
        "cap_rows",
        "delay",
        "durable",
        "on_full",
    )

    def __init__(
        self,
        *,
        cap_rows: int,
        cap_bytes: int,
        batch_rows: int,
        batch_bytes: int,
        delay: float,
        on_full: OnFull,
        durable: bool,
    ) -> None:
        self.cap_rows = cap_rows
        self.cap_bytes = cap_bytes
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.delay = delay
        self.on_full = on_full
        self.durable = durable


async def commit_batch(
    ds: Dataset, part: list[Item], metadata: Mapping[str, Any], *, key: str, streaming: bool
) -> Snapshot:
    """Commit one batch (``part``; empty: a metadata-only snapshot) as one snapshot.

    With a streaming codec the records flow through
    :meth:`~aiolode.Dataset.stream_write_records`, decoded from the buffer 1,024
    at a time: the batch is never held as objects all at once (a 10,000-record
    batch costs ~20 MiB less this way, and is written faster).

    Raises
    ------
    AiolodeError
        As for :meth:`~aiolode.Dataset.write`.
    """
    # Not Dataset.write(idempotency_key=key): the batch key in the metadata
    # already lets Engine._resolve find a batch whose outcome the store would
    # not tell, at no cost on the happy path, whereas a dataset key costs a
    # marker get and two marker puts per commit (three sequential round trips
    # on a two-round-trip commit) and is not honoured when its marker could
    # not be stored (tests/ingest/test_idempotency_keys.py pins that).
    if part and streaming:
        return await ds.stream_write_records(_stream(part), metadata, batch_size=_CHUNK)
    return await ds.write(await _records_of(part) if part else [], metadata)


#: Records decoded (and handed to the streaming encoder) at a time.
_CHUNK = 1024


async def _stream(part: list[Item]) -> AsyncIterator[dict[str, Any]]:
    for i in range(0, len(part), _CHUNK):
        for rec in await _records_of(part[i : i + _CHUNK]):
            yield rec


#: Below this many buffered JSON lines, decoding on the loop is cheaper than a thread.
_DECODE_INLINE = 64


async def _records_of(part: list[Item]) -> list[dict[str, Any]]:
    """The part's records as mappings (buffered JSON lines decoded in bulk, in a
    worker thread when there are many: 10,000 lines take ~10-30 ms)."""
    lines: list[bytes] = []
    records: list[dict[str, Any]] = []
    for it in part:
        if isinstance(it.record, bytes):
            lines.append(it.record)
        else:
            records.append(it.record)
    if not lines:
        return records
    if len(lines) <= _DECODE_INLINE:
        return decode_lines(lines)
    return await anyio.to_thread.run_sync(decode_lines, lines)


class Engine:
    """The buffer and its writer for one ingestor (see the module docstring)."""

    def __init__(
        self,
        ds: Dataset,
        layout: Layout,
        run: Run,
        policy_desc: Mapping[str, Any],
        limits: Limits,
        *,
        first_seq: int,
        on_drop: Callable[[Drop], object] | None,
        streaming: bool,
    ) -> None:
        self._ds = ds
        self._layout = layout
        self._run = run
        self._run_desc = run.describe()
        self._policy_desc = dict(policy_desc)
        self.limits = limits
        self._on_drop = on_drop
        self._streaming = streaming
        self.counters = Counters()
        self._droplog = DropLog(_log, f"ingest into {ds.id!r} (run {run.run_id!r})")
        self._queue: deque[Item] = deque()
        self._queued_bytes = 0
        self._waiters: deque[Waiter] = deque()
        self.held_rows = 0
        self.held_bytes = 0
        #: Parts of the batch being committed, not yet resolved (oldest first).
        self._parts: deque[list[Item]] = deque()
        #: The part whose commit outcome is being looked up (in doubt if abandoned).
        self._resolving: tuple[list[Item], str] | None = None
        self._next_seq = first_seq
        self._closing = False
        self._full = False
        self._flush_through = 0
        self._reported_drops = 0
        self._wake = anyio.Event()
        self._progress = anyio.Event()
        self.done = anyio.Event()
        self.fatal: BaseException | None = None

    # ------------------------------------------------------------- producers
    def _fits(self, nbytes: int) -> bool:
        lim = self.limits
        if self.held_rows + 1 > lim.cap_rows:
            return False
        # A record larger than the whole capacity still fits an empty buffer.
        return self.held_bytes + nbytes <= lim.cap_bytes or self.held_rows == 0

    def offer(self, item: Item) -> int | Waiter | None:
        """Accept ``item`` now (its seq), drop it (``None``), or make it wait (a Waiter).

        Synchronous: no checkpoint between the capacity check and the acceptance.
        """
        if self.fatal is not None:
            raise self._fatal_error()
        if not self._waiters and self._fits(item.nbytes):
            return self._accept(item)
        on_full = self.limits.on_full
        if on_full == "block":
            w = Waiter(item)
            self._waiters.append(w)
            self._poke_full()
            return w
        if on_full == "drop_oldest":
            while self._queue and not self._fits(item.nbytes):
                old = self._queue.popleft()
                self._queued_bytes -= old.nbytes
                self._release([old])
                self._drop([old], BUFFER_FULL, None)
            if self._fits(item.nbytes):
                self._poke_full()
                return self._accept(item)
        # drop_newest, or drop_oldest with every held record already in flight.
        self._number(item)
        self.counters.emitted += 1
        self._drop([item], BUFFER_FULL, None)
        self._poke_full()
        return None

    def _number(self, item: Item) -> None:
        item.seq = self._next_seq
        self._next_seq += 1
        rec = item.record
        if isinstance(rec, bytes):
            item.record = with_seq(rec, item.seq)
        else:
            rec["seq"] = item.seq

    def _accept(self, item: Item) -> int:
        self._number(item)
        item.t = time.monotonic()
        was_empty = not self._queue
        self._queue.append(item)
        self._queued_bytes += item.nbytes
        self.held_rows += 1
        self.held_bytes += item.nbytes
        self.counters.emitted += 1
        lim = self.limits
        if was_empty or len(self._queue) >= lim.batch_rows or self._queued_bytes >= lim.batch_bytes:
            self._wake.set()
        return item.seq

    async def wait_admitted(self, w: Waiter) -> int:
        """Wait until a blocked emit's record is accepted; return its seq.

        Raises
        ------
        UnsupportedOperationError
            The ingestor closed (past its deadline) before there was room.
        """
        try:
            await w.event.wait()
        except BaseException:
            if not w.event.is_set():
                # Withdrawn before acceptance: never emitted, nothing to count.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(w)
            raise
        if w.error is not None:
            raise w.error
        return w.item.seq

    @staticmethod
    async def wait_durable(ticket: Ticket) -> None:
        """Wait until a Strict record is resolved; raise if it was not written.

        Cancelling the wait does not withdraw the record: it is accepted and
        will be committed (or counted) like any other.

        Raises
        ------
        AiolodeError
            Why the record was not written (a copy per emitter, chained to the
            batch's error).
        """
        await ticket.event.wait()
        err = ticket.error
        if err is not None:
            raise copy.copy(err) from err

    def _poke_full(self) -> None:
        self._full = True
        self._wake.set()

    def request_flush(self) -> int:
        """Ask the writer to commit everything accepted so far; returns the seq to wait for."""
        self._flush_through = max(self._flush_through, self._next_seq - 1)
        self._wake.set()
        return self._flush_through

    def resolved_through(self, seq: int) -> bool:
        """Whether every record accepted with a seq <= ``seq`` is resolved."""
        if self._queue and self._queue[0].seq <= seq:
            return False
        return not any(p and p[0].seq <= seq for p in self._parts)

    async def wait_progress(self) -> None:
        """Wait until some record is resolved (or the writer ends)."""
        if self.done.is_set():
            return
        await self._progress.wait()

    def close(self) -> None:
        """Stop accepting; the writer drains everything, then ends."""
        self._closing = True
        self._wake.set()

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing

    # ------------------------------------------------------------ resolution
    def _release(self, items: list[Item]) -> None:
        self.held_rows -= len(items)
        self.held_bytes -= sum(it.nbytes for it in items)
        self._admit()
        self._progress.set()
        self._progress = anyio.Event()

    def _admit(self) -> None:
        while self._waiters and self._fits(self._waiters[0].item.nbytes):
            w = self._waiters.popleft()
            self._accept(w.item)
            w.event.set()

    def _drop(self, items: list[Item], reason: str, error: BaseException | None) -> None:
        c = self.counters
        for it in items:
            c.drop(reason, it.event_type)
            if it.ticket is not None:
                it.ticket.error = error or UnsupportedOperationError(
                    f"record seq {it.seq} was not written ({reason})", dataset_id=self._ds.id
                )
                it.ticket.event.set()
            if self._on_drop is not None:
                rec = it.record
                try:
                    if isinstance(rec, bytes):
                        rec = decode_lines([rec])[0]
                    self._on_drop(Drop(rec, it.seq, it.event_type, reason))
                except Exception:
                    _log.exception("on_drop callback failed (ignored)")
        self._droplog.note(reason, len(items))

    def _written(self, part: list[Item], snap: Snapshot, drops_reported: int) -> None:
        c = self.counters
        c.written += len(part)
        c.batches += 1
        c.bytes_written += sum(it.nbytes for it in part)
        c.last_snapshot_id = snap.id
        self._reported_drops = max(self._reported_drops, drops_reported)
        for it in part:
            if it.ticket is not None:
                it.ticket.event.set()

    def _fatal_error(self) -> AiolodeError:
        err = AiolodeError(f"the ingestor's writer failed: {self.fatal!r}", dataset_id=self._ds.id)
        err.__cause__ = self.fatal
        return err

    # ---------------------------------------------------------------- writer
    async def run(self) -> None:
        """The writer task: cut batches and commit them until closed and drained.

        Never raises an error (a bug is recorded in :attr:`fatal` and every held
        record is counted); cancellation (the close deadline) counts what it
        leaves behind and propagates.
        """
        try:
            while True:
                trigger = await self._next_trigger()
                if trigger is None:
                    break
                await self._commit(self._take(trigger))
                if self.limits.durable:
                    # Let the emitters just woken emit again before the next batch
                    # is cut (group commit without a timer).
                    await anyio.lowlevel.cancel_shielded_checkpoint()
            await self._tally()
        except Exception as exc:
            _log.exception("ingest writer for %r failed", self._ds.id)
            self.fatal = exc
            self._abandon(WRITE_FAILED, self._fatal_error())
        except BaseException:
            self._abandon(DEADLINE, None)
            raise
        finally:
            self._droplog.flush()
            self.done.set()
            self._progress.set()

    def _trigger_now(self, now: float) -> str | None:
        q = self._queue
        if not q:
            return None
        lim = self.limits
        if len(q) >= lim.batch_rows:
            return "rows"
        if self._queued_bytes >= lim.batch_bytes:
            return "bytes"
        if self._full or self._waiters:
            return "full"
        if q[0].seq <= self._flush_through:
            return "flush"
        if self._closing:
            return "close"
        if now - q[0].t >= lim.delay:
            return "writer_free" if lim.durable else "interval"
        return None

    async def _next_trigger(self) -> str | None:
        while True:
            self._wake = anyio.Event()
            now = time.monotonic()
            trigger = self._trigger_now(now)
            if trigger is not None:
                return trigger
            if not self._queue:
                if self._closing and not self._waiters:
                    return None
                timeout = math.inf
            else:
                timeout = self.limits.delay - (now - self._queue[0].t)
            with anyio.move_on_after(timeout):
                await self._wake.wait()

    def _take(self, trigger: str) -> list[Item]:
        self.counters.flushes[trigger] += 1
        self._full = False
        lim = self.limits
        batch: list[Item] = []
        size = 0
        q = self._queue
        while q and len(batch) < lim.batch_rows:
            nb = q[0].nbytes
            if batch and size + nb > lim.batch_bytes:
                break
            batch.append(q.popleft())
            size += nb
        self._queued_bytes -= size
        return batch

    async def _commit(self, batch: list[Item]) -> None:
        parts = self._parts
        parts.append(batch)
        while parts:
            part = parts[0]
            if await self._commit_part(part) is _SPLIT:
                mid = len(part) // 2
                parts[0] = part[mid:]
                parts.appendleft(part[:mid])
                continue
            parts.popleft()
            self._release(part)

    def _batch_key(self, part: list[Item]) -> str:
        r = self._run
        return f"{r.run_id}/{r.attempt}/{part[0].seq}-{part[-1].seq}"

    def _metadata(self, key: str, part: list[Item] | None) -> dict[str, Any]:
        ingest: dict[str, Any] = {
            "run": self._run_desc,
            "policy": self._policy_desc,
            "batch": key,
            "rows": len(part) if part else 0,
            "drops": self.counters.drops_metadata(),
        }
        if part:
            ingest["seq_first"] = part[0].seq
            ingest["seq_last"] = part[-1].seq
        return {"ingest": ingest}

    async def _commit_part(self, part: list[Item]) -> object:
        """Commit ``part`` as one snapshot, resolving every record in it, or
        return ``_SPLIT`` when the codec refuses the part as a whole."""
        key = self._batch_key(part)
        attempt = 0
        mismatch_retried = False
        started = datetime.now(UTC) - _LOOKUP_MARGIN
        while True:
            meta = self._metadata(key, part)
            drops = meta["ingest"]["drops"]["total"]
            try:
                snap = await commit_batch(self._ds, part, meta, key=key, streaming=self._streaming)
            except ConfigMismatchError as exc:
                # A concurrent first writer created the dataset with options
                # compatible with ours: the dataset asks for the write again (once).
                if mismatch_retried:
                    self._fail(part, WRITE_FAILED, exc)
                    return None
                mismatch_retried = True
                continue
            except InvalidInputError as exc:
                # The codec (or a partition path) refuses the part: isolate the culprit.
                if len(part) > 1:
                    return _SPLIT
                self._fail(part, INVALID, exc)
                return None
            except (TransientStorageError, SnapshotConflictError, StaleWriteError) as exc:
                self.counters.last_error = f"{type(exc).__name__}: {exc}"
                if self._maybe_committed(exc):
                    found = await self._resolve(part, key, started)
                    if found is not None:
                        self._written(part, found, drops)
                        return None
                attempt += 1
                self.counters.retries += 1
                await anyio.sleep(_backoff(attempt))
                continue
            except StorageError as exc:
                self.counters.last_error = f"{type(exc).__name__}: {exc}"
                if self._maybe_committed(exc):
                    found = await self._resolve(part, key, started)
                    if found is not None:
                        self._written(part, found, drops)
                        return None
                self._fail(part, WRITE_FAILED, exc)
                return None
            except AiolodeError as exc:
                self._fail(part, WRITE_FAILED, exc)
                return None
            self._written(part, snap, drops)
            return None

    def _maybe_committed(self, exc: AiolodeError) -> bool:
        """Whether a failed write may have committed anyway.

        Only a failure on the commit log can hide a commit (a put whose reply
        was lost, an outcome the store would not tell): an error naming a data
        file, a partition manifest or the descriptor happened before the commit
        point. Refusals (permission, conflicts) are definite.
        """
        if isinstance(exc, PermissionDeniedError | SnapshotConflictError | StaleWriteError):
            return False
        key = exc.key
        return key is None or key.startswith(self._layout.log_prefix(self._ds.id))

    def _fail(self, part: list[Item], reason: str, exc: AiolodeError) -> None:
        self.counters.last_error = f"{type(exc).__name__}: {exc}"
        _log.error(
            "ingest into %r: %d record(s) (seq %d-%d) not written (%s): %s",
            self._ds.id,
            len(part),
            part[0].seq,
            part[-1].seq,
            reason,
            exc,
        )
        self._drop(part, reason, exc)

    async def _resolve(self, part: list[Item], key: str, since: datetime) -> Snapshot | None:
        """Find out whether ``part`` was committed despite the error (its
        acknowledgement lost): look its batch key up, retrying until the store
        answers. Never guess: a guess either loses or duplicates the batch."""
        # Left set if cancelled (the close deadline): _abandon then counts the
        # part as in doubt.
        self._resolving = (part, key)
        self.counters.lookups += 1
        attempt = 0
        while True:
            try:
                found = await find_batch(
                    self._ds, key, run_id=self._run.run_id, layout=self._layout, since=since
                )
            except AiolodeError as exc:
                self.counters.last_error = f"{type(exc).__name__}: {exc}"
                attempt += 1
                await anyio.sleep(_backoff(attempt))
                continue
            self._resolving = None
            return found

    async def _tally(self) -> None:
        """At close: if drops happened after the last snapshot's metadata was
        cut, commit one empty snapshot that reports them (best effort, retried
        like a batch)."""
        c = self.counters
        unreported = c.dropped - c.by_reason[DEADLINE] - self._reported_drops
        if unreported <= 0:
            return
        r = self._run
        key = f"{r.run_id}/{r.attempt}/tally-{self._next_seq - 1}"
        attempt = 0
        while True:
            meta = self._metadata(key, None)
            try:
                snap = await commit_batch(self._ds, [], meta, key=key, streaming=False)
            except (TransientStorageError, SnapshotConflictError, StaleWriteError) as exc:
                # A duplicate tally is harmless (it repeats the same counts), so
                # no lookup: just try again.
                c.last_error = f"{type(exc).__name__}: {exc}"
                attempt += 1
                await anyio.sleep(_backoff(attempt))
                continue
            except AiolodeError as exc:
                c.last_error = f"{type(exc).__name__}: {exc}"
                _log.error("ingest into %r: the drop tally was not committed: %s", self._ds.id, exc)
                return
            c.last_snapshot_id = snap.id
            self._reported_drops = meta["ingest"]["drops"]["total"]
            return

    def _abandon(self, reason: str, error: BaseException | None) -> None:
        """The writer is ending early: count every record still held."""
        resolving = self._resolving
        while self._parts:
            part = self._parts.popleft()
            if resolving is not None and part is resolving[0]:
                # Its commit may or may not have happened: say so, never guess.
                self.counters.in_doubt += len(part)
                self.counters.in_doubt_batches.append(resolving[1])
                err = error or TransientStorageError(
                    f"the commit of batch {resolving[1]!r} has an unknown outcome (the store "
                    "kept failing until the ingestor's close deadline)",
                    dataset_id=self._ds.id,
                )
                for it in part:
                    if it.ticket is not None:
                        it.ticket.error = err
                        it.ticket.event.set()
            else:
                self._drop(part, reason, error)
            self.held_rows -= len(part)
            self.held_bytes -= sum(it.nbytes for it in part)
        queued = list(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        if queued:
            self._drop(queued, reason, error)
            self.held_rows -= len(queued)
            self.held_bytes -= sum(it.nbytes for it in queued)
        while self._waiters:
            w = self._waiters.popleft()
            w.error = error or UnsupportedOperationError(
                "the ingestor closed (past its deadline) before there was room for this record",
                dataset_id=self._ds.id,
            )
            w.event.set()
