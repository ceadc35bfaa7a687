"""Blocks and interval arithmetic: the in-memory side of the volume index.

A :class:`Run` is one decoded index segment: disjoint blocks sorted by offset,
held column-wise (parallel lists) so a million blocks cost a few tens of MB and
lookups are one :func:`bisect.bisect_right` on a list of ints. A snapshot's
index is a handful of runs (see ``docs/volume.md``); every query here visits
each run with a binary search, never scanning the whole index.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
from array import array
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, final

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "BlockRef",
    "Piece",
    "Run",
    "coalesce",
    "complement",
    "find_overlaps",
    "lookup",
    "seal_block",
]

Range = tuple[int, int]

#: Every how many entries the fence samples an offset (one 512-byte window).
_FENCE = 64


@final
@attrs.frozen
class BlockRef:
    """A staged (and, once listed by a commit, committed) block of a volume.

    Attributes
    ----------
    offset
        Where the block starts in the volume's address space.
    length
        Its size in bytes (> 0).
    key
        The store key of the immutable block object.
    checksum
        ``"<algorithm>:<hex>"`` digest of the block, or ``None``.
    staged_at
        When staging began (the stager's clock); ``None`` for refs of committed
        blocks (:meth:`VolumeSnapshot.blocks`). A block staged before a garbage
        collection's fence may have been collected, so :meth:`Volume.commit`
        refuses it (:class:`~aiolode.StaleWriteError`).
    seal
        Binds the fields above to the volume that staged the block:
        :meth:`Volume.commit` refuses a ref whose fields were changed after
        staging (``attrs.evolve``, a hand-made ref, one of another volume), so a
        moved or resized ref can never commit bytes to the wrong place.
    """

    offset: int
    length: int
    key: str
    checksum: str | None = None
    staged_at: datetime | None = None
    seal: str | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def end(self) -> int:
        """``offset + length``."""
        return self.offset + self.length


_SEAL_KEY = b"aiolode.volume.blockref.v1"


def seal_block(
    volume_id: str,
    offset: int,
    length: int,
    key: str,
    checksum: str | None,
    staged_at: datetime | None = None,
) -> str:
    """The seal of a block ref (a keyed digest of its fields and its volume).

    Not a secret: it catches refs changed or forged by mistake, not by intent.
    """
    h = hashlib.blake2b(digest_size=16, key=_SEAL_KEY)
    stamp = "" if staged_at is None else staged_at.isoformat()
    h.update(
        f"{volume_id}\x00{offset}\x00{length}\x00{key}\x00{checksum or ''}\x00{stamp}".encode()
    )
    return h.hexdigest()


class Piece(NamedTuple):
    """The part ``[lo, hi)`` (volume coordinates) of a read served by one block.

    A named tuple rather than an attrs class: lookups build one per touched
    block on the hot path, and tuple construction is several times cheaper.
    """

    block_offset: int
    block_length: int
    key: str
    checksum: str | None
    lo: int
    hi: int


@final
class Run:
    """One immutable, sorted, disjoint list of blocks (a decoded index segment).

    Offsets and lengths are ``array('q')``: 8 contiguous bytes per entry instead
    of a pointer to a scattered int object, so a binary search over a million
    blocks touches a few cache lines rather than twenty random ones. A sparse
    "fence" (every 64th offset) narrows each search to one 64-entry window.

    Parameters
    ----------
    offsets, lengths, names, checksums
        Parallel columns, sorted by offset (validated: sorted, disjoint, positive
        lengths, inside ``[0, total_length)``).
    key_prefix
        Prepended to ``names`` to form block store keys.
    """

    __slots__ = (
        "checksums",
        "count",
        "fence",
        "key_prefix",
        "lengths",
        "names",
        "nbytes",
        "offsets",
    )

    def __init__(
        self,
        offsets: Sequence[int],
        lengths: Sequence[int],
        names: list[str],
        checksums: list[str] | None,
        key_prefix: str,
    ) -> None:
        self.offsets = offsets if isinstance(offsets, array) else array("q", offsets)
        self.lengths = lengths if isinstance(lengths, array) else array("q", lengths)
        self.names = names
        self.checksums = checksums
        self.key_prefix = key_prefix
        self.count = len(self.offsets)
        self.nbytes = sum(self.lengths)
        self.fence = self.offsets[::_FENCE] if self.count > 4 * _FENCE else None

    def validate(self, total_length: int) -> str | None:
        """Return a description of the first broken invariant, or ``None``. O(n)."""
        prev_end = 0
        for off, ln in zip(self.offsets, self.lengths, strict=True):
            if ln <= 0:
                return f"block at {off} has non-positive length {ln}"
            if off < prev_end:
                return f"block at {off} overlaps or is out of order"
            prev_end = off + ln
        if prev_end > total_length:
            return f"a block ends at {prev_end}, past the volume length {total_length}"
        return None

    def block(self, i: int) -> BlockRef:
        """The ``i``-th block."""
        return BlockRef(
            self.offsets[i],
            self.lengths[i],
            self.key_prefix + self.names[i],
            None if self.checksums is None else self.checksums[i],
        )

    def first_touching(self, offset: int) -> int:
        """Index of the first block whose end is past ``offset``. O(log n)."""
        if self.fence is None:
            i = bisect.bisect_right(self.offsets, offset) - 1
        else:
            # fence[j-1] <= offset < fence[j]: the answer lies in that window.
            j = bisect.bisect_right(self.fence, offset)
            lo = (j - 1) * _FENCE if j else 0
            i = bisect.bisect_right(self.offsets, offset, lo, min(lo + _FENCE, self.count)) - 1
        if i < 0 or self.offsets[i] + self.lengths[i] <= offset:
            i += 1
        return i

    def ranges(self) -> Iterator[Range]:
        """Blocks as ``(offset, length)`` in order."""
        return zip(self.offsets, self.lengths, strict=True)

    @classmethod
    def from_blocks(cls, blocks: Sequence[BlockRef], key_prefix: str, *, checksums: bool) -> Run:
        """Build a run from blocks sorted by offset (keys must start with ``key_prefix``)."""
        cut = len(key_prefix)
        return cls(
            [b.offset for b in blocks],
            [b.length for b in blocks],
            [b.key[cut:] for b in blocks],
            [b.checksum or "" for b in blocks] if checksums else None,
            key_prefix,
        )

    @classmethod
    def merge(cls, runs: Sequence[Run], key_prefix: str) -> Run:
        """Merge disjoint runs into one sorted run. O(n log n) in C (timsort on runs).

        Timsort finds the pre-sorted runs, so this is close to a linear k-way
        merge, and it runs in C: several times faster than :func:`heapq.merge`.
        """
        with_ck = all(r.checksums is not None for r in runs)
        offsets = array("q")
        lengths = array("q")
        names: list[str] = []
        cks: list[str] | None = [] if with_ck else None
        for r in runs:
            offsets.extend(r.offsets)
            lengths.extend(r.lengths)
            names.extend(r.names)
            if cks is not None and r.checksums is not None:
                cks.extend(r.checksums)
        order = sorted(range(len(offsets)), key=offsets.__getitem__)
        return cls(
            array("q", [offsets[i] for i in order]),
            array("q", [lengths[i] for i in order]),
            [names[i] for i in order],
            None if cks is None else [cks[i] for i in order],
            key_prefix,
        )


def _by_lo(p: Piece) -> int:
    return p.lo


def lookup(runs: Iterable[Run], offset: int, length: int) -> tuple[list[Piece], list[Range]]:
    """Blocks serving ``[offset, offset+length)`` and the gaps no block covers.

    Cost: O(k log B + m) for k runs and m blocks touched.
    """
    end = offset + length
    pieces: list[Piece] = []
    for run in runs:
        offs = run.offsets
        lens = run.lengths
        i = run.first_touching(offset)
        while i < run.count and offs[i] < end:
            bo = offs[i]
            bl = lens[i]
            pieces.append(
                Piece(
                    bo,
                    bl,
                    run.key_prefix + run.names[i],
                    None if run.checksums is None else run.checksums[i],
                    max(bo, offset),
                    min(bo + bl, end),
                )
            )
            i += 1
    if len(pieces) > 1:
        pieces.sort(key=_by_lo)
    missing: list[Range] = []
    pos = offset
    for p in pieces:
        if p.lo > pos:
            missing.append((pos, p.lo - pos))
        pos = max(pos, p.hi)
    if pos < end:
        missing.append((pos, end - pos))
    return pieces, missing


def find_overlaps(runs: Iterable[Run], blocks: Sequence[BlockRef]) -> list[Range]:
    """Ranges of ``blocks`` that intersect any block in ``runs``. O(n k log B)."""
    runs = list(runs)
    hits: list[Range] = []
    for b in blocks:
        for run in runs:
            i = run.first_touching(b.offset)
            if i < run.count and run.offsets[i] < b.end:
                hits.append((b.offset, b.length))
                break
    return hits


def overlaps_among(blocks: Sequence[BlockRef]) -> list[Range]:
    """Ranges of blocks that intersect another block of the same list (sorted input)."""
    hits: list[Range] = []
    for prev, cur in itertools.pairwise(blocks):
        if cur.offset < prev.end:
            hits.extend(((prev.offset, prev.length), (cur.offset, cur.length)))
    return sorted(set(hits))


def coalesce(runs: Iterable[Run]) -> list[Range]:
    """The covered ranges of all runs, merged where adjacent. O(B log k)."""
    out: list[Range] = []
    cur_start = cur_end = -1
    for off, ln in heapq.merge(*(r.ranges() for r in runs)):
        if off == cur_end:
            cur_end = off + ln
            continue
        if cur_end >= 0:
            out.append((cur_start, cur_end - cur_start))
        cur_start, cur_end = off, off + ln
    if cur_end >= 0:
        out.append((cur_start, cur_end - cur_start))
    return out


def complement(covered: Iterable[Range], total_length: int) -> list[Range]:
    """The gaps of ``[0, total_length)`` not in the sorted, disjoint ``covered``."""
    out: list[Range] = []
    pos = 0
    for off, ln in covered:
        if off > pos:
            out.append((pos, off - pos))
        pos = off + ln
    if pos < total_length:
        out.append((pos, total_length - pos))
    return out
