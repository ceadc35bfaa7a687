"""LatencyStore: a fixed (optionally jittered) round-trip time on every call."""

from __future__ import annotations

import random
from contextlib import aclosing
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar, final

import anyio

from .._validate import check_int
from ..store._wrapper import WrapperStore
from ._ops import Op, check_delay, check_op

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Mapping
    from datetime import datetime

    from ..store import Store
    from ..types import ObjectInfo, PendingUpload, PutMode

__all__ = ("LatencyStore",)

S = TypeVar("S", bound="Store")


@final
class LatencyStore(WrapperStore[S]):
    """Sleep before every call, as if the store were across a network.

    Each call first sleeps (``anyio.sleep``, so other tasks run meanwhile) for
    its operation's latency plus a uniform random ``[0, jitter)``, then calls the
    inner store. Listings sleep once per page of ``list_page_size`` entries
    (before the first entry, then before every ``list_page_size``-th), the way
    S3 pays one round trip per page; ``iter_bytes`` sleeps once before its first
    chunk and ``put_stream`` once before the upload (time to first byte, not
    bandwidth). Cancellation during the sleep cancels the call before it reaches
    the inner store.

    Used by benchmarks such as "64 writers at 60 ms latency": concurrency hides
    latency only if the code under test overlaps its calls.

    Parameters
    ----------
    store
        The store to wrap.
    latency
        Seconds to sleep before each call.
    jitter
        Extra seconds, drawn uniformly from ``[0, jitter)`` per call.
    per_op
        Latency overrides per operation, e.g. ``{"list": 0.2}`` (jitter still applies).
    list_page_size
        Entries per simulated listing page (S3 returns 1,000).
    seed
        Seed for the jitter, for repeatable runs.

    Raises
    ------
    InvalidInputError
        A latency or the jitter is negative or not a finite number; ``per_op``
        names an unknown operation; ``list_page_size`` is not a positive int;
        ``store`` is not a :class:`~aiolode.Store`.
    """

    def __init__(
        self,
        store: S,
        latency: float,
        *,
        jitter: float = 0.0,
        per_op: Mapping[Op, float] | None = None,
        list_page_size: int = 1000,
        seed: int | str | None = None,
    ) -> None:
        super().__init__(store)
        self._latency = check_delay(latency, "latency")
        self._jitter = check_delay(jitter, "jitter")
        overrides: dict[Op, float] = {}
        for op, value in (per_op or {}).items():
            overrides[check_op(op)] = check_delay(value, f"latency for {op!r}")
        self._per_op = overrides
        self._page_size = check_int("list_page_size", list_page_size)
        self._rng = random.Random(seed)
        # An attribute so tests can observe the delays without timing anything.
        self._sleep = anyio.sleep

    def __repr__(self) -> str:
        return f"LatencyStore({self.inner!r}, latency={self._latency})"

    @property
    def latency(self) -> float:
        """The default latency in seconds."""
        return self._latency

    @property
    def per_op(self) -> Mapping[Op, float]:
        """The per-operation overrides."""
        return MappingProxyType(self._per_op)

    def delay_for(self, op: Op) -> float:
        """Draw the delay for one call of ``op`` (latency plus jitter), in seconds.

        Raises
        ------
        InvalidInputError
            ``op`` is not an operation name.
        """
        base = self._per_op.get(check_op(op), self._latency)
        if self._jitter:
            base += self._rng.random() * self._jitter
        return float(base)

    async def _wait(self, op: Op) -> None:
        delay = self.delay_for(op)
        if delay:
            await self._sleep(delay)

    # -------------------------------------------------------------------- hooks
    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        await self._wait("put")
        return await super()._put_bytes(key, data, mode)

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        await self._wait("put_stream")
        return await super()._put_stream(key, chunks, mode)

    async def _get(self, key: str) -> bytes:
        # docstring inherited
        await self._wait("get")
        return await super()._get(key)

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        await self._wait("get_range")
        return await super()._get_range(key, offset, length)

    async def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        await self._wait("iter_bytes")
        async with aclosing(super()._iter_bytes(key, chunk_size)) as it:
            async for chunk in it:
                yield chunk

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        await self._wait("head")
        return await super()._head(key)

    async def _delete(self, key: str) -> None:
        # docstring inherited
        await self._wait("delete")
        await super()._delete(key)

    async def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        await self._wait("list")
        n = 0
        async with aclosing(super()._list(prefix)) as it:
            async for info in it:
                if n and n % self._page_size == 0:
                    await self._wait("list")
                n += 1
                yield info

    async def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        # docstring inherited
        await self._wait("list_dirs")
        n = 0
        async with aclosing(super()._list_dirs(prefix)) as it:
            async for d in it:
                if n and n % self._page_size == 0:
                    await self._wait("list_dirs")
                n += 1
                yield d

    async def _abandoned_uploads(
        self, prefix: str, older_than: datetime
    ) -> AsyncGenerator[PendingUpload, None]:
        # docstring inherited
        await self._wait("list_uploads")
        n = 0
        async with aclosing(super()._abandoned_uploads(prefix, older_than)) as it:
            async for upload in it:
                if n and n % self._page_size == 0:
                    await self._wait("list_uploads")
                n += 1
                yield upload

    async def _abort_upload(self, upload: PendingUpload) -> None:
        # docstring inherited
        await self._wait("abort_upload")
        await super()._abort_upload(upload)
