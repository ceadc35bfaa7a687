"""WrapperStore: a delegating base for stores that wrap another store.

Counting, latency and fault-injecting stores (:mod:`aiolode.testing`) are built
on it, and so can users' own wrappers (logging, metrics, caching).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from ..errors import InvalidInputError
from ._base import Store

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator
    from datetime import timedelta

    from ..types import ObjectInfo, PutMode

__all__ = ["WrapperStore"]

S = TypeVar("S", bound=Store)
"""The type of the wrapped store."""


class WrapperStore(Store, Generic[S]):
    """A store that forwards every operation to an inner store.

    Generic in the inner store's type, so :attr:`inner` keeps it:
    ``WrapperStore(MemoryStore()).inner`` is a :class:`~aiolode.MemoryStore`
    to a type checker. Subclasses pass it on (``class Mine(WrapperStore[S])``)
    or fix it (``class Mine(WrapperStore[S3Store])``).

    Each adapter hook (``_put_bytes``, ``_get`` …) calls the inner store's
    *public* method, so the inner store validates its arguments again: the check
    is cheap, and it keeps a subclass that rewrites keys or data honest. Override
    the hooks you want to intercept and call ``super()`` (or ``self.inner``) to
    carry on.

    Designed for subclassing. A public call on the wrapper reaches the inner
    store as exactly one call of the same kind, with two exceptions inherited
    from :class:`Store`: :meth:`~Store.exists` and a zero-length
    :meth:`~Store.get_range` are one ``head``.

    Lifecycle: ``aopen``/``aclose`` (``async with wrapper:``) open and close the
    inner store. A wrapper needs no opening of its own, so wrapping a store that
    is already open and *not* entering the wrapper leaves the inner store's
    lifecycle with its owner.

    Parameters
    ----------
    inner
        The store to wrap.

    Raises
    ------
    InvalidInputError
        ``inner`` is not a :class:`Store`.
    """

    def __init__(self, inner: S) -> None:
        if not isinstance(inner, Store):
            raise InvalidInputError(f"inner must be an aiolode Store, not {type(inner).__name__}")
        self._inner = inner
        # Errors and benchmarks name the backend that actually holds the data.
        self.name = inner.name

    @property
    def inner(self) -> S:
        """The wrapped store (calls on it bypass this wrapper)."""
        return self._inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._inner!r})"

    @property
    def stamp_resolution(self) -> timedelta:
        """The inner store's."""
        return self._inner.stamp_resolution

    @property
    def objects_in_memory(self) -> bool:
        # docstring inherited
        return self._inner.objects_in_memory

    # arrow_filesystem() is deliberately not forwarded: pyarrow reading the
    # inner store directly would bypass whatever this wrapper does to calls.

    async def aopen(self) -> None:
        # docstring inherited
        await self._inner.aopen()

    async def aclose(self) -> None:
        # docstring inherited
        await self._inner.aclose()

    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        return await self._inner.put(key, data, mode=mode)

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        return await self._inner.put(key, chunks, mode=mode)

    async def _get(self, key: str) -> bytes:
        # docstring inherited
        return await self._inner.get(key)

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        return await self._inner.get_range(key, offset, length)

    def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        # Handing back the inner generator adds no per-chunk overhead; subclasses
        # that need to see chunks override this with an async generator.
        return self._inner.iter_bytes(key, chunk_size=chunk_size)

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        return await self._inner.head(key)

    async def _delete(self, key: str) -> None:
        # docstring inherited
        await self._inner.delete(key)

    def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        return self._inner.list(prefix)

    def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        # docstring inherited
        # Forward rather than inherit the default, which would derive directories
        # from a full listing instead of using the inner store's delimiter listing.
        return self._inner.list_dirs(prefix)
