"""Cost contract: store calls per public method, asserted with a CountingStore.

The documented table is docs/cost.md; these tests keep it honest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import aiolode
from aiolode import Dataset
from aiolode._history._log import HINT_STRIDE
from aiolode.manifest import CommitRecord, Manifest, encode
from aiolode.testing import CountingStore


def _fake_history(store: aiolode.MemoryStore, ds: Dataset, n: int) -> list[bytes]:
    """Commit records 1..n straight into the store (fast setup for long histories)."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    prefix = ds.layout.log_prefix(ds.id)
    parent = None
    last = b""
    for seq in range(1, n + 1):
        sid = f"{seq:016d}-0000"
        when = start + timedelta(seconds=seq)
        m = Manifest(
            dataset_id=ds.id,
            snapshot_id=sid,
            parent_id=parent,
            created_at=when,
            metadata={"seq": seq},
            files=[],
            row_count=None,
            codec=None,
            compressor=None,
            layout=ds.layout.describe(),
            commit_token=f"t{seq}",
        )
        last = encode(
            CommitRecord(dataset_id=ds.id, seq=seq, token=f"t{seq}", created_at=when, snapshots=[m])
        )
        store._commit(f"{prefix}{seq:016d}.json", last, "create")
        parent = sid
    return [last]


async def _history(n: int, *, hint: bool = True) -> tuple[CountingStore, Dataset]:
    mem = aiolode.MemoryStore()
    ds = Dataset("d", mem)
    [last] = _fake_history(mem, ds, n)
    if hint:
        await mem.put(ds.layout.log_prefix("d") + "_latest.json", last, mode="overwrite")
    counting = CountingStore(mem)
    return counting, Dataset("d", counting)


async def test_warm_write_is_data_plus_two() -> None:
    counting = CountingStore(aiolode.MemoryStore())
    ds = Dataset("d", counting)
    await ds.write(b"first")  # warms the object
    with counting.measure() as m:
        await ds.write(b"second")
    # The data put, then the commit record put (the hint moves once per stride).
    assert m.counts.nonzero() == {"put": 2}, m.counts


async def test_warm_writes_move_the_hint_once_per_stride() -> None:
    counting = CountingStore(aiolode.MemoryStore())
    ds = Dataset("d", counting)
    await ds.write(b"first")  # the first commit writes the hint (seq 1)
    with counting.measure() as m:
        for i in range(2 * HINT_STRIDE):
            await ds.write(b"%d" % i)
    # Two puts per write, and one hint put alongside the data of the write
    # after the log grew a stride past the hint.
    assert m.counts.nonzero() == {"put": 2 * 2 * HINT_STRIDE + 1}, m.counts
    hint = await counting.get(ds.layout.log_prefix("d") + "_latest.json")
    assert b'"seq":%d' % (HINT_STRIDE + 1) in hint.replace(b" ", b"")


async def test_cold_latest_after_a_writer_stops() -> None:
    """The hint lags the log by at most a stride: one round trip finds the head."""
    mem = aiolode.MemoryStore()
    writer = Dataset("d", mem)
    for i in range(5):
        await writer.write(b"%d" % i)
    counting = CountingStore(mem)
    with counting.measure() as m:
        assert (await Dataset("d", counting).latest()).id == "0000000000000005-0000"
    # The hint (seq 1); records 1 and 2 and the stride after them (concurrently);
    # the newest of them (5).
    assert m.counts.nonzero() == {"get": 4, "head": HINT_STRIDE}, m.counts


