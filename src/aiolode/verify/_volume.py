"""verify_volume: a volume's roots, segment lists, index segments and blocks,
checked straight from the stored format (``docs/spec/volume-v1.md``).

Written as steps over one :class:`_VolumeCheck`: check a root, load its segment
list, check the segments it names (each once: segments are shared between
roots), collect the blocks of snapshots in range (each block once), and check
that the newest snapshot's segments are pairwise disjoint.
"""

from __future__ import annotations

import heapq
import re
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, overload

import anyio.to_thread
import attrs

from .._validate import check_int, safe_repr
from ..checksum import OFFLOAD_THRESHOLD, Checksum, checksum_from_name
from ..errors import (
    AiolodeError,
    FormatError,
    InvalidInputError,
    SnapshotExpiredError,
    SnapshotNotFoundError,
)
from ..manifest._converter import decode
from ..manifest._ids import (
    VOLUME_SEQ_WIDTH,
    parse_volume_snapshot_id,
    record_key,
    validate_history_id,
    volume_snapshot_id,
)
from ..manifest._volume import SegmentRef, VolumeRoot, VolumeSegment, VolumeSegmentList
from ..store import Store
from ._log import Chain, fetch_window, low_water_mark, records_in, windows
from ._objects import (
    ObjectRef,
    check_digest,
    check_objects,
    decode_doc,
    doc_problem,
    fetch_docs,
    list_prefix,
)
from ._report import Findings, ProblemKind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._report import VerifyReport

__all__ = ("VolumeLike", "verify_volume")

#: Segments with more entries than this are walked in a worker thread.
_OFFLOAD_ENTRIES = 4096
#: Block names aiolode writes: ``<offset hex>-<32 hex>`` ("sealed" to the offset
#: they were staged for), and ``<32 hex>`` before that.
_SEALED_NAME = re.compile(r"([0-9a-f]+)-[0-9a-f]{32}")
_LEGACY_NAME = re.compile(r"[0-9a-f]{32}")


class VolumeLike(Protocol):
    """What :func:`verify_volume` reads of a :class:`~aiolode.Volume` passed whole."""

    @property
    def store(self) -> Store:
        """The store."""

    @property
    def id(self) -> str:
        """The volume id."""

    @property
    def total_length(self) -> int:
        """``N``."""

    @property
    def checksum(self) -> Checksum | None:
        """The block digest, if any."""


def _entries_problem(seg: VolumeSegment, total: int) -> str | None:
    """Entries sorted, disjoint, positive, inside ``[0, total)``, with block names
    that are one key segment of a form aiolode writes, sealed to their offset."""
    prev_end = 0
    for i, (off, length, name) in enumerate(zip(seg.offsets, seg.lengths, seg.names, strict=True)):
        if length <= 0:
            return f"entry {i} has length {length}"
        if off < prev_end:
            return f"entry {i} at {off} overlaps or precedes the previous entry (ends {prev_end})"
        prev_end = off + length
        if prev_end > total:
            return f"entry {i} ends at {prev_end}, past the volume's length {total}"
        m = _SEALED_NAME.fullmatch(name)
        if m is not None:
            if m.group(1) != f"{off:x}":
                return f"entry {i} at {off} names block {name!r}, staged for another offset"
        elif _LEGACY_NAME.fullmatch(name) is None:
            return f"entry {i} names {name!r}, which is not a block name"
    return None


def _checksums_problem(seg: VolumeSegment, checksum_name: str | None) -> str | None:
    """Blocks with and without digests must not mix (a block without one would
    silently skip verification), and every digest is of the volume's algorithm."""
    if seg.checksums is None:
        return (
            None
            if checksum_name is None
            else f"records no checksums but the volume uses {checksum_name}"
        )
    if checksum_name is None:
        return "records checksums but the volume has none"
    for i, recorded in enumerate(seg.checksums):
        name, sep, hexdigest = recorded.partition(":")
        if name != checksum_name or not sep or not hexdigest:
            return f"entry {i} records checksum {recorded!r}, not a {checksum_name} digest"
    return None


