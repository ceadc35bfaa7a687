"""DatasetReader: discovery, read handles, verified bytes; Dataset files(as_of, where) and
snapshot views through it; costs with CountingStore."""

from __future__ import annotations

from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import attrs
import pytest

import aiolode
from aiolode.reader import DataFile, DatasetReader
from aiolode.testing import CountingStore

HIVE = aiolode.HiveLayout("source", "day")


def events(source: str, day: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"source": source, "day": day, "n": start + i} for i in range(n)]


async def collect(it: Any) -> list[Any]:
    async with aclosing(it) as agen:
        return [x async for x in agen]


async def crawl(store: aiolode.Store) -> tuple[aiolode.Dataset, list[aiolode.Snapshot]]:
    """Three snapshots over three partitions, plus junk no manifest references."""
    ds = aiolode.Dataset(
        "events", store, codec=aiolode.JSONL(), layout=HIVE, checksum=aiolode.SHA256()
    )
    snaps = [
        await ds.write(events("a", "d1", 3) + events("b", "d1", 2)),
        await ds.write(events("a", "d2", 4)),
        await ds.write(events("b", "d1", 1, start=100)),
    ]
    # An aborted write's data file, in a partition no commit ever touched, and
    # one in a committed partition: neither may be returned as data.
    await store.put("datasets/events/data/source=zzz/day=d9/orphan.jsonl", b'{"n": 666}\n')
    await store.put("datasets/events/data/source=a/day=d1/orphan.jsonl", b'{"n": 667}\n')
    return ds, snaps


async def test_list_datasets_only_committed(store: aiolode.Store) -> None:
    await crawl(store)
    other = aiolode.Dataset("other", store)
    await other.write(b"blob")
    # A directory holding only an uncommitted file is not a dataset.
    await store.put("datasets/ghost/data/x.bin", b"junk")
    await store.put("datasets/.hidden/_log/0000000000000001.json", b"{}")
    reader = DatasetReader(store)
    assert await collect(reader.list_datasets()) == ["events", "other"]


async def test_flat_layout_does_not_model_datasets(memory: aiolode.MemoryStore) -> None:
    reader = DatasetReader(memory, layout=aiolode.FlatLayout())
    with pytest.raises(aiolode.DatasetsNotModeledError):
        reader.list_datasets()
    # Reading one flat dataset by id works.
    ds = aiolode.Dataset("solo", memory, layout=aiolode.FlatLayout())
    snap = await ds.write(b"x")
    assert (await reader.dataset("solo").snapshot(snap.id)).manifest == snap.manifest
    assert [f.key for f in await reader.dataset("solo").files()] == [f.key for f in snap.files]


async def test_partitions_and_snapshots_come_from_manifests(store: aiolode.Store) -> None:
    _, snaps = await crawl(store)
    reader = DatasetReader(store)
    parts = await collect(reader.dataset("events").partitions())
    assert parts == [
        {"source": "a", "day": "d1"},
        {"source": "b", "day": "d1"},
        {"source": "a", "day": "d2"},
    ]
    refs = await collect(reader.dataset("events").snapshots())
    assert [r.id for r in refs] == [s.id for s in snaps]
    assert all(isinstance(r, aiolode.Snapshot) for r in refs)
    assert refs[1].parent_id == snaps[0].id
    assert refs[1].partitions == ({"source": "a", "day": "d2"},)
    assert refs[0].manifest.file_count == len(refs[0].files) == 2
    assert refs[0].row_count == 5
    b = await collect(reader.dataset("events").snapshots(where={"source": "b"}))
    assert [r.id for r in b] == [snaps[0].id, snaps[2].id]
    d2 = await collect(reader.dataset("events").snapshots(where=lambda p: p["day"] == "d2"))
    assert [r.id for r in d2] == [snaps[1].id]


async def test_empty_and_unknown_datasets(memory: aiolode.MemoryStore) -> None:
    reader = DatasetReader(memory)
    assert await collect(reader.list_datasets()) == []
    nothing = reader.dataset("nothing")
    for call in (
        lambda: collect(nothing.partitions()),
        lambda: collect(nothing.snapshots()),
        nothing.files,
        lambda: nothing.snapshot("0000000000000001-0000"),
        lambda: nothing.files(as_of=datetime.now(UTC)),
    ):
        with pytest.raises(aiolode.DatasetNotFoundError) as ei:
            await call()
        assert ei.value.dataset_id == "nothing"
    with pytest.raises(aiolode.InvalidKeyError):
        reader.dataset("../escape")


