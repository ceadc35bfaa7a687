"""The volume index: immutable segments of block entries, loaded, cached, merged, frozen.

A root lists O(log B) "hot" segments and points at an immutable list of
"frozen" segments (see ``docs/spec/volume-v1.md``): any root alone says exactly
which ranges exist, and no commit rewrites the history's block list. Hot
segments merge like a binary counter; a merged segment of at least
:data:`FREEZE_AT` entries freezes and is never rewritten again.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from .._concurrency import bounded_map
from .._history import put_unique, retrying
from ..checksum import SHA256, compute_checksum, verify_object
from ..errors import (
    CorruptDataError,
    ManifestFormatError,
    OverlappingBlocksError,
    RangeMissingError,
)
from ..manifest._converter import decode, encode
from ..manifest._ids import volume_snapshot_id
from ..manifest._volume import SegmentRef, VolumeRoot, VolumeSegment, VolumeSegmentList
from ._blocks import BlockRef, Piece, Run, find_overlaps, lookup
from ._snapshot import State, VolumeSnapshot

if TYPE_CHECKING:
    from datetime import datetime

    from .._retry import Retry
    from ..checksum import Checksum
    from ..manifest._metadata import Metadata
    from ..store import Store

__all__ = ["FREEZE_AT", "BlockReads", "VolumeIndex", "plan_merge"]

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


def plan_merge(counts: list[int], new: int) -> int:
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


class VolumeIndex:
    """Loads, caches and writes one volume's index (one per Volume object).

    Memory: the segments of the snapshots it has loaded (shared between
    snapshots; O(B) for B committed blocks, about 100 bytes per block) and up to
    8 loaded snapshots.
    """

    def __init__(
        self,
        store: Store,
        volume_id: str,
        total_length: int,
        checksum: Checksum | None,
        retry: Retry,
        concurrency: int,
    ) -> None:
        self.store = store
        self.volume_id = volume_id
        self.total = total_length
        self.checksum = checksum
        self.retry = retry
        self.concurrency = concurrency
        self.prefix = f"volumes/{volume_id}/"
        self.blocks_prefix = f"{self.prefix}blocks/"
        self._states: OrderedDict[int, State] = OrderedDict()
        self._head: State | None = None
        self._runs: dict[str, Run] = {}
        self._lists: dict[str, tuple[SegmentRef, ...]] = {}
        # frozen-list key -> all its frozen segments merged into one run, so a
        # lookup is one binary search there plus one per hot segment.
        self._frozen_merged: OrderedDict[str, Run] = OrderedDict()

    def new_key(self, kind: str) -> str:
        """A fresh index document key."""
        return f"{self.prefix}index/{kind}-{uuid.uuid4().hex}.json"

    async def _get(self, key: str) -> bytes:
        return await retrying(self.retry, lambda: self.store.get(key))

    # ---------------------------------------------------------------- loading
    async def _load_run(self, ref: SegmentRef) -> Run:
        cached = self._runs.get(ref.key)
        if cached is not None:
            return cached
        data = await self._get(ref.key)
        # Verified before parsing: a damaged segment must never be merged forward.
        await verify_object(
            data, key=ref.key, size=None, checksum=ref.digest, volume_id=self.volume_id
        )
        total = self.total
        prefix = self.blocks_prefix
        key = ref.key
        vid = self.volume_id
        with_ck = self.checksum is not None

        def parse() -> tuple[Run, str | None]:
            seg = decode(data, VolumeSegment, key=key)
            r = Run(seg.offsets, seg.lengths, seg.names, seg.checksums, prefix)
            if seg.volume_id != vid:
                return r, f"belongs to volume {seg.volume_id!r}"
            if (seg.checksums is not None) != with_ck:
                return r, "checksum column does not match the volume's checksum setting"
            if any("/" in n or not n or n in (".", "..") for n in seg.names):
                return r, "has a malformed block name"
            return r, r.validate(total)

        if ref.count > _OFFLOAD_ENTRIES:
            run, problem = await anyio.to_thread.run_sync(parse)
        else:
            run, problem = parse()
        if problem is None and (run.count != ref.count or run.nbytes != ref.nbytes):
            problem = (
                f"has {run.count} blocks of {run.nbytes} bytes, its reference says "
                f"{ref.count} of {ref.nbytes}"
            )
        if problem is not None:
            raise ManifestFormatError(
                f"index segment {key!r}: {problem}", key=key, volume_id=self.volume_id
            )
        self._runs[ref.key] = run
        return run

    async def segment_list(self, key: str, digest: str | None) -> tuple[SegmentRef, ...]:
        """The frozen segment refs of the list at ``key`` (cached; verified on load).

        Raises
        ------
        FormatError, StorageError
            The list is damaged or the store failed.
        """
        return await self._load_list(key, digest)

    async def _load_list(self, key: str, digest: str | None) -> tuple[SegmentRef, ...]:
        refs = self._lists.get(key)
        if refs is None:
            data = await self._get(key)
            await verify_object(data, key=key, size=None, checksum=digest, volume_id=self.volume_id)
            doc = decode(data, VolumeSegmentList, key=key)
            if doc.volume_id != self.volume_id:
                raise ManifestFormatError(
                    f"segment list {key!r} belongs to volume {doc.volume_id!r}",
                    key=key,
                    volume_id=self.volume_id,
                )
            refs = self._lists[key] = doc.segments
        return refs

    def _make_state(
        self,
        root: VolumeRoot,
        frozen_refs: tuple[SegmentRef, ...],
        frozen_runs: tuple[Run, ...],
        hot_runs: tuple[Run, ...],
    ) -> State:
        assert root.snapshot_id is not None  # checked by state()
        snap = VolumeSnapshot(
            id=root.snapshot_id,
            parent_id=root.parent_id,
            created_at=root.created_at,
            metadata=root.metadata,
            volume_id=self.volume_id,
            total_length=self.total,
            committed_bytes=root.committed_bytes,
            block_count=root.block_count,
            runs=frozen_runs + hot_runs,
        )
        return State(root, frozen_refs, frozen_runs, hot_runs, snap)

    def remember(self, state: State) -> None:
        """Cache a loaded state; drop segments no remembered snapshot uses."""
        self._states[state.seq] = state
        self._states.move_to_end(state.seq)
        while len(self._states) > _STATE_CACHE:
            self._states.popitem(last=False)
        if self._head is None or state.seq > self._head.seq:
            self._head = state
        # Merged-away hot segments would otherwise accumulate for the object's life.
        live: set[int] = set()
        for st in (*self._states.values(), self._head):
            live.update(id(r) for r in st.runs)
        self._runs = {k: r for k, r in self._runs.items() if id(r) in live}

    async def state(self, root: VolumeRoot) -> State:
        """The loaded state of ``root`` (cached; else its segment list and segments).

        Cost: the segments not yet cached, ``concurrency`` at a time.

        Raises
        ------
        FormatError
            A segment or list is damaged, or the totals disagree.
        StorageError
            The store failed.
        """
        seq = root.sequence
        state = self._states.get(seq)
        if state is not None:
            self._states.move_to_end(seq)
            return state
        if root.snapshot_id is None:
            # Callers resolve a maintenance root to its tip first.
            raise ManifestFormatError(
                f"root {seq} of volume {self.volume_id!r} commits no snapshot",
                volume_id=self.volume_id,
            )
        frozen_refs = (
            await self._load_list(root.frozen_key, root.frozen_digest) if root.frozen_key else ()
        )
        key = f"{self.prefix}_log/{volume_snapshot_id(seq)}.json"
        if len(frozen_refs) != root.frozen_count:
            raise ManifestFormatError(
                f"root {key!r} expects {root.frozen_count} frozen segments, its list has "
                f"{len(frozen_refs)}",
                key=key,
                volume_id=self.volume_id,
            )
        runs = await bounded_map(
            self._load_run, [*frozen_refs, *root.segments], limit=self.concurrency
        )
        nf = len(frozen_refs)
        state = self._make_state(root, frozen_refs, tuple(runs[:nf]), tuple(runs[nf:]))
        if sum(r.count for r in runs) != root.block_count or (
            sum(r.nbytes for r in runs) != root.committed_bytes
        ):
            raise ManifestFormatError(
                f"root {key!r} totals do not match its segments", key=key, volume_id=self.volume_id
            )
        self.remember(state)
        return state

    # ---------------------------------------------------------------- writing
    def check_overlaps(self, base: State | None, new: list[BlockRef]) -> None:
        """Raise if ``new`` overlaps what ``base`` committed.

        Raises
        ------
        OverlappingBlocksError
            With the overlapping ranges (never retried: another writer won them).
        """
        if base is None:
            return
        clash = find_overlaps(self.search_runs(base), new)
        if clash:
            raise OverlappingBlocksError(
                f"blocks overlap data committed by snapshot {base.snapshot.id}: {clash}",
                ranges=clash,
                volume_id=self.volume_id,
                snapshot_id=base.snapshot.id,
            )

    async def write(
        self,
        base: State | None,
        new_run: Run,
        *,
        seq: int,
        created_at: datetime,
        metadata: Metadata,
        token: str,
        written: list[str],
        gc_fence: datetime | None = None,
        expired_below: int = 1,
    ) -> tuple[VolumeRoot, State]:
        """Write the new segment (and segment list, if one froze); build the root.

        Every key written is appended to ``written`` (for cleanup if the commit
        is lost). Cost: one segment put (+ one list put when a segment freezes).

        Raises
        ------
        StorageError
            The store failed.
        """
        hot_refs = base.root.segments if base else ()
        hot_runs = base.hot_runs if base else ()
        frozen_refs = base.frozen_refs if base else ()
        frozen_runs = base.frozen_runs if base else ()
        frozen_key = base.root.frozen_key if base else None
        frozen_digest = base.root.frozen_digest if base else None
        k = plan_merge([r.count for r in hot_refs], new_run.count)
        keep = len(hot_refs) - k
        parts = [*hot_runs[keep:], new_run]
        merged_count = sum(r.count for r in parts)
        prefix = self.blocks_prefix
        vid = self.volume_id

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
        seg_key = self.new_key("seg")
        written.append(seg_key)
        await put_unique(self.store, seg_key, payload, self.retry)
        ref = SegmentRef(
            seg_key, merged.count, merged.nbytes, await compute_checksum(_SEGMENT_DIGEST, payload)
        )
        new_hot_refs = hot_refs[:keep]
        new_hot_runs = hot_runs[:keep]
        if merged.count >= FREEZE_AT:
            frozen_refs = (*frozen_refs, ref)
            frozen_runs = (*frozen_runs, merged)
            frozen_key = self.new_key("list")
            written.append(frozen_key)
            list_payload = encode(VolumeSegmentList(vid, frozen_refs))
            await put_unique(self.store, frozen_key, list_payload, self.retry)
            frozen_digest = await compute_checksum(_SEGMENT_DIGEST, list_payload)
            self._lists[frozen_key] = frozen_refs
        else:
            new_hot_refs = (*new_hot_refs, ref)
            new_hot_runs = (*new_hot_runs, merged)
        self._runs[seg_key] = merged
        root = VolumeRoot(
            volume_id=vid,
            snapshot_id=volume_snapshot_id(seq),
            sequence=seq,
            parent_id=base.snapshot.id if base else None,
            created_at=created_at,
            total_length=self.total,
            metadata=metadata,
            commit_token=token,
            checksum=self.checksum.name if self.checksum else None,
            block_count=(base.root.block_count if base else 0) + new_run.count,
            committed_bytes=(base.root.committed_bytes if base else 0) + new_run.nbytes,
            frozen_key=frozen_key,
            frozen_count=len(frozen_refs),
            segments=new_hot_refs,
            frozen_digest=frozen_digest,
            gc_fence=gc_fence,
            expired_below=expired_below,
        )
        return root, self._make_state(root, frozen_refs, frozen_runs, new_hot_runs)

    def maintenance_root(
        self,
        head: VolumeRoot | None,
        *,
        seq: int,
        created_at: datetime,
        token: str,
        operation: str,
        gc_fence: datetime | None,
        expired_below: int,
    ) -> VolumeRoot:
        """A root committing ``operation`` (``"expire"``, ``"fence"`` or ``"drop"``) on ``head``:
        the head's index repeated (no I/O), no snapshot of its own."""
        return VolumeRoot(
            volume_id=self.volume_id,
            snapshot_id=None,
            sequence=seq,
            parent_id=None,
            created_at=created_at,
            total_length=self.total,
            metadata={},
            commit_token=token,
            checksum=self.checksum.name if self.checksum else None,
            block_count=head.block_count if head else 0,
            committed_bytes=head.committed_bytes if head else 0,
            frozen_key=head.frozen_key if head else None,
            frozen_count=head.frozen_count if head else 0,
            segments=head.segments if head else (),
            frozen_digest=head.frozen_digest if head else None,
            operation=operation,
            tip=head.last_snapshot_id if head else None,
            gc_fence=gc_fence,
            dropped=operation == "drop",
            expired_below=expired_below,
        )

    # ---------------------------------------------------------------- lookups
    def search_runs(self, state: State) -> tuple[Run, ...]:
        """The runs to search for ``state`` (frozen ones merged once, when prepared)."""
        key = state.root.frozen_key
        merged = self._frozen_merged.get(key) if key else None
        if merged is None:
            return state.runs
        return (merged, *state.hot_runs)

    async def prepare_search(self, state: State) -> None:
        """Merge the snapshot's frozen segments once (shared by later snapshots).

        Frozen segments only change when one more freezes (every >= FREEZE_AT
        blocks), so the O(B) merge, done in a worker thread, is amortised over
        at least that many committed blocks.
        """
        key = state.root.frozen_key
        if key is None or len(state.frozen_runs) < 2 or key in self._frozen_merged:
            return
        runs = state.frozen_runs
        prefix = self.blocks_prefix
        merged = await anyio.to_thread.run_sync(lambda: Run.merge(runs, prefix))
        self._frozen_merged[key] = merged
        while len(self._frozen_merged) > 2:
            self._frozen_merged.popitem(last=False)

    def pieces(self, state: State, offset: int, length: int) -> list[Piece]:
        """The blocks serving ``[offset, offset+length)`` of ``state``.

        Raises
        ------
        RangeMissingError
            Part of the range is not committed (``.missing`` lists the gaps).
        """
        pieces, missing = lookup(self.search_runs(state), offset, length)
        if missing:
            raise RangeMissingError(
                f"volume {self.volume_id!r} snapshot {state.snapshot.id} is missing {missing}",
                missing=missing,
                volume_id=self.volume_id,
                snapshot_id=state.snapshot.id,
            )
        return pieces


