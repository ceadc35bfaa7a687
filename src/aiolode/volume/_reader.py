"""VolumeReader: many small random reads of one snapshot through a page cache."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, final

from .._concurrency import bounded_map
from ..types import ReadStats

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._blocks import Piece
    from ._index import BlockReads, VolumeIndex
    from ._snapshot import State, VolumeSnapshot

__all__ = ["VolumeReader"]


@final
class VolumeReader:
    """Random-access reads of one volume snapshot with a small LRU page cache.

    Obtain one with :meth:`Volume.open_reader`. Pages are ``page_size`` bytes of
    one block, aligned to the block start; when the volume records checksums a
    page is a whole block (fetched once, verified, then sliced), because a
    digest can only be checked over the whole block.
    """

    def __init__(
        self,
        index: VolumeIndex,
        reads: BlockReads,
        state: State,
        *,
        check_range: Callable[[object, object], tuple[int, int]],
        page_size: int,
        cache_pages: int,
        read_ahead: int,
    ) -> None:
        self._index = index
        self._reads = reads
        self._state = state
        self._check_range = check_range
        self._page = page_size
        self._max_pages = cache_pages
        self._ahead = read_ahead
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._requests = 0
        self._bytes = 0
        self._hits = 0
        self._misses = 0

    def __repr__(self) -> str:
        return f"VolumeReader(snapshot={self.snapshot.id}, {self.statistics()})"

    def statistics(self) -> ReadStats:
        """What the reads so far cost: store requests (range gets, or whole-block
        gets with checksums), bytes fetched, pages served from / missing in the
        cache. No I/O."""
        return ReadStats(
            requests=self._requests,
            bytes_fetched=self._bytes,
            cache_hits=self._hits,
            cache_misses=self._misses,
        )

    @property
    def snapshot(self) -> VolumeSnapshot:
        """The snapshot this reader reads."""
        return self._state.snapshot

    async def read(self, offset: int, length: int) -> bytes:
        """Return exactly ``length`` bytes at ``offset`` (same rules as ``read_at``).

        Cost: no store call when every page is cached; otherwise one range read
        per touched block covering its missing pages (plus ``read_ahead`` pages).

        Raises
        ------
        InvalidRangeError
            Negative, or past ``N``.
        RangeMissingError
            Part of the range is not committed (``.missing``).
        ChecksumMismatchError
            A block does not match its digest.
        FormatError
            A block is shorter than recorded.
        StorageError
            The store failed.
        """
        offset, length = self._check_range(offset, length)
        if length == 0:
            return b""
        pieces = self._index.pieces(self._state, offset, length)
        if len(pieces) == 1:
            return await self._piece(pieces[0])
        out = bytearray(length)

        async def one(p: Piece) -> None:
            out[p.lo - offset : p.hi - offset] = await self._piece(p)

        await bounded_map(one, pieces, limit=self._reads.concurrency)
        return bytes(out)

    def _cached(self, key: tuple[str, int]) -> bytes | None:
        page = self._cache.get(key)
        if page is not None:
            self._cache.move_to_end(key)
            self._hits += 1
        else:
            self._misses += 1
        return page

    def _store(self, key: tuple[str, int], page: bytes) -> None:
        self._cache[key] = page
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_pages:
            self._cache.popitem(last=False)

    async def _piece(self, p: Piece) -> bytes:
        bo = p.block_offset
        if p.checksum:
            whole = self._cached((p.key, -1))
            if whole is None:
                whole = await self._reads.block(p, self._state.snapshot.id)
                self._requests += 1
                self._bytes += len(whole)
                self._store((p.key, -1), whole)
            return whole[p.lo - bo : p.hi - bo]
        ps = self._page
        first = (p.lo - bo) // ps
        last = (p.hi - bo - 1) // ps
        pages: dict[int, bytes] = {}
        missing: list[int] = []
        for i in range(first, last + 1):
            page = self._cached((p.key, i))
            if page is None:
                missing.append(i)
            else:
                pages[i] = page
        if missing:
            final_page = (p.block_length - 1) // ps
            stop = min(missing[-1] + self._ahead, final_page) + 1
            start = missing[0] * ps
            end = min(stop * ps, p.block_length)
            data = await self._reads.span(p, start, end - start, self._state.snapshot.id)
            self._requests += 1
            self._bytes += len(data)
            for i in range(missing[0], stop):
                page = data[(i - missing[0]) * ps : (i - missing[0] + 1) * ps]
                pages[i] = page
                self._store((p.key, i), page)
        buf = b"".join(pages[i] for i in range(first, last + 1))
        cut = p.lo - bo - first * ps
        return buf[cut : cut + (p.hi - p.lo)]