async def test_snapshot_costs_its_record_and_partition_manifests(
    memory: aiolode.MemoryStore,
) -> None:
    _, snaps = await crawl(memory)
    counting = CountingStore(memory)
    ds = DatasetReader(counting).dataset("events")
    await ds.latest()  # warm: this handle knows the head (and what was expired)
    ds._log._cache.clear()  # as if the records had been evicted
    with counting.measure() as m:
        snap = await ds.snapshot(snaps[1].id)
    # Its commit record, and the one partition manifest it wrote (format v2+).
    assert m.counts.nonzero() == {"get": 2}, m.counts
    assert snap.manifest == snaps[1].manifest
    assert snap.manifest.file_count == len(snaps[1].files) == 1
    assert snap.partitions == ({"source": "a", "day": "d2"},)
    with counting.measure() as m:
        again = await ds.snapshot(snaps[1].id)
    assert m.counts.nonzero() == {"get": 1}, m.counts  # the record is cached (immutable)
    assert again == snap
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.snapshot("0000000000000002-0007")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.snapshot("not-an-id")


async def test_files_time_travel_and_filters(store: aiolode.Store) -> None:
    ds, snaps = await crawl(store)
    reader = DatasetReader(store)
    every = await reader.dataset("events").files()
    assert [f.snapshot_id for f in every] == [snaps[0].id] * 2 + [snaps[1].id, snaps[2].id]
    committed = {f.key for s in snaps for f in s.files}
    assert {f.key for f in every} == committed
    assert not any("orphan" in f.key for f in every)
    assert all(isinstance(f, DataFile) and f.codec == "jsonl" for f in every)

    first = await reader.dataset("events").files(as_of=snaps[0].id)
    assert {f.key for f in first} == {f.key for f in snaps[0].files}
    assert await reader.dataset("events").files(as_of=snaps[1]) == every[:3]
    refs = await collect(reader.dataset("events").snapshots())
    assert await reader.dataset("events").files(as_of=refs[1]) == every[:3]

    a = await reader.dataset("events").files(where={"source": "a"})
    assert [f.partition for f in a] == [{"source": "a", "day": "d1"}, {"source": "a", "day": "d2"}]
    both = await reader.dataset("events").files(where={"source": {"a", "b"}, "day": "d1"})
    assert [f.partition["source"] for f in both] == ["a", "b", "b"]
    pred = await reader.dataset("events").files(where=lambda p: p["day"] != "d1")
    assert [f.partition for f in pred] == [{"source": "a", "day": "d2"}]
    assert await reader.dataset("events").files(as_of=snaps[0].id, where={"day": "d2"}) == []

    # The writer's own Dataset object agrees with the reader's handle.
    assert await ds.files(as_of=snaps[1].id, where={"source": "a"}) == [
        f for f in every[:3] if f.partition["source"] == "a"
    ]
    assert await ds.files() == every
    with pytest.raises(aiolode.InvalidInputError, match="partition keys"):
        await ds.files(where={"nope": "x"})


async def test_pruning_reads_only_matching_partition_manifests(
    memory: aiolode.MemoryStore,
) -> None:
    _, snaps = await crawl(memory)
    counting = CountingStore(memory, record=True)

    def manifest_gets() -> list[str]:
        return [k for op, k in counting.calls if op == "get" and "/_manifests/" in k]

    # Matching (snapshot, partition) pairs: (0, a/d1) and (1, a/d2).
    reader = DatasetReader(counting)
    got = await reader.dataset("events").files(where={"source": "a"})
    assert [f.partition for f in got] == [
        {"source": "a", "day": "d1"},
        {"source": "a", "day": "d2"},
    ]
    assert len(manifest_gets()) == 2, counting.calls
    assert all("source=a/" in k for k in manifest_gets())
    # The commit records are read once each (the head is found in the round
    # trip after the hint, by heads of the records after it).
    assert sum(1 for op, k in counting.calls if op == "get" and "/_log/0" in k) == 3
    # A filter matching nothing reads no partition manifest at all.
    counting.reset()
    assert await DatasetReader(counting).dataset("events").files(where={"day": "d9"}) == []
    assert manifest_gets() == []
    # Time travel + filter: only snapshot 0's b/d1 partition.
    counting.reset()
    old = (
        await DatasetReader(counting)
        .dataset("events")
        .files(as_of=snaps[0].id, where={"source": "b"})
    )
    assert [f.snapshot_id for f in old] == [snaps[0].id]
    assert len(manifest_gets()) == 1
    # Through the Dataset's thin method and the Arrow bridge: the same pruning.
    counting.reset()
    via = aiolode.Dataset("events", counting, codec=aiolode.JSONL(), layout=HIVE)
    assert [f.key for f in await via.files(where={"day": "d2"})] == [snaps[1].files[0].key]
    assert len(manifest_gets()) == 1
    counting.reset()
    adset = await via.to_arrow_dataset(where={"source": "b"})
    assert await anyio.to_thread.run_sync(adset.count_rows) == 3
    assert len(manifest_gets()) == 2  # (0, b/d1) and (2, b/d1)
    # partitions() uses the record summaries only; snapshots(where=...) skips
    # the snapshots that do not match without reading their partition manifests.
    counting.reset()
    reader = DatasetReader(counting)
    assert len(await collect(reader.dataset("events").partitions())) == 3
    assert manifest_gets() == []
    refs = await collect(reader.dataset("events").snapshots(where={"source": "b"}))
    assert [r.id for r in refs] == [snaps[0].id, snaps[2].id]
    assert [len(r.files) for r in refs] == [2, 1]
    assert len(manifest_gets()) == 3  # the matching snapshots, whole


