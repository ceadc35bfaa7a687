"""LatencyStore sleeps the documented delays (observed, never timed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from aiolode import InvalidInputError, MemoryStore
from aiolode.testing import CountingStore, LatencyStore


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def _observed(store: LatencyStore) -> list[float]:
    """Replace the store's sleep with one that records the delay."""
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await anyio.lowlevel.checkpoint()

    store._sleep = sleep  # type: ignore[method-assign]
    return delays


async def test_every_operation_sleeps_before_the_call() -> None:
    s = LatencyStore(MemoryStore(), 0.06, per_op={"head": 0.01, "list": 0.2})
    delays = _observed(s)
    await s.put("a/1", b"x")
    await s.put("a/2", _chunks(b"y"))
    await s.get("a/1")
    await s.get_range("a/1", 0, 1)
    assert [c async for c in s.iter_bytes("a/1")] == [b"x"]
    await s.head("a/1")
    assert await s.exists("a/1")
    await s.delete("a/2")
    assert [i.key async for i in s.list("a/")] == ["a/1"]
    assert [d async for d in s.list_dirs("")] == ["a/"]
    assert delays == [0.06, 0.06, 0.06, 0.06, 0.06, 0.01, 0.01, 0.06, 0.2, 0.06]


@pytest.mark.parametrize(("n", "pages"), [(0, 1), (1, 1), (4, 1), (5, 2), (12, 3)])
async def test_listing_sleeps_once_per_page(n: int, pages: int) -> None:
    inner = MemoryStore()
    for i in range(n):
        await inner.put(f"k/{i:02d}", b"")
        await inner.put(f"d/{i:02d}/x", b"")
    s = LatencyStore(inner, 0.1, list_page_size=4)
    delays = _observed(s)
    assert len([i async for i in s.list("k/")]) == n
    assert delays == [0.1] * pages
    delays.clear()
    assert len([d async for d in s.list_dirs("d/")]) == n
    assert delays == [0.1] * pages


async def test_jitter_is_bounded_and_seeded() -> None:
    a = LatencyStore(MemoryStore(), 0.05, jitter=0.02, seed=7)
    b = LatencyStore(MemoryStore(), 0.05, jitter=0.02, seed=7)
    c = LatencyStore(MemoryStore(), 0.05, jitter=0.02, seed=8)
    da = [a.delay_for("get") for _ in range(50)]
    assert da == [b.delay_for("get") for _ in range(50)]
    assert da != [c.delay_for("get") for _ in range(50)]
    assert all(0.05 <= d < 0.07 for d in da)
    assert len(set(da)) > 1


async def test_zero_latency_does_not_sleep() -> None:
    s = LatencyStore(MemoryStore(), 0, per_op={"get": 0.5})
    delays = _observed(s)
    await s.put("k", b"v")
    await s.get("k")
    assert delays == [0.5]
    assert s.latency == 0.0
    assert dict(s.per_op) == {"get": 0.5}


async def test_cancelled_during_latency_never_reaches_the_store() -> None:
    counting = CountingStore(MemoryStore())
    s = LatencyStore(counting, 3600)
    with anyio.move_on_after(0.01) as scope:
        await s.put("k", b"v")
    assert scope.cancelled_caught
    assert counting.total_calls == 0
    assert not await counting.exists("k")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency": -1},
        {"latency": float("nan")},
        {"latency": float("inf")},
        {"latency": "60ms"},
        {"latency": True},
        {"latency": 0, "jitter": -0.1},
        {"latency": 0, "per_op": {"gett": 0.1}},
        {"latency": 0, "per_op": {"get": -0.1}},
        {"latency": 0, "list_page_size": 0},
        {"latency": 0, "list_page_size": 2.5},
    ],
)
async def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        LatencyStore(MemoryStore(), **kwargs)
