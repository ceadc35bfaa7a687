"""The lock-free commit engine: group commit, rebase, conflicts, lost acks.

A commit is ONE create-only put of a commit record at ``seq = head + 1``. The
record carries one or more consecutive snapshots, so concurrent ``write()``
calls on one Dataset object share a single put (group commit) and no gap can
ever appear between them: the group is visible entirely or not at all.

Within a process, writers enqueue prepared entries; whoever holds the commit
lock (the leader) takes every pending entry (bounded batch) and commits them in
one record; the others wait for their result. Across processes, the store's
create-only put serialises commits: a loser reads the winning records forward,
checks ``expected_parent`` entries against every snapshot since their parent,
re-parents the rest and retries (jittered backoff after repeated losses).

Every batch carries a unique token in its record. When a put fails with an
unknown outcome (a transient error: the put may have landed), or a retry finds
the slot taken, the engine reads the record at that slot: if it carries our
token, it is our commit — success, never committed twice, never a conflict.
"""

from __future__ import annotations

import uuid
from collections import deque
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ..errors import (
    AiolodeError,
    ObjectExistsError,
    SnapshotConflictError,
    SnapshotNotFoundError,
    TransientStorageError,
)
from ..manifest._converter import encode
from ..manifest._dataset import CommitRecord, FileRef, Manifest, PartitionRef
from ._log import format_snapshot_id, parse_snapshot_id

if TYPE_CHECKING:
    from .._retry import Retry
    from ._log import CommitLog

__all__ = ["Committer", "PendingSnapshot"]

#: Most snapshots one commit record carries (ids leave room for 10,000).
MAX_BATCH = 256


@attrs.define(eq=False)
class PendingSnapshot:
    """A prepared snapshot waiting for its commit (data files already stored)."""

    files: list[FileRef]
    metadata: dict[str, Any]
    row_count: int | None
    min_timestamp: Any = None
    max_timestamp: Any = None
    expected_parent: str | None = None
    #: Partition manifests already stored (format v2); the record then lists
    #: these summaries instead of inlining ``files``.
    partition_refs: list[PartitionRef] = attrs.field(factory=list)
    claimed: bool = False
    result: Manifest | None = None
    error: BaseException | None = None
    #: True when the commit may have happened (data files must be kept).
    outcome_unknown: bool = False
    done: anyio.Event | None = None

    def partitions(self) -> set[tuple[tuple[str, str], ...]]:
        """Partition value sets touched (as hashable tuples)."""
        return {tuple(sorted(f.partition.items())) for f in self.files}


def _claimed(entry: PendingSnapshot) -> bool:
    # A function, not an attribute test, because other tasks flip it while we wait.
    return entry.claimed


def _manifest_partitions(m: Manifest) -> set[tuple[tuple[str, str], ...]]:
    # From the summaries (v2) or the inline files: no partition manifest read.
    return {tuple(sorted(p.items())) for p in m.partitions}


