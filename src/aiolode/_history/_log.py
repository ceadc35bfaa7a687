"""SequenceLog: the one append-only, create-only log under every Dataset and Volume.

A history is a sequence of immutable *records* at ``<prefix><seq:0Nd>.json``,
numbered from 1. The create-only put of record ``seq`` **is** the commit: the
store's conditional put serialises writers, so two writers can never both
commit on the same parent, and history is linear. Records are the truth;
everything else here is a shortcut that is checked before it is trusted:

- the *hint* (``hint_key``) names a recent sequence number so a cold reader
  does not search from the start. Writers move it once per
  :data:`HINT_STRIDE` records (not on every commit: its put competes with the
  commit's own puts), so it lags the head by at most that many; a cold reader
  reads the record it names and checks the whole stride after it in one round
  trip (a ``get`` of the next record, a ``head`` of each of the others) before
  anything builds on it, so a stale, damaged or foreign hint costs a few
  requests, never a wrong answer, and a record missing inside the stride is a
  :class:`~aiolode.HistoryGapError`, not a shorter history;
- the *low-water mark* (``<prefix>_lwm.json``) is the oldest record that is
  still retained once expired history has been collected; searches and walks
  start there.

The same class implements, once, for both kinds of history: the record cache,
head search (hint, forward probe, gallop + bisection), walks that never stop
silently at a gap, time travel by binary search over ``created_at`` (kept
monotonic along the log whatever the writers' clocks say), the commit loop with
lost-acknowledgement tokens (:meth:`SequenceLog.append`), and the hint policy.
What differs between a dataset and a volume — the record model, how a record is
validated, what ids it carries — comes in through :class:`LogSpec`.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import anyio
import attrs

from .._concurrency import bounded_map, reraise
from .._sealed import seal, verdict
from ..errors import (
    AiolodeError,
    ConflictError,
    FormatError,
    HistoryGapError,
    InvalidInputError,
    ObjectExistsError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    SnapshotConflictError,
    SnapshotExpiredError,
    SnapshotNotFoundError,
    TransientStorageError,
    UnsupportedError,
)
from ..manifest._converter import decode, encode
from ..manifest._ids import record_key
from ..types import IfMatch
from . import _notify
from ._calls import delete_quietly, retrying

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable

    from .._retry import Retry
    from ..store import Store

__all__ = ["Draft", "LogRecord", "LogSpec", "Outcome", "SequenceLog"]


class LogRecord(Protocol):
    """What the log needs of a record model (dataset commit record, volume root)."""

    @property
    def seq(self) -> int:
        """Position in the log (1-based)."""

    @property
    def token(self) -> str:
        """Unique per commit attempt: recognises the writer's own record after a lost ack."""

    @property
    def created_at(self) -> datetime:
        """Commit time; never earlier than the previous record's."""

    @property
    def dropped(self) -> bool:
        """The history was dropped by this record or an earlier one."""


R = TypeVar("R", bound=LogRecord)

#: Decoded records kept per log object (records are immutable: always valid).
_CACHE_SIZE = 256
#: Records fetched concurrently by a walk.
_WALK_WINDOW = 16
#: Writers move the hint once the log has grown this many records past it: a
#: cold reader checks this many records after the hint in one round trip.
HINT_STRIDE = 8
#: A writer whose knowledge of the head is older than this re-reads it cold
#: before committing (see ``docs/lifecycle.md``: the garbage collector only
#: deletes records below the low-water mark after a grace period far longer).
WRITER_MAX_WARM_AGE = 300.0

HINT_SCHEMA = "aiolode.log.hint"
LWM_SCHEMA = "aiolode.log.lwm"


@attrs.frozen
class LogSpec(Generic[R]):
    """Everything that differs between two histories (a dataset's, a volume's).

    Attributes
    ----------
    kind
        ``"dataset"`` or ``"volume"``: names the owner in errors and messages.
    owner_id
        The dataset or volume id.
    prefix
        Where records live (ends with ``/``).
    width
        Digits of the zero-padded sequence number in record keys.
    hint_key
        Where the latest-sequence hint lives.
    record_type
        The record model (registered with the manifest converter).
    check
        Raises :class:`~aiolode.ManifestFormatError` if a decoded record does
        not belong at ``(seq, key)`` (wrong owner, wrong position, bad ids).
    snapshot_ids
        The ids of the snapshots a record commits, in order.
    first_id
        The id of the first snapshot of record ``seq`` (for messages).
    """

    kind: str
    owner_id: str
    prefix: str
    width: int
    hint_key: str
    record_type: type[R]
    check: Callable[[R, int, str], None]
    snapshot_ids: Callable[[R], list[str]]
    first_id: Callable[[int], str]

    @property
    def lwm_key(self) -> str:
        """Where the low-water mark lives."""
        return f"{self.prefix}_lwm.json"

    def ctx(self) -> dict[str, Any]:
        """Error attributes naming the owner."""
        return (
            {"dataset_id": self.owner_id}
            if self.kind == "dataset"
            else {"volume_id": self.owner_id}
        )


