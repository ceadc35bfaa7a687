"""MemoryStore: the reference semantics of the store contract."""

from __future__ import annotations

import bisect
import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, final

import anyio.lowlevel
import attrs

from .._validate import check_int
from ..errors import (
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
)
from ..types import IfMatch, ObjectInfo, PutMode
from ._base import Store

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

__all__ = ["MemoryStore"]

_ETAG_COUNTER = itertools.count(1)
#: Copies at least this large run in a worker thread (a memcpy holds the GIL).
_COPY_OFFLOAD = 4 << 20


@attrs.frozen
class _Obj:
    data: bytes
    info: ObjectInfo


@final
class MemoryStore(Store):
    """An in-process store backed by a dict.

    The reference implementation of the store contract: conditional writes are
    atomic (a lock around check-and-set, never held across an await), every
    write gets a fresh etag, and listing pages through a sorted key index.
    Safe to share between tasks and between threads of one process.

    Parameters
    ----------
    page_size
        How many keys one listing page holds (tests shrink it to force paging).

    Raises
    ------
    InvalidInputError
        ``page_size`` is not a positive int.
    """

    name = "memory"

    def __init__(self, *, page_size: int = 1000) -> None:
        check_int("page_size", page_size)
        self._objects: dict[str, _Obj] = {}
        self._keys: list[str] = []  # sorted, for paging
        self._lock = threading.Lock()
        self._page_size = page_size

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._objects)} objects>)"

    @property
    def stamp_resolution(self) -> timedelta:
        """Exact: stamps are this process's clock."""
        return timedelta(0)

    @property
    def objects_in_memory(self) -> bool:
        # docstring inherited
        return True

    def _commit(self, key: str, data: bytes, mode: PutMode) -> ObjectInfo:
        with self._lock:
            current = self._objects.get(key)
            if mode == "create":
                if current is not None:
                    raise ObjectExistsError(f"object {key!r} already exists", key=key)
            elif isinstance(mode, IfMatch) and (current is None or current.info.etag != mode.etag):
                found = "missing" if current is None else f"etag {current.info.etag!r}"
                raise PreconditionFailedError(
                    f"object {key!r} is {found}, expected etag {mode.etag!r}",
                    key=key,
                    expected_etag=mode.etag,
                )
            info = ObjectInfo(
                key=key,
                size=len(data),
                etag=f'"m{next(_ETAG_COUNTER):x}"',
                last_modified=datetime.now(UTC),
            )
            if current is None:
                bisect.insort(self._keys, key)
            self._objects[key] = _Obj(data, info)
            return info

    def _lookup(self, key: str) -> _Obj:
        obj = self._objects.get(key)
        if obj is None:
            raise ObjectNotFoundError(f"object {key!r} not found", key=key)
        return obj

    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        if isinstance(data, bytes):
            await anyio.lowlevel.checkpoint()
        elif len(data) >= _COPY_OFFLOAD:
            # Copying hundreds of MiB holds the GIL for tens of ms: not on the loop.
            data = await anyio.to_thread.run_sync(bytes, data)
        else:
            await anyio.lowlevel.checkpoint()
            data = bytes(data)
        return self._commit(key, data, mode)

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        parts: list[bytes] = []
        size = 0
        async for c in chunks:
            # Chunks are copied (the caller may reuse its buffer); big ones off-loop.
            part = bytes(c) if len(c) < _COPY_OFFLOAD else await anyio.to_thread.run_sync(bytes, c)
            parts.append(part)
            size += len(part)
        if size >= _COPY_OFFLOAD and len(parts) > 1:
            data = await anyio.to_thread.run_sync(b"".join, parts)
        else:
            await anyio.lowlevel.checkpoint()
            data = b"".join(parts)
        return self._commit(key, data, mode)

    async def _get(self, key: str) -> bytes:
        # docstring inherited
        await anyio.lowlevel.checkpoint()
        return self._lookup(key).data

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        data = self._lookup(key).data
        if min(length, len(data) - offset) >= _COPY_OFFLOAD:
            return await anyio.to_thread.run_sync(lambda: data[offset : offset + length])
        await anyio.lowlevel.checkpoint()
        return data[offset : offset + length]

    async def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        await anyio.lowlevel.checkpoint()
        data = memoryview(self._lookup(key).data)
        for i in range(0, len(data), chunk_size):
            yield bytes(data[i : i + chunk_size])
            await anyio.lowlevel.checkpoint()

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        await anyio.lowlevel.checkpoint()
        return self._lookup(key).info

    async def _delete(self, key: str) -> None:
        # docstring inherited
        await anyio.lowlevel.checkpoint()
        with self._lock:
            if self._objects.pop(key, None) is not None:
                i = bisect.bisect_left(self._keys, key)
                del self._keys[i]

    async def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        after: str | None = None
        while True:
            await anyio.lowlevel.checkpoint()
            with self._lock:
                if after is None:
                    i = bisect.bisect_left(self._keys, prefix)
                else:
                    i = bisect.bisect_right(self._keys, after)
                page_keys = self._keys[i : i + self._page_size]
                page = [self._objects[k].info for k in page_keys if k.startswith(prefix)]
            for info in page:
                yield info
            if len(page) < len(page_keys) or len(page_keys) < self._page_size:
                return
            after = page_keys[-1]
