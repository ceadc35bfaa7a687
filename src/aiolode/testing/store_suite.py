"""The store conformance suite: one contract, every adapter.

Subclass :class:`StoreConformance` in a pytest module, parametrised by your store
type (``class TestMyStore(StoreConformance[MyStore])``), and provide:

- a ``store`` fixture yielding an opened, empty store whose listing page size is
  at most :attr:`StoreConformance.page_size` (so paging is exercised);
- the three backdoors, abstract here, that bypass the API under test:
  ``raw_get(store, key) -> bytes | None`` (``None`` for a missing key),
  ``raw_put(store, key, data)`` and ``raw_keys(store) -> set[str]`` (every key
  physically present, used to prove that failed writes leave nothing behind);

and an ``anyio_backend`` fixture (parametrise it over ``"asyncio"`` and
``"trio"``). Every test is an ``async def`` run by the anyio pytest plugin.

A class named ``Test*`` (one pytest collects) that lacks the ``store`` fixture or
a backdoor is refused when it is defined, so the module fails to import: pytest
silently skips abstract classes, and the suite would otherwise pass by never
running. Intermediate bases with other names may leave them to subclasses.
"""

from __future__ import annotations

import abc
import importlib.util
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import anyio
import anyio.to_thread
import pytest

from ..errors import (
    InvalidInputError,
    InvalidKeyError,
    InvalidRangeError,
    MissingDependencyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
)
from ..store._base import ArrowFilesystem, Store
from ..types import IfMatch, ObjectInfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = (
    "BAD_KEYS",
    "StoreConformance",
)

BAD_KEYS: list[Any] = [
    "",
    "/abs",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "../a",
    "a/../../b",
    "a/..",
    "nul\x00byte",
    "back\\slash",
    "ctrl\x01char",
    "x" * 1025,
    "\ud800lone-surrogate",
    b"bytes-key",
    None,
    42,
]
"""Keys every store must refuse with :class:`InvalidKeyError` before any I/O."""

GOOD_KEYS = [
    "a",
    "nested/deeply/path/file.bin",
    "unicodé/日本語/ключ 🚀.txt",
    "spaces and+plus=equals&amp;",
    ".hidden/file",
    "a..b/c...",
    "x" * 200,
]


async def _chunks(parts: list[bytes], delay: float = 0.0) -> AsyncIterator[bytes]:
    for p in parts:
        if delay:
            await anyio.sleep(delay)
        yield p


class _Boom(Exception):
    pass


S = TypeVar("S", bound=Store)
"""The store type under test."""