def _parse_segment(
    raw: bytes, key: str, volume_id: str, total: int, checksum_name: str | None, blocks: str
) -> tuple[VolumeSegment | None, str | None, list[str]]:
    """Decode and validate one segment (CPU only: large ones run in a worker thread).

    Returns the segment (``None``: undecodable), what is wrong with it, and the
    block keys it names (even an invalid segment references its blocks).
    """
    try:
        seg = decode(raw, VolumeSegment, key=key)
    except FormatError as exc:
        return None, str(exc), []
    keys = [blocks + n for n in seg.names]
    if seg.volume_id != volume_id:
        return seg, f"belongs to volume {seg.volume_id!r}", keys
    return seg, _entries_problem(seg, total) or _checksums_problem(seg, checksum_name), keys


def _union_overlap(segs: Sequence[VolumeSegment]) -> tuple[int, int] | None:
    """First overlap between entries of different segments (each sorted), if any."""
    merged = heapq.merge(*(zip(s.offsets, s.lengths, strict=True) for s in segs))
    prev_end = 0
    for off, length in merged:
        if off < prev_end:
            return off, length
        prev_end = max(prev_end, off + length)
    return None


@attrs.define
class _Segment:
    """A segment as loaded: ``seg`` is ``None`` when it is unusable (reported)."""

    seg: VolumeSegment | None
    nbytes: int = 0
    #: Whether its blocks were queued for checking (segments are shared by roots).
    collected: bool = False


