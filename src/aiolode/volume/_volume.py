"""Volume: a sparse byte space ``[0, N)`` filled by concurrently staged blocks.

Format and cost model: ``docs/volume.md``. In short:

- blocks are immutable objects at ``volumes/<id>/blocks/<uuid>``;
- a commit is one create-only put of a small root at
  ``volumes/<id>/_log/<sequence:020d>.json`` (the sequence serialises commits),
  preceded by one small index segment and followed by a ``_latest`` hint;
- a root lists O(log B) "hot" segments and points at an immutable list of
  "frozen" segments: any root alone says exactly which ranges exist, and no
  commit rewrites the history's block list.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, final

import anyio
import anyio.to_thread
import attrs

from .._concurrency import bounded_map
from .._keys import validate_key
from .._retry import Retry
from ..checksum import OFFLOAD_THRESHOLD, SHA256, Checksum, check_checksum_arg, compute_checksum
from ..checksum import verify_checksum as _verify
from ..errors import (
    AiolodeError,
    FormatError,
    InvalidInputError,
    InvalidRangeError,
    ManifestFormatError,
    NoSnapshotsError,
    ObjectExistsError,
    ObjectNotFoundError,
    OverlappingBlocksError,
    RangeMissingError,
    SnapshotConflictError,
    SnapshotNotFoundError,
    TransientStorageError,
)
from ..manifest._converter import decode, encode
from ..manifest._volume import SegmentRef, VolumeRoot, VolumeSegment, VolumeSegmentList
from ..store._base import is_bytes_like
from ._blocks import (
    BlockRef,
    Piece,
    Run,
    coalesce,
    complement,
    find_overlaps,
    lookup,
    overlaps_among,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

    from ..store import Store
    from ..verify import VerifyReport
    from ._reader import VolumeReader

__all__ = ["Volume", "VolumeSnapshot"]

T = TypeVar("T")
Range = tuple[int, int]

#: A merged index segment with at least this many blocks is frozen: never
#: rewritten again, listed in the shared segment list instead of the root.
#: Bounds the largest synchronous merge a commit can do (see docs/volume.md).
FREEZE_AT = 1 << 15

#: Loaded snapshots kept per Volume object (their segments are shared).
_STATE_CACHE = 8

#: Segments with more entries than this are encoded/decoded in a worker thread.
_OFFLOAD_ENTRIES = 4096
# Index documents (segments, segment lists) are digested whatever the volume's
# block checksum setting: they are few, small, and their damage would spread.
_SEGMENT_DIGEST = SHA256()


def _seq_id(seq: int) -> str:
    return f"{seq:020d}"


def _parse_id(snapshot_id: object) -> int | None:
    if isinstance(snapshot_id, str) and len(snapshot_id) == 20 and snapshot_id.isdigit():
        seq = int(snapshot_id)
        return seq if seq > 0 else None
    return None


@final
@attrs.frozen(eq=False)
class VolumeSnapshot:
    """One immutable commit of a volume: exactly which ranges exist at that point.

    Attributes
    ----------
    id
        Snapshot id (the zero-padded commit sequence number, sortable).
    parent_id
        The previous snapshot's id, ``None`` for the first.
    created_at
        Commit time (UTC).
    metadata
        The caller's metadata (``{}`` if none was given).
    volume_id, total_length
        The volume's identity and size ``N``.
    committed_bytes
        Bytes covered by committed blocks.
    block_count
        Number of committed blocks.
    """

    id: str
    parent_id: str | None
    created_at: datetime
    metadata: dict[str, Any]
    volume_id: str
    total_length: int
    committed_bytes: int
    block_count: int
    _runs: tuple[Run, ...] = attrs.field(repr=False, alias="runs")

    @property
    def is_complete(self) -> bool:
        """Whether every byte of ``[0, N)`` is committed."""
        return self.committed_bytes == self.total_length

    def committed_ranges(self) -> list[Range]:
        """Committed ``(offset, length)`` ranges, sorted, adjacent blocks merged.

        Cost: no I/O; O(B log k) CPU over the snapshot's B blocks in k segments.
        """
        return coalesce(self._runs)

    def missing_ranges(self) -> list[Range]:
        """Ranges of ``[0, N)`` not committed, sorted: what a resume still has to stage.

        Cost: no I/O; O(B log k) CPU.
        """
        return complement(coalesce(self._runs), self.total_length)

    def blocks(self) -> list[BlockRef]:
        """Every committed block, sorted by offset. Cost: no I/O; O(B log k)."""
        if not self._runs:
            return []
        merged = Run.merge(self._runs, self._runs[0].key_prefix)
        return [merged.block(i) for i in range(merged.count)]


@attrs.frozen(eq=False)
class _State:
    """A loaded snapshot: its root, segment refs and decoded runs."""

    root: VolumeRoot
    frozen_refs: tuple[SegmentRef, ...]
    frozen_runs: tuple[Run, ...]
    hot_runs: tuple[Run, ...]
    snapshot: VolumeSnapshot

    @property
    def seq(self) -> int:
        return self.root.sequence

    @property
    def runs(self) -> tuple[Run, ...]:
        return self.frozen_runs + self.hot_runs


def _plan_merge(counts: list[int], new: int) -> int:
    """How many trailing hot segments to merge with ``new`` entries (binary counter).

    Sizes stay strictly decreasing, so there are at most log2(FREEZE_AT) hot
    segments and each entry is rewritten at most that many times (amortised).
    """
    k = 0
    size = new
    while k < len(counts) and counts[-1 - k] <= size:
        size += counts[-1 - k]
        k += 1
    return k


def _check_metadata(metadata: object) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a mapping, not {type(metadata).__name__}")
    meta = dict(metadata)

    def check_keys(value: object, path: str) -> None:
        # json.dumps would silently turn 1 into "1": readers would see other keys.
        if isinstance(value, Mapping):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise InvalidInputError(f"metadata key {k!r} at {path or '$'} is not a str")
                check_keys(v, f"{path}.{k}")
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                check_keys(v, f"{path}[{i}]")

    check_keys(meta, "")
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from exc
    return meta


@final
class Volume:
    """A sparse, resumable byte space ``[0, total_length)`` on a store.

    Blocks are staged concurrently and out of order with :meth:`stage_write_at`,
    invisible until :meth:`commit` lists them. Any number of tasks or processes
    may stage and commit disjoint blocks without coordination.

    Parameters
    ----------
    id
        Volume id: one key segment (no ``/``); data lives under ``volumes/<id>/``.
    store
        Where blocks and the index live.
    total_length
        ``N``, the size of the address space (>= 0). Reopening a volume with
        another length is refused on first read.
    checksum
        Digest recorded per staged block and verified on every read; ``None``
        records none.
    retry
        Retry policy for lost commit races and transient storage errors.
    concurrency
        Maximum block reads in flight for one :meth:`read_at`.

    Raises
    ------
    InvalidInputError
        A parameter has the wrong type or value (``InvalidKeyError`` for the id).

    Notes
    -----
    Memory: a Volume object caches the index segments of the snapshots it has
    loaded (shared between snapshots; O(B) for B committed blocks, about 100
    bytes per block) and up to 8 loaded snapshots.
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
    ) -> None:
        from ..store import Store

        if not isinstance(id, str) or not id or "/" in id:
            from ..errors import InvalidKeyError

            raise InvalidKeyError(f"volume id must be a non-empty str without '/', not {id!r}")
        validate_key(f"volumes/{id}/_log/{_seq_id(1)}.json")
        if not isinstance(store, Store):
            raise InvalidInputError(f"store must be an aiolode Store, not {type(store).__name__}")
        if not isinstance(total_length, int) or isinstance(total_length, bool) or total_length < 0:
            raise InvalidInputError(f"total_length must be an int >= 0, not {total_length!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise InvalidInputError(f"retry must be an aiolode.Retry, not {retry!r}")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise InvalidInputError(f"concurrency must be an int >= 1, not {concurrency!r}")
        self._id = id
        self._store = store
        self._total = total_length
        self._checksum = check_checksum_arg(checksum)
        self._retry = retry or Retry()
        self._concurrency = concurrency
        self._prefix = f"volumes/{id}/"
        self._blocks_prefix = f"{self._prefix}blocks/"
        self._hint_key = f"{self._prefix}_latest"
        self._head: _State | None = None
        self._states: OrderedDict[int, _State] = OrderedDict()
        self._runs: dict[str, Run] = {}
        self._lists: dict[str, tuple[SegmentRef, ...]] = {}
        self._commit_lock: anyio.Lock | None = None
        # frozen-list key -> all its frozen segments merged into one run, so a
        # lookup is one binary search there plus one per hot segment.
        self._frozen_merged: OrderedDict[str, Run] = OrderedDict()

    def __repr__(self) -> str:
        return f"Volume({self._id!r}, {self._store!r}, total_length={self._total})"

    @property
    def id(self) -> str:
        """The volume id."""
        return self._id

    @property
    def store(self) -> Store:
        """The store holding the volume."""
        return self._store

    @property
    def total_length(self) -> int:
        """``N``: the size of the address space."""
        return self._total

    @property
    def checksum(self) -> Checksum | None:
        """The digest recorded for staged blocks, if any."""
        return self._checksum

    # ------------------------------------------------------------------ keys
    def _root_key(self, seq: int) -> str:
        return f"{self._prefix}_log/{_seq_id(seq)}.json"

    def _new_index_key(self, kind: str) -> str:
        return f"{self._prefix}index/{kind}-{uuid.uuid4().hex}.json"

    # ------------------------------------------------------------- store calls
    async def _retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn()
            except TransientStorageError:
                if attempt >= self._retry.attempts:
                    raise
                await anyio.sleep(self._retry.delay(attempt))

    async def _put_unique(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Create-only put of a key only this caller knows (uuid), retrying transients.

        An ``ObjectExistsError`` after a failed attempt means that attempt was
        applied but its acknowledgement lost: the object is ours.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._store.put(key, data)
                return
            except ObjectExistsError:
                if attempt > 1:
                    return
                raise
            except TransientStorageError:
                if attempt >= self._retry.attempts:
                    raise
                await anyio.sleep(self._retry.delay(attempt))

    async def _get(self, key: str) -> bytes:
        return await self._retrying(lambda: self._store.get(key))

    async def _exists(self, seq: int) -> bool:
        key = self._root_key(seq)
        return await self._retrying(lambda: self._store.exists(key))

    async def _delete_quietly(self, keys: Iterable[str]) -> None:
        # Best effort, shielded so a cancelled commit still cleans up; bounded so
        # a dead store cannot hang the caller's cancellation.
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            for key in keys:
                try:
                    await self._store.delete(key)
                except Exception:
                    continue  # an orphan is harmless: wasted space, never visible

    # ---------------------------------------------------------------- loading
    async def _read_root(self, seq: int) -> VolumeRoot:
        key = self._root_key(seq)
        try:
            data = await self._get(key)
        except ObjectNotFoundError as exc:
            raise SnapshotNotFoundError(
                f"volume {self._id!r} has no snapshot {_seq_id(seq)}",
                volume_id=self._id,
                snapshot_id=_seq_id(seq),
                key=key,
            ) from exc
        root = decode(data, VolumeRoot, key=key)
        if root.volume_id != self._id or root.sequence != seq:
            raise ManifestFormatError(
                f"root {key!r} belongs to volume {root.volume_id!r} sequence {root.sequence}",
                key=key,
                volume_id=self._id,
            )
        # The ids are implied by the key: a root whose ids disagree was damaged (in
        # storage or in transit) and must never be built upon, or the next commit
        # would carry the damage into its parent_id and break the chain for good.
        expected_parent = _seq_id(seq - 1) if seq > 1 else None
        if root.snapshot_id != _seq_id(seq) or root.parent_id != expected_parent:
            raise ManifestFormatError(
                f"root {key!r} says snapshot {root.snapshot_id!r} with parent "
                f"{root.parent_id!r}; its key implies {_seq_id(seq)!r} and {expected_parent!r}",
                key=key,
                volume_id=self._id,
                field="snapshot_id" if root.snapshot_id != _seq_id(seq) else "parent_id",
            )
        if root.total_length != self._total:
            raise InvalidInputError(
                f"volume {self._id!r} has total_length {root.total_length}, "
                f"this Volume object was opened with {self._total}",
                volume_id=self._id,
            )
        mine = self._checksum.name if self._checksum else None
        if root.checksum != mine:
            # Mixing blocks with and without digests would silently drop verification.
            raise InvalidInputError(
                f"volume {self._id!r} records checksum {root.checksum!r}, "
                f"this Volume object was opened with {mine!r}",
                volume_id=self._id,
            )
        return root

    async def _load_run(self, ref: SegmentRef) -> Run:
        cached = self._runs.get(ref.key)
        if cached is not None:
            return cached
        data = await self._get(ref.key)
        # Verified before parsing: a damaged segment must never be merged forward.
        await _verify(ref.digest, data, key=ref.key)
        total = self._total
        prefix = self._blocks_prefix
        key = ref.key

        vid = self._id
        with_ck = self._checksum is not None

        def parse() -> tuple[Run, str | None]:
            seg = decode(data, VolumeSegment, key=key)
            r = Run(seg.offsets, seg.lengths, seg.names, seg.checksums, prefix)
            if seg.volume_id != vid:
                return r, f"belongs to volume {seg.volume_id!r}"
            if (seg.checksums is not None) != with_ck:
                return r, "checksum column does not match the volume's checksum setting"
            if any("/" in n or not n for n in seg.names):
                return r, "has a malformed block name"
            return r, r.validate(total)

        if ref.count > _OFFLOAD_ENTRIES:
            run, problem = await anyio.to_thread.run_sync(parse)
        else:
            run, problem = parse()
        if problem is None and run.count != ref.count:
            problem = f"has {run.count} blocks, its reference says {ref.count}"
        if problem is not None:
            raise ManifestFormatError(f"index segment {key!r}: {problem}", key=key)
        self._runs[ref.key] = run
        return run

    async def _load_list(self, key: str, digest: str | None = None) -> tuple[SegmentRef, ...]:
        refs = self._lists.get(key)
        if refs is None:
            data = await self._get(key)
            await _verify(digest, data, key=key)
            doc = decode(data, VolumeSegmentList, key=key)
            refs = self._lists[key] = doc.segments
        return refs

    def _make_state(
        self,
        root: VolumeRoot,
        frozen_refs: tuple[SegmentRef, ...],
        frozen_runs: tuple[Run, ...],
        hot_runs: tuple[Run, ...],
    ) -> _State:
        snap = VolumeSnapshot(
            id=root.snapshot_id,
            parent_id=root.parent_id,
            created_at=root.created_at,
            metadata=dict(root.metadata),
            volume_id=self._id,
            total_length=self._total,
            committed_bytes=root.committed_bytes,
            block_count=root.block_count,
            runs=frozen_runs + hot_runs,
        )
        return _State(root, frozen_refs, frozen_runs, hot_runs, snap)

    def _remember(self, state: _State) -> None:
        self._states[state.seq] = state
        self._states.move_to_end(state.seq)
        while len(self._states) > _STATE_CACHE:
            self._states.popitem(last=False)
        if self._head is None or state.seq > self._head.seq:
            self._head = state
        # Keep only segments some remembered snapshot uses: merged-away hot
        # segments would otherwise accumulate for the life of the object.
        live: set[int] = set()
        for st in (*self._states.values(), self._head):
            live.update(id(r) for r in st.runs)
        self._runs = {k: r for k, r in self._runs.items() if id(r) in live}

    async def _load_state(self, seq: int) -> _State:
        state = self._states.get(seq)
        if state is not None:
            self._states.move_to_end(seq)
            return state
        root = await self._read_root(seq)
        frozen_refs = (
            await self._load_list(root.frozen_key, root.frozen_digest) if root.frozen_key else ()
        )
        if len(frozen_refs) != root.frozen_count:
            raise ManifestFormatError(
                f"root {self._root_key(seq)!r} expects {root.frozen_count} frozen segments, "
                f"its list has {len(frozen_refs)}",
                key=self._root_key(seq),
            )
        runs = await bounded_map(
            self._load_run, [*frozen_refs, *root.segments], limit=self._concurrency
        )
        nf = len(frozen_refs)
        state = self._make_state(root, frozen_refs, tuple(runs[:nf]), tuple(runs[nf:]))
        blocks = sum(r.count for r in runs)
        nbytes = sum(r.nbytes for r in runs)
        if blocks != root.block_count or nbytes != root.committed_bytes:
            raise ManifestFormatError(
                f"root {self._root_key(seq)!r} totals do not match its segments",
                key=self._root_key(seq),
            )
        self._remember(state)
        return state

    async def _read_hint(self) -> int:
        try:
            raw = await self._get(self._hint_key)
        except ObjectNotFoundError:
            return 0
        try:
            return max(0, int(raw.decode("ascii")))
        except (UnicodeDecodeError, ValueError):
            return 0  # a hint is never trusted; a bad one just costs a search

    async def _latest_seq(self) -> int:
        """Newest committed sequence (0 if none): hint, then gallop and bisect.

        Roots are created in sequence order and never deleted, so existence is
        monotone and a search is sound; the hint only makes it short.
        """
        lo = max(await self._read_hint(), self._head.seq if self._head else 0)
        known = lo in self._states or (self._head is not None and self._head.seq == lo)
        if lo > 0 and not known and not await self._exists(lo):
            lo = 0  # hint points past the truth (should not happen): search from scratch
        step = 1
        while await self._exists(lo + step):
            lo += step
            step *= 2
        hi = lo + step  # known missing
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await self._exists(mid):
                lo = mid
            else:
                hi = mid
        return lo

    async def _state_for(self, snapshot_id: str) -> _State:
        seq = _parse_id(snapshot_id)
        if seq is None:
            raise SnapshotNotFoundError(
                f"{snapshot_id!r} is not a snapshot id of volume {self._id!r}",
                volume_id=self._id,
                snapshot_id=str(snapshot_id),
            )
        return await self._load_state(seq)

    # ------------------------------------------------------------- snapshots
    async def latest(self) -> VolumeSnapshot:
        """Return the newest snapshot.

        Cost: warm, 2 store calls (read the hint, probe the next sequence); a
        new snapshot adds its root and its new segments; a missing hint adds
        O(log S) probes for S snapshots. Never lists.

        Raises
        ------
        NoSnapshotsError
            Nothing was ever committed.
        FormatError
            The root or a segment is corrupt.
        StorageError
            The store failed.
        """
        seq = await self._latest_seq()
        if seq == 0:
            raise NoSnapshotsError(f"volume {self._id!r} has no snapshots", volume_id=self._id)
        return (await self._load_state(seq)).snapshot

    async def snapshot(self, snapshot_id: str) -> VolumeSnapshot:
        """Return the snapshot ``snapshot_id``.

        Cost: one get for the root plus its segments not yet cached.

        Raises
        ------
        SnapshotNotFoundError
            No such snapshot.
        FormatError
            The root or a segment is corrupt.
        StorageError
            The store failed.
        """
        return (await self._state_for(snapshot_id)).snapshot

    async def snapshots(self) -> AsyncGenerator[VolumeSnapshot, None]:
        """Iterate over every snapshot, oldest first (cold path; no listing).

        Cost: one get per snapshot plus each segment once (segments are shared).

        Raises
        ------
        FormatError
            A root or segment is corrupt.
        StorageError
            The store failed.
        """
        seq = 1
        while True:
            try:
                state = await self._load_state(seq)
            except SnapshotNotFoundError:
                return
            yield state.snapshot
            seq += 1

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
            Pass it (with others) to :meth:`commit`.

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
            raise InvalidRangeError(f"offset must be an int, not {type(offset).__name__}")
        if offset < 0 or offset >= self._total:
            raise InvalidRangeError(
                f"block offset {offset} is outside [0, {self._total})", volume_id=self._id
            )
        # 128 random bits, as in a uuid4, without building a UUID object: staging
        # is the hot path, and on a fast store every microsecond shows.
        key = f"{self._blocks_prefix}{os.urandom(16).hex()}"
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
            await self._put_unique(key, buf)
            return BlockRef(offset, n, key, ck)
        if isinstance(data, str) or not isinstance(data, AsyncIterable):
            raise InvalidInputError(
                f"data must be bytes-like or an async iterable of bytes, not {type(data).__name__}",
                volume_id=self._id,
            )
        return await self._stage_stream(offset, data, key)

    async def _stage_stream(self, offset: int, data: AsyncIterable[bytes], key: str) -> BlockRef:
        hasher = self._checksum.hasher() if self._checksum else None
        room = self._total - offset
        count = 0

        async def checked() -> AsyncGenerator[bytes, None]:
            nonlocal count
            raw: AsyncIterable[object] = data
            async for chunk in raw:
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise InvalidInputError(
                        f"streamed data must yield bytes-like chunks, got {type(chunk).__name__}"
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
        return BlockRef(offset, count, key, ck)

    # ----------------------------------------------------------------- commit
    def _check_blocks(self, blocks: object) -> list[BlockRef]:
        if isinstance(blocks, BlockRef) or not isinstance(blocks, Iterable):
            raise InvalidInputError("blocks must be an iterable of BlockRef", volume_id=self._id)
        out = list(blocks)
        if not out:
            raise InvalidInputError("a commit needs at least one block", volume_id=self._id)
        for b in out:
            if not isinstance(b, BlockRef):
                raise InvalidInputError(
                    f"blocks must be BlockRef objects, got {type(b).__name__}", volume_id=self._id
                )
            name = b.key[len(self._blocks_prefix) :]
            if not b.key.startswith(self._blocks_prefix) or not name or "/" in name:
                raise InvalidInputError(
                    f"block {b.key!r} was not staged in volume {self._id!r}",
                    key=b.key,
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

        Cost (warm, no race): 3 store calls — one small segment put, the root
        put, the hint put — plus, amortised, O(log B) segment entries rewritten
        by merges; a merge rewrites at most ~2 * FREEZE_AT entries. Root size is
        O(log B). CPU: O(n log n + n k log B) for n new blocks and k segments.
        The first commit through a fresh Volume object also loads the head
        snapshot's index (O(B) once).

        Parameters
        ----------
        blocks
            BlockRefs returned by :meth:`stage_write_at` (any Volume object on
            the same volume), disjoint from each other and from committed blocks.
        metadata
            JSON-serialisable mapping stored with the snapshot.

        Returns
        -------
        VolumeSnapshot
            The new snapshot (which includes blocks committed concurrently).

        Raises
        ------
        InvalidInputError
            Empty list, foreign blocks, checksum mismatch with the volume setting,
            bad metadata.
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
        meta = _check_metadata(metadata)
        if self._commit_lock is None:
            self._commit_lock = anyio.Lock()
        async with self._commit_lock:
            return await self._commit_locked(new, meta, uuid.uuid4().hex)

    async def _commit_locked(
        self, new: list[BlockRef], meta: dict[str, Any], token: str
    ) -> VolumeSnapshot:
        base = self._head
        if base is None:
            seq = await self._latest_seq()
            base = await self._load_state(seq) if seq else None
        new_run = Run.from_blocks(new, self._blocks_prefix, checksums=self._checksum is not None)
        attempt = 0
        while True:
            attempt += 1
            self._raise_overlaps(base, new)
            written: list[str] = []
            # "lost": provably not committed (segments may go); None: unknown.
            outcome: str | None = "lost"
            try:
                root, state = await self._write_index(base, new_run, meta, token, written)
                outcome = None  # from here on the root may land even if we see an error
                try:
                    with anyio.CancelScope(shield=True):
                        await self._put_root(root)
                    outcome = "committed"
                except ObjectExistsError:
                    mine = await self._read_root(root.sequence)
                    # Our token: an earlier attempt landed and its ack was lost.
                    outcome = "committed" if mine.commit_token == token else "lost"
                except BaseException:
                    outcome = await self._root_outcome(root.sequence, token)
                    raise
            finally:
                if outcome == "lost" and written:
                    await self._delete_quietly(written)
            committed = outcome == "committed"
            if committed:
                self._remember(state)
                # The commit landed: a cancellation arriving now must not hide that
                # from the caller, so the (bounded) hint write is shielded too.
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self._write_hint(root.sequence)
                return state.snapshot
            # Lost the race: catch up with every winner, then rebase.
            latest = await self._latest_seq()
            base = await self._load_state(latest)
            self._raise_overlaps(base, new)
            if attempt >= self._retry.attempts:
                raise SnapshotConflictError(
                    f"commit to volume {self._id!r} lost {attempt} races in a row",
                    conflicting=[base.snapshot.id],
                    volume_id=self._id,
                )
            await anyio.sleep(self._retry.delay(attempt))

    async def _root_outcome(self, seq: int, token: str) -> str | None:
        """After a failed root put: did it land anyway? (``None`` if we cannot tell).

        Deleting a segment that a landed root references would corrupt the
        snapshot, so cleanup happens only when the answer is a definite "lost".
        """
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                root = await self._read_root(seq)
            except SnapshotNotFoundError:
                return "lost"
            except Exception:
                return None
            return "committed" if root.commit_token == token else "lost"
        return None

    def _raise_overlaps(self, base: _State | None, new: list[BlockRef]) -> None:
        if base is None:
            return
        clash = find_overlaps(self._search_runs(base), new)
        if clash:
            raise OverlappingBlocksError(
                f"blocks overlap data committed by snapshot {base.snapshot.id}: {clash}",
                ranges=clash,
                volume_id=self._id,
                snapshot_id=base.snapshot.id,
            )

    async def _write_index(
        self,
        base: _State | None,
        new_run: Run,
        meta: dict[str, Any],
        token: str,
        written: list[str],
    ) -> tuple[VolumeRoot, _State]:
        """Write the new segment (and segment list, if one froze); build the root."""
        hot_refs = base.root.segments if base else ()
        hot_runs = base.hot_runs if base else ()
        frozen_refs = base.frozen_refs if base else ()
        frozen_runs = base.frozen_runs if base else ()
        frozen_key = base.root.frozen_key if base else None
        frozen_digest = base.root.frozen_digest if base else None
        k = _plan_merge([r.count for r in hot_refs], new_run.count)
        keep = len(hot_refs) - k
        parts = [*hot_runs[keep:], new_run]
        merged_count = sum(r.count for r in parts)
        prefix = self._blocks_prefix
        vid = self._id

        def build() -> tuple[Run, bytes]:
            run = Run.merge(parts, prefix) if len(parts) > 1 else new_run
            seg = VolumeSegment(
                vid, run.offsets.tolist(), run.lengths.tolist(), run.names, run.checksums
            )
            return run, encode(seg)

        if merged_count > _OFFLOAD_ENTRIES:
            merged, payload = await anyio.to_thread.run_sync(build)
        else:
            merged, payload = build()
        seg_key = self._new_index_key("seg")
        written.append(seg_key)
        await self._put_unique(seg_key, payload)
        ref = SegmentRef(
            seg_key, merged.count, merged.nbytes, await compute_checksum(_SEGMENT_DIGEST, payload)
        )
        new_hot_refs = hot_refs[:keep]
        new_hot_runs = hot_runs[:keep]
        if merged.count >= FREEZE_AT:
            frozen_refs = (*frozen_refs, ref)
            frozen_runs = (*frozen_runs, merged)
            frozen_key = self._new_index_key("list")
            written.append(frozen_key)
            list_payload = encode(VolumeSegmentList(vid, frozen_refs))
            await self._put_unique(frozen_key, list_payload)
            frozen_digest = await compute_checksum(_SEGMENT_DIGEST, list_payload)
            self._lists[frozen_key] = frozen_refs
        else:
            new_hot_refs = (*new_hot_refs, ref)
            new_hot_runs = (*new_hot_runs, merged)
        self._runs[seg_key] = merged
        seq = (base.seq if base else 0) + 1
        root = VolumeRoot(
            volume_id=vid,
            snapshot_id=_seq_id(seq),
            sequence=seq,
            parent_id=base.snapshot.id if base else None,
            created_at=datetime.now(UTC),
            total_length=self._total,
            metadata=meta,
            commit_token=token,
            checksum=self._checksum.name if self._checksum else None,
            block_count=(base.root.block_count if base else 0) + new_run.count,
            committed_bytes=(base.root.committed_bytes if base else 0) + new_run.nbytes,
            frozen_key=frozen_key,
            frozen_count=len(frozen_refs),
            segments=new_hot_refs,
            frozen_digest=frozen_digest,
        )
        return root, self._make_state(root, frozen_refs, frozen_runs, new_hot_runs)

    async def _put_root(self, root: VolumeRoot) -> None:
        key = self._root_key(root.sequence)
        payload = encode(root)
        await self._retrying(lambda: self._store.put(key, payload))

    async def _write_hint(self, seq: int) -> None:
        # The hint is an optimisation; latest() searches when it is stale.
        with contextlib.suppress(AiolodeError):
            await self._store.put(self._hint_key, str(seq).encode("ascii"), mode="overwrite")

    # ------------------------------------------------------------------ reads
    async def verify(self, snapshot_id: str | None = None) -> VerifyReport:
        """Check this volume's integrity and report what is wrong; repair nothing.

        Every root is decoded and the chain checked for linearity; every index
        document and every block referenced by the snapshots up to
        ``snapshot_id`` (default: the latest) is checked for existence, size and
        digest; unreferenced keys under the volume's prefix are listed as
        orphans, never deleted. See :func:`aiolode.verify_volume` for the full
        list of checks and the cost (one listing, one get per root and index
        document, one get or head per distinct block; bounded concurrency).

        Returns
        -------
        VerifyReport
            ``.ok`` is true when no problem was found.

        Raises
        ------
        SnapshotNotFoundError
            ``snapshot_id`` does not exist.
        StorageError
            The store failed while listing.
        """
        from ..verify import verify_volume

        return await verify_volume(self, snapshot_id)

    async def read_at(self, snapshot_id: str, offset: int, length: int) -> bytes:
        """Return exactly ``length`` bytes at ``offset`` as of ``snapshot_id``.

        Never zero-filled, never short: a range not fully committed raises.
        Blocks are found by binary search in each of the snapshot's O(log B)
        segments; a read spanning many blocks fetches them concurrently (at most
        ``concurrency`` at once). With checksums on, each touched block is
        fetched whole and verified (a digest covers the whole block); without,
        only the needed byte range of each block is fetched.

        Cost: one get or range get per touched block (after the snapshot's index
        is loaded once per Volume object); memory: ``length`` plus, with
        checksums, the touched blocks.

        Raises
        ------
        InvalidRangeError
            Negative, or past ``N``.
        SnapshotNotFoundError
            No such snapshot.
        RangeMissingError
            Part of the range is not committed (``.missing`` lists the gaps).
        ChecksumMismatchError
            A block's bytes do not match their digest.
        FormatError
            A block object is shorter than recorded.
        StorageError
            The store failed.
        """
        self._check_read_range(offset, length)
        state = await self._state_for(snapshot_id)
        await self._prepare_search(state)
        return await self._read_runs(state, offset, length)

    def _check_read_range(self, offset: object, length: object) -> None:
        from .._keys import validate_range

        off, ln = validate_range(offset, length)
        if off + ln > self._total:
            raise InvalidRangeError(
                f"range [{off}, {off + ln}) is past the volume end {self._total}",
                volume_id=self._id,
            )

    def _search_runs(self, state: _State) -> tuple[Run, ...]:
        key = state.root.frozen_key
        merged = self._frozen_merged.get(key) if key else None
        if merged is None:
            return state.runs
        return (merged, *state.hot_runs)

    async def _prepare_search(self, state: _State) -> None:
        """Merge the snapshot's frozen segments once (shared by later snapshots).

        Frozen segments only change when one more freezes (every >= FREEZE_AT
        blocks), so the O(B) merge, done in a worker thread, is amortised over
        at least that many committed blocks.
        """
        key = state.root.frozen_key
        if key is None or len(state.frozen_runs) < 2 or key in self._frozen_merged:
            return
        runs = state.frozen_runs
        prefix = self._blocks_prefix
        merged = await anyio.to_thread.run_sync(lambda: Run.merge(runs, prefix))
        self._frozen_merged[key] = merged
        while len(self._frozen_merged) > 2:
            self._frozen_merged.popitem(last=False)

    def _pieces(self, state: _State, offset: int, length: int) -> list[Piece]:
        pieces, missing = lookup(self._search_runs(state), offset, length)
        if missing:
            raise RangeMissingError(
                f"volume {self._id!r} snapshot {state.snapshot.id} is missing {missing}",
                missing=missing,
                volume_id=self._id,
                snapshot_id=state.snapshot.id,
            )
        return pieces

    async def _read_runs(self, state: _State, offset: int, length: int) -> bytes:
        if length == 0:
            return b""
        pieces = self._pieces(state, offset, length)
        if len(pieces) == 1:
            return await self._read_piece(pieces[0])
        out = bytearray(length)

        async def fetch(p: Piece) -> None:
            out[p.lo - offset : p.hi - offset] = await self._read_piece(p)

        await bounded_map(fetch, pieces, limit=self._concurrency)
        return bytes(out)

    async def _read_block(self, p: Piece) -> bytes:
        """The whole block, verified against its checksum."""
        data = await self._get(p.key)
        if len(data) != p.block_length:
            raise FormatError(
                f"block {p.key!r} has {len(data)} bytes, its index says {p.block_length}",
                key=p.key,
                volume_id=self._id,
            )
        await _verify(p.checksum, data, key=p.key)
        return data

    async def _read_span(self, p: Piece, start: int, length: int) -> bytes:
        """Bytes ``[start, start+length)`` of an unchecksummed block (block coordinates)."""
        key = p.key
        data = await self._retrying(lambda: self._store.get_range(key, start, length))
        if len(data) != length:
            raise FormatError(
                f"block {key!r} is shorter than its recorded {p.block_length} bytes",
                key=key,
                volume_id=self._id,
            )
        return data

    async def _read_piece(self, p: Piece) -> bytes:
        if p.checksum:
            whole = await self._read_block(p)
            return whole[p.lo - p.block_offset : p.hi - p.block_offset]
        return await self._read_span(p, p.lo - p.block_offset, p.hi - p.lo)

    @asynccontextmanager
    async def open_reader(
        self,
        snapshot_id: str | None = None,
        *,
        page_size: int = 64 * 1024,
        cache_pages: int = 64,
        read_ahead: int = 0,
    ) -> AsyncIterator[VolumeReader]:
        """Open a random-access reader of one snapshot for many small reads.

        The reader keeps an LRU cache of ``cache_pages`` pages of ``page_size``
        bytes (whole blocks when checksums are on) and can fetch ``read_ahead``
        extra pages of a block past each miss. Its counters (``range_calls``,
        ``bytes_fetched``, ``cache_hits``) show what reads cost.

        Cost: :meth:`latest` or :meth:`snapshot` once; memory at most
        ``cache_pages * page_size`` (or that many blocks).

        Raises
        ------
        InvalidInputError
            A parameter is out of range.
        NoSnapshotsError
            ``snapshot_id`` is ``None`` and nothing is committed.
        SnapshotNotFoundError
            No such snapshot.
        """
        from ._reader import VolumeReader

        for name, value, low in (
            ("page_size", page_size, 1),
            ("cache_pages", cache_pages, 1),
            ("read_ahead", read_ahead, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInputError(f"{name} must be an int >= {low}, not {value!r}")
        if snapshot_id is None:
            state = await self._state_for((await self.latest()).id)  # cached: no I/O
        else:
            state = await self._state_for(snapshot_id)
        await self._prepare_search(state)
        yield VolumeReader(
            self, state, page_size=page_size, cache_pages=cache_pages, read_ahead=read_ahead
        )
