"""The commit log of one dataset: sequence-numbered, create-only commit records.

Keys (under the layout's ``log_prefix``)::

    _log/0000000000000001.json   commit record 1 (create-only: the commit itself)
    _log/0000000000000002.json   ...
    _log/_latest.json            hint: a copy of a recent record (overwritten)

The records are the truth; the hint only saves the walk from record 1. Records
never have gaps: a writer only creates ``seq + 1`` after it has read ``seq``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from contextlib import suppress
from typing import TYPE_CHECKING

import anyio

from ..errors import (
    FormatError,
    InvalidInputError,
    ObjectNotFoundError,
    SnapshotNotFoundError,
    TransientStorageError,
)
from ..manifest._converter import decode, encode
from ..manifest._dataset import CommitRecord

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["CommitLog", "format_snapshot_id", "parse_snapshot_id"]

_ID_RE = re.compile(r"(\d{16})-(\d{4})")
_CACHE_SIZE = 256


def format_snapshot_id(seq: int, index: int) -> str:
    """``"<seq:016d>-<index:04d>"``: sorts in commit order, maps to its record in O(1)."""
    return f"{seq:016d}-{index:04d}"


def parse_snapshot_id(snapshot_id: object, *, dataset_id: str | None = None) -> tuple[int, int]:
    """Split a snapshot id into ``(seq, index)``.

    Raises
    ------
    InvalidInputError
        Not a str.
    SnapshotNotFoundError
        A string that is not a snapshot id (no such snapshot can exist).
    """
    if not isinstance(snapshot_id, str):
        raise InvalidInputError(f"a snapshot id is a str, not {type(snapshot_id).__name__}")
    m = _ID_RE.fullmatch(snapshot_id)
    if m is None or int(m.group(1)) == 0:
        raise SnapshotNotFoundError(
            f"no snapshot {snapshot_id!r} (ids look like '0000000000000001-0000')",
            dataset_id=dataset_id,
            snapshot_id=snapshot_id,
        )
    return int(m.group(1)), int(m.group(2))


class CommitLog:
    """Reads and caches one dataset's commit records; tracks the known head.

    Records are immutable, so a small LRU cache of decoded records is always
    valid. ``head`` is the newest record this object has seen (possibly stale:
    another writer may have committed since).
    """

    def __init__(self, store: Store, prefix: str, dataset_id: str) -> None:
        self.store = store
        self.prefix = prefix
        self.dataset_id = dataset_id
        self.hint_key = f"{prefix}_latest.json"
        self.head: CommitRecord | None = None
        # The newest seq known to be in the hint (written or read), and whether
        # a hint put is in flight: at most one at a time per object.
        self.hint_seq = 0
        self._hint_busy = False
        # True once we know the log's state at least once (head may be None = empty).
        self.warm = False
        self._cache: OrderedDict[int, CommitRecord] = OrderedDict()

    def key(self, seq: int) -> str:
        """Key of record ``seq``."""
        return f"{self.prefix}{seq:016d}.json"

    @property
    def head_seq(self) -> int:
        """Sequence number of the known head (0: empty)."""
        return 0 if self.head is None else self.head.seq

    def remember(self, record: CommitRecord) -> None:
        """Cache a record and advance the head if it is newer."""
        self._cache[record.seq] = record
        self._cache.move_to_end(record.seq)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        if self.head is None or record.seq > self.head.seq:
            self.head = record

    def cached(self, seq: int) -> CommitRecord | None:
        """The cached record ``seq``, if any (no I/O)."""
        return self._cache.get(seq)

    def decode(self, data: bytes, seq: int) -> CommitRecord:
        """Decode and sanity-check record bytes read at ``seq``.

        Raises
        ------
        ManifestFormatError
            Invalid document, or it does not belong at this position.
        """
        from ..errors import ManifestFormatError

        key = self.key(seq)
        rec = decode(data, CommitRecord, key=key)
        if rec.seq != seq or rec.dataset_id != self.dataset_id:
            raise ManifestFormatError(
                f"commit record {key!r} says dataset {rec.dataset_id!r} seq {rec.seq}",
                key=key,
                dataset_id=self.dataset_id,
                field="seq",
            )
        if not rec.snapshots:
            raise ManifestFormatError(
                f"commit record {key!r} commits no snapshot",
                key=key,
                dataset_id=self.dataset_id,
                field="snapshots",
            )
        for i, m in enumerate(rec.snapshots):
            if m.snapshot_id != format_snapshot_id(seq, i) or m.dataset_id != self.dataset_id:
                raise ManifestFormatError(
                    f"commit record {key!r}: snapshot {i} is {m.dataset_id!r} "
                    f"{m.snapshot_id!r}, expected {format_snapshot_id(seq, i)!r}",
                    key=key,
                    dataset_id=self.dataset_id,
                    field=f"snapshots[{i}].snapshot_id",
                )
        return rec

    async def fetch(self, seq: int) -> CommitRecord | None:
        """Record ``seq`` (cache, else one ``get``); ``None`` if it does not exist.

        Raises
        ------
        ManifestFormatError, UnsupportedFormatVersionError
            The record is not a readable commit record.
        StorageError
            The store failed.
        """
        rec = self._cache.get(seq)
        if rec is not None:
            return rec
        rec = await self._read(seq)
        if rec is not None:
            self.remember(rec)
        return rec

    async def _read(self, seq: int) -> CommitRecord | None:
        """Get and decode record ``seq`` without caching it (``None``: missing)."""
        try:
            data = await self.store.get(self.key(seq))
        except ObjectNotFoundError:
            return None
        return self.decode(data, seq)

    async def _confirm_hint(self, seq: int) -> bool:
        """Read records ``seq`` and ``seq + 1`` concurrently; remember them if the
        hint told the truth (record ``seq`` exists). One round trip."""
        from .._concurrency import collapse_group

        found: dict[int, CommitRecord | None] = {}

        async def one(s: int) -> None:
            found[s] = await self._read(s)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, seq)
                tg.start_soon(one, seq + 1)
        except BaseExceptionGroup as eg:
            raise collapse_group(eg) from eg
        base = found[seq]
        if base is None:
            return False  # a lying hint (corrupted, or the log was replaced)
        self.remember(base)
        nxt = found[seq + 1]
        if nxt is not None:
            self.remember(nxt)
        return True

    async def require(self, seq: int, snapshot_id: str) -> CommitRecord:
        """Record ``seq`` or :class:`SnapshotNotFoundError` for ``snapshot_id``."""
        rec = await self.fetch(seq)
        if rec is None:
            raise SnapshotNotFoundError(
                f"dataset {self.dataset_id!r} has no snapshot {snapshot_id!r}",
                dataset_id=self.dataset_id,
                snapshot_id=snapshot_id,
            )
        return rec

    async def _exists(self, seq: int) -> bool:
        if seq in self._cache:
            return True
        return await self.store.exists(self.key(seq))

    async def _read_hint(self) -> CommitRecord | None:
        try:
            data = await self.store.get(self.hint_key)
        except (ObjectNotFoundError, TransientStorageError):
            # The hint is a shortcut: when it cannot be read, probe the records.
            return None
        try:
            rec = decode(data, CommitRecord, key=self.hint_key)
        except FormatError:
            # A corrupt hint is only a lost shortcut; the records are the truth.
            return None
        if rec.dataset_id != self.dataset_id or rec.seq < 1:
            return None
        self.hint_seq = max(self.hint_seq, rec.seq)
        return rec

    async def _gallop(self) -> int:
        """Find the last existing seq with O(log n) ``exists`` probes (no hint)."""
        lo = self.head_seq  # known to exist (or 0)
        step = 1
        hi = lo + step
        while await self._exists(hi):
            lo = hi
            step *= 2
            hi = lo + step
        # lo exists (or is 0), hi does not: binary search in (lo, hi).
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await self._exists(mid):
                lo = mid
            else:
                hi = mid
        return lo

    async def refresh(self) -> CommitRecord | None:
        """Bring ``head`` up to the true end of the log and return it.

        Warm (head known): probe ``head + 1`` — one ``get`` when nothing new.
        Cold: read the hint (one ``get``), confirm the record it names while
        probing the next (two concurrent ``get``), then probe forward; without
        a usable hint, gallop + binary search (O(log n) ``head`` calls).

        Raises
        ------
        FormatError
            A record is unreadable.
        StorageError
            The store failed.
        """
        probe = True
        if not self.warm:
            hint = await self._read_hint()
            # The hint is only a pointer, never the truth: the record it names
            # is read (with the next one, concurrently) before anything builds
            # on it, so a damaged hint can never make a writer leave a gap.
            confirmed = hint is not None and await self._confirm_hint(hint.seq)
            if hint is not None and not confirmed:
                self.hint_seq = 0  # it lied: writers will rewrite it
            if confirmed:
                if hint is not None and self.head_seq == hint.seq:
                    probe = False  # record seq + 1 was just found missing
            elif await self.fetch(self.head_seq + 1) is not None:
                # No usable hint and a non-empty log: O(log n) probes, not O(n).
                last = await self._gallop()
                if last > self.head_seq:
                    await self.fetch(last)
                probe = False  # the search proved last + 1 absent
            else:
                probe = False  # the probe just happened: nothing after the head
        while probe:
            nxt = await self.fetch(self.head_seq + 1)
            if nxt is None:
                break
        self.warm = True
        return self.head

    def hint_due(self) -> CommitRecord | None:
        """The head record if the hint lags it and no hint put is in flight.

        Marks a hint put as in flight: the caller must then call
        :meth:`write_hint` (which clears it).
        """
        if self._hint_busy or self.head is None or self.head.seq <= self.hint_seq:
            return None
        self._hint_busy = True
        return self.head

    def hint_stale(self, committed: CommitRecord) -> bool:
        """Whether, after committing ``committed``, the hint lags by more than one
        record (and no hint put is in flight); marks a put in flight if so."""
        if self._hint_busy or self.hint_seq >= committed.seq - 1:
            return False
        self._hint_busy = True
        return True

    async def write_hint(self, record: CommitRecord) -> None:
        """Overwrite the hint with ``record`` (best effort; failures are ignored).

        Concurrent writers may leave an older record in the hint; readers probe
        forward from it, so a stale hint costs a few ``get`` calls, never a
        wrong answer.
        """
        from ..errors import AiolodeError

        try:
            with suppress(AiolodeError):
                await self.store.put(self.hint_key, encode(record), mode="overwrite")
                self.hint_seq = max(self.hint_seq, record.seq)
        finally:
            self._hint_busy = False
