"""RangeReader: exact bytes for any range, tail cache, request counters."""

from __future__ import annotations

import random

import pytest

import aiolode
from aiolode.reader import DatasetReader, RangeReader, RangeStats
from aiolode.testing import CountingStore

DATA = bytes(random.Random(7).randrange(256) for _ in range(300_000))


@pytest.fixture
async def counting(memory: aiolode.MemoryStore) -> CountingStore:
    await memory.put("obj", DATA)
    return CountingStore(memory)


async def test_every_range_matches_slicing(counting: CountingStore) -> None:
    reader = RangeReader(counting, "obj", page_size=4096, max_pages=8, tail_prefetch=16_384)
    rng = random.Random(1)
    for _ in range(300):
        off = rng.randrange(len(DATA) + 100)
        n = rng.choice([0, 1, 7, 100, 4096, 5000, 40_000])
        assert await reader.read(off, n) == DATA[off : off + n], (off, n)
    # The tail, read in footer-like steps.
    for off in range(len(DATA) - 20_000, len(DATA) + 10, 997):
        assert await reader.read(off, 1500) == DATA[off : off + 1500]


async def test_footer_probe_then_metadata_is_one_request(counting: CountingStore) -> None:
    reader = RangeReader(counting, "obj", size=len(DATA))
    with counting.measure() as m:
        assert await reader.read(len(DATA) - 8, 8) == DATA[-8:]
        assert await reader.read(len(DATA) - 30_000, 29_992) == DATA[-30_000:-8]
    assert m.counts.total_calls == 1, m.counts
    assert m.counts["get_range"] == 1
    stats = reader.statistics()
    assert stats.requests == 1
    assert stats.head_requests == 0
    assert stats.cache_hits >= 1
    assert 64 * 1024 <= stats.bytes_fetched <= 2 * 64 * 1024


async def test_reads_outside_the_tail_are_exact_and_uncached(counting: CountingStore) -> None:
    reader = RangeReader(counting, "obj", size=len(DATA))
    with counting.measure() as m:
        assert await reader.read(1000, 5000) == DATA[1000:6000]
        assert await reader.read(1000, 5000) == DATA[1000:6000]
    assert m.counts["get_range"] == 2
    assert reader.statistics().bytes_fetched == 10_000
    reader.clear()


async def test_size_is_learnt_once_with_head(counting: CountingStore) -> None:
    reader = RangeReader(counting, "obj")
    with counting.measure() as m:
        assert await reader.size() == len(DATA)
        assert await reader.read(len(DATA) - 10, 100) == DATA[-10:]
        assert await reader.read(len(DATA), 10) == b""
        assert await reader.size() == len(DATA)
    assert m.counts["head"] == 1
    assert m.counts["get_range"] == 1
    assert reader.statistics().head_requests == 1
    assert "obj" in repr(reader)


async def test_small_cache_evicts_but_stays_correct(counting: CountingStore) -> None:
    reader = RangeReader(counting, "obj", page_size=1024, max_pages=2, tail_prefetch=8192)
    for off in range(len(DATA) - 8192, len(DATA), 512):
        assert await reader.read(off, 700) == DATA[off : off + 700]
    assert reader.statistics().requests > 1


async def test_reader_gives_range_readers_sized_from_manifests(
    memory: aiolode.MemoryStore,
) -> None:
    ds = aiolode.Dataset("blobs", memory, checksum=aiolode.SHA256())
    snap = await ds.write(DATA)
    counting = CountingStore(memory)
    rr = DatasetReader(counting).range_reader(snap.files[0])
    with counting.measure() as m:
        assert await rr.read(5, 10) == DATA[5:15]
    assert m.counts.total_calls == 1, m.counts  # no head: the size came from the manifest
    assert rr.key == snap.files[0].key


async def test_validation_and_stats_arithmetic(memory: aiolode.MemoryStore) -> None:
    with pytest.raises(aiolode.InvalidKeyError):
        RangeReader(memory, "/abs")
    with pytest.raises(aiolode.InvalidInputError):
        RangeReader(memory, "k", page_size=0)
    with pytest.raises(aiolode.InvalidInputError):
        RangeReader(memory, "k", size=-1)
    reader = RangeReader(memory, "missing")
    with pytest.raises(aiolode.ObjectNotFoundError):
        await reader.read(0, 10)
    with pytest.raises(aiolode.InvalidRangeError):
        await RangeReader(memory, "k", size=10).read(-1, 3)
    assert RangeStats(1, 2, 3, 4, 5) + RangeStats(1, 1, 1, 1, 1) == RangeStats(2, 3, 4, 5, 6)
