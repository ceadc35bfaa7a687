"""Dataset API over every store: raw and record round trips, history, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import aiolode
from aiolode import Dataset


async def test_raw_round_trip(store: aiolode.Store) -> None:
    ds = Dataset("blobs", store, checksum=aiolode.SHA256())
    a = await ds.write(b"hello", {"name": "a.txt"})
    b = await ds.write(bytearray(b"world"))
    assert a.parent_id is None
    assert b.parent_id == a.id
    assert a.id < b.id
    assert a.metadata == {"name": "a.txt"}
    assert b.metadata == {}
    assert a.row_count is None
    assert await ds.read(a.id) == b"hello"
    assert await ds.read(b) == b"world"
    assert (await ds.latest()).id == b.id
    [f] = a.manifest.files
    assert f.size == 5
    assert f.checksum is not None
    assert f.checksum.startswith("sha256:")
    # A fresh object (another process) sees the same history.
    other = Dataset("blobs", store)
    assert (await other.latest()).id == b.id
    assert [s.id async for s in other.snapshots()] == [a.id, b.id]
    assert [s.id async for s in other.snapshots(newest_first=True)] == [b.id, a.id]
    assert await other.read(a.id) == b"hello"
    with pytest.raises(aiolode.UnsupportedOperationError):
        await other.read_table(a.id)
    with pytest.raises(aiolode.UnsupportedOperationError):
        await other.iter_records(a.id).__anext__()


async def test_a_name_never_written_is_not_found(store: aiolode.Store) -> None:
    ds = Dataset("empty", store)
    with pytest.raises(aiolode.DatasetNotFoundError) as ei:
        await ds.latest()
    assert ei.value.dataset_id == "empty"
    # Handlers written for an empty dataset keep working.
    assert isinstance(ei.value, aiolode.NoSnapshotsError)
    assert not await ds.exists()
    with pytest.raises(aiolode.DatasetNotFoundError):
        [s async for s in ds.snapshots()]
    with pytest.raises(aiolode.DatasetNotFoundError):
        [s async for s in ds.snapshots(newest_first=True)]
    with pytest.raises(aiolode.DatasetNotFoundError):
        await ds.snapshot("0000000000000001-0000")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.snapshot("not-an-id")
    with pytest.raises(aiolode.DatasetNotFoundError):
        await ds.snapshot_as_of(datetime.now(UTC))
    with pytest.raises(aiolode.DatasetNotFoundError):
        await ds.files()
    assert [o async for o in store.list("")] == []  # reads wrote nothing


async def test_an_existing_empty_dataset_is_empty(store: aiolode.Store) -> None:
    """A dataset whose first write recorded it but committed nothing (records
    refused by a conflict, say) exists and is empty: not "not found"."""
    ds = Dataset("empty", store, codec=aiolode.JSONL())
    await ds.write([])
    # A descriptor without a commit: what a first writer leaves if it stops
    # between recording the dataset and committing.
    prefix = "datasets/empty/_log/"
    async for o in store.list(prefix):
        await store.delete(o.key)
    fresh = Dataset("empty", store)
    assert await fresh.exists()
    with pytest.raises(aiolode.NoSnapshotsError) as ei:
        await fresh.latest()
    assert not isinstance(ei.value, aiolode.DatasetNotFoundError)
    assert [s async for s in fresh.snapshots()] == []
    assert await fresh.files() == []
    with pytest.raises(aiolode.SnapshotNotFoundError) as e2:
        await fresh.snapshot("0000000000000001-0000")
    assert not isinstance(e2.value, aiolode.DatasetNotFoundError)
    assert e2.value.snapshot_id == "0000000000000001-0000"


async def test_unknown_snapshot_index(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    s = await ds.write(b"x")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.snapshot(s.id[:-1] + "5")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.snapshot("0000000000000002-0000")
    with pytest.raises(aiolode.InvalidInputError):
        await ds.snapshot(3)  # type: ignore[arg-type]


async def test_records_jsonl_gzip(store: aiolode.Store) -> None:
    ds = Dataset(
        "events",
        store,
        codec=aiolode.JSONL(),
        compressor=aiolode.Gzip(),
        checksum=aiolode.MD5(),
        timestamp_field="ts",
    )
    rows = [{"id": i, "ts": f"2024-05-0{1 + i % 3}T00:00:00Z", "v": i * 1.5} for i in range(10)]
    snap = await ds.write(rows, {"batch": 1})
    assert snap.row_count == 10
    assert snap.manifest.codec == "jsonl"
    assert snap.manifest.compressor == "gzip"
    assert snap.manifest.min_timestamp == "2024-05-01T00:00:00.000000Z"
    assert snap.manifest.max_timestamp == "2024-05-03T00:00:00.000000Z"
    [f] = snap.files
    assert f.key.endswith(".jsonl.gz")
    assert f.row_count == 10
    assert f.stats["id"].min == 0
    assert f.stats["id"].max == 9
    assert await ds.read(snap.id) == rows
    assert [r async for r in ds.iter_records(snap.id, batch_size=3)] == rows
    table = await ds.read_table(snap)
    assert table.num_rows == 10
    assert table.column("id").to_pylist() == list(range(10))


async def test_parquet_table_and_stats(store: aiolode.Store) -> None:
    import pyarrow as pa

    ds = Dataset("pq", store, codec=aiolode.Parquet(row_group_size=4), checksum=aiolode.SHA256())
    table = pa.table({"a": list(range(10)), "b": [f"s{i}" for i in range(10)]})
    snap = await ds.write(table)
    [f] = snap.files
    assert f.key.endswith(".parquet")
    assert f.stats["a"].min == 0
    assert f.stats["a"].max == 9
    assert f.stats["a"].null_count == 0
    assert (await ds.read_table(snap.id)).equals(table)
    assert [r["a"] async for r in ds.iter_records(snap.id, batch_size=3)] == list(range(10))
    assert await ds.read(snap.id) == table.to_pylist()


async def test_parquet_refuses_outer_compressor(memory: aiolode.MemoryStore) -> None:
    with pytest.raises(aiolode.InvalidInputError, match="compresses internally"):
        Dataset("x", memory, codec=aiolode.Parquet(), compressor=aiolode.Zstd())


async def test_reads_follow_the_manifest(memory: aiolode.MemoryStore) -> None:
    w = Dataset("d", memory, codec=aiolode.JSONL(), compressor=aiolode.Zstd())
    s1 = await w.write([{"a": 1}])
    # The configuration is recorded: a writer with other options is refused
    # before it writes anything.
    w2 = Dataset("d", memory, codec=aiolode.Parquet())
    before = {o.key async for o in memory.list("")}
    with pytest.raises(aiolode.ConfigMismatchError) as ei:
        await w2.write([{"a": 2}])
    assert ei.value.field == "codec"
    assert {o.key async for o in memory.list("")} == before
    # Readers follow each manifest, whatever they were opened with.
    r = Dataset("d", memory, codec=aiolode.JSONL(), compressor=aiolode.Gzip())
    assert await r.read(s1.id) == [{"a": 1}]
    raw = Dataset("d", memory)
    assert await raw.read(s1.id) == [{"a": 1}]
    # Opened by name alone, it writes with what it recorded.
    s2 = await raw.write([{"a": 2}])
    assert (s2.manifest.codec, s2.manifest.compressor) == ("jsonl", "zstd")
    assert raw.codec is not None
    assert raw.codec.name == "jsonl"


async def test_metadata_rules(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    with pytest.raises(aiolode.InvalidInputError, match="naive datetime"):
        await ds.write(b"x", {"when": datetime.now()})
    with pytest.raises(aiolode.InvalidInputError):
        await ds.write(b"x", {"nan": float("nan")})
    with pytest.raises(aiolode.InvalidInputError):
        await ds.write(b"x", ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidInputError, match="non-str key"):
        await ds.write(b"x", {"nested": [{1: "int key"}]})
    with pytest.raises(aiolode.InvalidInputError, match="non-str key"):
        await ds.write(b"x", {None: 1})  # type: ignore[dict-item]
    # A lone surrogate passes json.dumps but no UTF-8 record can hold it:
    # refused up front, before any data file is written.
    with pytest.raises(aiolode.InvalidInputError, match="UTF-8"):
        await ds.write(b"x", {"a": "\ud800"})
    with pytest.raises(aiolode.InvalidInputError, match="UTF-8"):
        await ds.write(b"x", {"nested": ["ok", {"b": "x\udfff"}]})
    # Nothing was written by the refused calls.
    assert [k async for k in memory.list("")] == []
    s = await ds.write(b"x", {"t": (1, 2), "nested": {"k": [None, True]}})
    # Lists and tuples both come back as tuples, on the write path and the read path.
    assert s.metadata == {"t": (1, 2), "nested": {"k": (None, True)}}
    again = await Dataset("d", memory).snapshot(s.id)
    assert again.metadata == s.metadata
    assert type(again.metadata["t"]) is type(s.metadata["t"]) is tuple
    # None is persisted explicitly as {}.
    s2 = await ds.write(b"y")
    raw = await memory.get(ds.layout.log_prefix("d") + "0000000000000002.json")
    assert b'"metadata":{}' in raw
    assert s2.metadata == {}


async def test_input_validation(memory: aiolode.MemoryStore) -> None:
    with pytest.raises(aiolode.InvalidKeyError):
        Dataset("../escape", memory)
    with pytest.raises(aiolode.InvalidKeyError):
        Dataset("_log", memory)
    with pytest.raises(aiolode.InvalidKeyError):
        Dataset("", memory)
    with pytest.raises(aiolode.InvalidInputError):
        Dataset("d", "not a store")  # type: ignore[arg-type]
    with pytest.raises(aiolode.PartitioningNotSupportedError):
        Dataset("d", memory, codec=None, layout=aiolode.HiveLayout("k"))  # raw cannot partition
    with pytest.raises(aiolode.InvalidInputError):
        Dataset("d", memory, codec=None, timestamp_field="ts")
    # Without a codec, the options may describe an existing dataset: a new one is
    # refused at its first write, before anything is stored.
    with pytest.raises(aiolode.PartitioningNotSupportedError):
        await Dataset("d", memory, layout=aiolode.HiveLayout("k")).write(b"x")
    with pytest.raises(aiolode.InvalidInputError):
        await Dataset("d", memory, timestamp_field="ts").write(b"x")
    with pytest.raises(aiolode.InvalidInputError):
        Dataset("d", memory, checksum="sha256")
    with pytest.raises(aiolode.InvalidInputError):
        Dataset("d", memory, retry=3)  # type: ignore[arg-type]
    raw = Dataset("d", memory)
    with pytest.raises(aiolode.InvalidInputError):
        await raw.write([{"a": 1}])
    with pytest.raises(aiolode.InvalidInputError):
        await raw.write("text")
    rec = Dataset("r", memory, codec=aiolode.JSONL())
    with pytest.raises(aiolode.InvalidInputError):
        await rec.write(b"bytes")
    with pytest.raises(aiolode.InvalidInputError):
        await rec.write({"a": 1})
    with pytest.raises(aiolode.SchemaViolationError):
        await rec.write([{"a": object()}])
    with pytest.raises(aiolode.UnsupportedOperationError):
        async with rec.stream_write():
            pass
    with pytest.raises(aiolode.UnsupportedOperationError):
        await raw.stream_write_records([{"a": 1}])
    assert [k async for k in memory.list("")] == []


async def test_empty_records_snapshot(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory, codec=aiolode.JSONL())
    s = await ds.write([])
    assert s.row_count == 0
    assert s.files == ()
    assert await ds.read(s.id) == []
    assert (await ds.read_table(s.id)).num_rows == 0


async def test_snapshot_as_of(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    snaps = [await ds.write(b"%d" % i) for i in range(9)]
    for s in snaps:
        assert (await ds.snapshot_as_of(s.created_at)).id == s.id
    assert (await ds.snapshot_as_of(datetime.now(UTC) + timedelta(days=1))).id == snaps[-1].id
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.snapshot_as_of(snaps[0].created_at - timedelta(seconds=1))
    with pytest.raises(aiolode.InvalidInputError):
        await ds.snapshot_as_of(datetime.now())


async def test_created_at_monotonic(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    prev = None
    async for s in _write_n(ds, 20):
        if prev is not None:
            assert s.created_at >= prev.created_at
        prev = s


async def _write_n(ds: Dataset, n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        yield await ds.write(b"%d" % i)


async def test_checksum_mismatch_on_every_read_path(store: aiolode.Store) -> None:
    ds = Dataset("d", store, codec=aiolode.JSONL(), checksum=aiolode.SHA256())
    s = await ds.write([{"a": i} for i in range(5)])
    [f] = s.files
    data = await store.get(f.key)
    bad = data.replace(b'"a":3', b'"a":4')
    await store.put(f.key, bad, mode="overwrite")
    with pytest.raises(aiolode.ChecksumMismatchError) as ei:
        await ds.read(s.id)
    assert ei.value.key == f.key
    assert ei.value.expected == f.checksum
    assert ei.value.actual is not None
    assert ei.value.actual != f.checksum
    with pytest.raises(aiolode.ChecksumMismatchError):
        await ds.read_table(s.id)
    with pytest.raises(aiolode.ChecksumMismatchError):
        [r async for r in ds.iter_records(s.id)]


async def test_checksum_mismatch_raw_and_parquet(memory: aiolode.MemoryStore) -> None:
    raw = Dataset("raw", memory, checksum=aiolode.CRC32())
    s = await raw.write(b"0123456789")
    await memory.put(s.files[0].key, b"0123456780", mode="overwrite")
    with pytest.raises(aiolode.ChecksumMismatchError):
        await raw.read(s.id)
    pq = Dataset("pq", memory, codec=aiolode.Parquet(), checksum=aiolode.SHA256())
    s2 = await pq.write([{"a": i} for i in range(100)])
    key = s2.files[0].key
    data = bytearray(await memory.get(key))
    data[len(data) // 2] ^= 0xFF
    await memory.put(key, bytes(data), mode="overwrite")
    with pytest.raises(aiolode.ChecksumMismatchError):
        [r async for r in pq.iter_records(s2.id)]
    with pytest.raises(aiolode.ChecksumMismatchError):
        await pq.read_table(s2.id)


async def test_missing_data_file(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    s = await ds.write(b"abc")
    await memory.delete(s.files[0].key)
    with pytest.raises(aiolode.ObjectNotFoundError):
        await ds.read(s.id)


async def test_snapshot_of_other_dataset_refused(memory: aiolode.MemoryStore) -> None:
    a = Dataset("a", memory)
    b = Dataset("b", memory)
    s = await a.write(b"x")
    with pytest.raises(aiolode.InvalidInputError):
        await b.read(s)


async def test_flat_layout(store: aiolode.Store) -> None:
    ds = Dataset("solo", store, layout=aiolode.FlatLayout())
    s = await ds.write(b"data")
    assert s.files[0].key.startswith("solo/data/")
    assert await store.exists("solo/_log/0000000000000001.json")
    assert await ds.read(s.id) == b"data"


async def test_dataset_verify_method() -> None:
    from aiolode import Dataset, MemoryStore

    store = MemoryStore()
    ds = Dataset("vd", store)
    snap = await ds.write(b"payload")
    report = await ds.verify()
    assert report.ok, report
    data_key = snap.manifest.files[0].key
    await store.put(data_key, b"tampered", mode="overwrite")
    report = await ds.verify()
    assert not report.ok
    assert any(p.key == data_key for p in report.problems)
