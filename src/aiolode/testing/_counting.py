"""CountingStore: exact store-call and byte counts, for cost-contract tests."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import aclosing, contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, final

import attrs

from ..store._wrapper import WrapperStore
from ._ops import OPS, Op, check_op

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterator
    from datetime import datetime

    from ..store import Store
    from ..types import ObjectInfo, PendingUpload, PutMode

__all__ = (
    "CountingStore",
    "Measurement",
    "StoreCounts",
)

S = TypeVar("S", bound="Store")


def _nbytes(data: bytes | bytearray | memoryview) -> int:
    # len() of a memoryview counts items, not bytes, when its format is not "B".
    return data.nbytes if isinstance(data, memoryview) else len(data)


def _freeze_calls(calls: Mapping[Op, int]) -> Mapping[Op, int]:
    return MappingProxyType({op: int(calls.get(op, 0)) for op in OPS})


@attrs.frozen
class StoreCounts:
    """Counts of the calls that reached a store, at one moment or over an interval.

    Subtract two counts to get what happened in between (``after - before``).

    Attributes
    ----------
    calls
        Calls per operation; every :data:`~aiolode.testing.OPS` name is present.
    bytes_written
        Bytes handed to the store by ``put`` and ``put_stream``.
    bytes_read
        Bytes the store returned from ``get``, ``get_range`` and ``iter_bytes``.
    listed
        Entries yielded by ``list``, ``list_dirs`` and ``list_uploads``.
    """

    calls: Mapping[Op, int] = attrs.field(converter=_freeze_calls, factory=dict)
    bytes_written: int = 0
    bytes_read: int = 0
    listed: int = 0

    @property
    def total_calls(self) -> int:
        """All calls, every operation included."""
        return sum(self.calls.values())

    def __getitem__(self, op: Op) -> int:
        """Calls of one operation: ``counts["put"]``.

        Raises
        ------
        InvalidInputError
            ``op`` is not an operation name.
        """
        return self.calls[check_op(op)]

    def __sub__(self, other: StoreCounts) -> StoreCounts:
        if not isinstance(other, StoreCounts):
            return NotImplemented
        return StoreCounts(
            calls={op: self.calls[op] - other.calls[op] for op in OPS},
            bytes_written=self.bytes_written - other.bytes_written,
            bytes_read=self.bytes_read - other.bytes_read,
            listed=self.listed - other.listed,
        )

    def nonzero(self) -> dict[Op, int]:
        """The operations that were called, with their counts (for messages)."""
        return {op: n for op, n in self.calls.items() if n}

    def __repr__(self) -> str:
        ops = ", ".join(f"{op}={n}" for op, n in self.nonzero().items())
        return (
            f"StoreCounts({ops}{', ' if ops else ''}total_calls={self.total_calls}, "
            f"bytes_written={self.bytes_written}, bytes_read={self.bytes_read}, "
            f"listed={self.listed})"
        )


@attrs.define
class Measurement:
    """The store calls made inside one :meth:`CountingStore.measure` block.

    ``counts`` is live while the block runs and frozen when it exits.
    """

    _store: CountingStore[Any]
    _start: StoreCounts
    _result: StoreCounts | None = None

    @property
    def counts(self) -> StoreCounts:
        """Calls and bytes since the block was entered (until it exited)."""
        if self._result is not None:
            return self._result
        return self._store.snapshot() - self._start

    def _finish(self) -> None:
        self._result = self._store.snapshot() - self._start


@final
class CountingStore(WrapperStore[S]):
    """Count every call (and every byte) that reaches the wrapped store.

    Cost-contract tests wrap a store in it and assert exact counts, so the rules
    are precise:

    - each public call on this store counts as **one** call of its
      :data:`~aiolode.testing.Op`, made when the call reaches the inner store,
      whether it then succeeds or fails. Invalid arguments are refused before
      that and count nothing;
    - ``put`` with bytes-like data is ``"put"``; with an async iterable it is
      ``"put_stream"`` (one call, however many chunks or multipart parts);
    - :meth:`~aiolode.Store.exists` and a zero-length ``get_range`` are one
      ``"head"`` each;
    - ``iter_bytes``, ``list``, ``list_dirs`` and ``list_uploads``
      (:meth:`~aiolode.Store.abandoned_uploads`) count when iteration starts (an
      iterator that is never iterated makes no call), once per call however
      many pages the backend fetches; ``listed`` counts the entries the
      listings yield;
    - ``bytes_written`` counts bytes handed to the inner store (for a stream, as
      it consumes them); ``bytes_read`` counts bytes it returned.

    Counting is thread-safe. Cost: none beyond the wrapped store's, plus one
    ``(op, key)`` tuple per call when ``record=True``.

    Parameters
    ----------
    store
        The store to wrap.
    record
        Also keep :attr:`calls`, the list of ``(op, key)`` in call order (the key
        is the prefix for listings), to explain a count that is off.

    Raises
    ------
    InvalidInputError
        ``store`` is not a :class:`~aiolode.Store`.

    Examples
    --------
    >>> counting = CountingStore(MemoryStore())            # doctest: +SKIP
    >>> with counting.measure() as m:                      # doctest: +SKIP
    ...     await dataset.latest()
    >>> assert m.counts.total_calls <= 2, m.counts         # doctest: +SKIP
    """

    def __init__(self, store: S, *, record: bool = False) -> None:
        super().__init__(store)
        self._lock = threading.Lock()
        self._record = bool(record)
        self._calls: dict[Op, int] = dict.fromkeys(OPS, 0)
        self._bytes_written = 0
        self._bytes_read = 0
        self._listed = 0
        self._log: list[tuple[Op, str]] = []

    # ------------------------------------------------------------------ results
    @property
    def counts(self) -> Mapping[Op, int]:
        """Calls per operation so far (a read-only live view; every op present)."""
        return MappingProxyType(self._calls)

    @property
    def total_calls(self) -> int:
        """All calls so far, every operation included."""
        with self._lock:
            return sum(self._calls.values())

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the inner store by ``put`` and ``put_stream``."""
        return self._bytes_written

    @property
    def bytes_read(self) -> int:
        """Bytes returned by the inner store's ``get``, ``get_range``, ``iter_bytes``."""
        return self._bytes_read

    @property
    def listed(self) -> int:
        """Entries yielded by ``list``, ``list_dirs`` and ``list_uploads``."""
        return self._listed

    @property
    def calls(self) -> list[tuple[Op, str]]:
        """``(op, key)`` per call in order; empty unless created with ``record=True``."""
        with self._lock:
            return list(self._log)

    def snapshot(self) -> StoreCounts:
        """Return the counts so far as an immutable :class:`StoreCounts`."""
        with self._lock:
            return StoreCounts(
                calls=dict(self._calls),
                bytes_written=self._bytes_written,
                bytes_read=self._bytes_read,
                listed=self._listed,
            )

    def reset(self) -> None:
        """Set every count back to zero (and clear :attr:`calls`)."""
        with self._lock:
            # In place, so views returned by ``counts`` stay live.
            self._calls.update(dict.fromkeys(OPS, 0))
            self._bytes_written = self._bytes_read = self._listed = 0
            self._log.clear()

    @contextmanager
    def measure(self) -> Iterator[Measurement]:
        """Count the calls made inside a ``with`` block.

        Calls made by other tasks while the block runs are counted too; measure
        with nothing else using the store.

        Do not call :meth:`reset` inside the block: the result would be negative.
        """
        m = Measurement(self, self.snapshot())
        try:
            yield m
        finally:
            m._finish()

    # ----------------------------------------------------------------- counting
    def _count(self, op: Op, key: str) -> None:
        with self._lock:
            self._calls[op] += 1
            if self._record:
                self._log.append((op, key))

    def _add_read(self, n: int) -> None:
        with self._lock:
            self._bytes_read += n

    def _add_written(self, n: int) -> None:
        with self._lock:
            self._bytes_written += n

    def _add_listed(self) -> None:
        with self._lock:
            self._listed += 1

    async def _tally_writes(self, chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        async for chunk in chunks:
            self._add_written(_nbytes(chunk))
            yield chunk

    # -------------------------------------------------------------------- hooks
    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        self._count("put", key)
        self._add_written(_nbytes(data))
        return await super()._put_bytes(key, data, mode)

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        self._count("put_stream", key)
        async with aclosing(self._tally_writes(chunks)) as counted:
            return await super()._put_stream(key, counted, mode)

    async def _get(self, key: str) -> bytes:
        # docstring inherited
        self._count("get", key)
        data = await super()._get(key)
        self._add_read(len(data))
        return data

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        self._count("get_range", key)
        data = await super()._get_range(key, offset, length)
        self._add_read(len(data))
        return data

    async def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        self._count("iter_bytes", key)
        async with aclosing(super()._iter_bytes(key, chunk_size)) as it:
            async for chunk in it:
                self._add_read(len(chunk))
                yield chunk

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        self._count("head", key)
        return await super()._head(key)

    async def _delete(self, key: str) -> None:
        # docstring inherited
        self._count("delete", key)
        await super()._delete(key)

    async def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        self._count("list", prefix)
        async with aclosing(super()._list(prefix)) as it:
            async for info in it:
                self._add_listed()
                yield info

    async def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        # docstring inherited
        self._count("list_dirs", prefix)
        async with aclosing(super()._list_dirs(prefix)) as it:
            async for d in it:
                self._add_listed()
                yield d

    async def _abandoned_uploads(
        self, prefix: str, older_than: datetime
    ) -> AsyncGenerator[PendingUpload, None]:
        # docstring inherited
        self._count("list_uploads", prefix)
        async with aclosing(super()._abandoned_uploads(prefix, older_than)) as it:
            async for upload in it:
                self._add_listed()
                yield upload

    async def _abort_upload(self, upload: PendingUpload) -> None:
        # docstring inherited
        self._count("abort_upload", upload.key)
        await super()._abort_upload(upload)