class BlockReads:
    """Reads block bytes for the read paths (``read_at`` and ``VolumeReader``)."""

    def __init__(self, store: Store, volume_id: str, retry: Retry, concurrency: int) -> None:
        self.store = store
        self.volume_id = volume_id
        self.retry = retry
        self.concurrency = concurrency

    async def block(self, p: Piece, snapshot_id: str | None = None) -> bytes:
        """The whole block, checked against its recorded length and digest.

        Raises
        ------
        CorruptDataError, ChecksumMismatchError
            The block's bytes are not what its index entry recorded.
        ObjectNotFoundError
            The block object is missing.
        StorageError
            The store failed.
        """
        data = await retrying(self.retry, lambda: self.store.get(p.key))
        await verify_object(
            data,
            key=p.key,
            size=p.block_length,
            checksum=p.checksum,
            volume_id=self.volume_id,
            snapshot_id=snapshot_id,
        )
        return data

    async def span(
        self, p: Piece, start: int, length: int, snapshot_id: str | None = None
    ) -> bytes:
        """Bytes ``[start, start+length)`` of a block without a digest (block coordinates).

        Without a digest, only the length can be checked: a short read means the
        block is shorter than its index entry says.

        Raises
        ------
        CorruptDataError
            The block is shorter than recorded.
        StorageError
            The store failed.
        """
        key = p.key
        data = await retrying(self.retry, lambda: self.store.get_range(key, start, length))
        if len(data) != length:
            raise CorruptDataError(
                f"block {key!r} is shorter than its recorded {p.block_length} bytes",
                key=key,
                volume_id=self.volume_id,
                snapshot_id=snapshot_id,
            )
        return data

    async def piece(self, p: Piece, snapshot_id: str | None = None) -> bytes:
        """The bytes ``[p.lo, p.hi)`` of one block, verified as far as possible."""
        if p.checksum:
            whole = await self.block(p, snapshot_id)
            return whole[p.lo - p.block_offset : p.hi - p.block_offset]
        return await self.span(p, p.lo - p.block_offset, p.hi - p.lo, snapshot_id)

    async def pieces(
        self, pieces: list[Piece], offset: int, length: int, snapshot_id: str | None = None
    ) -> bytes:
        """Assemble ``length`` bytes at ``offset`` from ``pieces`` (fetched concurrently)."""
        if length == 0:
            return b""
        if len(pieces) == 1:
            return await self.piece(pieces[0], snapshot_id)
        out = bytearray(length)

        async def fetch(p: Piece) -> None:
            out[p.lo - offset : p.hi - offset] = await self.piece(p, snapshot_id)

        await bounded_map(fetch, pieces, limit=self.concurrency)
        return bytes(out)