async def test_warm_partitioned_write() -> None:
    counting = CountingStore(aiolode.MemoryStore())
    ds = Dataset("d", counting, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    await ds.write([{"p": "a"}])
    with counting.measure() as m:
        await ds.write([{"p": str(i % 5)} for i in range(50)])
    # Format v2: the 5 data puts, the 5 partition manifests (concurrently),
    # then the commit record put.
    assert m.counts.nonzero() == {"put": 5 + 5 + 1}, m.counts
    # latest() warm: the probe of the next record, then the 5 partition
    # manifests (concurrently) to return the files.
    with counting.measure() as m:
        snap = await ds.latest()
    assert m.counts.nonzero() == {"get": 1 + 5}, m.counts
    assert snap.manifest.file_count == len(snap.files) == 5


async def test_cold_write_costs() -> None:
    mem = aiolode.MemoryStore()
    first = Dataset("d", mem)
    await first.write(b"x")
    await first.write(b"x")  # the hint names record 1
    counting = CountingStore(mem)
    ds = Dataset("d", counting)
    with counting.measure() as m:
        await ds.write(b"y")
    # The descriptor get and the hint get (seq 1) concurrently; records 1 and 2
    # and the stride after them concurrently; the data put; the record put.
    assert m.counts.nonzero() == {"get": 4, "head": HINT_STRIDE, "put": 2}, m.counts
    counting2 = CountingStore(mem)
    with counting2.measure() as m2:
        await Dataset("d", counting2).write(b"z")
    # The same shape, plus the get of the head (record 3, inside the stride).
    assert m2.counts.nonzero() == {"get": 5, "head": HINT_STRIDE, "put": 2}, m2.counts


async def test_short_lived_writers_keep_the_hint_within_a_stride() -> None:
    mem = aiolode.MemoryStore()
    for i in range(3 * HINT_STRIDE):
        await Dataset("d", mem).write(b"%d" % i)  # one write per object
        counting = CountingStore(mem)
        with counting.measure() as m:
            assert (await Dataset("d", counting).latest()).id == f"{i + 1:016d}-0000"
        # Hint; its record, the next and the stride after them (concurrently);
        # the newest of them when it is not one of the two read: one round trip
        # after the hint, never a search.
        assert m.counts["get"] <= 4, (i, m.counts)
        assert m.counts["head"] == HINT_STRIDE, (i, m.counts)
        assert m.counts["list"] == 0


async def test_first_write_of_new_dataset() -> None:
    counting = CountingStore(aiolode.MemoryStore())
    ds = Dataset("d", counting)
    with counting.measure() as m:
        await ds.write(b"y")
    # Concurrently: descriptor (missing), hint (missing), seq 1 (missing), the
    # low-water mark (missing); the flat layout's descriptor (missing: a new
    # dataset); then the descriptor, data and record puts, and the first hint.
    assert m.counts.nonzero() == {"get": 3, "head": 2, "put": 4}, m.counts
    # The second write of the same object is warm: data put, record put.
    with counting.measure() as m:
        await ds.write(b"z")
    assert m.counts.nonzero() == {"put": 2}, m.counts


@pytest.mark.parametrize("n", [1, 1_000, 10_000])
async def test_latest_cost_independent_of_history(n: int) -> None:
    counting, ds = await _history(n)
    with counting.measure() as cold:
        snap = await ds.latest()
    assert snap.id == f"{n:016d}-0000"
    # The hint, then the record it names, the next seq and the stride after
    # them, concurrently: 2 round trips (the hint is a pointer, checked before use).
    assert cold.counts.nonzero() == {"get": 3, "head": HINT_STRIDE}, cold.counts
    with counting.measure() as warm:
        assert (await ds.latest()).id == snap.id
    assert warm.counts.nonzero() == {"get": 1}, warm.counts


async def test_latest_follows_a_stale_hint() -> None:
    mem = aiolode.MemoryStore()
    writer = Dataset("d", mem)
    hint_key = writer.layout.log_prefix("d") + "_latest.json"
    await writer.write(b"1")
    await writer.write(b"2")  # moves the hint to record 1
    hint = await mem.get(hint_key)
    await writer.write(b"3")
    await writer.write(b"4")
    await mem.put(hint_key, hint, mode="overwrite")  # a racing writer left an old hint
    counting = CountingStore(mem)
    ds = Dataset("d", counting)
    with counting.measure() as m:
        assert (await ds.latest()).id == "0000000000000004-0000"
        assert (await ds.latest()).id == "0000000000000004-0000"
    # hint (1); records 1 and 2 and the stride after them; record 4; one warm probe.
    assert m.counts.nonzero() == {"get": 5, "head": HINT_STRIDE}, m.counts


@pytest.mark.parametrize("hint", [None, b"{not json", b'{"schema_name":"x","format_version":1}'])
async def test_missing_or_corrupt_hint_is_logarithmic(hint: bytes | None) -> None:
    n = 1_000
    mem = aiolode.MemoryStore()
    ds0 = Dataset("d", mem)
    _fake_history(mem, ds0, n)
    if hint is not None:
        await mem.put(ds0.layout.log_prefix("d") + "_latest.json", hint, mode="overwrite")
    counting = CountingStore(mem)
    ds = Dataset("d", counting)
    with counting.measure() as m:
        assert (await ds.latest()).id == f"{n:016d}-0000"
    # Gallop to 1024 (11 probes) + binary search back (<= 10) + reads: O(log n).
    assert m.counts.total_calls <= 26, m.counts
    assert m.counts["list"] == 0


async def test_snapshot_and_read_costs() -> None:
    counting, ds = await _history(50)
    with counting.measure() as m:
        s = await ds.snapshot("0000000000000025-0000")
    # Cold: the head (hint, records 50 and 51 and the stride after them)
    # concurrently with record 25.
    assert m.counts.nonzero() == {"get": 4, "head": HINT_STRIDE}, m.counts
    with counting.measure() as m:
        await ds.snapshot("0000000000000024-0000")
    assert m.counts.nonzero() == {"get": 1}, m.counts  # warm: its record only
    with counting.measure() as m2:
        await ds.snapshot("0000000000000025-0000")
    assert m2.counts.total_calls == 0, m2.counts  # records are immutable: cached
    assert s.metadata == {"seq": 25}


async def test_read_cost() -> None:
    mem = aiolode.MemoryStore()
    w = Dataset("d", mem, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    s = await w.write([{"p": str(i % 3), "v": i} for i in range(9)])
    counting = CountingStore(mem)
    ds = Dataset("d", counting)
    with counting.measure() as m:
        rows = await ds.read(s.id)
    assert len(rows) == 9
    # Cold, so the head is read as the record is (the hint, records 1 and 2 and
    # the stride after them), then its 3 partition manifests (concurrently),
    # then one get per file (concurrently). The head read and the snapshot's
    # record read run concurrently: record 1 is read by both unless one lands
    # in the cache before the other starts (scheduling decides).
    assert m.counts["head"] == HINT_STRIDE, m.counts
    assert m.counts["get"] in (3 + 3 + 3, 3 + 3 + 3 + 1), m.counts
    assert m.counts.total_calls == m.counts["get"] + m.counts["head"], m.counts
    with counting.measure() as m:
        assert len(await ds.read(s.id)) == 9
    assert m.counts.nonzero() == {"get": 3 + 3}, m.counts  # warm: the record is cached


async def test_snapshot_as_of_is_logarithmic() -> None:
    n = 1_000
    counting, ds = await _history(n)
    when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=337, milliseconds=500)
    with counting.measure() as m:
        s = await ds.snapshot_as_of(when)
    assert s.id == f"{337:016d}-0000"
    assert m.counts.total_calls <= 3 + HINT_STRIDE + 11, m.counts


async def test_snapshots_walk_never_lists() -> None:
    counting, ds = await _history(30)
    with counting.measure() as m:
        ids = [s.id async for s in ds.snapshots()]
    assert len(ids) == 30
    # latest() (hint, records 30 and 31 and the stride after them
    # concurrently), then records 1..29.
    assert m.counts.nonzero() == {"get": 32, "head": HINT_STRIDE}, m.counts