@attrs.define
class _VolumeCheck:
    """One run of :func:`verify_volume`: its arguments and what it found so far."""

    store: Store
    volume_id: str
    total_length: int
    checksum_name: str | None
    end: int | None = None
    lwm: int = 1
    findings: Findings = attrs.field(factory=Findings)
    chain: Chain = attrs.field(factory=Chain)
    segments: dict[str, _Segment] = attrs.field(factory=dict)
    #: Segment list key -> its refs (``None``: unusable, reported once).
    lists: dict[str, tuple[SegmentRef, ...] | None] = attrs.field(factory=dict)
    #: Block key -> the entry (offset, length, checksum) that first named it, in range.
    blocks: dict[str, tuple[int, int, str | None]] = attrs.field(factory=dict)
    #: Blocks queued for the object check (one window at a time).
    pending: list[ObjectRef] = attrs.field(factory=list)
    #: The newest snapshot in range and its usable segments (for the union check).
    target: tuple[str, list[VolumeSegment]] | None = None
    #: The garbage collection fence of the previous root read (cumulative).
    prev_fence: datetime | None = None
    #: The expiry bound of the previous root read (cumulative).
    prev_below: int = 1
    #: ``end`` names a root that commits no snapshot.
    end_missing: bool = False

    @property
    def prefix(self) -> str:
        return f"volumes/{self.volume_id}/"

    @property
    def log_prefix(self) -> str:
        return f"{self.prefix}_log/"

    @property
    def index_prefix(self) -> str:
        return f"{self.prefix}index/"

    @property
    def blocks_prefix(self) -> str:
        return f"{self.prefix}blocks/"

    async def check_history(self, roots: dict[int, str], last: int) -> None:
        """Every root, window by window; the blocks first named in a window are
        checked at its end, so memory holds one window of block refs."""
        for seqs in windows(1, last):
            docs = await fetch_window(self.store, seqs, roots)
            for seq in seqs:
                sid = volume_snapshot_id(seq)
                key = record_key(self.log_prefix, seq, VOLUME_SEQ_WIDTH)
                if seq < self.lwm:
                    if seq in docs:
                        self._expired(key, docs[seq])
                    continue
                if seq not in docs:
                    self.chain.gap(self.findings, "root", key, sid, last)
                    continue
                root = self._check_root(seq, key, sid, docs[seq])
                if root is None:
                    continue
                frozen = await self._load_segment_list(root, key, sid)
                if frozen is None:
                    continue  # an unusable list, reported when first read
                refs = [*frozen, *root.segments]
                await self._check_segments(refs, sid)
                await self._collect_blocks(root, key, sid, refs)
            await check_objects(self.store, self.pending, self.findings)
            self.pending = []
        await self._check_union()

    def _expired(self, key: str, raw: bytes | AiolodeError) -> None:
        """A root below the low-water mark, not yet collected: what it names is not
        an orphan, but it is no longer checked."""
        if isinstance(raw, AiolodeError):
            return
        try:
            root = decode(raw, VolumeRoot, key=key)
        except FormatError:
            return
        named = [r.key for r in root.segments] + ([root.frozen_key] if root.frozen_key else [])
        self.findings.referenced.update(k for k in named if k.startswith(self.index_prefix))

    # ------------------------------------------------------------------- roots
    def _check_root(
        self, seq: int, key: str, sid: str, raw: bytes | AiolodeError
    ) -> VolumeRoot | None:
        """Decode a root (format v1 or v2) and check it against its key, the
        volume's settings and the chain. ``None``: its index cannot be followed."""
        f = self.findings
        f.records += 1
        root = decode_doc(f, key, raw, VolumeRoot, "root", sid)
        if root is None:
            self.chain.broken()
            return None
        bad: list[str] = []
        want_id = sid if root.operation == "commit" else None
        if root.volume_id != self.volume_id or root.sequence != seq or root.snapshot_id != want_id:
            bad.append(
                f"says volume {root.volume_id!r} sequence {root.sequence} id {root.snapshot_id!r}"
            )
        if root.operation not in ("commit", "expire", "fence", "drop"):
            bad.append(f"commits an unknown operation {root.operation!r}")
        if root.dropped != (root.operation == "drop"):
            bad.append(f"says dropped={root.dropped} for a {root.operation!r} root")
        if root.operation != "commit" and root.parent_id is not None:
            bad.append(f"commits {root.operation!r} but names parent {root.parent_id!r}")
        if root.operation == "commit" and root.tip is not None:
            bad.append("commits a snapshot and names a tip")
        if self.prev_fence is not None and (
            root.gc_fence is None or root.gc_fence < self.prev_fence
        ):
            bad.append("lowers the garbage collection fence")
        if root.expired_below < self.prev_below:
            bad.append(f"un-expires snapshots ({root.expired_below} < {self.prev_below})")
        self.prev_fence, self.prev_below = root.gc_fence, root.expired_below
        if root.total_length != self.total_length:
            bad.append(f"total_length {root.total_length} != {self.total_length}")
        if root.checksum != self.checksum_name:
            bad.append(f"checksum {root.checksum!r} != the volume's {self.checksum_name!r}")
        if min(root.block_count, root.committed_bytes, root.frozen_count) < 0:
            bad.append("has negative totals")
        elif root.committed_bytes > root.total_length:
            bad.append(f"commits {root.committed_bytes} bytes of a {root.total_length}-byte volume")
        named = [r.key for r in root.segments] + ([root.frozen_key] if root.frozen_key else [])
        foreign = [k for k in named if not k.startswith(self.index_prefix)]
        if foreign:
            bad.append(f"names index documents outside {self.index_prefix!r}: {foreign}")
        for msg in bad:
            f.add(ProblemKind.INVALID_RECORD, f"root {key!r} {msg}", key=key, snap=sid)
        if root.operation == "commit":
            self.chain.follow(f, key, sid, root.parent_id, root.created_at)
            f.head = sid
        else:
            # A maintenance root commits no snapshot: it names the newest one.
            if self.chain.linked and root.tip != self.chain.prev_id:
                f.add(
                    ProblemKind.BROKEN_CHAIN,
                    f"root {key!r} names {root.tip!r} as the newest snapshot, expected "
                    f"{self.chain.prev_id!r}",
                    key=key,
                    snap=sid,
                )
            if self.end == seq:
                self.end_missing = True
        if foreign:
            return None  # never follow a root into what is not this volume's
        if root.dropped:
            # The volume was dropped: what its index names may already be gone.
            f.referenced.update(named)
            return None
        f.referenced.update(named)
        return root

    # ----------------------------------------------------------- segment lists
    async def _load_segment_list(
        self, root: VolumeRoot, key: str, sid: str
    ) -> tuple[SegmentRef, ...] | None:
        """The frozen segment refs of ``root`` (``()`` when it has none; ``None``
        when its list is unusable). Each list is read once: roots share them."""
        frozen: tuple[SegmentRef, ...] | None = ()
        if root.frozen_key is not None:
            if root.frozen_key not in self.lists:
                self.lists[root.frozen_key] = await self._read_list(
                    root.frozen_key, root.frozen_digest, sid
                )
            frozen = self.lists[root.frozen_key]
        if frozen is not None and len(frozen) != root.frozen_count:
            self.findings.add(
                ProblemKind.INVALID_RECORD,
                f"root {key!r} expects {root.frozen_count} frozen segments, its list "
                f"has {len(frozen)}",
                key=key,
                snap=sid,
            )
        return frozen

    async def _read_list(
        self, key: str, digest: str | None, sid: str
    ) -> tuple[SegmentRef, ...] | None:
        f = self.findings
        (raw,) = await fetch_docs(self.store, [key])
        f.records += 1
        if isinstance(raw, AiolodeError):
            doc_problem(f, key, raw, "segment list", sid)
            return None
        if await check_digest(f, key, raw, digest, "segment list", sid):
            return None
        doc = decode_doc(f, key, raw, VolumeSegmentList, "segment list", sid)
        if doc is None:
            return None
        problem = None
        if doc.volume_id != self.volume_id:
            problem = f"belongs to volume {doc.volume_id!r}"
        elif any(not r.key.startswith(self.index_prefix) for r in doc.segments):
            problem = f"names segments outside {self.index_prefix!r}"
        if problem is not None:
            f.add(ProblemKind.INVALID_RECORD, f"segment list {key!r} {problem}", key=key, snap=sid)
            return None
        f.referenced.update(r.key for r in doc.segments)
        return doc.segments

    # ---------------------------------------------------------------- segments
    async def _check_segments(self, refs: list[SegmentRef], sid: str) -> None:
        """Fetch, digest-check, decode and validate the segments not seen before."""
        todo = list(dict.fromkeys(r.key for r in refs if r.key not in self.segments))
        digests = {r.key: r.digest for r in refs}
        for key, raw in zip(todo, await fetch_docs(self.store, todo), strict=True):
            self.findings.records += 1
            self.segments[key] = await self._load_segment(key, raw, digests.get(key), sid)

    async def _load_segment(
        self, key: str, raw: bytes | AiolodeError, digest: str | None, sid: str
    ) -> _Segment:
        f = self.findings
        if isinstance(raw, AiolodeError):
            doc_problem(f, key, raw, "index segment", sid)
            return _Segment(None)
        damaged = await check_digest(f, key, raw, digest, "index segment", sid)
        args = (raw, key, self.volume_id, self.total_length, self.checksum_name, self.blocks_prefix)
        if len(raw) >= OFFLOAD_THRESHOLD:
            seg, problem, block_keys = await anyio.to_thread.run_sync(_parse_segment, *args)
        else:
            seg, problem, block_keys = _parse_segment(*args)
        # Even a damaged or invalid segment references its blocks: not orphans.
        f.referenced.update(block_keys)
        if damaged:
            return _Segment(None)  # its entries cannot be trusted (reported)
        if seg is None or problem is not None:
            f.add(
                ProblemKind.INVALID_RECORD, f"index segment {key!r}: {problem}", key=key, snap=sid
            )
            return _Segment(None)
        return _Segment(seg, sum(seg.lengths))

    # ------------------------------------------------------------------ blocks
    async def _collect_blocks(
        self, root: VolumeRoot, key: str, sid: str, refs: list[SegmentRef]
    ) -> None:
        """Check the root's totals against its segments; for a snapshot in range,
        queue the blocks of segments no earlier snapshot in range had."""
        f = self.findings
        usable = True
        count = nbytes = 0
        decoded: list[VolumeSegment] = []
        for ref in refs:
            s = self.segments[ref.key]
            if s.seg is None:
                usable = False
                continue
            n = len(s.seg.offsets)
            if n != ref.count or s.nbytes != ref.nbytes:
                f.add(
                    ProblemKind.INVALID_RECORD,
                    f"segment {ref.key!r} has {n} blocks / {s.nbytes} bytes, root {sid} "
                    f"says {ref.count} / {ref.nbytes}",
                    key=ref.key,
                    snap=sid,
                )
            count += n
            nbytes += s.nbytes
            decoded.append(s.seg)
        if usable and (count != root.block_count or nbytes != root.committed_bytes):
            f.add(
                ProblemKind.INVALID_RECORD,
                f"root {key!r} totals ({root.block_count} blocks, {root.committed_bytes} "
                f"bytes) do not match its segments ({count}, {nbytes})",
                key=key,
                snap=sid,
            )
        if (self.end is not None and root.sequence > self.end) or root.operation != "commit":
            return
        f.snapshots += 1
        f.checked_to = sid
        self.target = (sid, decoded)
        for ref in refs:
            s = self.segments[ref.key]
            if s.seg is not None and not s.collected:
                s.collected = True
                if len(s.seg.offsets) > _OFFLOAD_ENTRIES:
                    await anyio.to_thread.run_sync(self._queue_blocks, s.seg, sid)
                else:
                    self._queue_blocks(s.seg, sid)

    def _queue_blocks(self, seg: VolumeSegment, sid: str) -> None:
        """Queue each block once. Merged segments copy entries: a copy must agree
        with the entry that first named the block (CPU only; large segments run
        in a worker thread while the check waits for it)."""
        cks = seg.checksums
        prefix = self.blocks_prefix
        for i, name in enumerate(seg.names):
            bkey = prefix + name
            entry = (seg.offsets[i], seg.lengths[i], None if cks is None else cks[i])
            seen = self.blocks.get(bkey)
            if seen is None:
                self.blocks[bkey] = entry
                self.pending.append(ObjectRef(bkey, entry[1], entry[2], sid))
            elif seen != entry:
                self.findings.add(
                    ProblemKind.INVALID_RECORD,
                    f"block {bkey!r} is recorded as (offset, length, checksum) {seen} and "
                    f"{entry} by two segments",
                    key=bkey,
                    snap=sid,
                )

    async def _check_union(self) -> None:
        """The newest snapshot in range: its segments are pairwise disjoint."""
        if self.target is None:
            return
        sid, segs = self.target
        if sum(len(s.offsets) for s in segs) > _OFFLOAD_ENTRIES:
            overlap = await anyio.to_thread.run_sync(_union_overlap, segs)
        else:
            overlap = _union_overlap(segs)
        if overlap is not None:
            self.findings.add(
                ProblemKind.INVALID_RECORD,
                f"snapshot {sid}: block at {overlap[0]} (+{overlap[1]}) overlaps another "
                "segment's block",
                snap=sid,
            )


