"""The copy of one history, whatever its kind: what is new, objects first, records in order.

A history (a dataset's commit log, a volume's roots) is a sequence of
create-only records; a record is committed when it exists, and everything it
references was written before it. A copy keeps that order at the destination,
one window of records at a time:

1. read the window's records from the source (checked as every reader checks them);
2. bring every object they reference to the destination (create-only, verified:
   :mod:`._objects`), with bounded concurrency;
3. before the first record, what the history needs to exist (a dataset's
   descriptor) and, when the destination starts above record 1, its low-water mark;
4. put the records, in order, each create-only at the *same* sequence number.

So the destination's history only ever shows fully copied snapshots, and a copy
killed at any point leaves a prefix of the source's history plus unreferenced
objects that the next run checks and reuses. Where to start is found from the
destination's head: the record after it, once that head is shown to be the
source's record at the same position (same commit token); a destination holding
another record there diverged, and is refused with
:class:`~aiolode.SnapshotConflictError`, never merged.
"""

from __future__ import annotations

import abc
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import anyio
import attrs

from .._concurrency import bounded_map, reraise
from .._history import LogRecord, retrying
from .._history._log import LWM_SCHEMA, decode_pointer, encode_pointer
from ..errors import (
    HistoryGapError,
    InvalidInputError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
    SnapshotConflictError,
    SnapshotExpiredError,
    TransientStorageError,
)
from ..types import IfMatch
from ._objects import ObjectJob
from ._report import CopyReport

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from anyio.abc import ObjectReceiveStream
    from anyio.streams.memory import MemoryObjectSendStream

    from .._history import SequenceLog
    from .._retry import Retry
    from ..store import Store
    from ._objects import Transfer
    from ._report import Tally

__all__ = ("WINDOW", "Fetched", "HistoryCopy", "raise_lwm")

R = TypeVar("R", bound=LogRecord)

#: Records read, and whose objects are copied, per step.
WINDOW = 64
#: Records read at once.
FETCH_CONCURRENCY = 16
#: The destination's latest-sequence hint moves on after this many records.
HINT_EVERY = 64


@attrs.define
class Fetched(Generic[R]):
    """One source record: decoded, as stored, and as the destination gets it."""

    record: R
    raw: bytes = attrs.field(repr=False)
    #: The destination's bytes: ``raw``, or the record rewritten for a new id.
    payload: bytes | None = attrs.field(default=None, repr=False)


async def raise_lwm(store: Store, log: SequenceLog[Any], seq: int) -> None:
    """Raise the stored low-water mark of ``log`` to ``seq`` (never lower it):
    create-only, else compare-and-swap.

    Raises
    ------
    StorageError
        The store kept failing.
    """
    key = log.spec.lwm_key
    data = encode_pointer(LWM_SCHEMA, log.spec.owner_id, seq)
    for _ in range(64):
        try:
            info = await store.head(key)
            current = decode_pointer(await store.get(key), LWM_SCHEMA, log.spec.owner_id)
        except ObjectNotFoundError:
            try:
                await store.put(key, data, mode="create")
                break
            except ObjectExistsError:
                continue
        if current >= seq:
            break
        try:
            await store.put(key, data, mode=IfMatch(info.etag))
            break
        except (PreconditionFailedError, ObjectNotFoundError):
            continue
    log.lwm = max(log.lwm, seq)