class Draft(Generic[R]):
    """One commit attempt: the record to put, and objects written only for it.

    ``side_keys`` are deleted when the attempt is definitely lost, kept when its
    outcome is unknown (a record that landed may reference them).

    The record is given, or ``build`` makes it the first time it is needed (in
    the worker thread that encodes and sends it, on stores that put from
    threads): once, so every attempt of this draft puts the same record.
    """

    __slots__ = ("_build", "_record", "side_keys")

    def __init__(
        self,
        record: R | None = None,
        side_keys: tuple[str, ...] = (),
        *,
        build: Callable[[], R] | None = None,
    ) -> None:
        if (record is None) == (build is None):
            raise TypeError("Draft takes a record or a build function")
        self._record = record
        self._build = build
        self.side_keys = side_keys

    @property
    def record(self) -> R:
        """The record to put (built on first use)."""
        if self._record is None:
            assert self._build is not None
            self._record = self._build()
            self._build = None
        return self._record

    def encoded(self) -> bytes:
        """The record's stored bytes.

        Raises
        ------
        DraftRefused
            Building the record refused it (an :class:`~aiolode.AiolodeError`).
        """
        try:
            record = self.record
        except AiolodeError as exc:
            raise DraftRefused(exc) from exc
        return encode(record)


class DraftRefused(Exception):
    """Building a draft's record failed with ``error``: nothing was put.

    Not an :class:`~aiolode.AiolodeError`, so that no store maps or retries it
    on its way out of the thread that builds and sends the record.
    """

    def __init__(self, error: AiolodeError) -> None:
        super().__init__(str(error))
        self.error = error


@attrs.frozen
class Outcome(Generic[R]):
    """How :meth:`SequenceLog.append` ended.

    Exactly one holds: ``record`` (committed: ours), ``error`` (not committed,
    or — when ``maybe_committed`` — unknown), or neither (the caller's
    ``prepare`` withdrew: nothing left to commit).
    """

    record: R | None = None
    error: AiolodeError | None = None
    maybe_committed: bool = False


def encode_pointer(schema: str, owner_id: str, seq: int) -> bytes:
    """A hint or low-water-mark document."""
    doc = {"format_version": 1, "owner": owner_id, "schema_name": schema, "seq": seq}
    return seal(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())


def decode_pointer(data: bytes, schema: str, owner_id: str) -> int:
    """The sequence number a hint or low-water mark names; 0 if unusable.

    Accepts the documents of this version and those of earlier ones (a dataset
    hint was a copy of a commit record, a volume hint a bare decimal), which all
    carry the number; anything else — damaged, foreign, another owner's — is 0.
    """
    text = data.strip()
    if text.isdigit() and len(text) <= 20:
        return int(text)
    if verdict(data) is False:
        return 0  # damaged: a flipped digit must not move a search
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return 0
    if not isinstance(doc, dict):
        return 0
    seq = doc.get("seq")
    owner = doc.get("owner", doc.get("dataset_id", owner_id))
    if owner != owner_id or isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return 0
    return seq