async def test_files_as_of_datetime(memory: aiolode.MemoryStore) -> None:
    _, snaps = await crawl(memory)
    reader = DatasetReader(memory)
    at_last = await reader.dataset("events").files(as_of=snaps[-1].created_at)
    assert len(at_last) == 4
    later = await reader.dataset("events").files(as_of=snaps[-1].created_at + timedelta(days=1))
    assert later == at_last
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await reader.dataset("events").files(as_of=snaps[0].created_at - timedelta(days=1))
    with pytest.raises(aiolode.InvalidInputError):
        await reader.dataset("events").files(as_of=datetime(2024, 1, 1))  # naive


async def test_bad_filters(memory: aiolode.MemoryStore) -> None:
    await crawl(memory)
    reader = DatasetReader(memory)
    with pytest.raises(aiolode.InvalidInputError, match="partition keys"):
        await reader.dataset("events").files(where={"sauce": "a"})
    with pytest.raises(aiolode.InvalidInputError):
        await reader.dataset("events").files(where={"source": set()})
    with pytest.raises(aiolode.InvalidInputError):
        await reader.dataset("events").files(where={"source": object()})
    with pytest.raises(aiolode.InvalidInputError):
        await reader.dataset("events").files(where="source=a")
    with pytest.raises(aiolode.InvalidInputError):
        await reader.dataset("events").files(as_of=3.5)
    other = aiolode.Dataset("other", memory)
    snap = await other.write(b"x")
    with pytest.raises(aiolode.InvalidInputError):
        await reader.dataset("events").files(as_of=snap)
    with pytest.raises(aiolode.InvalidInputError):
        await reader.dataset("events").files(since=3)


