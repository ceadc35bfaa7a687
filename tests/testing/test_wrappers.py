"""Every wrapper store passes the store conformance suite over MemoryStore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiolode import FileStore, InvalidInputError, InvalidKeyError, MemoryStore
from aiolode.store import Store, WrapperStore
from aiolode.testing import (
    Call,
    CountingStore,
    Delay,
    FaultInjectingStore,
    Hook,
    LatencyStore,
    Rule,
)
from aiolode.testing.store_suite import StoreConformance


def _memory(store: Store) -> MemoryStore:
    while isinstance(store, WrapperStore):
        store = store.inner
    assert isinstance(store, MemoryStore)
    return store


class _OverMemory(StoreConformance[Store]):
    """Backdoors reach through the wrappers to the MemoryStore at the bottom."""

    def wrap(self, inner: MemoryStore) -> Store:
        raise NotImplementedError

    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        async with self.wrap(MemoryStore(page_size=self.page_size)) as s:
            yield s

    async def raw_get(self, store: Store, key: str) -> bytes | None:
        obj = _memory(store)._objects.get(key)
        return None if obj is None else obj.data

    async def raw_put(self, store: Store, key: str, data: bytes) -> None:
        _memory(store)._commit(key, data, "overwrite")

    async def raw_keys(self, store: Store) -> set[str]:
        return set(_memory(store)._objects)


class TestWrapperStore(_OverMemory):
    def wrap(self, inner: MemoryStore) -> Store:
        return WrapperStore(inner)


class TestCountingStore(_OverMemory):
    def wrap(self, inner: MemoryStore) -> Store:
        return CountingStore(inner, record=True)


class TestLatencyStore(_OverMemory):
    def wrap(self, inner: MemoryStore) -> Store:
        return LatencyStore(inner, 0.0005, jitter=0.0005, list_page_size=3, seed=1)


async def _noop(call: Call) -> None:
    pass


class TestFaultInjectingStore(_OverMemory):
    """Rules that fire on every call but change nothing, and one that never fires."""

    def wrap(self, inner: MemoryStore) -> Store:
        return FaultInjectingStore(
            inner,
            [
                Rule(action=Delay(0)),
                Rule(action=Hook(_noop)),
                Rule(action=Hook(_noop, when="after")),
                Rule(key="\x00 no key matches this"),
            ],
            seed=0,
        )


async def test_wrapper_refuses_non_store() -> None:
    with pytest.raises(InvalidInputError):
        WrapperStore(object())  # type: ignore[arg-type]


async def test_wrapper_exposes_inner_and_name() -> None:
    inner = MemoryStore()
    w = WrapperStore(inner)
    assert w.inner is inner
    assert w.name == inner.name
    assert "MemoryStore" in repr(w)


async def test_wrapper_forwards_lifecycle() -> None:
    events: list[str] = []

    class Tracked(WrapperStore):
        async def aopen(self) -> None:
            events.append("open")
            await super().aopen()

        async def aclose(self) -> None:
            events.append("close")
            await super().aclose()

    async with WrapperStore(Tracked(MemoryStore())) as w:
        await w.put("k", b"v")
    assert events == ["open", "close"]


async def test_subclass_intercepts_and_inner_validates() -> None:
    """A subclass hook sees the call; the inner store validates what it forwards."""

    class Renaming(WrapperStore):
        async def _get(self, key: str) -> bytes:
            return await super()._get(f"renamed/{key}")

        async def _delete(self, key: str) -> None:
            await super()._delete(f"../{key}")  # the inner store's validation refuses it

    inner = MemoryStore()
    await inner.put("renamed/a", b"payload")
    w = Renaming(inner)
    assert await w.get("a") == b"payload"
    with pytest.raises(InvalidKeyError):
        await w.delete("a")
    assert await inner.exists("renamed/a")


async def test_stacked_wrappers() -> None:
    """Wrappers compose: each layer forwards exactly one call per call."""
    bottom = CountingStore(MemoryStore(page_size=2))
    top = CountingStore(LatencyStore(FaultInjectingStore(WrapperStore(bottom)), 0.0))
    async with top:
        await top.put("a/1", b"x")
        assert await top.get("a/1") == b"x"
        assert [i.key async for i in top.list("a/")] == ["a/1"]
        assert await top.exists("a/1")
    assert top.snapshot() == bottom.snapshot()
    assert top.total_calls == 4


async def test_list_dirs_uses_inner_delimiter_listing() -> None:
    """list_dirs reaches the inner store as one list_dirs, not a full listing."""
    counting = CountingStore(MemoryStore())
    for k in ["d/a/1", "d/a/2", "d/b/1"]:
        await counting.inner.put(k, b"")
    w = WrapperStore(counting)
    assert [d async for d in w.list_dirs("d/")] == ["d/a/", "d/b/"]
    assert counting.snapshot().nonzero() == {"list_dirs": 1}


async def test_capabilities_through_wrappers(tmp_path: Path) -> None:
    """objects_in_memory is forwarded; arrow_filesystem is not (it would bypass the wrapper)."""
    async with FileStore(tmp_path) as fs:
        assert (await fs.arrow_filesystem()) is not None
        for wrapped in (WrapperStore(fs), CountingStore(fs), FaultInjectingStore(fs)):
            assert wrapped.objects_in_memory is False
            assert await wrapped.arrow_filesystem() is None
    mem = MemoryStore()
    assert CountingStore(LatencyStore(mem, 0.0)).objects_in_memory is True


def test_inner_keeps_its_type(tmp_path: Path) -> None:
    """WrapperStore and the testing wrappers are generic in the wrapped store."""
    from mypy import api

    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from typing import assert_type\n"
        "from aiolode import FileStore, MemoryStore\n"
        "from aiolode.store import WrapperStore\n"
        "from aiolode.testing import CountingStore, FaultInjectingStore, LatencyStore\n"
        "m = MemoryStore()\n"
        "assert_type(WrapperStore(m).inner, MemoryStore)\n"
        "assert_type(CountingStore(m).inner, MemoryStore)\n"
        "assert_type(LatencyStore(m, 0.0).inner, MemoryStore)\n"
        "assert_type(FaultInjectingStore(m).inner, MemoryStore)\n"
        "assert_type(CountingStore(FaultInjectingStore(FileStore('.'))).inner.inner, FileStore)\n"
        "WrapperStore[MemoryStore](FileStore('.'))  # E: wrong inner type\n",
        encoding="utf-8",
    )
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir=/dev/null", str(snippet)]
    )
    lines = [ln for ln in out.splitlines() if ": error:" in ln]
    assert len(lines) == 1, out + err
    assert ':11: error: Argument 1 to "WrapperStore" has incompatible type' in lines[0], out
    assert status == 1