def _checksum_name(checksum: object) -> str | None:
    if checksum is None:
        return None
    if isinstance(checksum, Checksum):
        return checksum.name
    if isinstance(checksum, str):
        try:
            return checksum_from_name(checksum).name
        except FormatError:
            raise InvalidInputError(f"unknown checksum algorithm {checksum!r}") from None
    raise InvalidInputError(
        f"checksum must be None, an aiolode Checksum or its name, not {safe_repr(checksum)}"
    )


@overload
async def verify_volume(
    store: Store,
    volume_id: str,
    *,
    total_length: int,
    checksum: Checksum | str | None = None,
    snapshot_id: str | None = None,
) -> VerifyReport: ...


@overload
async def verify_volume(store: VolumeLike, *, snapshot_id: str | None = None) -> VerifyReport: ...


async def verify_volume(
    store: Store | VolumeLike,
    volume_id: str | None = None,
    *,
    total_length: int | None = None,
    checksum: Checksum | str | None = None,
    snapshot_id: str | None = None,
) -> VerifyReport:
    """Check a volume's roots, index and blocks; report, never repair.

    Checks, for every root of the log (format v1 or v2): it decodes (tagged
    metadata included), belongs to this volume at its sequence number,
    continues a linear chain (no gap; each parent is the previous snapshot;
    ``created_at`` never decreases), agrees with ``total_length`` and
    ``checksum``, has non-negative totals within ``N`` that match its
    segments, and names index documents only under ``volumes/<id>/index/``.
    Every referenced segment list and segment matches the digest its
    reference records, decodes and is valid (entries sorted, disjoint,
    positive, inside ``[0, N)``; block names of a form aiolode writes and,
    for ``<offset hex>-<32 hex>`` names, sealed to the entry's offset; digests
    of the volume's algorithm, present exactly when it has one; counts and
    byte totals match the references). For the newest snapshot in range, the
    union of its segments is disjoint. Every block referenced by a snapshot
    in range exists with the recorded length and, with checksums, digest; a
    block named by two entries is named by equal ones. A low-water mark, when
    there is one, decodes and names a record of the log; roots below it were
    expired and are neither gaps nor checked. Keys under ``volumes/<id>/``
    nothing references (the hint ``_latest`` and the low-water mark are the
    log's own) are listed as orphans: blocks staged but never committed
    (possibly by a writer that will still commit them), segments of lost
    commit races.

    Cost: one listing of the volume prefix; one ``get`` for the low-water
    mark when it exists; one ``get`` per root, per segment list and per
    distinct segment (segments are shared between roots, so each is read
    once); per distinct block in range one streamed ``get`` (checksums) or
    one ``head`` (none); at most 8 in flight. CPU: O(E) over all distinct
    segment entries E (large segments in a worker thread), plus O(B log k)
    for the union check. Memory: the listing, every distinct segment decoded
    (about 150 bytes per entry), one entry per block in range, and at most
    256 roots.

    Parameters
    ----------
    store
        The store holding the volume. A :class:`~aiolode.Volume` is accepted
        instead (then with ``snapshot_id`` only): its store, id, length and
        checksum are used.
    volume_id
        The volume.
    total_length
        ``N``, the length the volume was created with (required).
    checksum
        The block digest the volume records (a :class:`~aiolode.Checksum` or
        its name), or ``None`` for none.
    snapshot_id
        Check blocks of snapshots up to this one (the whole log is still
        decoded, for the chain and for orphans). ``None``: all.

    Returns
    -------
    VerifyReport
        ``report.ok`` is ``True`` when no problem was found.

    Raises
    ------
    InvalidKeyError
        ``volume_id`` is not a valid volume id.
    InvalidInputError
        An argument has the wrong type or value (``total_length`` missing or
        negative, an unknown checksum, ``snapshot_id`` not a str, a Volume
        passed with other arguments).
    SnapshotNotFoundError
        ``snapshot_id`` is not the id of a root in the log
        (:class:`~aiolode.SnapshotExpiredError`: below the low-water mark).
    StorageError
        Listing the volume prefix failed (individual failures are reported).
    """
    if not isinstance(store, Store):
        if volume_id is not None or total_length is not None or checksum is not None:
            raise InvalidInputError(
                "verify_volume(volume) takes no other arguments than snapshot_id=; or call "
                "verify_volume(store, volume_id, total_length=..., checksum=...)"
            )
        volume_id, total_length, checksum = store.id, store.total_length, store.checksum
        store = store.store
        if not isinstance(store, Store):
            raise InvalidInputError(f"store must be an aiolode Store, not {safe_repr(store)}")
    volume_id = validate_history_id(volume_id, "volume")
    if total_length is None:
        raise InvalidInputError("verify_volume() needs the volume's total_length")
    check = _VolumeCheck(
        store,
        volume_id,
        check_int("total_length", total_length, minimum=0),
        _checksum_name(checksum),
        end=None
        if snapshot_id is None
        else parse_volume_snapshot_id(snapshot_id, volume_id=volume_id),
    )
    listing = await list_prefix(store, check.prefix)
    roots = records_in(listing, check.log_prefix, VOLUME_SEQ_WIDTH)
    last = max(roots, default=0)
    check.lwm = await low_water_mark(
        store, check.findings, listing, f"{check.log_prefix}_lwm.json", volume_id, last
    )
    # Roots below the newest root's expiry bound are expired views: what they
    # name is referenced (until gc), nothing of them is required.
    (raw,) = await fetch_docs(store, [roots[last]]) if last else (None,)
    if isinstance(raw, bytes):
        try:
            head = decode(raw, VolumeRoot, key=roots[last])
        except FormatError:
            head = None
        if head is not None and isinstance(head.expired_below, int) and head.sequence == last:
            check.lwm = max(check.lwm, min(head.expired_below, last))
    check.chain.linked = check.lwm == 1
    if check.end is not None and check.end < check.lwm:
        raise SnapshotExpiredError(
            f"snapshot {snapshot_id!r} of volume {volume_id!r} was expired",
            volume_id=volume_id,
            snapshot_id=snapshot_id,
        )
    if check.end is not None and check.end not in roots:
        raise SnapshotNotFoundError(
            f"volume {volume_id!r} has no snapshot {snapshot_id!r}",
            volume_id=volume_id,
            snapshot_id=snapshot_id,
        )
    # The hint is a shortcut readers check before trusting: never a problem.
    check.findings.referenced.add(f"{check.prefix}_latest")
    check.findings.referenced.update(roots.values())
    await check.check_history(roots, last)
    if check.end_missing:
        raise SnapshotNotFoundError(
            f"volume {volume_id!r} has no snapshot {snapshot_id!r} (a maintenance record)",
            volume_id=volume_id,
            snapshot_id=snapshot_id,
        )
    return check.findings.report("volume", volume_id, listing)
