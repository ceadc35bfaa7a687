"""The lock-free commit engine: group commit, rebase, conflicts, lost acks.

A commit is ONE create-only put of a commit record at ``seq = head + 1``. The
record carries one or more consecutive snapshots, so concurrent ``write()``
calls on one Dataset object share a single put (group commit) and no gap can
ever appear between them: the group is visible entirely or not at all.

Within a process, writers enqueue prepared entries; whoever holds the commit
lock (the leader) takes every pending entry (bounded batch) and commits them in
one record; the others wait for their result. Across processes, the history
layer (:meth:`aiolode._history.SequenceLog.append`) serialises commits through
the create-only put, recognises lost acknowledgements by the batch token and
calls back here after every lost race: the batch is rebuilt on the new head,
``expected_parent`` entries are checked against every snapshot since their
parent, and the rest are re-parented.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._history import Draft, Outcome
from ..errors import (
    AiolodeError,
    SchemaViolationError,
    SnapshotConflictError,
    SnapshotNotFoundError,
    StaleWriteError,
)
from ..manifest._dataset import CommitRecord, ExpiryState, FileRef, Manifest, PartitionRef
from ..manifest._ids import dataset_snapshot_id, parse_dataset_snapshot_id
from ..manifest._metadata import Metadata
from ..schema import Schema, SchemaMode, merge
from ._log import CommitLog
from ._state import dropped_error, schema_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


__all__ = ["Committer", "Incarnation", "ManifestStatics", "PendingSnapshot", "record_base"]

#: Most snapshots one commit record carries (ids leave room for 10,000).
MAX_BATCH = 256


@attrs.define(eq=False)
class PendingSnapshot:
    """A prepared snapshot waiting for its commit (data files already stored)."""

    files: list[FileRef]
    metadata: Metadata
    row_count: int | None
    min_timestamp: Any = None
    max_timestamp: Any = None
    expected_parent: str | None = None
    #: Partition manifests already stored (format v2); the record then lists
    #: these summaries instead of inlining ``files``.
    partition_refs: list[PartitionRef] = attrs.field(factory=list)
    #: The schema after this entry (``None``: raw, or nothing to say), the one
    #: its records were encoded against, and how it may differ from the head's.
    schema: Schema | None = None
    schema_base: Schema | None = None
    schema_mode: SchemaMode = "strict"
    #: The caller's idempotency key, and the head when the write began (a
    #: snapshot committed with the same key can only be in a later record).
    idempotency_key: str | None = None
    after: int = 0
    #: Set when the key was found committed already: the result is that
    #: snapshot, and this entry's own files are garbage.
    duplicate: bool = False
    followers: list[PendingSnapshot] = attrs.field(factory=list)
    #: When the write began (the writer's clock): a garbage collection fence
    #: after it means some of its files may have been collected.
    started_at: datetime = attrs.field(factory=lambda: datetime.now(UTC))
    claimed: bool = False
    result: Manifest | None = None
    error: BaseException | None = None
    #: True when the commit may have happened (data files must be kept).
    outcome_unknown: bool = False
    #: Resolved (``result`` or ``error`` is final); ``done`` is made only for a
    #: writer that must wait for another's batch to resolve its entry.
    finished: bool = False
    done: anyio.Event | None = None

    def partitions(self) -> set[tuple[tuple[str, str], ...]]:
        """Partition value sets touched (as hashable tuples)."""
        return {tuple(sorted(f.partition.items())) for f in self.files}


@attrs.frozen
class ManifestStatics:
    """The manifest fields every snapshot of one Dataset object shares."""

    codec: str | None
    codec_options: Mapping[str, Any]
    compressor: str | None
    compressor_options: Mapping[str, Any]
    layout: Mapping[str, Any]


def _claimed(entry: PendingSnapshot) -> bool:
    # A function, not an attribute test, because other tasks flip it while we wait.
    return entry.claimed


def _manifest_partitions(m: Manifest) -> set[tuple[tuple[str, str], ...]]:
    # From the summaries (v2) or the inline files: no partition manifest read.
    return {tuple(sorted(p.items())) for p in m.partitions}


@attrs.frozen
class Incarnation:
    """Which life of the dataset a writer works for (from its descriptor)."""

    id: str = ""
    first_seq: int = 1

    def check_head(self, log: CommitLog, head: CommitRecord | None) -> bool:
        """Whether a record built on ``head`` starts this incarnation (True) or
        continues it (False).

        Raises
        ------
        DatasetNotFoundError
            ``head`` drops the dataset and this writer cannot start a new life
            on it (it belongs to the dropped one, or to none after it).
        """
        if head is None or not head.dropped:
            return False
        if head.incarnation != self.id and head.seq == self.first_seq - 1:
            return True
        raise dropped_error(log.spec.owner_id)


def record_base(
    log: CommitLog, head: CommitRecord | None, seq: int, token: str, life: Incarnation
) -> dict[str, Any]:
    """The fields every record built on ``head`` carries: identity, time, and what
    the lifecycle decided so far (expiry pointer, GC fence, tip). A record that
    starts a new incarnation after a drop carries none of the old one's.

    Raises
    ------
    DatasetNotFoundError
        ``head`` dropped the dataset (see :meth:`Incarnation.check_head`).
    """
    base: dict[str, Any] = {
        "dataset_id": log.spec.owner_id,
        "seq": seq,
        "token": token,
        "created_at": log.created_at_after(head),
        "incarnation": life.id,
    }
    if life.check_head(log, head):
        # Everything before belongs to the dropped life: expired from the start.
        return {**base, "expiry": ExpiryState(below=seq), "expiry_seq": seq}
    return {
        **base,
        "expiry_seq": 0
        if head is None
        else (head.seq if head.expiry is not None else head.expiry_seq),
        "gc_fence": None if head is None else head.gc_fence,
        "tip": None if head is None else head.last_snapshot_id,
        "schema_seq": 0
        if head is None
        else (head.seq if head.schema is not None else head.schema_seq),
    }


@attrs.define(eq=False)
class Committer:
    """Commits pending snapshots of one dataset; one per Dataset object."""

    log: CommitLog
    partitioned: bool = attrs.field(kw_only=True)
    statics: ManifestStatics = attrs.field(kw_only=True)
    life: Incarnation = attrs.field(kw_only=True)
    _pending: deque[PendingSnapshot] = attrs.field(init=False, factory=deque)
    _lock: anyio.Lock | None = attrs.field(init=False, default=None)

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
            # No yield to the loop on an uncontended acquire: the commit path
            # has enough (the thread hand-offs); a waiter still queues fairly.
            self._lock = anyio.Lock(fast_acquire=True)
        lock = self._lock
        self._pending.append(entry)
        try:
            while not entry.claimed:
                async with lock:
                    if _claimed(entry):  # claimed by the leader we waited for
                        break
                    batch = self._take()
                    with anyio.CancelScope(shield=True):
                        committed = await self._run_batch(batch)
                if committed is not None and self.log.hint_stale(committed.seq):
                    # Writers normally refresh the hint alongside their next
                    # data puts; a writer that found it older than the record
                    # before its own (short-lived writers) refreshes it now, so
                    # the hint never lags the log by more than one record.
                    with anyio.CancelScope(shield=True):
                        await self.log.write_hint(committed.seq)
        except anyio.get_cancelled_exc_class():
            if not entry.claimed:
                self._withdraw(entry)
                raise
            # Claimed: the commit is under way; the caller must learn its truth.
        if not entry.finished:
            # Claimed by a batch still running (this writer was cancelled while
            # waiting for the lock): its outcome is coming.
            entry.done = anyio.Event()
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
        entry.finished = True
        if entry.done is not None:
            entry.done.set()

    # ------------------------------------------------------------------- batch
    async def _run_batch(self, batch: list[PendingSnapshot]) -> CommitRecord | None:
        """Commit ``batch``; resolve every entry. Returns the record on success."""
        token = uuid.uuid4().hex
        current: list[PendingSnapshot] = batch

        async def prepare(head: CommitRecord | None, seq: int) -> Draft[CommitRecord] | None:
            nonlocal current
            genesis = self.life.check_head(self.log, head)
            current = self._check_fence(current, None if genesis else head)
            current = await self._check_keys(current, head)
            current = await self._check_conflicts(current)
            current, schema = await self._check_schemas(current, None if genesis else head)
            if not current:
                return None
            batch = current  # the entries this draft commits, whatever later rebases do
            return Draft(build=lambda: self._build(batch, head, seq, token, schema))

        try:
            outcome = await self.log.append(prepare, token=token)
        except BaseException as exc:
            # A bug (or a cancellation that got through): nothing is known.
            for e in current:
                self._fail(e, exc if isinstance(exc, AiolodeError) else None, unknown=True)
            raise
        if outcome.record is not None:
            return self._succeed(current, outcome.record)
        if outcome.error is not None:
            for e in current:
                self._fail(e, outcome.error, unknown=outcome.maybe_committed)
        return None

    def _fail(self, e: PendingSnapshot, err: AiolodeError | None, *, unknown: bool) -> None:
        if not e.finished:
            self._finish(
                e,
                error=err
                or AiolodeError("commit failed unexpectedly", dataset_id=self.log.spec.owner_id),
                unknown=unknown,
            )

    def _succeed(self, batch: list[PendingSnapshot], record: CommitRecord) -> CommitRecord:
        for e, m in zip(batch, record.snapshots, strict=True):
            # The writer knows its files: its snapshot comes back loaded.
            result = m if m.files_loaded else attrs.evolve(m, files=e.files)
            self._finish(e, result=result)
            for f in e.followers:  # the same key twice in one batch: one commit
                f.duplicate = True
                self._finish(f, result=result)
        return record

    async def _check_keys(
        self, batch: list[PendingSnapshot], head: CommitRecord | None
    ) -> list[PendingSnapshot]:
        """Resolve entries whose idempotency key a committed snapshot already carries.

        Only records after the one each write began at are read (usually cached,
        and few: the records committed while the write ran).
        """
        if all(e.idempotency_key is None for e in batch):
            return batch
        keep: list[PendingSnapshot] = []
        first: dict[str, PendingSnapshot] = {}
        for e in batch:
            key = e.idempotency_key
            if key is None:
                keep.append(e)
                continue
            if key in first:
                first[key].followers.append(e)
                continue
            found = await self._find_key(key, e.after, head)
            if found is not None:
                e.duplicate = True
                self._finish(e, result=found)
                continue
            first[key] = e
            keep.append(e)
        return keep

    async def _find_key(self, key: str, after: int, head: CommitRecord | None) -> Manifest | None:
        if head is None:
            return None
        for s in range(after + 1, head.seq + 1):
            rec = await self.log.fetch(s)
            if rec is None:
                continue  # collected below the low-water mark: expired
            for m in rec.snapshots:
                if m.idempotency_key == key:
                    return m
        return None

    def _check_fence(
        self, batch: list[PendingSnapshot], head: CommitRecord | None
    ) -> list[PendingSnapshot]:
        """Refuse the entries a garbage collection may have robbed of their files."""
        fence = None if head is None else head.gc_fence
        if fence is None:
            return batch
        keep = []
        for e in batch:
            if e.started_at <= fence:
                self._finish(
                    e,
                    error=StaleWriteError(
                        f"this write began at {e.started_at.isoformat()}, before the fence "
                        f"{fence.isoformat()} of a garbage collection of dataset "
                        f"{self.log.spec.owner_id!r} (gc(grace=...)): its files may have been "
                        "collected, so it was not committed; write the data again",
                        dataset_id=self.log.spec.owner_id,
                    ),
                )
            else:
                keep.append(e)
        return keep

    async def commit_ops(
        self,
        prepare: Callable[[CommitRecord | None, int, str], Awaitable[Draft[CommitRecord] | None]],
    ) -> Outcome[CommitRecord]:
        """Commit a maintenance record, serialised with this object's writes.

        ``prepare(head, seq, token)`` builds it on the head (again after every lost
        race); see :func:`record_base` for the fields every record carries on
        (``self.life`` is this writer's incarnation).
        """
        if self._lock is None:
            self._lock = anyio.Lock(fast_acquire=True)
        token = uuid.uuid4().hex
        async with self._lock:
            with anyio.CancelScope(shield=True):
                outcome = await self.log.append(lambda h, s: prepare(h, s, token), token=token)
            return outcome

    async def _check_schemas(
        self, batch: list[PendingSnapshot], head: CommitRecord | None
    ) -> tuple[list[PendingSnapshot], Schema | None]:
        """Fit each entry's schema onto the head's; the schema the record must set.

        An entry encoded against the head's schema may record its evolution;
        one encoded against an older schema (a concurrent writer changed it
        since) commits only if its records fit the new one (:func:`merge`).
        """
        found = await schema_of(self.log, head)
        recorded = None if found is None else found[1]
        current = recorded
        keep: list[PendingSnapshot] = []
        for e in batch:
            if e.schema is None or e.schema == current:
                keep.append(e)
                continue
            if current is None or e.schema_base == current:
                current = e.schema
                keep.append(e)
                continue
            try:
                current = merge(current, e.schema, mode=e.schema_mode)
            except SchemaViolationError as exc:
                exc.dataset_id = exc.dataset_id or self.log.spec.owner_id
                self._finish(e, error=exc)
                continue
            keep.append(e)
        return keep, (None if current == recorded else current)

    def _build(
        self,
        batch: list[PendingSnapshot],
        head: CommitRecord | None,
        seq: int,
        token: str,
        schema: Schema | None = None,
    ) -> CommitRecord:
        base = record_base(self.log, head, seq, token, self.life)
        if schema is not None:
            base.update(schema=schema.to_json(), schema_seq=seq)
        now = base["created_at"]
        parent = base.pop("tip", None)
        st = self.statics
        manifests: list[Manifest] = []
        for i, e in enumerate(batch):
            sid = dataset_snapshot_id(seq, i)
            manifests.append(
                Manifest(
                    dataset_id=self.log.spec.owner_id,
                    snapshot_id=sid,
                    parent_id=parent,
                    created_at=now,
                    metadata=e.metadata,
                    files=() if e.partition_refs else e.files,
                    partition_manifests=e.partition_refs,
                    idempotency_key=e.idempotency_key,
                    row_count=e.row_count,
                    commit_token=token,
                    min_timestamp=e.min_timestamp,
                    max_timestamp=e.max_timestamp,
                    codec=st.codec,
                    codec_options=st.codec_options,
                    compressor=st.compressor,
                    compressor_options=st.compressor_options,
                    layout=st.layout,
                )
            )
            parent = sid
        return CommitRecord(snapshots=manifests, **base)

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
                        dataset_id=self.log.spec.owner_id,
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
        dataset_id = log.spec.owner_id
        pseq, pidx = parse_dataset_snapshot_id(e.expected_parent, dataset_id=dataset_id)
        if pseq > log.head_seq:
            await log.refresh()
        rec = await log.require(pseq, e.expected_parent) if pseq <= log.head_seq else None
        if rec is None or pidx >= len(rec.snapshots):
            raise SnapshotNotFoundError(
                f"expected_parent {e.expected_parent!r} is not a snapshot of dataset "
                f"{dataset_id!r}",
                dataset_id=dataset_id,
                snapshot_id=e.expected_parent,
            )
        mine = e.partitions()
        out: list[str] = []
        later = list(rec.snapshots[pidx + 1 :])
        for s in range(pseq + 1, log.head_seq + 1):
            r = await log.require(s, dataset_snapshot_id(s, 0))
            later.extend(r.snapshots)
        for m in later:
            if self._overlap(mine, _manifest_partitions(m)):
                out.append(m.snapshot_id)
        return out