class StoreConformance(abc.ABC, Generic[S]):
    """Conformance tests for one store type; see the module docstring for what to provide.

    Raises
    ------
    TypeError
        When a ``Test*`` subclass is defined without the ``store`` fixture or
        one of the abstract backdoors.
    """

    #: Largest listing page size the ``store`` fixture may use.
    page_size: ClassVar[int] = 10
    #: Size of the "large" payload (several MiB by default).
    large_size: ClassVar[int] = 5 * 1024 * 1024 + 123
    #: Concurrent writers in the race tests.
    racers: ClassVar[int] = 12

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("Test"):
            return  # a base for other suites: they are checked when defined
        # ABCMeta computes __abstractmethods__ only after this hook: look ourselves.
        inherited = {
            n for base in cls.__mro__[1:] for n in getattr(base, "__abstractmethods__", ())
        }
        missing = sorted(
            n for n in inherited if getattr(getattr(cls, n, None), "__isabstractmethod__", False)
        )
        if not callable(getattr(cls, "store", None)):
            missing.insert(0, "the store fixture")
        if missing:
            raise TypeError(
                f"{cls.__qualname__} runs the store conformance suite but does not "
                f"provide {', '.join(missing)}"
            )

    @abc.abstractmethod
    async def raw_get(self, store: S, key: str) -> bytes | None:
        """Backdoor read bypassing the store API (``None`` if missing).

        Raises
        ------
        Exception
            Whatever the backend raises: the test fails.
        """

    @abc.abstractmethod
    async def raw_put(self, store: S, key: str, data: bytes) -> None:
        """Backdoor write bypassing the store API (creating directories as needed).

        Raises
        ------
        Exception
            Whatever the backend raises: the test fails.
        """

    @abc.abstractmethod
    async def raw_keys(self, store: S) -> set[str]:
        """Every key physically present, bypassing the store API.

        Include anything a write may leave behind (temp files, pending uploads),
        named so that it can never equal a key.

        Raises
        ------
        Exception
            Whatever the backend raises: the test fails.
        """

    # ----------------------------------------------------------------- round trips
    @pytest.mark.parametrize("size", [0, 1, 1000])
    async def test_roundtrip_sizes(self, store: S, size: int) -> None:
        data = os.urandom(size)
        info = await store.put("k", data)
        assert isinstance(info, ObjectInfo)
        assert info.key == "k"
        assert info.size == size
        assert info.etag
        assert await store.get("k") == data
        assert await self.raw_get(store, "k") == data

    async def test_roundtrip_large(self, store: S) -> None:
        data = os.urandom(self.large_size)
        await store.put("big/blob", data)
        assert await store.get("big/blob") == data
        got = b"".join([c async for c in store.iter_bytes("big/blob", chunk_size=1 << 20)])
        assert got == data

    @pytest.mark.parametrize("key", GOOD_KEYS)
    async def test_roundtrip_keys(self, store: S, key: str) -> None:
        await store.put(key, key.encode())
        assert await store.get(key) == key.encode()
        assert await store.exists(key)
        assert [i.key async for i in store.list()] == [key]

    async def test_bytes_like_inputs(self, store: S) -> None:
        await store.put("ba", bytearray(b"bytearray"))
        await store.put("mv", memoryview(b"xxmemoryview")[2:])
        assert await store.get("ba") == b"bytearray"
        assert await store.get("mv") == b"memoryview"

    async def test_raw_backdoor_visible(self, store: S) -> None:
        await self.raw_put(store, "dir/raw", b"written behind the API")
        assert await store.get("dir/raw") == b"written behind the API"
        assert (await store.head("dir/raw")).size == len(b"written behind the API")

    async def test_head(self, store: S) -> None:
        info = await store.put("h/obj", b"12345")
        head = await store.head("h/obj")
        assert head.key == "h/obj"
        assert head.size == 5
        assert head.etag == info.etag
        assert head.last_modified is not None
        assert head.last_modified.tzinfo is not None

    async def test_exists(self, store: S) -> None:
        assert not await store.exists("e")
        await store.put("e", b"")
        assert await store.exists("e")
        assert not await store.exists("e/child")

    # ------------------------------------------------------------------- put modes
    async def test_create_refuses_existing(self, store: S) -> None:
        await store.put("c", b"first")
        with pytest.raises(ObjectExistsError) as ei:
            await store.put("c", b"second")
        assert ei.value.key == "c"
        assert await store.get("c") == b"first"

    async def test_overwrite(self, store: S) -> None:
        a = await store.put("o", b"first")
        b = await store.put("o", b"second!", mode="overwrite")
        assert await store.get("o") == b"second!"
        assert b.size == 7
        assert a.etag != b.etag
        c = await store.put("o2", b"fresh", mode="overwrite")
        assert c.size == 5

    async def test_etag_changes_on_every_write(self, store: S) -> None:
        etags = {(await store.put("same", b"same", mode="overwrite")).etag}
        for _ in range(4):
            prev = (await store.head("same")).etag
            info = await store.put("same", b"diff" + os.urandom(4), mode=IfMatch(prev))
            etags.add(info.etag)
        assert len(etags) == 5

    async def test_if_match(self, store: S) -> None:
        a = await store.put("m", b"v1")
        b = await store.put("m", b"v2", mode=IfMatch(a.etag))
        assert await store.get("m") == b"v2"
        assert (await store.head("m")).etag == b.etag
        with pytest.raises(PreconditionFailedError) as ei:
            await store.put("m", b"v3", mode=IfMatch(a.etag))
        assert ei.value.key == "m"
        assert await store.get("m") == b"v2"

    async def test_if_match_missing_key(self, store: S) -> None:
        with pytest.raises(PreconditionFailedError):
            await store.put("nothing", b"x", mode=IfMatch('"some-etag"'))
        assert not await store.exists("nothing")

    @pytest.mark.parametrize("mode", ["append", None, "", 3, IfMatch("")])
    async def test_bad_mode(self, store: S, mode: Any) -> None:
        with pytest.raises(InvalidInputError):
            await store.put("bm", b"x", mode=mode)
        assert await self.raw_keys(store) == set()

    @pytest.mark.parametrize("data", ["text", 12, None, [b"a", b"b"]])
    async def test_bad_data(self, store: S, data: Any) -> None:
        with pytest.raises(InvalidInputError):
            await store.put("bd", data)
        assert await self.raw_keys(store) == set()

    # ---------------------------------------------------------------------- races
    async def test_create_race_exactly_one_wins(self, store: S) -> None:
        winners: list[int] = []
        losers: list[int] = []

        async def racer(i: int) -> None:
            try:
                await store.put("race/create", f"writer-{i}".encode())
            except ObjectExistsError:
                losers.append(i)
            else:
                winners.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(self.racers):
                tg.start_soon(racer, i)
        assert len(winners) == 1, winners
        assert len(losers) == self.racers - 1
        assert await store.get("race/create") == f"writer-{winners[0]}".encode()

    async def test_cas_race_exactly_one_wins(self, store: S) -> None:
        base = await store.put("race/cas", b"base")
        winners: list[int] = []
        losers: list[int] = []

        async def racer(i: int) -> None:
            try:
                await store.put("race/cas", f"writer-{i}".encode(), mode=IfMatch(base.etag))
            except PreconditionFailedError:
                losers.append(i)
            else:
                winners.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(self.racers):
                tg.start_soon(racer, i)
        assert len(winners) == 1, winners
        assert len(losers) == self.racers - 1
        assert await store.get("race/cas") == f"writer-{winners[0]}".encode()

    # --------------------------------------------------------------------- ranges
    @pytest.mark.parametrize(
        ("offset", "length"),
        [
            (0, 1),
            (0, 10),
            (0, 100),  # whole object
            (3, 4),
            (9, 1),  # last byte
            (5, 50),  # runs past EOF: short
            (10, 5),  # offset == size: empty
            (50, 5),  # offset past EOF: empty
            (0, 0),
            (7, 0),
            (99, 0),
        ],
    )
    async def test_get_range_edges(self, store: S, offset: int, length: int) -> None:
        data = b"0123456789"
        await store.put("r", data)
        assert await store.get_range("r", offset, length) == data[offset : offset + length]

    async def test_get_range_empty_object(self, store: S) -> None:
        await store.put("empty", b"")
        assert await store.get_range("empty", 0, 10) == b""
        assert await store.get_range("empty", 5, 1) == b""

    async def test_get_range_large(self, store: S) -> None:
        data = os.urandom(3 * 1024 * 1024)
        await store.put("rl", data)
        for off, ln in [(0, 1 << 20), (1 << 20, 1 << 21), (len(data) - 10, 100), (12345, 678)]:
            assert await store.get_range("rl", off, ln) == data[off : off + ln]

    @pytest.mark.parametrize(("offset", "length"), [(-1, 1), (0, -1), (-5, -5)])
    async def test_get_range_negative(self, store: S, offset: int, length: int) -> None:
        await store.put("rn", b"abc")
        with pytest.raises(InvalidRangeError):
            await store.get_range("rn", offset, length)

    @pytest.mark.parametrize(("offset", "length"), [(0, 0), (0, 5), (10, 5)])
    async def test_get_range_missing(self, store: S, offset: int, length: int) -> None:
        with pytest.raises(ObjectNotFoundError):
            await store.get_range("missing", offset, length)

    # ------------------------------------------------------------------ streaming
    async def test_iter_bytes_chunks(self, store: S) -> None:
        data = os.urandom(100_000)
        await store.put("it", data)
        chunks = [c async for c in store.iter_bytes("it", chunk_size=7000)]
        assert b"".join(chunks) == data
        assert all(0 < len(c) <= 7000 for c in chunks)

    async def test_iter_bytes_empty_and_missing(self, store: S) -> None:
        await store.put("ie", b"")
        assert b"".join([c async for c in store.iter_bytes("ie")]) == b""
        with pytest.raises(ObjectNotFoundError):
            async for _ in store.iter_bytes("nope"):
                pass

    async def test_iter_bytes_early_close(self, store: S) -> None:
        await store.put("ic", os.urandom(50_000))
        it = store.iter_bytes("ic", chunk_size=1000)
        first = await it.__anext__()
        assert len(first) == 1000
        await it.aclose()

    async def test_stream_put_roundtrip(self, store: S) -> None:
        parts = [os.urandom(n) for n in (1, 1000, 65_536, 0, 3 * 1024 * 1024 + 7, 5)]
        seen: list[int] = []
        info = await store.put("s/stream", _chunks(parts), progress=seen.append)
        data = b"".join(parts)
        assert info.size == len(data)
        assert await store.get("s/stream") == data
        assert seen == sorted(seen)
        assert seen[-1] == len(data)

    async def test_stream_put_async_progress(self, store: S) -> None:
        seen: list[int] = []

        async def progress(n: int) -> None:
            await anyio.lowlevel.checkpoint()
            seen.append(n)

        await store.put("s/ap", _chunks([b"ab", b"cde"]), progress=progress)
        assert seen == [2, 5]

    async def test_stream_put_empty(self, store: S) -> None:
        info = await store.put("s/empty", _chunks([]))
        assert info.size == 0
        assert await store.get("s/empty") == b""

    async def test_stream_put_create_refuses_existing(self, store: S) -> None:
        await store.put("s/exists", b"original")
        with pytest.raises(ObjectExistsError):
            await store.put("s/exists", _chunks([b"new", b"data"]))
        assert await store.get("s/exists") == b"original"
        assert await self.raw_keys(store) == {"s/exists"}

    async def test_stream_put_overwrite_and_if_match(self, store: S) -> None:
        a = await store.put("s/ow", b"original")
        b = await store.put("s/ow", _chunks([b"new ", b"data"]), mode=IfMatch(a.etag))
        assert await store.get("s/ow") == b"new data"
        with pytest.raises(PreconditionFailedError):
            await store.put("s/ow", _chunks([b"x"]), mode=IfMatch(a.etag))
        await store.put("s/ow", _chunks([b"over"]), mode="overwrite")
        assert await store.get("s/ow") == b"over"
        assert b.etag != (await store.head("s/ow")).etag

    async def test_stream_put_failure_leaves_nothing(self, store: S) -> None:
        async def failing() -> AsyncIterator[bytes]:
            yield os.urandom(3 * 1024 * 1024)
            yield os.urandom(1024)
            raise _Boom("source died")

        with pytest.raises(_Boom):
            await store.put("s/fail", failing())
        assert not await store.exists("s/fail")
        assert await self.raw_keys(store) == set()

    async def test_stream_put_failure_keeps_old_version(self, store: S) -> None:
        await store.put("s/keep", b"old")

        async def failing() -> AsyncIterator[bytes]:
            yield b"partial"
            raise _Boom("source died")

        with pytest.raises(_Boom):
            await store.put("s/keep", failing(), mode="overwrite")
        assert await store.get("s/keep") == b"old"
        assert await self.raw_keys(store) == {"s/keep"}

    async def test_stream_put_cancelled_leaves_nothing(self, store: S) -> None:
        started = anyio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield os.urandom(3 * 1024 * 1024)
            started.set()
            while True:
                await anyio.sleep(0.01)
                yield b"more"

        async with anyio.create_task_group() as tg:
            tg.start_soon(store.put, "s/cancel", slow())
            await started.wait()
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        # Cleanup after cancellation is shielded and finished before put returned.
        assert not await store.exists("s/cancel")
        assert await self.raw_keys(store) == set()

    async def test_stream_put_bad_chunk_type(self, store: S) -> None:
        with pytest.raises(InvalidInputError):
            await store.put("s/bad", _chunks(["str"]))  # type: ignore[list-item]
        assert await self.raw_keys(store) == set()

    # -------------------------------------------------------------------- delete
    async def test_delete_idempotent(self, store: S) -> None:
        await store.put("d", b"x")
        await store.delete("d")
        assert not await store.exists("d")
        await store.delete("d")
        await store.delete("never/existed")
        with pytest.raises(ObjectNotFoundError):
            await store.get("d")

    async def test_delete_then_create(self, store: S) -> None:
        await store.put("dc", b"1")
        await store.delete("dc")
        await store.put("dc", b"2")
        assert await store.get("dc") == b"2"

    # ------------------------------------------------------------------ not found
    async def test_not_found_errors(self, store: S) -> None:
        for call in (store.get, store.head):
            with pytest.raises(ObjectNotFoundError) as ei:
                await call("no/such/key")
            assert ei.value.key == "no/such/key"
            assert isinstance(ei.value, LookupError)

    # ------------------------------------------------------------------- listing
    async def test_list_pages_and_order(self, store: S) -> None:
        n = self.page_size * 2 + 3
        keys = sorted(f"p/{i:04d}" for i in range(n))
        for k in reversed(keys):
            await store.put(k, k.encode())
        await store.put("other/x", b"")
        infos = [i async for i in store.list("p/")]
        assert [i.key for i in infos] == keys
        assert all(i.size == 6 for i in infos)
        assert all(i.etag for i in infos)
        all_keys = [i.key async for i in store.list()]
        assert all_keys == sorted([*keys, "other/x"])

    async def test_list_prefix_semantics(self, store: S) -> None:
        for k in ["a/b", "a/bc", "a/b/c", "a-b", "a0", "ab", "b"]:
            await store.put(k, b"")
        assert [i.key async for i in store.list("a/b")] == ["a/b", "a/b/c", "a/bc"]
        assert [i.key async for i in store.list("a/b/")] == ["a/b/c"]
        assert [i.key async for i in store.list("a")] == ["a-b", "a/b", "a/b/c", "a/bc", "a0", "ab"]
        assert [i.key async for i in store.list("zzz")] == []
        assert [i.key async for i in store.list("a/b/c/d/")] == []

    async def test_list_dirs(self, store: S) -> None:
        for k in ["d/a/1", "d/a/2", "d/a-b/x", "d/b/c/d", "d/file", "d/z/1", "e/1"]:
            await store.put(k, b"")
        assert [d async for d in store.list_dirs("d/")] == ["d/a-b/", "d/a/", "d/b/", "d/z/"]
        assert [d async for d in store.list_dirs("")] == ["d/", "e/"]
        assert [d async for d in store.list_dirs("d/b/")] == ["d/b/c/"]
        assert [d async for d in store.list_dirs("nothing/")] == []

    async def test_list_empty_store(self, store: S) -> None:
        assert [i async for i in store.list()] == []

    async def test_read_after_write(self, store: S) -> None:
        await store.put("raw/1", b"one")
        assert [i.key async for i in store.list("raw/")] == ["raw/1"]
        await store.put("raw/1", b"one-two", mode="overwrite")
        assert (await store.head("raw/1")).size == 7
        assert await store.get("raw/1") == b"one-two"
        await store.delete("raw/1")
        assert [i.key async for i in store.list("raw/")] == []

    # --------------------------------------------------------------- invalid keys
    @pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
    async def test_invalid_keys(self, store: S, key: Any) -> None:
        with pytest.raises(InvalidKeyError):
            await store.put(key, b"x")
        with pytest.raises(InvalidKeyError):
            await store.put(key, _chunks([b"x"]))
        with pytest.raises(InvalidKeyError):
            await store.get(key)
        with pytest.raises(InvalidKeyError):
            await store.get_range(key, 0, 1)
        with pytest.raises(InvalidKeyError):
            await store.head(key)
        with pytest.raises(InvalidKeyError):
            await store.exists(key)
        with pytest.raises(InvalidKeyError):
            await store.delete(key)
        with pytest.raises(InvalidKeyError):
            store.iter_bytes(key)
        assert await self.raw_keys(store) == set()

    @pytest.mark.parametrize("prefix", ["/abs", "a//b", "../x", "x/../y", "nul\x00", "b\\s", 5])
    async def test_invalid_prefixes(self, store: S, prefix: Any) -> None:
        with pytest.raises(InvalidKeyError):
            store.list(prefix)

    # ------------------------------------------------------------ pending uploads
    async def test_no_abandoned_uploads_after_normal_writes(self, store: S) -> None:
        """Writes that finish, fail or are cancelled leave nothing for a reaper."""
        await store.put("up/small", b"x")
        await store.put("up/large", _chunks([os.urandom(self.large_size)]))
        await store.put("up/small", _chunks([b"y", b"z"]), mode="overwrite")

        async def failing() -> AsyncIterator[bytes]:
            yield os.urandom(self.large_size)
            raise _Boom("source died")

        with pytest.raises(_Boom):
            await store.put("up/failed", failing(), mode="overwrite")
        everything = datetime.now(UTC) + timedelta(days=365)
        past = datetime.now(UTC) - timedelta(days=365)
        for prefix in ("", "up/", "up/l"):
            assert [u async for u in store.abandoned_uploads(prefix, older_than=everything)] == []
            assert [u async for u in store.abandoned_uploads(prefix, older_than=past)] == []
        # Any timezone is accepted.
        east = everything.astimezone(timezone(timedelta(hours=9)))
        assert [u async for u in store.abandoned_uploads(older_than=east)] == []

    @pytest.mark.parametrize("older_than", [None, "2020-01-01", 0, datetime(2020, 1, 1)])
    async def test_abandoned_uploads_refuses_bad_cutoffs(self, store: S, older_than: Any) -> None:
        with pytest.raises(InvalidInputError):
            store.abandoned_uploads(older_than=older_than)

    @pytest.mark.parametrize("prefix", ["/abs", "a//b", "../x", 5])
    async def test_abandoned_uploads_refuses_bad_prefixes(self, store: S, prefix: Any) -> None:
        with pytest.raises(InvalidKeyError):
            store.abandoned_uploads(prefix, older_than=datetime.now(UTC))

    @pytest.mark.parametrize("upload", [None, "key", ("k", "id")])
    async def test_abort_upload_refuses_non_uploads(self, store: S, upload: Any) -> None:
        with pytest.raises(InvalidInputError):
            await store.abort_upload(upload)

    async def test_wrappers_forward_pending_uploads_and_stamps(self, store: S) -> None:
        """Every testing wrapper answers the capabilities as the store it wraps,
        and its pending-upload calls reach that store."""
        from ._counting import CountingStore
        from ._faults import FaultInjectingStore
        from ._latency import LatencyStore

        await store.put("up/one", b"x")
        everything = datetime.now(UTC) + timedelta(days=365)
        direct = [u async for u in store.abandoned_uploads("up/", older_than=everything)]
        counting = CountingStore(store)
        wrappers = (counting, LatencyStore(counting, 0.0), FaultInjectingStore(counting))
        for wrapper in wrappers:
            assert wrapper.stamp_resolution == store.stamp_resolution
            assert wrapper.objects_in_memory == store.objects_in_memory
            found = [u async for u in wrapper.abandoned_uploads("up/", older_than=everything)]
            assert found == direct
        assert counting.counts["list_uploads"] == len(wrappers)

    # --------------------------------------------------------------- capabilities
    async def test_objects_in_memory_is_a_bool(self, store: S) -> None:
        assert isinstance(store.objects_in_memory, bool)

    async def test_arrow_filesystem_reads_the_same_bytes(self, store: S) -> None:
        objects = {"arrow/a.bin": os.urandom(1000), "arrow/ünï/ключ 🚀.bin": b""}
        for key, data in objects.items():
            await store.put(key, data)
        if importlib.util.find_spec("pyarrow") is None:
            # Without pyarrow, a store either has no native filesystem or says why.
            try:
                answer = await store.arrow_filesystem()
            except MissingDependencyError as exc:
                assert "pip install" in str(exc)  # noqa: PT017
                return
            assert answer is None
            return
        afs = await store.arrow_filesystem()
        if afs is None:
            return  # readers go through the store: nothing more to promise
        assert isinstance(afs, ArrowFilesystem)

        def read(path: str) -> bytes:
            with afs.filesystem.open_input_file(path) as f:
                return bytes(f.read())

        for key, data in objects.items():
            assert await anyio.to_thread.run_sync(read, afs.path(key)) == data