async def test_int_and_date_filter_values_match_path_form(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset(
        "typed", memory, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("year", "day")
    )
    await ds.write([{"year": 2024, "day": "2024-01-02", "v": 1}])
    await ds.write([{"year": 2025, "day": "2025-01-03", "v": 2}])
    reader = DatasetReader(memory)
    got = await reader.dataset("typed").files(where={"year": 2024})
    assert [f.partition for f in got] == [{"year": "2024", "day": "2024-01-02"}]
    from datetime import date

    got = await reader.dataset("typed").files(where={"day": {date(2025, 1, 3)}})
    assert [f.partition["year"] for f in got] == ["2025"]


async def test_files_reads_only_the_records_up_to_as_of(memory: aiolode.MemoryStore) -> None:
    """Cost contract of files(): one ``get`` per commit record up to ``as_of``
    + one per partition manifest matching the filter (format v2): a filter
    skips the other partitions' manifests (see docs/reader.md).
    """
    ds = aiolode.Dataset("events", memory, codec=aiolode.JSONL(), layout=HIVE)
    snaps = [await ds.write(events(s, f"d{i}", 2)) for i in range(6) for s in ("a", "b")]
    counting = CountingStore(memory)
    target = snaps[5]
    seq = int(target.id.split("-")[0])
    for where in (None, {"source": "a"}):
        reader = DatasetReader(counting)
        with counting.measure() as m:
            files = await reader.dataset("events").files(as_of=target.id, where=where)
        parts = 6 if where is None else 3  # one partition per snapshot here
        # The head (hint 9; records 9 and 10 and a head of each of 11..18; record
        # 12), records 1..6, the matching partition manifests; no listing, no
        # data reads.
        assert m.counts["get"] == 4 + seq + parts, m.counts
        assert m.counts.total_calls == 4 + 8 + seq + parts, m.counts
        assert len(files) == parts
    # A warm handle answers from its record cache; only the (uncached)
    # partition manifests are read again.
    warm = reader.dataset("events")
    await warm.files(as_of=target.id)
    with counting.measure() as m:
        await warm.files(as_of=target.id)
    assert m.counts.total_calls == 6, m.counts
    # latest: the hint + the stride after it (8 heads) + the records not yet
    # cached + their partition manifests.
    reader = DatasetReader(counting)
    with counting.measure() as m:
        files = await reader.dataset("events").files()
    assert len(files) == 12
    assert m.counts.total_calls <= 1 + 8 + 2 * len(snaps), m.counts
    assert m.counts["list"] == m.counts["list_dirs"] == 0


async def test_list_datasets_cost_is_one_listing_plus_one_head_each(
    memory: aiolode.MemoryStore,
) -> None:
    for name in ("a1", "b2", "c3"):
        await aiolode.Dataset(name, memory).write(b"x")
    counting = CountingStore(memory)
    with counting.measure() as m:
        ids = await collect(DatasetReader(counting).list_datasets())
    assert ids == ["a1", "b2", "c3"]
    assert m.counts["list_dirs"] == 1
    assert m.counts["head"] == 3
    assert m.counts.total_calls == 4, m.counts


async def test_iter_object_and_read_range(store: aiolode.Store) -> None:
    _, snaps = await crawl(store)
    reader = DatasetReader(store)
    f = (await reader.dataset("events").files(as_of=snaps[1].id))[-1]
    whole = await store.get(f.key)
    streamed = b"".join(await collect(reader.iter_object(f, chunk_size=7)))
    assert streamed == whole
    assert b"".join(await collect(reader.iter_object(f.file))) == whole
    assert await reader.read_range(f.key, 3, 10) == whole[3:13]
    assert await reader.read_range(f.key, len(whole) - 2, 10) == whole[-2:]
    assert await reader.read_range(f, len(whole) - 2, 10) == whole[-2:]
    missing = attrs.evolve(f.file, key="datasets/events/data/nope.jsonl")
    with pytest.raises(aiolode.ObjectNotFoundError):
        await collect(reader.iter_object(missing))
    with pytest.raises(aiolode.InvalidInputError):
        reader.iter_object(f.key)  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidRangeError):
        await reader.read_range(f.key, -1, 2)


async def test_iter_object_verifies_size_and_checksum(memory: aiolode.MemoryStore) -> None:
    await crawl(memory)
    reader = DatasetReader(memory)
    f = (await reader.dataset("events").files())[0]
    data = await memory.get(f.key)
    await memory.put(f.key, data.replace(b"1", b"7"), mode="overwrite")
    with pytest.raises(aiolode.ChecksumMismatchError) as ei:
        await collect(reader.iter_object(f))
    assert ei.value.key == f.key
    assert ei.value.expected == f.checksum
    assert (ei.value.dataset_id, ei.value.snapshot_id) == ("events", f.snapshot_id)
    # Truncated: a size mismatch, detected even without a checksum.
    await memory.put(f.key, data[:-3], mode="overwrite")
    unchecked = attrs.evolve(f.file, checksum=None)
    with pytest.raises(aiolode.CorruptDataError):
        await collect(reader.iter_object(unchecked))
    with pytest.raises(aiolode.CorruptDataError):
        await reader.read_range(f, 0, len(data))


async def test_reader_validates_arguments(memory: aiolode.MemoryStore) -> None:
    with pytest.raises(aiolode.InvalidInputError):
        DatasetReader("not a store")  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidInputError):
        DatasetReader(memory, layout="hive")  # type: ignore[arg-type]
    assert "DatasetReader" in repr(DatasetReader(memory))


async def test_a_writer_dying_before_its_commit_leaves_files_no_reader_returns(
    memory: aiolode.MemoryStore,
) -> None:
    from aiolode.testing import Crash, FaultInjectingStore, Rule, SimulatedCrash

    faulty = FaultInjectingStore(memory, [Rule(op="put", key="*/_log/*2.json", action=Crash())])
    ds = aiolode.Dataset("events", faulty, codec=aiolode.JSONL(), layout=HIVE)
    first = await ds.write(events("a", "d1", 2))
    with pytest.raises(SimulatedCrash):
        await ds.write(events("zz", "d9", 3))
    # The crashed writer's data file is there, under the dataset's prefix...
    keys = [i.key async for i in memory.list("datasets/events/data/")]
    assert any("source=zz" in k for k in keys)
    # ...and nothing a reader hands out mentions it.
    reader = DatasetReader(memory)
    assert [f.key for f in await reader.dataset("events").files()] == [f.key for f in first.files]
    assert await collect(reader.dataset("events").partitions()) == [{"source": "a", "day": "d1"}]
    assert [r.id for r in await collect(reader.dataset("events").snapshots())] == [first.id]
