"""Volume: a sparse byte space ``[0, N)`` filled by concurrently staged blocks.

Format and cost model: ``docs/volume.md`` and ``docs/spec/volume-v1.md``. In short:

- blocks are immutable objects at ``volumes/<id>/blocks/<offset>-<random>``;
- a commit is one create-only put of a small *root* in the volume's log (the
  history layer shared with datasets: sequence numbers serialise commits,
  tokens recognise lost acknowledgements, ``created_at`` stays monotonic),
  preceded by one small index segment (:mod:`._index`);
- a root lists O(log B) "hot" segments and points at an immutable list of
  "frozen" segments: any root alone says exactly which ranges exist.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterable, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, final

import anyio
import anyio.to_thread

from .._concurrency import reraise
from .._history import CLEANUP_TIMEOUT, Draft, delete_quietly, follow, put_unique
from .._history._owner import HistoryOwner
from .._keys import validate_range
from .._retry import Retry
from .._validate import check_int, check_number, safe_repr
from ..checksum import OFFLOAD_THRESHOLD, Checksum, check_checksum_arg, compute_checksum
from ..errors import (
    AiolodeError,
    FormatError,
    InvalidInputError,
    InvalidRangeError,
    NoSnapshotsError,
    ObjectNotFoundError,
    OverlappingBlocksError,
    SnapshotExpiredError,
    SnapshotNotFoundError,
    StaleWriteError,
)
from ..manifest._ids import parse_volume_snapshot_id, validate_history_id, volume_snapshot_id
from ..manifest._metadata import DEFAULT_MAX_METADATA_BYTES, check_metadata
from ..store import Store
from ..store._base import is_bytes_like
from . import _lifecycle
from ._blocks import BlockRef, Run, overlaps_among, seal_block
from ._index import BlockReads, VolumeIndex
from ._lifecycle import dropped_error, resolve_tip
from ._log import RootLog, volume_log
from ._reader import VolumeReader
from ._snapshot import State, VolumeSnapshot

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from .._history._reports import DropReport, ExpireReport, GCReport
    from ..manifest._metadata import Metadata
    from ..manifest._volume import VolumeRoot
    from ..verify import VerifyReport

__all__ = ("Volume", "VolumeSnapshot")


class _StaleHeadError(AiolodeError):
    """A commit's view of the head names a snapshot collected meanwhile (internal:
    the commit reads the head again)."""


@final
class Volume(HistoryOwner):
    """A sparse, resumable byte space ``[0, total_length)`` on a store.

    Blocks are staged concurrently and out of order with :meth:`stage_write_at`,
    invisible until :meth:`commit` lists them. Any number of tasks or processes
    may stage and commit disjoint blocks without coordination.

    Parameters
    ----------
    id
        Volume id: 1-200 of ``A-Z a-z 0-9 _ - .``, starting with a letter or
        digit (the same rule as dataset ids); data lives under ``volumes/<id>/``.
    store
        Where blocks and the index live.
    total_length
        ``N``, the size of the address space (>= 0). Reopening a volume with
        another length is refused on first read.
    checksum
        Digest recorded per staged block and verified on every read; ``None``
        records none (block lengths are still checked on every read).
    retry
        Retry policy for lost commit races and transient storage errors.
    concurrency
        Maximum block reads in flight for one :meth:`read_at`.
    max_metadata_bytes
        Largest metadata a snapshot may carry, encoded (default 64 KiB).

    Raises
    ------
    InvalidKeyError
        The id is not a valid volume id.
    InvalidInputError
        A parameter has the wrong type or value.

    Notes
    -----
    Memory: a Volume object caches the index segments of the snapshots it has
    loaded (shared between snapshots; O(B) for B committed blocks, about 100
    bytes per block) and up to 8 loaded snapshots. A Volume object is bound to
    the event loop that first uses it (its commit lock); use one per loop.
    """

    def __init__(
        self,
        id: str,
        store: Store,
        total_length: int,
        *,
        checksum: Checksum | None = None,
        retry: Retry | None = None,
        concurrency: int = 16,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
    ) -> None:
        self._id = validate_history_id(id, "volume")
        if not isinstance(store, Store):
            raise InvalidInputError(f"store must be an aiolode Store, not {type(store).__name__}")
        self._total = check_int("total_length", total_length, minimum=0)
        if retry is not None and not isinstance(retry, Retry):
            raise InvalidInputError(f"retry must be an aiolode.Retry, not {safe_repr(retry)}")
        self._concurrency = check_int("concurrency", concurrency)
        self._max_metadata = check_int("max_metadata_bytes", max_metadata_bytes, minimum=2)
        self._store = store
        self._checksum = check_checksum_arg(checksum)
        self._retry = retry or Retry()
        self._index = VolumeIndex(
            store, self._id, self._total, self._checksum, self._retry, self._concurrency
        )
        self._reads = BlockReads(store, self._id, self._retry, self._concurrency)
        self._log: RootLog = volume_log(
            store,
            self._id,
            self._total,
            self._checksum.name if self._checksum else None,
            self._retry,
        )
        self._blocks_prefix = self._index.blocks_prefix
        self._commit_lock: anyio.Lock | None = None

    def __repr__(self) -> str:
        return f"Volume({self._id!r}, {self._store!r}, total_length={self._total})"

    @property
    def total_length(self) -> int:
        """``N``: the size of the address space."""
        return self._total

    @property
    def checksum(self) -> Checksum | None:
        """The digest recorded for staged blocks, if any."""
        return self._checksum

    # ------------------------------------------------------------- snapshots
    async def _state(self, snapshot: object) -> State:
        """The loaded state of a snapshot given by id or :class:`VolumeSnapshot`."""
        if isinstance(snapshot, VolumeSnapshot):
            if snapshot.volume_id != self._id:
                raise InvalidInputError(
                    f"snapshot {snapshot.id} belongs to volume {snapshot.volume_id!r}, "
                    f"not {safe_repr(self._id)}",
                    volume_id=self._id,
                    snapshot_id=snapshot.id,
                )
            snapshot = snapshot.id
        seq = parse_volume_snapshot_id(snapshot, volume_id=self._id)
        sid = volume_snapshot_id(seq)
        # What this object knows of the head (a cold one reads it): expiry and drop.
        head = self._log.head if self._log.warm else await self._log.refresh()
        if head is not None and head.dropped:
            raise dropped_error(self._id)
        if head is not None and seq < head.expired_below:
            raise self._log.expired_error(sid)
        root = await self._log.require(seq, sid)
        if not root.is_snapshot:
            raise SnapshotNotFoundError(
                f"volume {self._id!r} has no snapshot {sid!r} (record {seq} is a "
                f"{root.operation!r} operation)",
                volume_id=self._id,
                snapshot_id=sid,
            )
        return await self._loaded(root)

    async def _loaded(self, root: VolumeRoot) -> State:
        """The state of a snapshot root; a snapshot whose index was collected meanwhile
        (expired, or the volume dropped, since this object last looked) says so."""
        try:
            return await self._index.state(root)
        except (ObjectNotFoundError, FormatError):
            sid = root.snapshot_id or volume_snapshot_id(root.seq)
            if root.seq < await self._log.read_lwm():
                raise self._log.expired_error(sid) from None
            raise

    async def _tip_state(self, root: VolumeRoot | None) -> State | None:
        """The state of the newest snapshot at or before ``root`` (``None``: none)."""
        tip = await resolve_tip(self._log, root)
        return None if tip is None else await self._loaded(tip)

    async def latest(self) -> VolumeSnapshot:
        """Return the newest snapshot.

        Cost: warm, 1 ``get`` (probing the next root); cold, 3-4 ``get`` in 2-3
        round trips (the hint, the root it names and the next one, concurrently)
        plus the head's segments not yet cached; a missing hint adds O(log S)
        ``head`` probes for S snapshots. Never lists.

        Raises
        ------
        NoSnapshotsError
            Nothing was ever committed.
        FormatError
            The root or a segment is damaged.
        InvalidInputError
            The volume was created with another length or checksum setting.
        StorageError
            The store failed.
        """
        state = await self._tip_state(await self._log.refresh())
        if state is None:
            raise NoSnapshotsError(f"volume {self._id!r} has no snapshots", volume_id=self._id)
        return state.snapshot

    async def snapshot(self, snapshot: str | VolumeSnapshot) -> VolumeSnapshot:
        """Return the snapshot with this id (or the one a :class:`VolumeSnapshot` names).

        Cost: one ``get`` for the root (0 when cached) plus its segments not yet cached.

        Raises
        ------
        InvalidInputError
            Not a str or VolumeSnapshot, or a snapshot of another volume.
        SnapshotNotFoundError
            No such snapshot (:class:`SnapshotExpiredError` when it was expired).
        FormatError
            The root or a segment is damaged.
        StorageError
            The store failed.
        """
        return (await self._state(snapshot)).snapshot

    async def snapshots(
        self, *, newest_first: bool = False
    ) -> AsyncGenerator[VolumeSnapshot, None]:
        """Iterate over every snapshot, oldest first (newest first on request).

        Walks the log up to the head known when the walk starts; never lists,
        and never stops silently: a root missing below the head raises
        :class:`~aiolode.HistoryGapError`. Wrap in :func:`contextlib.aclosing`.

        Cost: ``latest()`` + one ``get`` per root (16 concurrent) + each segment
        once (segments are shared between snapshots).

        Raises
        ------
        HistoryGapError
            A root is missing below the head.
        FormatError
            A root or segment is damaged.
        StorageError
            The store failed.
        """
        head = await self._log.refresh()
        if head is None:
            return
        if head.dropped:
            raise dropped_error(self._id)
        first = head.expired_below
        async with aclosing(self._log.walk(first, head.seq, newest_first=newest_first)) as roots:
            async for root in roots:
                if root.is_snapshot:
                    yield (await self._loaded(root)).snapshot

    async def snapshot_as_of(self, when: datetime) -> VolumeSnapshot:
        """The newest snapshot committed at or before ``when``.

        ``created_at`` never decreases along the log (whatever the writers'
        clocks), so this is a binary search: ``latest()`` + O(log n) ``get``.

        Raises
        ------
        InvalidInputError
            ``when`` is not a timezone-aware datetime.
        NoSnapshotsError
            Nothing was ever committed.
        SnapshotNotFoundError
            Every snapshot is newer than ``when``.
        FormatError, StorageError
            As for :meth:`snapshot`.
        """
        if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
            raise InvalidInputError(
                "snapshot_as_of() needs a timezone-aware datetime", volume_id=self._id
            )
        root = await self._log.as_of(when)
        head = self._log.head
        if head is not None and head.dropped:
            raise dropped_error(self._id)
        state = await self._tip_state(root)
        if state is not None and head is not None and state.seq < head.expired_below:
            raise self._log.expired_error(state.snapshot.id)
        if state is None:
            if head is None:
                raise NoSnapshotsError(f"volume {self._id!r} has no snapshots", volume_id=self._id)
            raise SnapshotNotFoundError(
                f"volume {self._id!r} has no snapshot as of {when.isoformat()}",
                volume_id=self._id,
            )
        return state.snapshot

    async def watch(
        self, after: str | VolumeSnapshot | None = None, *, poll_interval: float = 1.0
    ) -> AsyncGenerator[VolumeSnapshot, None]:
        """Follow the volume: yield every snapshot once, in commit order, forever.

        ``after=None`` starts at the first snapshot (backfill, then follow);
        ``after=<id or snapshot>`` resumes after it: the snapshot id is a durable
        cursor. Wrap in :func:`contextlib.aclosing`; cancel to stop.

        Cost: while idle, at most one store request per ``poll_interval``; a
        commit through the same store object in this process wakes the watcher
        at once. Each new snapshot: its root and new segments.

        Raises
        ------
        InvalidInputError
            ``after`` is not a snapshot id or VolumeSnapshot of this volume, or
            ``poll_interval`` is not a positive number (raised at the first
            iteration).
        SnapshotNotFoundError
            No snapshot ``after`` was ever committed to this volume.
        HistoryGapError, FormatError
            The history is damaged.
        StorageError
            The store kept failing (transient errors are retried with backoff).
        """
        poll = check_number("poll_interval", poll_interval, minimum=0.001)
        if after is not None:
            start = (await self._state(after)).seq + 1
        else:
            head = await self._log.refresh()
            start = 1 if head is None else head.expired_below  # expired views are skipped
        async with aclosing(follow(self._log, start=start, poll_interval=poll)) as roots:
            async for root in roots:
                if root.dropped:
                    raise dropped_error(self._id)
                if root.is_snapshot:
                    yield (await self._loaded(root)).snapshot

    # ---------------------------------------------------------------- staging
    async def stage_write_at(
        self, offset: int, data: bytes | bytearray | memoryview | AsyncIterable[bytes]
    ) -> BlockRef:
        """Write one block starting at ``offset``; invisible until committed.

        ``data`` is bytes-like or an async iterable of bytes chunks, streamed in
        bounded memory with the checksum computed as it flows (chunks of 256 KiB
        or more are hashed in a worker thread). Safe to call from many tasks at
        once: every block gets its own key.

        Cost: one create-only put (a streamed put for iterables); hashing CPU.

        Parameters
        ----------
        offset
            Where the block starts, in ``[0, N)``.
        data
            The block's bytes (non-empty).

        Returns
        -------
        BlockRef
            Pass it (with others) to :meth:`commit`; it is sealed to this volume.

        Raises
        ------
        InvalidRangeError
            The block is empty or does not fit in ``[0, N)``; for a stream, raised
            as soon as it runs past ``N`` (nothing is written).
        InvalidInputError
            ``data`` has the wrong type.
        StorageError
            The store failed (transient failures of bytes-like puts are retried;
            a stream cannot be replayed, so its failures propagate).
        """
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise InvalidRangeError(
                f"offset must be an int, not {type(offset).__name__}", volume_id=self._id
            )
        if offset < 0 or offset >= self._total:
            raise InvalidRangeError(
                f"block offset {offset} is outside [0, {self._total})", volume_id=self._id
            )
        # 128 random bits, as in a uuid4, without building a UUID object: staging
        # is the hot path, and on a fast store every microsecond shows.
        key = f"{self._blocks_prefix}{offset:x}-{os.urandom(16).hex()}"
        # Before the put: the object is stamped no earlier than this.
        staged_at = datetime.now(UTC)
        if is_bytes_like(data):
            buf: bytes | bytearray | memoryview = data  # type: ignore[assignment]
            n = buf.nbytes if isinstance(buf, memoryview) else len(buf)
            if n == 0:
                raise InvalidRangeError("a block must not be empty", volume_id=self._id)
            if offset + n > self._total:
                raise InvalidRangeError(
                    f"block [{offset}, {offset + n}) does not fit in [0, {self._total})",
                    volume_id=self._id,
                )
            ck = await compute_checksum(self._checksum, buf) if self._checksum else None
            await put_unique(self._store, key, buf, self._retry)
            return self._sealed(offset, n, key, ck, staged_at)
        if isinstance(data, str) or not isinstance(data, AsyncIterable):
            raise InvalidInputError(
                f"data must be bytes-like or an async iterable of bytes, not {type(data).__name__}",
                volume_id=self._id,
            )
        return await self._stage_stream(offset, data, key, staged_at)

    def _sealed(
        self, offset: int, length: int, key: str, checksum: str | None, staged_at: datetime
    ) -> BlockRef:
        seal = seal_block(self._id, offset, length, key, checksum, staged_at)
        return BlockRef(offset, length, key, checksum, staged_at, seal)

    async def _stage_stream(
        self, offset: int, data: AsyncIterable[bytes], key: str, staged_at: datetime
    ) -> BlockRef:
        hasher = self._checksum.hasher() if self._checksum else None
        room = self._total - offset
        count = 0

        async def checked() -> AsyncGenerator[bytes, None]:
            nonlocal count
            raw: AsyncIterable[object] = data
            async for chunk in raw:
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise InvalidInputError(
                        f"streamed data must yield bytes-like chunks, got {type(chunk).__name__}",
                        volume_id=self._id,
                    )
                n = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
                if n == 0:
                    continue
                if count + n > room:
                    raise InvalidRangeError(
                        f"streamed block at {offset} runs past the volume end {self._total}",
                        volume_id=self._id,
                    )
                if hasher is not None:
                    if n >= OFFLOAD_THRESHOLD:
                        await anyio.to_thread.run_sync(hasher.update, chunk)
                    else:
                        hasher.update(chunk)
                count += n
                # Stores take bytes; bytearray/memoryview chunks are copied once.
                yield chunk if isinstance(chunk, bytes) else bytes(chunk)

        async with aclosing(checked()) as it:
            # Peek one chunk so an empty stream is refused without writing anything.
            first = await anext(it, None)
            if first is None:
                raise InvalidRangeError("a block must not be empty", volume_id=self._id)

            async def replay() -> AsyncGenerator[bytes, None]:
                yield first
                async for c in it:
                    yield c

            async with aclosing(replay()) as body:
                await self._store.put(key, body)
        ck = self._checksum.format(hasher.hexdigest()) if self._checksum and hasher else None
        return self._sealed(offset, count, key, ck, staged_at)

    # ----------------------------------------------------------------- commit
    def _check_blocks(self, blocks: object) -> list[BlockRef]:
        if isinstance(blocks, BlockRef) or not isinstance(blocks, Iterable):
            raise InvalidInputError("blocks must be an iterable of BlockRef", volume_id=self._id)
        out = [b for b in blocks]  # noqa: C416 - list() would trust a lying __len__
        if not out:
            raise InvalidInputError("a commit needs at least one block", volume_id=self._id)
        for b in out:
            if not isinstance(b, BlockRef):
                raise InvalidInputError(
                    f"blocks must be BlockRef objects, got {type(b).__name__}", volume_id=self._id
                )
            name = b.key[len(self._blocks_prefix) :] if isinstance(b.key, str) else ""
            if (
                not isinstance(b.key, str)
                or not b.key.startswith(self._blocks_prefix)
                or not name
                or "/" in name
            ):
                raise InvalidInputError(
                    f"block {b.key!r} was not staged in volume {self._id!r}",
                    key=b.key if isinstance(b.key, str) else None,
                    volume_id=self._id,
                )
            bad_int = any(
                not isinstance(v, int) or isinstance(v, bool) for v in (b.offset, b.length)
            )
            if bad_int or b.offset < 0 or b.length <= 0 or b.end > self._total:
                raise InvalidRangeError(
                    f"block ({b.offset!r}, {b.length!r}) is outside [0, {self._total})",
                    key=b.key,
                    volume_id=self._id,
                )
            if (b.checksum is None) != (self._checksum is None):
                raise InvalidInputError(
                    f"block {b.key!r} checksum {b.checksum!r} does not match the volume's "
                    f"checksum setting {self._checksum!r}",
                    key=b.key,
                    volume_id=self._id,
                )
            stamp = b.staged_at if isinstance(b.staged_at, datetime) else None
            if stamp is not b.staged_at or b.seal != seal_block(
                self._id, b.offset, b.length, b.key, b.checksum, stamp
            ):
                # Moved, resized, hand-made, or staged by another volume: committing
                # it would serve the wrong bytes, or bytes that can never be read.
                raise InvalidInputError(
                    f"block {b.key!r} at ({b.offset}, {b.length}) is not a ref staged by "
                    f"volume {self._id!r}, or it was altered after staging; commit the refs "
                    "stage_write_at() returned, unchanged",
                    key=b.key,
                    volume_id=self._id,
                )
        out.sort(key=lambda b: b.offset)
        clash = overlaps_among(out)
        if clash:
            raise OverlappingBlocksError(
                f"blocks of one commit overlap: {clash}", ranges=clash, volume_id=self._id
            )
        return out

    async def commit(
        self, blocks: Iterable[BlockRef], metadata: Mapping[str, Any] | None = None
    ) -> VolumeSnapshot:
        """Make staged blocks visible in a new snapshot.

        Commits from many tasks or processes need no coordination: a commit that
        loses the race for its sequence number re-reads the winners, and if none
        of their blocks overlaps its own, rebases and retries (with the retry
        policy's backoff and jitter). The root put is the commit point and is
        shielded from cancellation; a lost acknowledgement is recognised by the
        commit token. Commits through one Volume object are serialised.

        Cost (warm, no race): 2 sequential round trips — the segment put (with
        the hint put alongside it when the hint lags), then the root put — plus,
        amortised, O(log B) segment entries rewritten by merges; a merge rewrites
        at most ~2 * FREEZE_AT entries. Root size is O(log B). The first commit
        through a fresh Volume object also loads the head snapshot's index.

        Parameters
        ----------
        blocks
            BlockRefs returned by :meth:`stage_write_at` (any Volume object on
            the same volume, in any process), unchanged, disjoint from each other
            and from committed blocks.
        metadata
            Metadata stored with the snapshot (the same rules as datasets').

        Returns
        -------
        VolumeSnapshot
            The new snapshot (which includes blocks committed concurrently).

        Raises
        ------
        InvalidInputError
            Empty list, a ref not staged by this volume or altered since, checksum
            mismatch with the volume setting, bad metadata.
        InvalidRangeError
            A block is outside ``[0, N)``.
        OverlappingBlocksError
            Blocks overlap each other or committed blocks (``.ranges``); never retried.
        SnapshotConflictError
            Still losing races after the retry policy's attempts.
        StorageError
            The store failed.
        """
        new = self._check_blocks(blocks)
        meta = check_metadata(metadata, max_bytes=self._max_metadata)
        if self._commit_lock is None:
            self._commit_lock = anyio.Lock()
        async with self._commit_lock:
            return await self._commit_locked(new, meta, uuid.uuid4().hex)

    async def _commit_locked(
        self, new: list[BlockRef], meta: Metadata, token: str
    ) -> VolumeSnapshot:
        new_run = Run.from_blocks(new, self._blocks_prefix, checksums=self._checksum is not None)
        built: dict[int, State] = {}
        log = self._log

        async def prepare(head: VolumeRoot | None, seq: int) -> Draft[VolumeRoot]:
            if head is not None and head.dropped:
                raise dropped_error(self._id)
            fence = None if head is None else head.gc_fence
            below = 1 if head is None else head.expired_below
            self._check_fence(new, fence)
            try:
                base = await self._tip_state(head)
            except SnapshotExpiredError as exc:
                # Our view of the head is old enough that its snapshot was expired
                # and collected meanwhile: read the head again and rebase.
                raise _StaleHeadError(str(exc), volume_id=self._id) from exc
            self._index.check_overlaps(base, new)
            written: list[str] = []
            due = log.hint_due() if not built else None

            async def index() -> tuple[VolumeRoot, State]:
                return await self._index.write(
                    base,
                    new_run,
                    seq=seq,
                    created_at=log.created_at_after(head),
                    metadata=meta,
                    token=token,
                    written=written,
                    gc_fence=fence,
                    expired_below=below,
                )

            try:
                if due is None:
                    root, state = await index()
                else:
                    # The hint names the head we know, written alongside the segment.
                    out: list[tuple[VolumeRoot, State]] = []
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(log.write_hint, due)
                        out.append(await index())
                    root, state = out[0]
            except BaseExceptionGroup as eg:
                await delete_quietly(self._store, written)
                reraise(eg)
            except BaseException:
                await delete_quietly(self._store, written)
                raise
            built[seq] = state
            return Draft(root, tuple(written))

        for _ in range(self._retry.attempts):
            outcome = await log.append(prepare, token=token)
            if not isinstance(outcome.error, _StaleHeadError):
                break
            await log.refresh()
        if outcome.record is None:
            assert outcome.error is not None
            if isinstance(outcome.error, _StaleHeadError):
                assert isinstance(outcome.error.__cause__, AiolodeError)
                raise outcome.error.__cause__
            raise outcome.error
        root = outcome.record
        state = built.get(root.seq)
        if state is None or state.root.token != root.token:
            state = await self._loaded(root)
        self._index.remember(state)
        if log.hint_stale(root.seq):
            # The commit landed: a cancellation arriving now must not hide that
            # from the caller, so the (bounded) hint write is shielded.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                await log.write_hint(root.seq)
        return state.snapshot

    def _check_fence(self, new: list[BlockRef], fence: datetime | None) -> None:
        """Refuse blocks a garbage collection may have collected."""
        if fence is None:
            return
        stale = [b for b in new if b.staged_at is None or b.staged_at <= fence]
        if stale:
            b = stale[0]
            when = "at an unknown time" if b.staged_at is None else f"at {b.staged_at.isoformat()}"
            raise StaleWriteError(
                f"block {b.key!r} was staged {when}, before the fence {fence.isoformat()} of a "
                f"garbage collection of volume {self._id!r} (gc(grace=...)): it may have been "
                f"collected, so nothing was committed; stage {len(stale)} block(s) again",
                key=b.key,
                volume_id=self._id,
            )

    # -------------------------------------------------------------- lifecycle
    async def _commit_op(
        self, operation: str, fence: datetime | None = None, below: int = 1
    ) -> VolumeRoot | None:
        """Commit a maintenance root (``"expire"`` below ``below``, ``"fence"`` at
        ``fence``, or ``"drop"``), serialised with this object's commits.
        ``None``: withdrawn (a drop found the volume dropped already; an expiry
        found nothing left to expire)."""
        if self._commit_lock is None:
            self._commit_lock = anyio.Lock()
        token = uuid.uuid4().hex
        log = self._log

        async def prepare(head: VolumeRoot | None, seq: int) -> Draft[VolumeRoot] | None:
            if head is not None and head.dropped:
                if operation == "drop":
                    return None
                raise dropped_error(self._id)
            old = None if head is None else head.gc_fence
            new = old if fence is None or (old is not None and old >= fence) else fence
            old_below = 1 if head is None else head.expired_below
            new_below = old_below
            if operation == "expire":
                tip = None if head is None else head.last_snapshot_id
                # Never the latest snapshot, whatever was committed since the plan.
                cap = 1 if tip is None else parse_volume_snapshot_id(tip, volume_id=self._id)
                new_below = max(old_below, min(below, cap))
                if new_below == old_below:
                    return None
            root = self._index.maintenance_root(
                head,
                seq=seq,
                created_at=log.created_at_after(head),
                token=token,
                operation=operation,
                gc_fence=new,
                expired_below=new_below,
            )
            return Draft(root)

        async with self._commit_lock:
            with anyio.CancelScope(shield=True):
                outcome = await log.append(prepare, token=token)
        if outcome.error is not None:
            raise outcome.error
        return outcome.record

    async def expire(
        self,
        *,
        older_than: timedelta | None = None,
        keep_last: int | None = None,
        dry_run: bool = False,
    ) -> ExpireReport:
        """Expire old snapshots of the volume's history (never data).

        A volume snapshot holds every block of its parent, so expiring old
        snapshots removes no byte from the newest: it forgets the older views
        (``snapshot()``, ``read_at()`` and time travel on them raise
        :class:`~aiolode.SnapshotExpiredError`; ``snapshots()`` and ``watch()``
        skip them) so that :meth:`gc` can collect the index segments only they
        used. The latest snapshot is never expired. Expiry is a commit (a root
        that is not a snapshot, carrying "everything below record *n* is
        expired" to every later root): it is ordered with concurrent commits,
        which are never lost, and concurrent expiries merge (the highest wins).

        Cost: ``latest()`` + one ``get`` per expired root (to report their ids;
        16 concurrent) + one root put; ``older_than`` adds a binary search
        (O(log n) ``get``), ``keep_last`` reads the newest ``keep_last`` roots.

        Parameters
        ----------
        older_than
            Expire the snapshots committed more than this long ago.
        keep_last
            Keep only the newest ``keep_last`` snapshots (>= 1).
        dry_run
            Report what would be expired; change nothing.

        Returns
        -------
        ExpireReport
            ``expired`` lists the ids, ``record`` the expiry's root (``files``
            and ``bytes`` are empty: no block leaves the volume).

        Raises
        ------
        InvalidInputError
            No criterion, or one of the wrong type or value.
        VolumeNotFoundError
            The volume was dropped.
        FormatError, StorageError
            A root is damaged or the store failed.
        """
        return await _lifecycle.expire(
            self._log, self._commit_op, older_than=older_than, keep_last=keep_last, dry_run=dry_run
        )

    async def gc(self, *, grace: timedelta = timedelta(hours=1), dry_run: bool = False) -> GCReport:
        """Delete what no retained snapshot references, once older than ``grace``.

        Collects blocks staged but never committed (a killed download's
        leftovers, lost commit races), index segments and segment lists that
        only expired snapshots (or nothing) used, and roots of expired
        snapshots — each only when the store stamped it before the fence
        (``now - grace``; roots also only when older than ten minutes, so that
        a writer appending after the head it knows never finds that slot
        freed). It first commits the fence to the log (a root that
        is not a snapshot): a commit of blocks staged before the fence is then
        refused with :class:`~aiolode.StaleWriteError`, never committed with
        bytes that may be gone. ``grace`` must exceed the clock skew between
        writers, this process and the store (see ``docs/lifecycle.md``).

        Cost: the fence commit (one root put), one listing of the volume's
        prefix, one ``get`` per retained root (expire first to keep this
        small) and per segment list not cached, the newest snapshot's index
        (usually cached), then the deletes (16 concurrent).

        Parameters
        ----------
        grace
            Only objects older than this are collected.
        dry_run
            Commit and delete nothing; report exactly what a real run
            started now would delete.

        Returns
        -------
        GCReport

        Raises
        ------
        InvalidInputError
            ``grace`` is not a timedelta >= 0.
        VolumeNotFoundError
            The volume was dropped.
        FormatError, StorageError
            A root or segment is damaged, or the store failed.
        """
        return await _lifecycle.gc(
            self._log, self._index, self._commit_op, grace=grace, dry_run=dry_run
        )

    async def drop(
        self, *, grace: timedelta = timedelta(hours=1), dry_run: bool = False
    ) -> DropReport:
        """Drop the volume: commit a tombstone, then delete everything.

        After it, reads raise :class:`~aiolode.VolumeNotFoundError` (expired
        snapshot ids :class:`~aiolode.SnapshotExpiredError`), and a commit,
        from any process, is refused with :class:`~aiolode.VolumeNotFoundError`
        rather than resurrecting half a volume. Blocks, index and hint go at
        once; the log goes only once the tombstone is older than ``grace`` and
        than ten minutes (a writer holding a recent view of the log must find
        the tombstone, not a free slot) — call ``drop()`` again later to
        finish (resumable: an interrupted drop is finished the same way).
        Once the log is gone the name is free.

        Cost: the tombstone commit, one listing of the prefix, the deletes.

        Parameters
        ----------
        grace
            Keep the log at least this long after the drop.
        dry_run
            Commit and delete nothing; report what would go.

        Returns
        -------
        DropReport
            ``remaining`` is what a later call removes.

        Raises
        ------
        InvalidInputError
            ``grace`` is not a timedelta >= 0.
        StorageError, FormatError
            The store failed or a root is unreadable.
        """
        return await _lifecycle.drop(
            self._log, self._index, self._commit_op, grace=grace, dry_run=dry_run
        )

    # ------------------------------------------------------------------ reads
    async def verify(self, snapshot_id: str | None = None) -> VerifyReport:
        """Check this volume's integrity and report what is wrong; repair nothing.

        Every root is decoded and the chain checked for linearity; every index
        document and every block referenced by the snapshots up to
        ``snapshot_id`` (default: the latest) is checked for existence, size and
        digest; unreferenced keys under the volume's prefix are listed as
        orphans, never deleted. See :func:`aiolode.verify_volume` for the full
        list of checks and the cost.

        Returns
        -------
        VerifyReport
            Every problem found (``report.ok``: none), each naming the root,
            segment or block concerned.

        Raises
        ------
        SnapshotNotFoundError
            The volume never had snapshot ``snapshot_id``.
        StorageError
            Listing the volume's prefix failed.
        """
        from ..verify import verify_volume

        # Plain values: verify reads the stored format, not this object.
        return await verify_volume(
            self._store,
            self._id,
            total_length=self._total,
            checksum=self._checksum,
            snapshot_id=snapshot_id,
        )

    def _check_read_range(self, offset: object, length: object) -> tuple[int, int]:
        off, ln = validate_range(offset, length)
        if off + ln > self._total:
            raise InvalidRangeError(
                f"range [{off}, {off + ln}) is past the volume end {self._total}",
                volume_id=self._id,
            )
        return off, ln

    async def read_at(self, snapshot: str | VolumeSnapshot, offset: int, length: int) -> bytes:
        """Return exactly ``length`` bytes at ``offset`` as of ``snapshot``.

        Never zero-filled, never short: a range not fully committed raises.
        Blocks are found by binary search in each of the snapshot's O(log B)
        segments; a read spanning many blocks fetches them concurrently (at most
        ``concurrency`` at once). With checksums on, each touched block is
        fetched whole and verified (a digest covers the whole block); without,
        only the needed byte range of each block is fetched and its length checked.

        Cost: one get or range get per touched block (after the snapshot's index
        is loaded once per Volume object); memory: ``length`` plus, with
        checksums, the touched blocks.

        Raises
        ------
        InvalidRangeError
            Negative, or past ``N``.
        InvalidInputError
            ``snapshot`` is not a str or VolumeSnapshot of this volume.
        SnapshotNotFoundError
            No such snapshot.
        RangeMissingError
            Part of the range is not committed (``.missing`` lists the gaps).
        ChecksumMismatchError, CorruptDataError
            A block's bytes are not what its index entry recorded.
        FormatError
            The snapshot's index is damaged.
        StorageError
            The store failed.
        """
        off, ln = self._check_read_range(offset, length)
        state = await self._state(snapshot)
        if ln == 0:
            return b""
        await self._index.prepare_search(state)
        pieces = self._index.pieces(state, off, ln)
        return await self._reads.pieces(pieces, off, ln, state.snapshot.id)

    @asynccontextmanager
    async def open_reader(
        self,
        snapshot: str | VolumeSnapshot | None = None,
        *,
        page_size: int = 64 * 1024,
        cache_pages: int = 64,
        read_ahead: int = 0,
    ) -> AsyncIterator[VolumeReader]:
        """Open a random-access reader of one snapshot for many small reads.

        The reader keeps an LRU cache of ``cache_pages`` pages of ``page_size``
        bytes (whole blocks when checksums are on) and can fetch ``read_ahead``
        extra pages of a block past each miss. Its :meth:`VolumeReader.statistics`
        show what reads cost.

        Cost: :meth:`latest` or :meth:`snapshot` once; memory at most
        ``cache_pages * page_size`` (or that many blocks).

        Raises
        ------
        InvalidInputError
            A parameter is out of range.
        NoSnapshotsError
            ``snapshot`` is ``None`` and nothing is committed.
        SnapshotNotFoundError
            No such snapshot.
        """
        check_int("page_size", page_size)
        check_int("cache_pages", cache_pages)
        check_int("read_ahead", read_ahead, minimum=0)
        target = await self.latest() if snapshot is None else snapshot
        state = await self._state(target)
        await self._index.prepare_search(state)
        yield VolumeReader(
            self._index,
            self._reads,
            state,
            check_range=self._check_read_range,
            page_size=page_size,
            cache_pages=cache_pages,
            read_ahead=read_ahead,
        )
