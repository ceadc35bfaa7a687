"""Volume behaviour on every store: staging, commits, exact reads, resume, costs."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from aiolode import (
    CRC32,
    SHA256,
    BlockRef,
    ChecksumMismatchError,
    InvalidInputError,
    InvalidKeyError,
    InvalidRangeError,
    ManifestFormatError,
    MemoryStore,
    NoSnapshotsError,
    OverlappingBlocksError,
    RangeMissingError,
    SnapshotNotFoundError,
    Store,
    Volume,
    VolumeSnapshot,
)
from aiolode.testing import CountingStore, Fail, FaultInjectingStore, Rule

N = 1000


def payload(offset: int, length: int) -> bytes:
    """Deterministic bytes of the volume at [offset, offset+length)."""
    return bytes((i * 7 + 3) % 251 for i in range(offset, offset + length))


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def keys_under(store: Store, prefix: str) -> list[str]:
    async with aclosing(store.list(prefix)) as it:
        return [info.key async for info in it]


async def test_stage_commit_read_roundtrip(store: Store) -> None:
    vol = Volume("v", store, N, checksum=SHA256())
    with pytest.raises(NoSnapshotsError):
        await vol.latest()
    b1 = await vol.stage_write_at(0, payload(0, 100))
    b2 = await vol.stage_write_at(300, chunks(payload(300, 250), 64))
    assert (b1.offset, b1.length, b2.offset, b2.length) == (0, 100, 300, 250)
    assert b1.checksum == SHA256().digest(payload(0, 100))
    assert b2.checksum == SHA256().digest(payload(300, 250))
    snap = await vol.commit([b2, b1], metadata={"source": "test"})
    assert isinstance(snap, VolumeSnapshot)
    assert snap.parent_id is None
    assert snap.metadata == {"source": "test"}
    assert snap.committed_ranges() == [(0, 100), (300, 250)]
    assert snap.missing_ranges() == [(100, 200), (550, 450)]
    assert snap.committed_bytes == 350
    assert snap.block_count == 2
    assert not snap.is_complete
    assert await vol.read_at(snap.id, 0, 100) == payload(0, 100)
    assert await vol.read_at(snap.id, 310, 200) == payload(310, 200)
    assert await vol.read_at(snap.id, 50, 0) == b""
    with pytest.raises(RangeMissingError) as ei:
        await vol.read_at(snap.id, 50, 600)
    assert ei.value.missing == [(100, 200), (550, 100)]
    assert ei.value.snapshot_id == snap.id
    assert ei.value.volume_id == "v"

    # A second commit sees the first; a fresh object sees both.
    b3 = await vol.stage_write_at(100, payload(100, 200))
    snap2 = await vol.commit([b3])
    assert snap2.parent_id == snap.id
    assert snap2.committed_ranges() == [(0, 550)]
    assert snap2.metadata == {}
    other = Volume("v", store, N, checksum=SHA256())
    latest = await other.latest()
    assert latest.id == snap2.id
    assert latest.committed_ranges() == [(0, 550)]
    assert await other.read_at(latest.id, 0, 550) == payload(0, 550)
    # The old snapshot still says exactly what it said.
    with pytest.raises(RangeMissingError):
        await other.read_at(snap.id, 0, 550)
    assert [s.id async for s in other.snapshots()] == [snap.id, snap2.id]
    assert (await other.snapshot(snap.id)).committed_ranges() == [(0, 100), (300, 250)]


async def test_invalid_blocks_refused_at_once(mem: MemoryStore) -> None:
    vol = Volume("v", mem, N)
    for offset, data in [(-1, b"x"), (N, b"x"), (N - 1, b"xy"), (0, b"")]:
        with pytest.raises(InvalidRangeError):
            await vol.stage_write_at(offset, data)
    with pytest.raises(InvalidInputError):
        await vol.stage_write_at(0, "text")  # type: ignore[arg-type]
    assert await keys_under(mem, "volumes/") == []


async def test_stream_past_end_aborts_and_writes_nothing(store: Store) -> None:
    vol = Volume("v", store, N, checksum=CRC32())
    with pytest.raises(InvalidRangeError):
        await vol.stage_write_at(900, chunks(b"z" * 150, 40))
    with pytest.raises(InvalidRangeError):
        await vol.stage_write_at(0, chunks(b"", 10))
    assert await keys_under(store, "volumes/") == []
    ref = await vol.stage_write_at(900, chunks(b"z" * 100, 40))
    assert ref.length == 100


async def test_commit_validation(mem: MemoryStore) -> None:
    vol = Volume("v", mem, N)
    other = Volume("w", mem, N)
    a = await vol.stage_write_at(0, b"a" * 10)
    b = await vol.stage_write_at(5, b"b" * 10)
    foreign = await other.stage_write_at(20, b"c")
    with pytest.raises(InvalidInputError):
        await vol.commit([])
    with pytest.raises(OverlappingBlocksError) as ei:
        await vol.commit([a, b])
    assert ei.value.ranges == [(0, 10), (5, 10)]
    with pytest.raises(OverlappingBlocksError):
        await vol.commit([a, a])
    with pytest.raises(InvalidInputError):
        await vol.commit([foreign])
    with pytest.raises(InvalidRangeError):
        await vol.commit([BlockRef(N - 1, 5, a.key)])
    with pytest.raises(InvalidInputError):
        await vol.commit([a], metadata={"bad": object()})
    with pytest.raises(InvalidInputError):
        await vol.commit([a], metadata={"nested": [{1: "int key"}]})
    with pytest.raises(InvalidInputError):
        await Volume("v", mem, N, checksum=SHA256()).commit([a])  # no checksum recorded
    with pytest.raises(NoSnapshotsError):
        await vol.latest()  # nothing above was committed
    await vol.commit([a])
    with pytest.raises(OverlappingBlocksError) as ei:
        await vol.commit([b])
    assert ei.value.ranges == [(5, 10)]
    # A fresh object checks against committed data too (loads the index once).
    with pytest.raises(OverlappingBlocksError):
        await Volume("v", mem, N).commit([b])


async def test_constructor_validation(mem: MemoryStore) -> None:
    for bad in ["", "a/b", "..", None]:
        with pytest.raises(InvalidKeyError):
            Volume(bad, mem, N)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Volume("v", mem, -1)
    with pytest.raises(InvalidInputError):
        Volume("v", object(), 10)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Volume("v", mem, 10, checksum="sha256")  # type: ignore[arg-type]


async def test_read_validation_and_lookup_errors(mem: MemoryStore) -> None:
    vol = Volume("v", mem, N)
    snap = await vol.commit([await vol.stage_write_at(0, b"x")])
    with pytest.raises(InvalidRangeError):
        await vol.read_at(snap.id, -1, 1)
    with pytest.raises(InvalidRangeError):
        await vol.read_at(snap.id, N - 1, 2)
    for bad in ["nope", "00000000000000000009", "00000000000000000000"]:
        with pytest.raises(SnapshotNotFoundError):
            await vol.read_at(bad, 0, 1)
        with pytest.raises(SnapshotNotFoundError):
            await vol.snapshot(bad)
    err = RangeMissingError("m", missing=[(1, 2)], volume_id="v")
    assert pickle.loads(pickle.dumps(err)).missing == [(1, 2)]


async def test_reopen_with_other_length_refused(mem: MemoryStore) -> None:
    vol = Volume("v", mem, N)
    await vol.commit([await vol.stage_write_at(0, b"x")])
    with pytest.raises(InvalidInputError):
        await Volume("v", mem, N + 1).latest()


async def test_corrupted_block_raises_checksum_mismatch(store: Store) -> None:
    vol = Volume("v", store, N, checksum=SHA256())
    ref = await vol.stage_write_at(10, payload(10, 100))
    snap = await vol.commit([ref])
    await store.put(ref.key, b"\x00" * 100, mode="overwrite")
    fresh = Volume("v", store, N, checksum=SHA256())
    with pytest.raises(ChecksumMismatchError) as ei:
        await fresh.read_at(snap.id, 20, 5)
    assert ei.value.key == ref.key
    async with fresh.open_reader(snap.id) as reader:
        with pytest.raises(ChecksumMismatchError):
            await reader.read(20, 5)


async def test_corrupt_index_is_a_format_error(mem: MemoryStore) -> None:
    from aiolode.manifest import encode
    from aiolode.manifest._volume import VolumeSegment

    vol = Volume("v", mem, N)
    snap = await vol.commit([await vol.stage_write_at(0, b"xy")])
    seg_key = vol._index._states[int(snap.id)].root.segments[0].key
    name = (await vol.latest()).blocks()[0].key.rsplit("/", 1)[1]
    bad_segments = [
        VolumeSegment("v", [0, 1], [2, 2], [name, name], None),  # overlapping entries
        VolumeSegment("v", [0], [2], ["../escape"], None),  # malformed name
        VolumeSegment("other", [0], [2], [name], None),  # another volume's
        VolumeSegment("v", [0], [2], [name], ["crc32:00000000"]),  # checksum column
        VolumeSegment("v", [N - 1], [2], [name], None),  # past the end
    ]
    for bad in bad_segments:
        await mem.put(seg_key, encode(bad), mode="overwrite")
        # The root records each segment's digest, so tampering is caught first.
        with pytest.raises(ChecksumMismatchError):
            await Volume("v", mem, N).latest()
    # Roots written before digests existed: the structural checks still apply.
    import attrs

    root_key = "volumes/v/_log/00000000000000000001.json"
    root = vol._index._states[int(snap.id)].root
    legacy = attrs.evolve(root, segments=tuple(attrs.evolve(r, digest=None) for r in root.segments))
    await mem.put(root_key, encode(legacy), mode="overwrite")
    for bad in bad_segments:
        await mem.put(seg_key, encode(bad), mode="overwrite")
        with pytest.raises(ManifestFormatError):
            await Volume("v", mem, N).latest()
    await mem.put("volumes/v/_log/00000000000000000001.json", b"{not json", mode="overwrite")
    with pytest.raises(ManifestFormatError):
        await Volume("v", mem, N).latest()


async def test_resume_from_missing_ranges(store: Store) -> None:
    vol = Volume("dl", store, N)
    await vol.commit([await vol.stage_write_at(o, payload(o, 50)) for o in (0, 200, 600)])
    # "Restart": a new object stages exactly what is missing.
    resumed = Volume("dl", store, N)
    latest = await resumed.latest()
    refs = [await resumed.stage_write_at(o, payload(o, n)) for o, n in latest.missing_ranges()]
    final = await resumed.commit(refs)
    assert final.is_complete
    assert final.missing_ranges() == []
    assert await resumed.read_at(final.id, 0, N) == payload(0, N)


async def test_reader_page_cache_and_counters(mem: MemoryStore) -> None:
    vol = Volume("v", mem, N)
    snap = await vol.commit([await vol.stage_write_at(0, payload(0, 400))])
    async with vol.open_reader(page_size=100, cache_pages=2, read_ahead=1) as reader:
        assert reader.snapshot.id == snap.id
        assert await reader.read(10, 20) == payload(10, 20)
        st = reader.statistics()
        assert (st.requests, st.bytes_fetched) == (1, 200)  # page 0 + read-ahead 1
        assert await reader.read(150, 20) == payload(150, 20)
        st = reader.statistics()
        assert (st.requests, st.cache_hits) == (1, 1)
        assert await reader.read(250, 100) == payload(250, 100)  # pages 2-3 fetched at once
        assert reader.statistics().requests == 2
        with pytest.raises(RangeMissingError):
            await reader.read(390, 20)
    with pytest.raises(InvalidInputError):
        async with vol.open_reader(page_size=0):
            pass


async def test_warm_commit_and_latest_costs(mem: MemoryStore) -> None:
    counting = CountingStore(mem)
    vol = Volume("v", counting, N)
    await vol.commit([await vol.stage_write_at(0, b"x")])
    ref = await vol.stage_write_at(1, b"y")
    with counting.measure() as m:
        await vol.commit([ref])
    # segment, then root (the hint moves once per 8 roots); no reads, no listing.
    assert m.counts.nonzero() == {"put": 2}
    with counting.measure() as m:
        await vol.latest()
    assert m.counts.nonzero() == {"get": 1}  # warm: a probe of the next sequence
    cold = Volume("v", counting, N)
    with counting.measure() as m:
        await cold.latest()
    # The hint (root 1); roots 1 and 2 and a head of each of the 8 after them,
    # concurrently; root 2's one segment (the two one-block segments merged).
    assert m.counts["get"] == 3 + 1, m.counts
    assert m.counts["head"] == 8, m.counts
    assert m.counts["list"] == 0


async def test_latest_without_hint_searches(mem: MemoryStore) -> None:
    vol = Volume("v", mem, N)
    for i in range(37):
        await vol.commit([await vol.stage_write_at(i, b"x")])
    await mem.delete("volumes/v/_latest")
    counting = CountingStore(mem)
    fresh = Volume("v", counting, N)
    with counting.measure() as m:
        snap = await fresh.latest()
    assert snap.id == f"{37:020d}"
    assert m.counts["list"] == 0
    assert m.counts["head"] <= 2 * 6 + 1  # gallop + bisect: O(log S)
    await mem.put("volumes/v/_latest", b"garbage", mode="overwrite")
    assert (await Volume("v", mem, N).latest()).id == snap.id
    # A lying hint (past the truth) is never built upon: the search starts over.
    await mem.put("volumes/v/_latest", b"99", mode="overwrite")
    liar = Volume("v", mem, N)
    assert (await liar.latest()).id == snap.id
    nxt = await liar.commit([await liar.stage_write_at(500, b"z")])
    assert nxt.id == f"{38:020d}"
    assert nxt.parent_id == snap.id


async def test_transient_staging_failure_is_retried(mem: MemoryStore) -> None:
    faulty = FaultInjectingStore(mem, [Rule(op="put", key="*/blocks/*", nth=1, action=Fail())])
    vol = Volume("v", faulty, N)
    ref = await vol.stage_write_at(0, b"abc")
    snap = await vol.commit([ref])
    assert await vol.read_at(snap.id, 0, 3) == b"abc"


@pytest.mark.parametrize("checksum", [None, CRC32()])
async def test_read_and_stage_costs(mem: MemoryStore, checksum: CRC32 | None) -> None:
    counting = CountingStore(mem)
    vol = Volume("v", counting, N, checksum=checksum)
    with counting.measure() as m:
        refs = [await vol.stage_write_at(o, payload(o, 100)) for o in (0, 100, 200)]
    assert m.counts.nonzero() == {"put": 3}
    snap = await vol.commit(refs)
    with counting.measure() as m:
        assert await vol.read_at(snap.id, 50, 200) == payload(50, 200)
    if checksum is None:  # only the needed bytes, one range request per block
        assert m.counts.nonzero() == {"get_range": 3}
        assert m.counts.bytes_read == 200
    else:  # whole blocks, so each can be verified
        assert m.counts.nonzero() == {"get": 3}
        assert m.counts.bytes_read == 300


async def test_volume_verify_method(mem: MemoryStore) -> None:
    vol = Volume("vv", mem, N)
    snap = await vol.commit([await vol.stage_write_at(0, b"abcd")])
    report = await vol.verify()
    assert report.ok, report
    await mem.put("volumes/vv/blocks/stray", b"junk")
    block_key = snap.blocks()[0].key
    await mem.delete(block_key)
    report = await vol.verify()
    assert not report.ok
    assert "volumes/vv/blocks/stray" in report.orphans
    assert any(p.key == block_key for p in report.problems)