class SequenceLog(Generic[R]):
    """Reads, caches, searches and appends one history's records (see module docs).

    ``head`` is the newest record this object has seen (possibly stale: another
    writer may have committed since). Not safe to share between event loops.
    """

    def __init__(self, store: Store, spec: LogSpec[R], retry: Retry) -> None:
        self.store = store
        self.spec = spec
        self.retry = retry
        self.head: R | None = None
        #: ``time.monotonic()`` when ``head`` was last known to be the true end.
        self.refreshed_at: float | None = None
        #: Oldest retained sequence known to this object.
        self.lwm = 1
        #: Newest sequence known to be named by the hint (written or read).
        self.hint_seq = 0
        self._hint_busy = False
        self._cache: OrderedDict[int, R] = OrderedDict()
        #: Keys of derived, immutable objects (checkpoints) known to exist.
        self.known: set[str] = set()

    # ------------------------------------------------------------------ basics
    def key(self, seq: int) -> str:
        """Key of record ``seq``."""
        return record_key(self.spec.prefix, seq, self.spec.width)

    @property
    def head_seq(self) -> int:
        """Sequence number of the known head (0: empty or unknown)."""
        return 0 if self.head is None else self.head.seq

    @property
    def warm(self) -> bool:
        """Whether this object has read the log's end at least once."""
        return self.refreshed_at is not None

    def remember(self, record: R) -> None:
        """Cache a record and advance the head if it is newer."""
        self._cache[record.seq] = record
        self._cache.move_to_end(record.seq)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        if self.head is None or record.seq > self.head.seq:
            self.head = record

    def cached(self, seq: int) -> R | None:
        """The cached record ``seq``, if any (no I/O)."""
        return self._cache.get(seq)

    def decode(self, data: bytes, seq: int) -> R:
        """Decode and check record bytes read at ``seq``.

        Raises
        ------
        ManifestFormatError
            Invalid document, or it does not belong at this position.
        UnsupportedFormatVersionError
            Written by a newer aiolode.
        """
        key = self.key(seq)
        try:
            rec = decode(data, self.spec.record_type, key=key)
            self.spec.check(rec, seq, key)
        except FormatError as exc:
            for name, value in self.spec.ctx().items():
                if getattr(exc, name, None) is None:
                    setattr(exc, name, value)
            raise
        return rec

    async def _get(self, key: str) -> bytes:
        return await retrying(self.retry, lambda: self.store.get(key))

    async def read(self, seq: int) -> R | None:
        """Record ``seq`` read from the store (not the cache); ``None`` if absent.

        Raises
        ------
        FormatError
            Unreadable record.
        StorageError
            The store kept failing.
        """
        try:
            data = await self._get(self.key(seq))
        except ObjectNotFoundError:
            return None
        return self.decode(data, seq)

    async def fetch(self, seq: int) -> R | None:
        """Record ``seq`` (cache, else one ``get``); ``None`` if it does not exist.

        Raises
        ------
        FormatError
            Unreadable record.
        StorageError
            The store kept failing.
        """
        rec = self._cache.get(seq)
        if rec is not None:
            return rec
        rec = await self.read(seq)
        if rec is not None:
            self.remember(rec)
        return rec

    async def exists(self, seq: int) -> bool:
        """Whether record ``seq`` exists (cache, else one ``head``)."""
        if seq in self._cache:
            return True
        key = self.key(seq)
        return await retrying(self.retry, lambda: self.store.exists(key))

    async def require(self, seq: int, snapshot_id: str) -> R:
        """Record ``seq``, or the right "not found" for ``snapshot_id``.

        Raises
        ------
        SnapshotExpiredError
            The record is below the low-water mark (expired and collected).
        SnapshotNotFoundError
            No such record.
        FormatError, StorageError
            As for :meth:`fetch`.
        """
        if seq < self.lwm:
            raise self.expired_error(snapshot_id)
        rec = await self.fetch(seq)
        if rec is not None:
            return rec
        # Absent: collected below a low-water mark we have not seen yet, or never written.
        if seq < await self.read_lwm():
            raise self.expired_error(snapshot_id)
        raise SnapshotNotFoundError(
            f"{self.spec.kind} {self.spec.owner_id!r} has no snapshot {snapshot_id!r}",
            snapshot_id=snapshot_id,
            **self.spec.ctx(),
        )

    def expired_error(self, snapshot_id: str) -> SnapshotExpiredError:
        """The error for a snapshot below the low-water mark."""
        return SnapshotExpiredError(
            f"snapshot {snapshot_id!r} of {self.spec.kind} {self.spec.owner_id!r} was expired",
            snapshot_id=snapshot_id,
            **self.spec.ctx(),
        )

    # ------------------------------------------------------------ pointers
    async def read_hint(self) -> int:
        """The sequence number the hint names (0: none or unusable). One ``get``."""
        try:
            data = await self.store.get(self.spec.hint_key)
        except (ObjectNotFoundError, TransientStorageError):
            # The hint is a shortcut: when it cannot be read, search instead.
            return 0
        seq = decode_pointer(data, HINT_SCHEMA, self.spec.owner_id)
        if seq:
            self.hint_seq = max(self.hint_seq, seq)
        return seq

    async def read_lwm(self) -> int:
        """The low-water mark as stored (1 when none). One ``get``.

        Raises
        ------
        StorageError
            The store kept failing.
        """
        try:
            data = await self._get(self.spec.lwm_key)
        except ObjectNotFoundError:
            return self.lwm
        seq = decode_pointer(data, LWM_SCHEMA, self.spec.owner_id)
        self.lwm = max(self.lwm, seq or 1)
        return self.lwm

    async def raise_lwm(self, seq: int) -> None:
        """Raise the stored low-water mark to ``seq`` (never lower it): a
        compare-and-swap loop, so concurrent raises keep the highest.

        Callers delete records below the mark only after this returns: a search
        must never start below a collected record.

        Raises
        ------
        ConflictError
            Still racing other raises after 64 rounds.
        StorageError
            The store failed (transient failures are retried).
        """
        key = self.spec.lwm_key
        data = encode_pointer(LWM_SCHEMA, self.spec.owner_id, seq)
        store, retry = self.store, self.retry
        for _ in range(64):
            try:
                info = await retrying(retry, lambda: store.head(key))
                raw = await retrying(retry, lambda: store.get(key))
            except ObjectNotFoundError:
                try:
                    await retrying(retry, lambda: store.put(key, data, mode="create"))
                except ObjectExistsError:
                    continue  # raced another first raise: compare with it
                self.lwm = max(self.lwm, seq)
                return
            if decode_pointer(raw, LWM_SCHEMA, self.spec.owner_id) >= seq:
                self.lwm = max(self.lwm, seq)
                return
            mode = IfMatch(info.etag)
            try:
                await retrying(retry, lambda: store.put(key, data, mode=mode))  # noqa: B023
            except (PreconditionFailedError, ObjectNotFoundError):
                continue  # changed between our read and our write: read again
            self.lwm = max(self.lwm, seq)
            return
        raise ConflictError(
            f"could not raise the low-water mark of {self.spec.kind} {self.spec.owner_id!r} "
            f"to {seq}: too many concurrent raises",
            key=key,
            **self.spec.ctx(),
        )

    def hint_due(self) -> int | None:
        """The head's sequence if the hint lags it by :data:`HINT_STRIDE` records
        or more and no hint put is in flight (a warm writer then moves it
        alongside its next data puts).

        Marks a hint put as in flight: the caller must then call :meth:`write_hint`.
        """
        if self._hint_busy or self.head is None or self.head.seq - self.hint_seq < HINT_STRIDE:
            return None
        self._hint_busy = True
        return self.head.seq

    def hint_stale(self, committed: int) -> bool:
        """Whether, after committing record ``committed``, the hint lags it by
        more than :data:`HINT_STRIDE` records, or there is none (the first
        commit), and no hint put is in flight: a writer that may not write again
        (short-lived) moves it now. Marks a put in flight if so."""
        if self._hint_busy or (self.hint_seq > 0 and committed - self.hint_seq <= HINT_STRIDE):
            return False
        self._hint_busy = True
        return True

    async def write_hint(self, seq: int) -> None:
        """Overwrite the hint with ``seq`` (best effort; failures are ignored).

        Concurrent writers may leave an older number in the hint; readers probe
        forward from it, so a stale hint costs a few ``get`` calls, never a
        wrong answer.
        """
        try:
            data = encode_pointer(HINT_SCHEMA, self.spec.owner_id, seq)
            await self.store.put(self.spec.hint_key, data, mode="overwrite")
            self.hint_seq = max(self.hint_seq, seq)
        except AiolodeError:
            pass
        finally:
            self._hint_busy = False

    # ------------------------------------------------------------- head search
    async def refresh(self, *, max_age: float | None = None) -> R | None:
        """Bring ``head`` up to the true end of the log and return it.

        Warm (head known, and read within ``max_age`` seconds when given): probe
        ``head + 1`` forward — one ``get`` when nothing is new. Cold: read the
        hint (one ``get``), then in one round trip read the record it names and
        the next one (two ``get``) and check the :data:`HINT_STRIDE` records
        after them (a ``head`` each): the head is the last of that unbroken run
        (one more ``get`` unless it is one of the two read). A record missing
        inside the run while a later one exists is a HistoryGapError, not a
        shorter history. Without a usable hint, or when the whole run exists,
        gallop + bisect (O(log n) ``head`` calls) from the furthest record known.

        Raises
        ------
        HistoryGapError
            A record is missing below one that exists.
        FormatError
            A record is unreadable.
        StorageError
            The store kept failing.
        """
        now = time.monotonic()
        fresh = self.refreshed_at is not None and (
            max_age is None or now - self.refreshed_at <= max_age
        )
        if fresh:
            while await self.fetch(self.head_seq + 1) is not None:
                pass
        else:
            hint = await self.read_hint()
            # From the hint, or from what this object knows if that is newer
            # (the first commit writes the hint: no hint is an empty log, or a
            # damaged hint, searched).
            base = max(hint, self.head_seq)
            if base == 0 or not await self._scan(base):
                if hint == base:
                    self.hint_seq = 0  # it lied: writers will rewrite it
                await self._search()
        self.refreshed_at = now
        return self.head

    async def _scan(self, base: int) -> bool:
        """Find the head from record ``base`` (the hint) in one round trip.

        Reads records ``base`` and ``base + 1`` and checks the existence of the
        :data:`HINT_STRIDE` records after them, concurrently; the head is the
        newest that exists (a hole below it is left to the walks, which report
        it: no writer builds on it). Returns False when none exists (the hint
        lied: search instead); True once the head is known (searching on when
        the whole stride exists).
        """
        last = base + 1 + HINT_STRIDE
        present: dict[int, bool] = {}

        async def one(s: int) -> None:
            try:
                present[s] = await self.fetch(s) is not None
            except FormatError:
                # Damaged below the head: the walks report it. Damaged at the
                # head: read again below, and nothing builds on it.
                present[s] = True

        async def probe(s: int) -> None:
            present[s] = await self.exists(s)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, base)
                tg.start_soon(one, base + 1)
                for s in range(base + 2, last + 1):
                    tg.start_soon(probe, s)
        except BaseExceptionGroup as eg:
            reraise(eg)
        newest = max((s for s, there in present.items() if there), default=None)
        if newest is None or await self.fetch(newest) is None:
            return False
        if newest == last:
            await self._search()  # the hint lags more than a stride: gallop on
        return True

    async def _search(self) -> None:
        """Find the last record with O(log n) existence probes.

        Starts after the known head; when even record 1 is absent, from the
        low-water mark (records below it may have been collected).
        """
        lo = self.head_seq  # exists, or 0
        if not await self.exists(lo + 1):
            if lo > 0:
                return
            lwm = await self.read_lwm()
            if lwm <= 1 or not await self.exists(lwm):
                return  # an empty log
            lo = lwm
        else:
            lo += 1
        step = 1
        hi = lo + step
        while await self.exists(hi):
            lo = hi
            step *= 2
            hi = lo + step
        while hi - lo > 1:  # lo exists, hi does not
            mid = (lo + hi) // 2
            if await self.exists(mid):
                lo = mid
            else:
                hi = mid
        await self.fetch(lo)

    # ------------------------------------------------------------------ walks
    async def walk(
        self, first: int, last: int, *, newest_first: bool = False
    ) -> AsyncGenerator[R, None]:
        """Records ``first..last`` (inclusive), fetched concurrently in windows.

        Never stops silently: a record missing inside the range is a
        :class:`~aiolode.HistoryGapError`, unless it is below a low-water mark
        that moved meanwhile (expired history being collected), in which case
        the walk skips to it. Wrap in :func:`contextlib.aclosing`.

        Raises
        ------
        HistoryGapError
            A record is missing.
        FormatError, StorageError
            As for :meth:`fetch`.
        """
        first = max(first, self.lwm)
        if newest_first:
            hi = last
            while hi >= first:
                lo = max(first, hi - _WALK_WINDOW + 1)
                recs = await self._window(lo, hi)
                for rec in reversed(recs):
                    if rec is not None:
                        yield rec
                hi = lo - 1
                first = max(first, self.lwm)
            return
        lo = first
        while lo <= last:
            lo = max(lo, self.lwm)
            hi = min(last, lo + _WALK_WINDOW - 1)
            recs = await self._window(lo, hi)
            for rec in recs:
                if rec is not None:
                    yield rec
            lo = hi + 1

    async def _window(self, lo: int, hi: int) -> list[R | None]:
        if lo > hi:
            return []
        recs = await bounded_map(self.fetch, range(lo, hi + 1), limit=_WALK_WINDOW)
        missing = [lo + i for i, r in enumerate(recs) if r is None]
        if missing:
            lwm = await self.read_lwm()
            gaps = [s for s in missing if s >= lwm]
            if gaps:
                raise HistoryGapError(
                    f"{self.spec.kind} {self.spec.owner_id!r}: record {self.key(gaps[0])!r} is "
                    f"missing below the head ({self.head_seq}); the history was damaged",
                    key=self.key(gaps[0]),
                    sequence=gaps[0],
                    **self.spec.ctx(),
                )
        return recs

    async def as_of(self, when: datetime, *, head: R | None = None) -> R | None:
        """The newest retained record committed at or before ``when`` (``None``: none).

        ``created_at`` never decreases along the log, so this is a binary search:
        O(log n) ``get`` calls, after :meth:`refresh` unless ``head`` is given.

        Raises
        ------
        HistoryGapError, FormatError, StorageError
            A record is missing or unreadable, or the store failed.
        """
        if head is None:
            head = await self.refresh()
        if head is None:
            return None
        if head.created_at <= when:
            return head
        lo, hi = self.lwm - 1, head.seq  # lo is <= when (or below the first), hi is > when
        while hi - lo > 1:
            mid = (lo + hi) // 2
            rec = await self.fetch(mid)
            if rec is None:
                if mid < await self.read_lwm():
                    lo = max(lo, self.lwm - 1)
                    continue
                raise HistoryGapError(
                    f"{self.spec.kind} {self.spec.owner_id!r}: record {self.key(mid)!r} is missing",
                    key=self.key(mid),
                    sequence=mid,
                    **self.spec.ctx(),
                )
            if rec.created_at <= when:
                lo = mid
            else:
                hi = mid
        if lo < self.lwm:
            return None
        return await self.fetch(lo)

    # ------------------------------------------------------------------ commit
    def created_at_after(self, head: R | None) -> datetime:
        """Now, but never earlier than ``head``'s time: keeps ``created_at``
        monotonic along the log whatever the writers' clocks say, so time travel
        can binary-search and ``verify`` sees an ordered history."""
        now = datetime.now(UTC)
        if head is not None and head.created_at > now:
            return head.created_at
        return now

    async def append(
        self,
        prepare: Callable[[R | None, int], Awaitable[Draft[R] | None]],
        *,
        token: str,
    ) -> Outcome[R]:
        """Commit one record on top of the head, retrying lost races.

        ``prepare(head, seq)`` builds the record to put at ``seq`` on top of
        ``head`` (it is called again with the new head after every lost race,
        so it rebases: it may raise an :class:`~aiolode.AiolodeError` to refuse —
        a conflict, an overlap — or return ``None`` to withdraw). The record must
        carry ``token``. A put that fails with an unknown outcome, or finds the
        slot taken, is resolved by reading the slot: a record with our token is
        our commit (its acknowledgement was lost), never committed twice and
        never reported as a conflict.

        Each attempt's put and read-back are shielded from cancellation, so the
        outcome is never ambiguous to the caller; cancellation is honoured
        between attempts (after a definite loss, whose side objects are removed).

        Returns
        -------
        Outcome
            ``record`` when committed; ``error`` otherwise (``maybe_committed``
            when the store kept failing so that the outcome is unknown).
        """
        losses = 0
        winners: list[str] = []
        stale = self.refreshed_at is None or (
            time.monotonic() - self.refreshed_at > WRITER_MAX_WARM_AGE
        )
        if stale:
            # Warm writers put optimistically at head + 1 (a lost race reads
            # forward); a cold or long-idle one reads the end first.
            try:
                await self._refresh_retrying(WRITER_MAX_WARM_AGE)
            except AiolodeError as exc:
                return Outcome(error=exc)
        while True:
            seq = self.head_seq + 1
            try:
                draft = await prepare(self.head, seq)
            except AiolodeError as exc:
                return Outcome(error=exc)
            if draft is None:
                return Outcome()
            retries = 0
            while True:  # attempts of this one draft at this one slot
                with anyio.CancelScope(shield=True):
                    res = await self._attempt(draft, seq)
                if res.record is not None:
                    break
                if res.unknown:
                    return Outcome(error=res.error, maybe_committed=True)
                if res.error is not None and not res.retry:
                    return Outcome(error=res.error)
                # The slot is empty after a transient failure (or the record we
                # collided with vanished): put the same draft again. A failed put
                # might still land later, so this draft's objects stay until the
                # slot's owner is known.
                retries += 1
                if retries >= self.retry.attempts:
                    err = TransientStorageError(
                        f"commit to {self.spec.kind} {self.spec.owner_id!r} at sequence {seq} "
                        f"kept failing ({retries} attempts); a failed put may still land, so "
                        "its outcome is unknown: read latest() to find out",
                        key=self.key(seq),
                        **self.spec.ctx(),
                    )
                    err.__cause__ = res.error
                    return Outcome(error=err, maybe_committed=True)
                await anyio.sleep(self.retry.delay(retries))
            if res.record.token == token:
                return self._committed(res.record)
            # Lost the race: the slot holds another writer's record, so this draft
            # can never land; its objects go.
            winners.extend(self.spec.snapshot_ids(res.record))
            losses += 1
            await delete_quietly(self.store, draft.side_keys)
            if losses >= self.retry.attempts:
                return Outcome(
                    error=SnapshotConflictError(
                        f"gave up committing to {self.spec.kind} {self.spec.owner_id!r} after "
                        f"{losses} lost races (raise Retry.attempts under heavy contention)",
                        conflicting=winners[-100:],
                        **self.spec.ctx(),
                    )
                )
            if losses > 1:
                await anyio.sleep(self.retry.delay(losses - 1))
            try:
                await self._refresh_retrying(None)
            except AiolodeError as exc:
                return Outcome(error=exc)

    async def _attempt(self, draft: Draft[R], seq: int) -> _Attempt[R]:
        """Put ``draft`` at ``seq`` and find out who owns the slot."""
        key = self.key(seq)
        try:
            if self.store._puts_in_threads():
                # Built and encoded in the thread that sends it (~0.2-0.4 ms of a
                # 1,000-row JSONL commit on SeaweedFS, interleaved A/B;
                # docs/commit-path.md).
                await self.store._put_produced(key, draft.encoded, "create")
            else:
                await self.store.put(key, draft.encoded(), mode="create")
        except DraftRefused as refused:
            # The record could not be built (as a refusal in prepare() would be).
            return _Attempt(error=refused.error)
        except ObjectExistsError:
            return await self._read_back(seq, None)
        except (PermissionDeniedError, InvalidInputError, UnsupportedError) as exc:
            # Refused before anything was written (credentials, a bad key, a
            # store that cannot do it): not committed.
            await delete_quietly(self.store, draft.side_keys)
            return _Attempt(error=exc)
        except AiolodeError as exc:
            # Transient or not, a failed put may have landed (a lost reply): read
            # the slot before deciding anything, never guess "not committed".
            return await self._read_back(seq, exc)
        self.remember(draft.record)
        return _Attempt(record=draft.record)

    async def _read_back(self, seq: int, cause: AiolodeError | None) -> _Attempt[R]:
        last: AiolodeError | None = cause
        for attempt in range(1, self.retry.attempts + 1):
            try:
                rec = await self.fetch(seq)
            except AiolodeError as exc:
                # Transient failures, but also a record read back damaged in
                # transit: either way we cannot tell whether our put landed, so
                # read again; never guess "not committed".
                last = exc
                await anyio.sleep(self.retry.delay(attempt))
                continue
            if rec is None:
                return _Attempt(error=cause, retry=True)
            return _Attempt(record=rec)
        err = TransientStorageError(
            f"commit to {self.spec.kind} {self.spec.owner_id!r} at sequence {seq} has an "
            "unknown outcome (the store kept failing); read latest() to find out",
            key=self.key(seq),
            **self.spec.ctx(),
        )
        err.__cause__ = last
        return _Attempt(error=err, unknown=True)

    def _committed(self, record: R) -> Outcome[R]:
        self.remember(record)
        self.refreshed_at = time.monotonic()
        _notify.notify(self.store, self.spec.prefix)
        return Outcome(record=record)

    async def _refresh_retrying(self, max_age: float | None) -> None:
        await retrying(self.retry, lambda: self.refresh(max_age=max_age))


@attrs.frozen
class _Attempt(Generic[R]):
    """Who owns a slot after a put: ``record`` (ours or a winner's), else why not."""

    record: R | None = None
    error: AiolodeError | None = None
    retry: bool = False
    unknown: bool = False
