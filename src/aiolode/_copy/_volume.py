"""copy_volume: a volume's roots, index and blocks, to another store (or id)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import anyio.to_thread
import attrs

from .._history import retrying
from .._retry import Retry
from .._validate import check_int, safe_repr
from ..checksum import SHA256, compute_checksum, verify_object
from ..errors import (
    AiolodeError,
    InvalidInputError,
    ManifestFormatError,
    ObjectNotFoundError,
    SnapshotExpiredError,
)
from ..manifest._converter import decode, encode
from ..manifest._ids import validate_history_id, volume_snapshot_id
from ..manifest._volume import SegmentRef, VolumeRoot, VolumeSegment, VolumeSegmentList
from ..store import Store
from ..volume import Volume
from ..volume._lifecycle import dropped_error
from ..volume._log import volume_log
from ._engine import Fetched, HistoryCopy
from ._objects import ObjectJob, Transfer
from ._report import CopyReport, Tally, check_progress

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ._report import CopyProgressCallback

__all__ = ("copy_volume",)

# Index documents are digested with SHA-256 whatever the block checksum (as the
# volume writes them: volume/_index.py).
_SEGMENT_DIGEST = SHA256()
#: Segments with more entries than this are decoded / encoded in a worker thread.
_OFFLOAD_ENTRIES = 4096
#: Segment lists kept decoded (they only change when a segment freezes).
_LISTS_KEPT = 4


@attrs.frozen
class _Segment:
    """One index segment of the source: its bytes and what it lists."""

    raw: bytes = attrs.field(repr=False)
    doc: VolumeSegment = attrs.field(repr=False)


class _VolumeCopy(HistoryCopy[VolumeRoot]):
    """Roots are copied in order; for each, the index documents it adds and the
    blocks they list that its parent's did not (a commit writes one segment
    merging some of its parent's hot segments with the new blocks, so the new
    blocks are the new segments' entries minus those of the segments merged
    away: amortised O(log B) entries read per block)."""

    kind: ClassVar[Literal["dataset", "volume"]] = "volume"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.src_prefix = f"volumes/{self.src_log.spec.owner_id}/"
        self.dst_prefix = f"volumes/{self.dst_log.spec.owner_id}/"
        #: The source root before the next one to copy, when the destination holds it.
        self.parent: VolumeRoot | None = None
        #: Its segments (hot and frozen), by source key.
        self.parent_refs: dict[str, SegmentRef] = {}
        #: Block names of its hot segments (the only ones a commit merges away).
        self.hot_names: dict[str, frozenset[str]] = {}
        #: When renamed: the destination's reference of each of its segments, by
        #: source key (re-encoded segments have other digests).
        self.dst_refs: dict[str, SegmentRef] = {}
        #: When renamed: the destination's digest of each segment list, by source key.
        self.dst_lists: dict[str, str | None] = {}
        self._lists: OrderedDict[str, tuple[bytes, VolumeSegmentList]] = OrderedDict()
        #: The first root of the window whose objects are being copied.
        self.window_lo = 1

    # ------------------------------------------------------------------ keys
    def key(self, src_key: str) -> str:
        """The destination's key of a source key under the volume's prefix."""
        if not src_key.startswith(self.src_prefix):
            return src_key
        return self.dst_prefix + src_key[len(self.src_prefix) :]

    def _back(self, dst_key: str) -> str:
        return self.src_prefix + dst_key[len(self.dst_prefix) :]

    def _bad(self, key: str, what: str) -> ManifestFormatError:
        return ManifestFormatError(
            f"index document {key!r} {what}", key=key, volume_id=self.src_log.spec.owner_id
        )

    # ----------------------------------------------------------------- checks
    def same(self, src: VolumeRoot, dst: VolumeRoot) -> bool:
        if not self.renamed:
            return src == dst
        # The index keys and digests differ by construction; the commit must not.
        fields = (
            *("sequence", "commit_token", "created_at", "metadata", "total_length"),
            *("checksum", "block_count", "committed_bytes", "frozen_count", "snapshot_id"),
            *("parent_id", "operation", "tip", "gc_fence", "dropped", "expired_below"),
        )
        return all(getattr(src, f) == getattr(dst, f) for f in fields) and [
            (r.key, r.count, r.nbytes) for r in dst.segments
        ] == [(self.key(r.key), r.count, r.nbytes) for r in src.segments]

    def snapshot_ids(self, record: VolumeRoot) -> list[str]:
        return record.snapshot_ids()  # none for a maintenance root

    def head_id(self, record: VolumeRoot | None) -> str | None:
        return None if record is None else record.last_snapshot_id

    # ------------------------------------------------------------------ range
    async def bounds(self, head: VolumeRoot, lwm: int) -> tuple[int, int]:
        if head.dropped:
            raise dropped_error(self.src_log.spec.owner_id)
        return await super().bounds(head, lwm)

    async def run(self) -> CopyReport:
        try:
            return await super().run()
        except (ObjectNotFoundError, SnapshotExpiredError, ManifestFormatError) as exc:
            raise await self._explained(exc) from exc

    async def _explained(self, exc: AiolodeError) -> AiolodeError:
        """What a source object or root gone missing means: the volume was dropped
        meanwhile, a garbage collection took expired roots being copied, or
        damage (``exc`` itself)."""
        log = self.src_log
        try:
            head = await retrying(self.retry, lambda: log.refresh())
            lwm = await retrying(self.retry, log.read_lwm)
        except AiolodeError:
            return exc
        if head is not None and head.dropped:
            return dropped_error(log.spec.owner_id)
        if isinstance(exc, ObjectNotFoundError) and lwm > self.window_lo:
            return SnapshotExpiredError(
                f"roots {self.window_lo} to {lwm - 1} of volume {log.spec.owner_id!r} were "
                "collected at the source while they were being copied (they were expired); "
                "run the copy again (it goes on from the source's new low-water mark)",
                snapshot_id=volume_snapshot_id(self.window_lo),
                volume_id=log.spec.owner_id,
            )
        return exc

    # ---------------------------------------------------------------- reading
    async def _list(
        self, key: str, digest: str | None, *, source: bool = True
    ) -> tuple[bytes, VolumeSegmentList]:
        """A segment list of the source (cached), or of the destination."""
        cached = self._lists.get(key) if source else None
        if cached is not None:
            self._lists.move_to_end(key)
            return cached
        log = self.src_log if source else self.dst_log
        raw = await retrying(self.retry, lambda: log.store.get(key))
        await verify_object(raw, key=key, size=None, checksum=digest)
        doc = decode(raw, VolumeSegmentList, key=key)
        if doc.volume_id != log.spec.owner_id:
            raise self._bad(key, f"belongs to volume {doc.volume_id!r}")
        if source:
            self._lists[key] = (raw, doc)
            while len(self._lists) > _LISTS_KEPT:
                self._lists.popitem(last=False)
        return raw, doc

    async def _refs(self, root: VolumeRoot) -> dict[str, SegmentRef]:
        """Every segment of a source root (frozen ones through its list), by key."""
        out: dict[str, SegmentRef] = {}
        if root.frozen_key is not None:
            _, lst = await self._list(root.frozen_key, root.frozen_digest)
            if len(lst.segments) != root.frozen_count:
                raise self._bad(
                    root.frozen_key,
                    f"lists {len(lst.segments)} segments, root {root.sequence} expects "
                    f"{root.frozen_count}",
                )
            out.update((r.key, r) for r in lst.segments)
        out.update((r.key, r) for r in root.segments)
        return out

    async def _segment(self, ref: SegmentRef) -> _Segment:
        raw = await retrying(self.retry, lambda: self.src_log.store.get(ref.key))
        await verify_object(
            raw, key=ref.key, size=None, checksum=ref.digest, volume_id=self.src_log.spec.owner_id
        )
        if ref.count > _OFFLOAD_ENTRIES:
            doc = await anyio.to_thread.run_sync(lambda: decode(raw, VolumeSegment, key=ref.key))
        else:
            doc = decode(raw, VolumeSegment, key=ref.key)
        if doc.volume_id != self.src_log.spec.owner_id:
            raise self._bad(ref.key, f"belongs to volume {doc.volume_id!r}")
        if len(doc.offsets) != ref.count or sum(doc.lengths) != ref.nbytes:
            raise self._bad(
                ref.key, f"lists {len(doc.offsets)} blocks, its reference says {ref.count}"
            )
        if any("/" in n or not n or n in (".", "..") for n in doc.names):
            raise self._bad(ref.key, "has a malformed block name")
        return _Segment(raw, doc)

    async def _hot_names(self, ref: SegmentRef) -> frozenset[str]:
        names = self.hot_names.get(ref.key)
        if names is None:
            names = frozenset((await self._segment(ref)).doc.names)
        return names

    async def _encode(self, obj: Any, entries: int) -> bytes:
        if entries > _OFFLOAD_ENTRIES:
            return await anyio.to_thread.run_sync(encode, obj)
        return encode(obj)

    # ------------------------------------------------------------------ start
    async def begin(self, head: VolumeRoot, start: int, dst_head: VolumeRoot | None) -> None:
        if dst_head is None or dst_head.sequence != start - 1:
            return  # the first root copied brings its whole index
        parent = await retrying(self.retry, lambda: self.src_log.fetch(start - 1))
        assert parent is not None  # _start compared it with the destination's head
        self.parent = parent
        self.parent_refs = await self._refs(parent)
        if not self.renamed:
            return
        # The destination's digests of the segments the next roots inherit.
        dst_refs = list(dst_head.segments)
        if dst_head.frozen_key is not None:
            _, lst = await self._list(dst_head.frozen_key, dst_head.frozen_digest, source=False)
            dst_refs += lst.segments
            if parent.frozen_key is not None:
                self.dst_lists[parent.frozen_key] = dst_head.frozen_digest
        self.dst_refs = {self._back(r.key): r for r in dst_refs}
        if set(self.dst_refs) != set(self.parent_refs):
            raise self._bad(
                self.dst_log.key(dst_head.sequence),
                "(the destination's head) does not list the source's segments",
            )

    # ---------------------------------------------------------------- objects
    async def jobs(self, window: list[Fetched[VolumeRoot]]) -> AsyncGenerator[ObjectJob, None]:
        self.window_lo = window[0].record.seq
        for item in window:
            root = item.record
            refs = await self._refs(root)
            new = [r for k, r in refs.items() if k not in self.parent_refs]
            gone = [r for k, r in self.parent_refs.items() if k not in refs]
            kept: set[str] = set()
            for r in gone:
                kept |= await self._hot_names(r)
            hot = {r.key for r in root.segments}
            for ref in new:
                seg = await self._segment(ref)
                doc = seg.doc
                checksums = doc.checksums
                for i, name in enumerate(doc.names):
                    if name in kept:
                        continue  # copied with the root that committed it
                    yield ObjectJob(
                        f"{self.src_prefix}blocks/{name}",
                        f"{self.dst_prefix}blocks/{name}",
                        size=doc.lengths[i],
                        checksum=None if checksums is None else checksums[i],
                        snapshot_id=root.snapshot_id,
                    )
                payload = seg.raw
                if self.renamed:
                    payload = await self._encode(
                        attrs.evolve(doc, volume_id=self.dst_log.spec.owner_id), len(doc.names)
                    )
                    self.dst_refs[ref.key] = SegmentRef(
                        self.key(ref.key),
                        ref.count,
                        ref.nbytes,
                        await compute_checksum(_SEGMENT_DIGEST, payload),
                    )
                if ref.key in hot:
                    self.hot_names[ref.key] = frozenset(doc.names)
                yield ObjectJob(
                    ref.key, self.key(ref.key), payload=payload, snapshot_id=root.snapshot_id
                )
            frozen_key = root.frozen_key
            parent_list = self.parent.frozen_key if self.parent is not None else None
            if frozen_key is not None and frozen_key != parent_list:
                raw, lst = await self._list(frozen_key, root.frozen_digest)
                payload = raw
                if self.renamed:
                    payload = encode(
                        VolumeSegmentList(
                            self.dst_log.spec.owner_id,
                            tuple(self.dst_refs[r.key] for r in lst.segments),
                        )
                    )
                    self.dst_lists[frozen_key] = await compute_checksum(_SEGMENT_DIGEST, payload)
                yield ObjectJob(
                    frozen_key, self.key(frozen_key), payload=payload, snapshot_id=root.snapshot_id
                )
            item.payload = item.raw
            if self.renamed:
                item.payload = encode(
                    attrs.evolve(
                        root,
                        volume_id=self.dst_log.spec.owner_id,
                        segments=tuple(self.dst_refs[r.key] for r in root.segments),
                        frozen_key=None if frozen_key is None else self.key(frozen_key),
                        frozen_digest=None
                        if frozen_key is None
                        else self.dst_lists.get(frozen_key, root.frozen_digest),
                    )
                )
                self.dst_refs = {k: v for k, v in self.dst_refs.items() if k in refs}
            self.parent = root
            self.parent_refs = refs
            self.hot_names = {k: v for k, v in self.hot_names.items() if k in hot}


async def copy_volume(
    src: Volume,
    dst_store: Store,
    *,
    dst_id: str | None = None,
    progress: CopyProgressCallback | None = None,
    concurrency: int = 8,
) -> CopyReport:
    """Copy a volume's history — every snapshot, its index and its blocks — to another store.

    The destination gets the same roots at the same sequence numbers (so the
    same snapshot ids, metadata, times and commit tokens), the same index
    segments and segment lists (their digests verified as they are read), and
    the same blocks byte for byte (lengths and recorded checksums verified as
    they are copied). It is never visible in a half state: a root's index
    documents and blocks are stored before the root, and the roots in order,
    each create-only. Each block is copied once, with the root that committed
    it.

    Incremental, resumable and divergence-safe exactly as
    :func:`~aiolode.copy_dataset`: the copy starts after the destination's head
    once that head is shown to be the source's root at the same position;
    objects found at the destination are checked before they are kept; a
    destination that diverged is refused with
    :class:`~aiolode.SnapshotConflictError`.

    **Maintenance and expiry.** Maintenance roots (an expiry, a garbage
    collection's fence) are copied as history, like snapshots: a root's
    position is its snapshot id, so a history with holes could not keep the
    ids, and the destination then expires what the source expired and
    refuses blocks staged before the source's fences. They repeat their tip's
    index, so each costs one ``get`` and one ``put``. The copy starts at the
    source's low-water mark: expired roots that a garbage collection has not
    collected yet are copied too (the destination's own :meth:`~aiolode.Volume.gc`
    collects them); their blocks are all in the newest snapshot anyway
    (snapshots only add blocks). A garbage collection taking roots while they
    are being copied stops the copy with :class:`~aiolode.SnapshotExpiredError`;
    run it again. A dropped volume (or one dropped while being copied) is
    refused with :class:`~aiolode.VolumeNotFoundError`: a drop is never
    copied, and a backup of it keeps its snapshots.

    Parameters
    ----------
    src
        The volume to copy (its store, id, length and checksum setting).
    dst_store
        Where to copy it: any store, of any kind.
    dst_id
        The id at the destination (default: the source's). Another id rewrites
        the ids inside the roots, segments and segment lists, and the digests
        that name them; blocks stay byte-identical.
    progress
        Called (sync or async) with a :class:`~aiolode.CopyProgress` after every
        object and root (and every chunk of a streamed block).
    concurrency
        Objects copied at once.

    Returns
    -------
    CopyReport
        What was copied, checked and repaired, and the destination's head.

    Raises
    ------
    InvalidInputError
        An argument has the wrong type or value, the copy would be onto the
        source itself, or ``src`` was opened with another length or checksum
        setting than the volume records.
    InvalidKeyError
        ``dst_id`` is not a valid volume id.
    VolumeNotFoundError
        The source volume was dropped (before or while being copied).
    SnapshotConflictError
        The destination's history diverged from the source's.
    SnapshotExpiredError
        A garbage collection at the source collected roots being copied.
    ObjectNotFoundError
        A block or index document the source's roots reference is missing.
    ChecksumMismatchError, CorruptDataError
        A block's bytes differ from its recorded digest or length.
    FormatError
        A root or index document is unreadable or inconsistent.
    StorageError
        A store kept failing (run the copy again to resume).

    Notes
    -----
    Cost: at the source, the head search, 1 ``get`` per root, per new index
    segment and per new segment list, 1 ``get`` per segment a commit merged
    away (amortised O(log B) entries read per block) and 1 ``get`` per block
    (streamed above 8 MiB, after a ``head``); at the destination, the head
    search, 1 ``put`` per object and per root, one hint ``put`` per 64 roots.
    Roots are put one at a time, in order, while the objects of the next 64
    roots are copied. Memory: the hot segments' block names (at most about
    64 K entries), at most two windows of 64 roots, and per block in flight the
    block (up to 8 MiB) or one 1 MiB chunk.
    """
    if not isinstance(src, Volume):
        raise InvalidInputError(f"src must be an aiolode Volume, not {safe_repr(src)}")
    if not isinstance(dst_store, Store):
        raise InvalidInputError(f"dst_store must be an aiolode Store, not {safe_repr(dst_store)}")
    target = validate_history_id(src.id if dst_id is None else dst_id, "volume")
    if dst_store is src.store and target == src.id:
        raise InvalidInputError(
            f"copying volume {src.id!r} onto itself: give another dst_store or dst_id",
            volume_id=src.id,
        )
    callback = check_progress(progress)
    limit = check_int("concurrency", concurrency)
    retry = Retry()
    tally = Tally(callback)
    checksum = src.checksum.name if src.checksum is not None else None
    job = _VolumeCopy(
        volume_log(src.store, src.id, src.total_length, checksum, retry),
        volume_log(dst_store, target, src.total_length, checksum, retry),
        Transfer(src.store, dst_store, retry, tally, {"volume_id": src.id}),
        tally,
        retry,
        limit,
    )
    return await job.run()
