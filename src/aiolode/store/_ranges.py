"""RangeReader: random access to one object through true range requests, with a
small page cache shaped for Parquet footers (read the tail once, answer the
footer-length probe and the metadata read from memory)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, final

from .._keys import validate_key, validate_range
from .._validate import safe_repr
from ..errors import InvalidInputError
from ..types import ReadStats as RangeStats

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["RangeReader", "RangeStats"]

DEFAULT_PAGE_SIZE = 64 * 1024
DEFAULT_MAX_PAGES = 64
DEFAULT_TAIL_PREFETCH = 64 * 1024


def _positive(name: str, value: object, *, zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if zero else 1):
        raise InvalidInputError(
            f"{name} must be an int >= {0 if zero else 1}, not {safe_repr(value)}"
        )
    return value


@final
class RangeReader:
    """Random access to one stored object with a page cache.

    Reads in the last ``tail_prefetch`` bytes (where Parquet, Arrow IPC and
    most columnar formats keep their metadata) are served from fixed-size pages
    kept in an LRU cache; the pages such a read misses are fetched with **one**
    range request per contiguous run, widened to the whole tail. Opening a Parquet file (an 8-byte probe of the
    footer length, then the footer) therefore costs one request, and opening
    it again none. Other reads (column chunks) fetch exactly their bytes in one
    request and are not cached, so scans neither over-fetch nor evict the
    footer.

    Cost: ``read`` makes 0 store calls when its pages are cached, else one
    ``get_range`` per missing contiguous run (usually one); the size is learnt
    with one ``head`` unless given. Memory: at most ``page_size * max_pages``.

    Concurrent ``read`` calls are safe; two reads missing the same page may both
    fetch it.

    Parameters
    ----------
    store
        Where the object lives.
    key
        The object.
    size
        Its size if known (e.g. from a manifest): saves the ``head``.
    page_size
        Cache granularity in bytes.
    max_pages
        Cache capacity in pages.
    tail_prefetch
        Bytes at the end of the object that are fetched at once and cached
        (0: no caching at all).

    Raises
    ------
    InvalidKeyError
        The key is malformed.
    InvalidInputError
        A size or option is not a valid int.
    """

    def __init__(
        self,
        store: Store,
        key: str,
        *,
        size: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        tail_prefetch: int = DEFAULT_TAIL_PREFETCH,
    ) -> None:
        self._store = store
        self._key = validate_key(key)
        self._size = None if size is None else _positive("size", size, zero=True)
        self._page = _positive("page_size", page_size)
        self._max_pages = _positive("max_pages", max_pages)
        self._tail = _positive("tail_prefetch", tail_prefetch, zero=True)
        self._pages: OrderedDict[int, bytes] = OrderedDict()
        self._requests = 0
        self._bytes = 0
        self._heads = 0
        self._hits = 0
        self._misses = 0

    @property
    def key(self) -> str:
        """The object's key."""
        return self._key

    def statistics(self) -> RangeStats:
        """Counters so far (an immutable snapshot)."""
        return RangeStats(self._requests, self._bytes, self._heads, self._hits, self._misses)

    def __repr__(self) -> str:
        return f"RangeReader({self._key!r}, size={self._size!r}, {self.statistics()})"

    async def size(self) -> int:
        """The object's size in bytes (one ``head`` the first time, unless given).

        Raises
        ------
        ObjectNotFoundError
            The object does not exist.
        StorageError
            The store failed.
        """
        if self._size is None:
            info = await self._store.head(self._key)
            self._heads += 1
            self._size = info.size
        return self._size

    def clear(self) -> None:
        """Drop every cached page (counters are kept)."""
        self._pages.clear()

    async def _fetch(self, offset: int, length: int) -> bytes:
        data = await self._store.get_range(self._key, offset, length)
        self._requests += 1
        self._bytes += len(data)
        return data

    async def read(self, offset: int, length: int) -> bytes:
        """Return ``length`` bytes at ``offset``; short at the end of the object.

        Raises
        ------
        InvalidRangeError
            A negative or non-int offset or length.
        ObjectNotFoundError
            The object does not exist.
        StorageError
            The store failed.
        """
        validate_range(offset, length)
        size = await self.size()
        end = min(offset + length, size)
        if end <= offset:
            return b""
        first, last = offset // self._page, (end - 1) // self._page
        cached = all(i in self._pages for i in range(first, last + 1))
        in_tail = offset >= size - self._tail
        if not cached and (not in_tail or last - first >= self._max_pages):
            # A read outside the tail (a column chunk): exactly those bytes,
            # not cached, so scans neither over-fetch nor evict the footer.
            return await self._fetch(offset, end - offset)
        # Hold the cached pages now: a concurrent read may evict them while we await.
        got = {i: self._pages[i] for i in range(first, last + 1) if i in self._pages}
        for i in got:
            self._pages.move_to_end(i)
        missing = [i for i in range(first, last + 1) if i not in got]
        self._hits += len(got)
        self._misses += len(missing)
        last_page = (size - 1) // self._page
        if self._tail and missing and missing[-1] == last_page:
            # Widen to the tail: a Parquet reader's next read is the footer.
            tail_lo = max(size - self._tail, 0) // self._page
            tail_lo = max(tail_lo, last_page - self._max_pages + 1)
            extra = {i for i in range(tail_lo, last_page) if i not in self._pages}
            missing = sorted(set(missing) | extra)
        run_start = 0
        for n, idx in enumerate(missing):
            if n + 1 < len(missing) and missing[n + 1] == idx + 1:
                continue
            lo, hi = missing[run_start], idx
            run_start = n + 1
            start = lo * self._page
            data = await self._fetch(start, min((hi + 1) * self._page, size) - start)
            for i in range(lo, hi + 1):
                page = data[(i - lo) * self._page : (i - lo + 1) * self._page]
                got[i] = page
                self._pages[i] = page
                self._pages.move_to_end(i)
        out = bytearray()
        for i in range(first, last + 1):
            out += got[i]
        while len(self._pages) > self._max_pages:
            self._pages.popitem(last=False)
        skip = offset - first * self._page
        return bytes(out[skip : skip + (end - offset)])
