"""CountingStore counts exactly what reaches the inner store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from aiolode import (
    IfMatch,
    InvalidInputError,
    InvalidKeyError,
    MemoryStore,
    ObjectExistsError,
    ObjectNotFoundError,
    PendingUpload,
)
from aiolode.testing import OPS, CountingStore, StoreCounts

_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


@pytest.fixture
def counting() -> CountingStore:
    return CountingStore(MemoryStore(page_size=3), record=True)


async def test_starts_at_zero(counting: CountingStore) -> None:
    assert dict(counting.counts) == dict.fromkeys(OPS, 0)
    assert counting.total_calls == 0
    assert counting.snapshot() == StoreCounts()
    assert counting.calls == []


async def test_each_operation_counts_once(counting: CountingStore) -> None:
    await counting.put("a/1", b"12345")
    await counting.put("a/2", _chunks(b"12", b"", b"345678"))
    assert await counting.get("a/1") == b"12345"
    assert await counting.get_range("a/2", 2, 100) == b"345678"
    assert b"".join([c async for c in counting.iter_bytes("a/2", chunk_size=3)]) == b"12345678"
    await counting.head("a/1")
    await counting.delete("a/1")
    assert [i.key async for i in counting.list("a/")] == ["a/2"]
    assert [d async for d in counting.list_dirs("")] == ["a/"]
    assert [u async for u in counting.abandoned_uploads("a/", older_than=_FUTURE)] == []
    await counting.abort_upload(PendingUpload("a/x", "id", _FUTURE))

    snap = counting.snapshot()
    assert dict(snap.calls) == dict.fromkeys(OPS, 1)
    assert snap.total_calls == len(OPS) == counting.total_calls
    assert snap.bytes_written == 5 + 8
    assert snap.bytes_read == 5 + 6 + 8
    assert snap.listed == 2
    assert counting.calls == [
        ("put", "a/1"),
        ("put_stream", "a/2"),
        ("get", "a/1"),
        ("get_range", "a/2"),
        ("iter_bytes", "a/2"),
        ("head", "a/1"),
        ("delete", "a/1"),
        ("list", "a/"),
        ("list_dirs", ""),
        ("list_uploads", "a/"),
        ("abort_upload", "a/x"),
    ]


async def test_exists_and_empty_range_are_heads(counting: CountingStore) -> None:
    await counting.inner.put("k", b"abc")
    assert await counting.exists("k")
    assert not await counting.exists("missing")
    assert await counting.get_range("k", 1, 0) == b""
    assert counting.snapshot().nonzero() == {"head": 3}
    assert counting.bytes_read == 0


async def test_failed_calls_count_invalid_calls_do_not(counting: CountingStore) -> None:
    await counting.inner.put("k", b"abc")
    with pytest.raises(ObjectExistsError):
        await counting.put("k", b"again")
    with pytest.raises(ObjectNotFoundError):
        await counting.get("nope")
    # Refused by validation before anything reaches the store: nothing counted.
    with pytest.raises(InvalidKeyError):
        await counting.get("../escape")
    with pytest.raises(InvalidInputError):
        await counting.put("k2", "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await counting.put("k2", b"x", mode=IfMatch(""))
    assert counting.snapshot().nonzero() == {"put": 1, "get": 1}
    assert counting.bytes_written == 5  # handed to the store, even though refused
    assert counting.bytes_read == 0


async def test_listing_counts_one_call_whatever_the_pages(counting: CountingStore) -> None:
    for i in range(10):  # page_size=3: four backend pages
        await counting.inner.put(f"p/{i}", b"")
    assert len([i async for i in counting.list("p/")]) == 10
    assert counting.counts["list"] == 1
    assert counting.listed == 10


async def test_iterators_count_when_iteration_starts(counting: CountingStore) -> None:
    await counting.inner.put("k", b"abcdef")
    it = counting.iter_bytes("k", chunk_size=2)
    listing = counting.list("")
    assert counting.total_calls == 0  # not iterated: no store call yet
    assert await it.__anext__() == b"ab"
    await it.aclose()
    await listing.aclose()
    assert counting.snapshot().nonzero() == {"iter_bytes": 1}
    assert counting.bytes_read == 2  # only what was actually read


async def test_memoryview_bytes_are_bytes(counting: CountingStore) -> None:
    await counting.put("mv", memoryview(b"\x00" * 16).cast("I"))  # 4 items, 16 bytes
    assert counting.bytes_written == 16


async def test_measure_and_delta(counting: CountingStore) -> None:
    await counting.put("before", b"x")
    before = counting.snapshot()
    with counting.measure() as m:
        await counting.put("a", b"abc")
        assert m.counts.nonzero() == {"put": 1}  # live inside the block
        await counting.head("a")
        await counting.get("a")
    await counting.get("a")  # after the block: not in the measurement
    assert m.counts.nonzero() == {"put": 1, "head": 1, "get": 1}
    assert m.counts.total_calls == 3
    assert m.counts.bytes_written == 3
    assert m.counts.bytes_read == 3
    assert m.counts["put"] == 1
    delta = counting.snapshot() - before
    assert delta.nonzero() == {"put": 1, "head": 1, "get": 2}
    assert "put=1" in repr(delta)
    assert "total_calls=4" in repr(delta)


async def test_reset_keeps_views_live(counting: CountingStore) -> None:
    view = counting.counts
    await counting.put("a", b"abc")
    await counting.get("a")
    assert view["put"] == 1
    counting.reset()
    assert counting.total_calls == 0
    assert counting.bytes_written == counting.bytes_read == counting.listed == 0
    assert counting.calls == []
    await counting.head("a")
    assert view["head"] == 1
    with pytest.raises(TypeError):
        view["head"] = 5  # type: ignore[index]


async def test_record_off_keeps_no_log() -> None:
    counting = CountingStore(MemoryStore())
    await counting.put("a", b"")
    assert counting.calls == []
    assert counting.counts["put"] == 1


async def test_unknown_op_name_is_an_error(counting: CountingStore) -> None:
    with pytest.raises(InvalidInputError):
        counting.snapshot()["putt"]  # type: ignore[index]


async def test_nested_counting_stores_agree() -> None:
    """A wrapper call reaches the inner store as exactly one call of the same kind."""
    inner = CountingStore(MemoryStore(page_size=2))
    outer = CountingStore(inner)
    await outer.put("a/b", b"1")
    await outer.put("a/c", _chunks(b"2", b"3"))
    await outer.exists("a/b")
    await outer.get_range("a/c", 0, 1)
    assert [x async for x in outer.list_dirs("")] == ["a/"]
    assert [x.key async for x in outer.list("a/")] == ["a/b", "a/c"]
    assert outer.snapshot() == inner.snapshot()