class Committer:
    """Commits pending snapshots of one dataset; one per Dataset object."""

    def __init__(
        self,
        log: CommitLog,
        *,
        retry: Retry,
        partitioned: bool,
        static: dict[str, Any],
    ) -> None:
        self.log = log
        self.retry = retry
        self.partitioned = partitioned
        # codec / compressor / layout fields shared by every manifest.
        self.static = static
        self._pending: deque[PendingSnapshot] = deque()
        self._lock: anyio.Lock | None = None
        # Whether a record put of the running batch may have landed unseen.
        self._ambiguous = False

    # ------------------------------------------------------------------ submit
    async def submit(self, entry: PendingSnapshot) -> Manifest:
        """Commit ``entry`` (alone or with others) and return its manifest.

        Cancellation before the entry is claimed by a leader withdraws it (no
        snapshot). Once claimed, the commit runs to its outcome shielded and
        that outcome is returned or raised even if the caller was cancelled.

        Raises
        ------
        SnapshotConflictError
            ``expected_parent`` conflicts, or the retry budget ran out.
        SnapshotNotFoundError
            ``expected_parent`` does not exist.
        StorageError
            The store failed (``entry.outcome_unknown`` tells whether it may
            have committed).
        """
        if self._lock is None:
            self._lock = anyio.Lock()
        lock = self._lock
        entry.done = anyio.Event()
        self._pending.append(entry)
        try:
            while not entry.claimed:
                async with lock:
                    if _claimed(entry):  # claimed by the leader we waited for
                        break
                    batch = self._take()
                    with anyio.CancelScope(shield=True):
                        committed = await self._run_batch(batch)
                if committed is not None and self.log.hint_stale(committed):
                    # Writers normally refresh the hint alongside their next
                    # data puts; a writer that found it older than the record
                    # before its own (short-lived writers) refreshes it now, so
                    # the hint never lags the log by more than one record.
                    with anyio.CancelScope(shield=True):
                        await self.log.write_hint(committed)
        except anyio.get_cancelled_exc_class():
            if not entry.claimed:
                self._withdraw(entry)
                raise
            # Claimed: the commit is under way; the caller must learn its truth.
        if not entry.done.is_set():
            with anyio.CancelScope(shield=True):
                await entry.done.wait()
        if entry.error is not None:
            raise entry.error
        assert entry.result is not None
        return entry.result

    def _withdraw(self, entry: PendingSnapshot) -> None:
        with suppress(ValueError):
            self._pending.remove(entry)

    def _take(self) -> list[PendingSnapshot]:
        batch: list[PendingSnapshot] = []
        while self._pending and len(batch) < MAX_BATCH:
            e = self._pending.popleft()
            e.claimed = True
            batch.append(e)
        return batch

    def _defer(self, entries: list[PendingSnapshot]) -> None:
        # Back to the front of the queue, unclaimed: their writers lead next.
        for e in reversed(entries):
            e.claimed = False
            self._pending.appendleft(e)

    @staticmethod
    def _finish(
        entry: PendingSnapshot,
        *,
        result: Manifest | None = None,
        error: BaseException | None = None,
        unknown: bool = False,
    ) -> None:
        entry.result = result
        entry.error = error
        entry.outcome_unknown = unknown
        assert entry.done is not None
        entry.done.set()

    # ------------------------------------------------------------------- batch
    async def _run_batch(self, batch: list[PendingSnapshot]) -> CommitRecord | None:
        """Commit ``batch``; resolve every entry. Returns the record on success."""
        self._ambiguous = False
        try:
            return await self._commit_loop(batch)
        except BaseException as exc:
            # Reading the log failed (or a bug). If a record put of this batch
            # may have landed, the outcome is unknown and the data must stay;
            # otherwise nothing of this batch is committed.
            for e in batch:
                if e.done is not None and not e.done.is_set():
                    self._finish(
                        e,
                        error=exc
                        if isinstance(exc, AiolodeError)
                        else AiolodeError(
                            f"commit failed: {exc!r}", dataset_id=self.log.dataset_id
                        ),
                        unknown=self._ambiguous,
                    )
            if not isinstance(exc, Exception):
                raise
            return None

    async def _commit_loop(self, batch: list[PendingSnapshot]) -> CommitRecord | None:
        log = self.log
        token = uuid.uuid4().hex
        losses = 0
        unknowns = 0
        winners: list[str] = []
        if not log.warm:
            await self._refresh()
        while True:
            batch = await self._check_conflicts(batch)
            if not batch:
                return None
            record = self._build(batch, token)
            seq = record.seq
            try:
                await log.store.put(log.key(seq), encode(record), mode="create")
            except ObjectExistsError:
                other = await self._resolve(seq, batch)
                if other is None:
                    return None  # outcome unknown; entries resolved
                if other is _ABSENT:
                    continue  # the record vanished (deleted): simply retry
                if other.token == token:
                    return self._succeed(batch, other)
                winners.extend(m.snapshot_id for m in other.snapshots)
                losses += 1
            except TransientStorageError as exc:
                self._ambiguous = True  # the put may have landed
                other = await self._resolve(seq, batch, cause=exc)
                if other is None:
                    return None
                if other is _ABSENT:
                    unknowns += 1
                    if unknowns >= self.retry.attempts:
                        for e in batch:
                            self._finish(e, error=exc, unknown=False)
                        return None
                    await anyio.sleep(self.retry.delay(unknowns))
                    continue
                if other.token == token:
                    return self._succeed(batch, other)
                winners.extend(m.snapshot_id for m in other.snapshots)
                losses += 1
            except AiolodeError as exc:
                # A permanent refusal (permissions, invalid key): not committed.
                for e in batch:
                    self._finish(e, error=exc)
                return None
            else:
                log.remember(record)
                return self._succeed(batch, record)
            # Lost the race: read the winners forward, then rebase and retry.
            if losses >= self.retry.attempts:
                for e in batch:
                    self._finish(
                        e,
                        error=SnapshotConflictError(
                            f"gave up committing to dataset {log.dataset_id!r} after "
                            f"{losses} lost races (raise Retry.attempts under heavy contention)",
                            dataset_id=log.dataset_id,
                            conflicting=winners[-100:],
                        ),
                    )
                return None
            await self._refresh()
            if losses > 1:
                await anyio.sleep(self.retry.delay(losses - 1))

    async def _refresh(self) -> None:
        """Read the log forward, retrying transient read errors."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.log.refresh()
                return
            except TransientStorageError:
                if attempt >= self.retry.attempts:
                    raise
                await anyio.sleep(self.retry.delay(attempt))

    async def _resolve(
        self, seq: int, batch: list[PendingSnapshot], cause: BaseException | None = None
    ) -> Any:
        """Read the record at ``seq`` after an ambiguous put.

        Returns the record, ``_ABSENT`` if there is none, or ``None`` after
        resolving every entry as "outcome unknown" (the store kept failing).
        """
        last: BaseException | None = cause
        for attempt in range(1, self.retry.attempts + 1):
            try:
                rec = await self.log.fetch(seq)
            except AiolodeError as exc:
                # Transient failures, but also a record read back truncated or
                # corrupted in transit: either way we cannot tell whether our
                # put landed, so read again; never guess "not committed".
                last = exc
                await anyio.sleep(self.retry.delay(attempt))
                continue
            return _ABSENT if rec is None else rec
        for e in batch:
            err = TransientStorageError(
                f"commit to dataset {self.log.dataset_id!r} at seq {seq} has an unknown outcome "
                "(the store kept failing); read latest() to find out",
                key=self.log.key(seq),
                dataset_id=self.log.dataset_id,
            )
            err.__cause__ = last
            self._finish(e, error=err, unknown=True)
        return None

    def _succeed(self, batch: list[PendingSnapshot], record: CommitRecord) -> CommitRecord:
        for e, m in zip(batch, record.snapshots, strict=True):
            # The writer knows its files: its snapshot comes back loaded.
            self._finish(e, result=m if m.files_loaded else attrs.evolve(m, files=e.files))
        return record

    def _build(self, batch: list[PendingSnapshot], token: str) -> CommitRecord:
        head = self.log.head
        seq = self.log.head_seq + 1
        now = datetime.now(UTC)
        if head is not None and head.created_at > now:
            # Clock skew between writers: keep created_at monotonic along the
            # log so snapshot_as_of() can binary-search it.
            now = head.created_at
        parent = head.snapshots[-1].snapshot_id if head is not None else None
        manifests: list[Manifest] = []
        for i, e in enumerate(batch):
            sid = format_snapshot_id(seq, i)
            manifests.append(
                Manifest(
                    dataset_id=self.log.dataset_id,
                    snapshot_id=sid,
                    parent_id=parent,
                    created_at=now,
                    metadata=e.metadata,
                    files=[] if e.partition_refs else e.files,
                    partition_manifests=e.partition_refs,
                    row_count=e.row_count,
                    commit_token=token,
                    min_timestamp=e.min_timestamp,
                    max_timestamp=e.max_timestamp,
                    **self.static,
                )
            )
            parent = sid
        return CommitRecord(
            dataset_id=self.log.dataset_id,
            seq=seq,
            token=token,
            created_at=now,
            snapshots=manifests,
        )

    async def _check_conflicts(self, batch: list[PendingSnapshot]) -> list[PendingSnapshot]:
        """Resolve ``expected_parent`` entries against the log; return the rest."""
        if all(e.expected_parent is None for e in batch):
            return batch
        keep: list[PendingSnapshot] = []
        deferred: list[PendingSnapshot] = []
        for e in batch:
            if e.expected_parent is None:
                keep.append(e)
                continue
            try:
                conflicts = await self._conflicts_since(e)
            except SnapshotNotFoundError as exc:
                self._finish(e, error=exc)
                continue
            if conflicts:
                self._finish(
                    e,
                    error=SnapshotConflictError(
                        f"snapshot(s) {', '.join(conflicts)} committed since "
                        f"{e.expected_parent} touch the same "
                        + ("partitions" if self.partitioned else "dataset"),
                        dataset_id=self.log.dataset_id,
                        snapshot_id=e.expected_parent,
                        conflicting=conflicts,
                    ),
                )
                continue
            # Entries ahead of it in this batch become snapshots after its parent.
            if any(self._overlap(e.partitions(), k.partitions()) for k in keep):
                deferred.append(e)
                continue
            keep.append(e)
        self._defer(deferred)
        return keep

    def _overlap(self, a: set[Any], b: set[Any]) -> bool:
        if not self.partitioned:
            return True
        return bool(a & b)

    async def _conflicts_since(self, e: PendingSnapshot) -> list[str]:
        assert e.expected_parent is not None
        log = self.log
        pseq, pidx = parse_snapshot_id(e.expected_parent, dataset_id=log.dataset_id)
        if pseq > log.head_seq:
            await self._refresh()
        rec = await log.require(pseq, e.expected_parent) if pseq <= log.head_seq else None
        if rec is None or pidx >= len(rec.snapshots):
            raise SnapshotNotFoundError(
                f"expected_parent {e.expected_parent!r} is not a snapshot of dataset "
                f"{log.dataset_id!r}",
                dataset_id=log.dataset_id,
                snapshot_id=e.expected_parent,
            )
        mine = e.partitions()
        out: list[str] = []
        later = list(rec.snapshots[pidx + 1 :])
        for s in range(pseq + 1, log.head_seq + 1):
            r = await log.require(s, format_snapshot_id(s, 0))
            later.extend(r.snapshots)
        for m in later:
            if self._overlap(mine, _manifest_partitions(m)):
                out.append(m.snapshot_id)
        return out


class _Absent:
    token = None

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()