class HistoryCopy(abc.ABC, Generic[R]):
    """Copies one history; subclasses say what a record references and how a
    record is rewritten for another id.

    Parameters
    ----------
    src_log, dst_log
        The source's log and the destination's (same kind, perhaps another id).
    transfer
        Copies the objects (and counts them in ``tally``).
    tally
        The counters of this copy.
    retry
        Retry policy for transient storage errors.
    concurrency
        Objects copied at once.
    """

    kind: ClassVar[Literal["dataset", "volume"]]

    def __init__(
        self,
        src_log: SequenceLog[R],
        dst_log: SequenceLog[R],
        transfer: Transfer,
        tally: Tally,
        retry: Retry,
        concurrency: int,
    ) -> None:
        self.src_log = src_log
        self.dst_log = dst_log
        self.transfer = transfer
        self.tally = tally
        self.retry = retry
        self.concurrency = concurrency

    # ------------------------------------------------------------------ hooks
    @property
    def renamed(self) -> bool:
        """Whether the destination's id differs from the source's."""
        return self.src_log.spec.owner_id != self.dst_log.spec.owner_id

    async def bounds(self, head: R, lwm: int) -> tuple[int, int]:
        """The records to copy at most (inclusive); default: all that are retained."""
        return max(lwm, 1), head.seq

    async def begin(self, head: R, start: int, dst_head: R | None) -> None:
        """Called once the range is known, before any window (default: nothing)."""

    @abc.abstractmethod
    def jobs(self, window: list[Fetched[R]]) -> AsyncGenerator[ObjectJob, None]:
        """The objects ``window``'s records reference that the destination needs
        (in record order); sets each item's ``payload``."""

    @abc.abstractmethod
    def same(self, src: R, dst: R) -> bool:
        """Whether ``dst`` is ``src`` as copied (same commit, rewritten if renamed)."""

    async def before_records(self) -> None:
        """Make sure what must exist before the first record does (a dataset's
        descriptor), and that it is the source's (default: nothing)."""

    async def after_records(self, window: list[Fetched[R]]) -> None:
        """Called once ``window``'s records are all at the destination (default:
        nothing)."""

    @abc.abstractmethod
    def snapshot_ids(self, record: R) -> list[str]:
        """The snapshots a record commits."""

    @abc.abstractmethod
    def head_id(self, record: R | None) -> str | None:
        """The newest snapshot id as of ``record``."""

    # ----------------------------------------------------------------- engine
    def _ctx(self) -> dict[str, Any]:
        return self.dst_log.spec.ctx()

    def _conflict(self, message: str, record: R) -> SnapshotConflictError:
        # A maintenance record commits no snapshot: name the newest as of it.
        newest = self.head_id(record)
        ids = self.snapshot_ids(record) or ([newest] if newest is not None else [])
        return SnapshotConflictError(
            f"{self.kind} {self.dst_log.spec.owner_id!r} at the destination {message}; "
            "its history diverged from the source's and is never merged: copy into "
            "another id or store",
            conflicting=ids,
            key=self.dst_log.key(record.seq),
            **self._ctx(),
        )

    async def run(self) -> CopyReport:
        """Copy what is new (module docstring) and report.

        Raises
        ------
        SnapshotConflictError
            The destination diverged from the source.
        InvalidInputError
            The range asked for would leave a gap at the destination.
        SnapshotExpiredError
            Records in the range were collected at the source while copying.
        HistoryGapError, FormatError
            A record of either history is missing or unreadable.
        ObjectNotFoundError, CorruptDataError, ChecksumMismatchError
            The source lacks an object, or its bytes are not what its records say.
        StorageError
            A store kept failing.
        """
        src_head = await retrying(self.retry, lambda: self.src_log.refresh())
        if src_head is None:
            await self.before_records()
            return self._report(None, None, None)
        src_lwm = await retrying(self.retry, self.src_log.read_lwm)
        first, last = await self.bounds(src_head, src_lwm)
        dst_head = await retrying(self.retry, lambda: self.dst_log.refresh())
        start = await self._start(dst_head, src_lwm, first)
        if start > last:
            return self._report(None, None, dst_head)
        await self.begin(src_head, start, dst_head)
        self.tally.records_total = last - start + 1
        await self.tally.report()
        # A destination starting above record 1 needs a low-water mark, or a
        # search for its head would look for record 1 and find the log empty.
        # Written first when the destination is empty (records then appear as a
        # valid prefix); after the records when it jumps over records the source
        # collected (until then its readers see its old head).
        jump = dst_head is not None and start > dst_head.seq + 1
        hinted = dst_head.seq if dst_head is not None else 0
        newest: R | None = dst_head
        # Two stages: the objects of the next window are copied while the records
        # of this one are put (one round trip each, in order: the floor of a copy
        # of many small snapshots). At most two windows are held at once.
        send, recv = anyio.create_memory_object_stream[list[Fetched[R]]](0)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._objects_stage, send, start, last)
                async with recv:
                    async for window in recv:
                        if window[0].record.seq == start:
                            await self.before_records()
                            if dst_head is None and start > 1:
                                await raise_lwm(self.dst_log.store, self.dst_log, start)
                        for item in window:
                            await self._put_record(item)
                            newest = item.record
                        await self.after_records(window)
                        hi = window[-1].record.seq
                        if not jump and hi - hinted >= HINT_EVERY:
                            await self.dst_log.write_hint(hi)
                            hinted = hi
        except BaseExceptionGroup as eg:
            reraise(eg)
        if jump:
            await raise_lwm(self.dst_log.store, self.dst_log, start)
        await self.dst_log.write_hint(last)
        return self._report(start, last, newest)

    async def _objects_stage(
        self, send: MemoryObjectSendStream[list[Fetched[R]]], start: int, last: int
    ) -> None:
        """Read the records window by window and copy what they reference; hand
        each window on once its objects are all at the destination."""
        async with send:
            seq = start
            while seq <= last:
                hi = min(last, seq + WINDOW - 1)
                window = await self._fetch(seq, hi)
                await self._copy_objects(window)
                await send.send(window)
                seq = hi + 1

    def _report(self, first: int | None, last: int | None, head: R | None) -> CopyReport:
        t = self.tally
        return CopyReport(
            kind=self.kind,
            source_id=self.src_log.spec.owner_id,
            destination_id=self.dst_log.spec.owner_id,
            first_seq=first,
            last_seq=last,
            records=t.records,
            snapshots=t.snapshots,
            objects=t.objects,
            bytes=t.bytes,
            verified=t.verified,
            repaired=t.repaired,
            skipped=t.skipped,
            head=self.head_id(head),
        )

    async def _start(self, dst_head: R | None, src_lwm: int, first: int) -> int:
        """The first record to copy, once the destination is shown not to diverge."""
        if dst_head is None:
            dst_lwm = await retrying(self.retry, self.dst_log.read_lwm)
            if dst_lwm > first:
                raise SnapshotConflictError(
                    f"{self.kind} {self.dst_log.spec.owner_id!r} at the destination has no "
                    f"record but a low-water mark at {dst_lwm}, above the first record to "
                    f"copy ({first}): its history is another one's; copy into another id "
                    "or store",
                    **self._ctx(),
                )
            return first
        if dst_head.seq >= src_lwm:
            ours = await retrying(self.retry, lambda: self.src_log.fetch(dst_head.seq))
            if ours is None:
                raise self._conflict(f"has record {dst_head.seq}, past the source's head", dst_head)
            if not self.same(ours, dst_head):
                raise self._conflict(
                    f"holds another commit than the source's at record {dst_head.seq}", dst_head
                )
        # Else the source collected the records after the destination's head:
        # they held only expired snapshots, and the copy goes on from the
        # source's low-water mark.
        start = max(dst_head.seq + 1, src_lwm)
        if first > start:
            raise InvalidInputError(
                f"the range to copy starts at record {first}, but the destination's "
                f"{self.kind} {self.dst_log.spec.owner_id!r} ends at record {dst_head.seq}: "
                "copying it would leave a gap; start at or before the destination's head",
                **self._ctx(),
            )
        return start

    async def _fetch(self, lo: int, hi: int) -> list[Fetched[R]]:
        """Records ``lo..hi`` of the source, read concurrently and checked."""
        log = self.src_log

        async def one(seq: int) -> Fetched[R] | None:
            key = log.key(seq)
            try:
                raw = await retrying(self.retry, lambda: log.store.get(key))
            except ObjectNotFoundError:
                return None
            return Fetched(log.decode(raw, seq), raw)

        got = await bounded_map(one, range(lo, hi + 1), limit=FETCH_CONCURRENCY)
        missing = [lo + i for i, f in enumerate(got) if f is None]
        if missing:
            seq = missing[0]
            ctx = log.spec.ctx()
            if seq < await retrying(self.retry, log.read_lwm):
                raise SnapshotExpiredError(
                    f"record {seq} of {self.kind} {log.spec.owner_id!r} was collected at the "
                    "source while it was being copied; run the copy again (it goes on from "
                    "the source's new low-water mark)",
                    snapshot_id=log.spec.first_id(seq),
                    **ctx,
                )
            raise HistoryGapError(
                f"{self.kind} {log.spec.owner_id!r}: record {log.key(seq)!r} is missing at the "
                "source, below its head; the history was damaged",
                key=log.key(seq),
                sequence=seq,
                **ctx,
            )
        return [f for f in got if f is not None]

    async def _copy_objects(self, window: list[Fetched[R]]) -> None:
        """Run the window's object jobs through at most ``concurrency`` workers.

        A worker is started per job until there are ``concurrency`` of them, so
        a window of few objects starts few tasks whatever ``concurrency`` says
        (``concurrency=2**63`` is a limit, not 2**63 tasks).
        """
        send, recv = anyio.create_memory_object_stream[ObjectJob](self.concurrency)

        async def worker(jobs: ObjectReceiveStream[ObjectJob]) -> None:
            async with jobs:
                async for job in jobs:
                    await self.transfer.run(job)

        try:
            async with anyio.create_task_group() as tg:
                workers = 0
                async with recv, send, aclosing(self.jobs(window)) as jobs:
                    async for job in jobs:
                        if workers < self.concurrency:
                            tg.start_soon(worker, recv.clone())
                            workers += 1
                        await send.send(job)
        except BaseExceptionGroup as eg:
            reraise(eg)

    async def _put_record(self, item: Fetched[R]) -> None:
        """Create record ``seq`` at the destination; a record already there must be
        this very commit (an interrupted run, a concurrent copy, a lost reply)."""
        rec = item.record
        payload = item.payload if item.payload is not None else item.raw
        key = self.dst_log.key(rec.seq)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.dst_log.store.put(key, payload, mode="create")
                break
            except ObjectExistsError:
                found = await retrying(self.retry, lambda: self.dst_log.read(rec.seq))
                if found is None and attempt < self.retry.attempts:
                    continue  # vanished meanwhile: put it again
                if found is None:
                    raise TransientStorageError(
                        f"record {key!r} keeps appearing and vanishing at the destination",
                        key=key,
                        **self._ctx(),
                    ) from None
                if not self.same(rec, found):
                    raise self._conflict(
                        f"holds another commit than the source's at record {rec.seq}", found
                    ) from None
                break
            except TransientStorageError:
                if attempt >= self.retry.attempts:
                    raise
                await anyio.sleep(self.retry.delay(attempt))
        self.tally.records += 1
        self.tally.snapshots += len(self.snapshot_ids(rec))
        await self.tally.add_bytes(len(payload))
