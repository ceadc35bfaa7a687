"""VolumeReader: many small random reads of one snapshot through a page cache."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, final

from .._concurrency import bounded_map

if TYPE_CHECKING:
    from ._blocks import Piece
    from ._volume import Volume, VolumeSnapshot, _State

__all__ = ["VolumeReader"]


@final
class VolumeReader:
    """Random-access reads of one volume snapshot with a small LRU page cache.

    Obtain one with :meth:`Volume.open_reader`. Pages are ``page_size`` bytes of
    one block, aligned to the block start; when the volume records checksums a
    page is a whole block (fetched once, verified, then sliced), because a
    digest can only be checked over the whole block.

    Attributes
    ----------
    range_calls
        Store reads issued (range gets, or whole-block gets with checksums).
    bytes_fetched
        Bytes those reads returned.
    cache_hits
        Pages served from the cache.
    """

    def __init__(
        self,
        volume: Volume,
        state: _State,
        *,
        page_size: int,
        cache_pages: int,
        read_ahead: int,
    ) -> None:
        self._vol = volume
        self._state = state
        self._page = page_size
        self._max_pages = cache_pages
        self._ahead = read_ahead
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self.range_calls = 0
        self.bytes_fetched = 0
        self.cache_hits = 0

    def __repr__(self) -> str:
        return (
            f"VolumeReader({self._vol.id!r}, snapshot={self.snapshot.id}, "
            f"range_calls={self.range_calls}, bytes_fetched={self.bytes_fetched}, "
            f"cache_hits={self.cache_hits})"
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
        self._vol._check_read_range(offset, length)
        if length == 0:
            return b""
        pieces = self._vol._pieces(self._state, offset, length)
        if len(pieces) == 1:
            return await self._piece(pieces[0])
        out = bytearray(length)

        async def one(p: Piece) -> None:
            out[p.lo - offset : p.hi - offset] = await self._piece(p)

        await bounded_map(one, pieces, limit=self._vol._concurrency)
        return bytes(out)

    def _cached(self, key: tuple[str, int]) -> bytes | None:
        page = self._cache.get(key)
        if page is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
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
                whole = await self._vol._read_block(p)
                self.range_calls += 1
                self.bytes_fetched += len(whole)
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
            data = await self._vol._read_span(p, start, end - start)
            self.range_calls += 1
            self.bytes_fetched += len(data)
            for i in range(missing[0], stop):
                page = data[(i - missing[0]) * ps : (i - missing[0] + 1) * ps]
                pages[i] = page
                self._store((p.key, i), page)
        buf = b"".join(pages[i] for i in range(first, last + 1))
        cut = p.lo - bo - first * ps
        return buf[cut : cut + (p.hi - p.lo)]
