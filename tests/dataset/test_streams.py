"""Streamed writes: raw blobs in chunks, records from (async) iterables, with
bounded open partitions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import aiolode
from aiolode import Dataset


async def test_stream_write_blob(store: aiolode.Store) -> None:
    ds = Dataset("big", store, compressor=aiolode.Zstd(), checksum=aiolode.SHA256())
    seen: list[int] = []
    chunk = bytes(range(256)) * 4096  # 1 MiB
    async with ds.stream_write({"name": "blob.bin"}, progress=seen.append) as w:
        for _ in range(5):
            await w.write(chunk)
        await w.write(b"")
    snap = w.snapshot
    assert w.bytes_written == 5 * len(chunk)
    assert seen == [len(chunk) * (i + 1) for i in range(5)]
    assert snap.metadata == {"name": "blob.bin"}
    [f] = snap.files
    assert f.key.endswith(".bin.zst")
    assert f.size < len(chunk)  # compressed
    assert await ds.read(snap.id) == chunk * 5
    assert (await ds.latest()).id == snap.id


async def test_stream_write_async_progress(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    seen: list[int] = []

    async def progress(n: int) -> None:
        seen.append(n)

    async with ds.stream_write(progress=progress) as w:
        await w.write(b"abc")
    assert seen == [3]
    with pytest.raises(aiolode.InvalidInputError):
        await w.write(b"late")
    with pytest.raises(aiolode.InvalidInputError):
        async with ds.stream_write() as w2:
            await w2.write("text")  # type: ignore[arg-type]


async def _agen(rows: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for r in rows:
        yield r


@pytest.mark.parametrize("codec", ["jsonl", "parquet"])
async def test_stream_records_partitioned_lru(store: aiolode.Store, codec: str) -> None:
    c = aiolode.JSONL() if codec == "jsonl" else aiolode.Parquet(row_group_size=50)
    ds = Dataset(
        "ev",
        store,
        codec=c,
        layout=aiolode.HiveLayout("p"),
        checksum=aiolode.SHA256(),
        timestamp_field="ts",
    )
    # Runs of 8 records cycling over 5 partitions with only 2 open: each run
    # after the first visit of a partition starts a new file for it.
    rows = [
        {"p": f"k{(i // 8) % 5}", "i": i, "ts": f"2024-01-01T00:00:{i % 60:02d}Z"}
        for i in range(120)
    ]
    snap = await ds.stream_write_records(
        _agen(rows), {"src": "test"}, max_open_partitions=2, batch_size=7
    )
    assert snap.row_count == 120
    assert snap.metadata == {"src": "test"}
    assert len(snap.files) == 15
    assert {f.partition["p"] for f in snap.files} == {f"k{i}" for i in range(5)}
    for f in snap.files:
        assert f.key.startswith(f"datasets/ev/data/p={f.partition['p']}/")
    assert snap.manifest.min_timestamp == "2024-01-01T00:00:00.000000Z"
    assert snap.manifest.max_timestamp == "2024-01-01T00:00:59.000000Z"
    back = await ds.read(snap.id)
    assert sorted(back, key=lambda r: r["i"]) == rows
    streamed = [r async for r in ds.iter_records(snap.id, batch_size=10)]
    assert sorted(streamed, key=lambda r: r["i"]) == rows
    table = await ds.read_table(snap.id)
    assert table.num_rows == 120


async def test_stream_records_sync_iterable_unpartitioned(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory, codec=aiolode.JSONL(), compressor=aiolode.Gzip())
    snap = await ds.stream_write_records(({"i": i} for i in range(5000)), batch_size=1000)
    assert len(snap.files) == 1
    assert snap.row_count == 5000
    assert [r["i"] async for r in ds.iter_records(snap.id)] == list(range(5000))


async def test_stream_records_empty_and_bad(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    s = await ds.stream_write_records([])
    assert s.files == ()
    assert s.row_count == 0
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await ds.stream_write_records([{"p": "a"}, {"q": 1}])
    assert ei.value.field == "p"
    with pytest.raises(aiolode.SchemaViolationError):
        await ds.stream_write_records([{"p": "a"}, "not a mapping"])
    with pytest.raises(aiolode.InvalidInputError):
        await ds.stream_write_records(b"bytes")
    with pytest.raises(aiolode.InvalidInputError):
        await ds.stream_write_records([], max_open_partitions=0)
    # Failed streams committed nothing and left no data behind.
    assert [x.id async for x in ds.snapshots()] == [s.id]
    assert [o.key async for o in memory.list("datasets/d/data/")] == []


async def test_partitioned_write_arrow_table(memory: aiolode.MemoryStore) -> None:
    import pyarrow as pa

    ds = Dataset("d", memory, codec=aiolode.Parquet(), layout=aiolode.HiveLayout("day", "src"))
    table = pa.table(
        {"day": ["d1", "d2", "d1", "d2"], "src": ["a/b", "x", "a/b", "y"], "v": [1, 2, 3, 4]}
    )
    snap = await ds.write(table)
    parts = sorted((f.partition["day"], f.partition["src"], f.row_count) for f in snap.files)
    assert parts == [("d1", "a/b", 2), ("d2", "x", 1), ("d2", "y", 1)]
    got = await ds.read_table(snap.id)
    assert sorted(got.column("v").to_pylist()) == [1, 2, 3, 4]
    assert got.schema.field("v").type == pa.int64()


@pytest.mark.parametrize("codec", ["parquet", "jsonl"])
async def test_large_arrow_write_is_pipelined(
    store: aiolode.Store, codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big Arrow tables are encoded slice by slice while they upload (one file)."""
    import pyarrow as pa

    from aiolode.dataset import _write

    monkeypatch.setattr(_write, "_PIPELINE_BYTES", 1)
    monkeypatch.setattr(_write, "_PIPELINE_ROWS", 100)
    c = aiolode.Parquet(row_group_size=64) if codec == "parquet" else aiolode.JSONL()
    ds = Dataset(
        "big",
        store,
        codec=c,
        checksum=aiolode.SHA256(),
        layout=aiolode.HiveLayout("p"),
        timestamp_field="ts",
    )
    n = 1000
    table = pa.table(
        {
            "p": ["a" if i % 3 else "b" for i in range(n)],
            "v": list(range(n)),
            "ts": [f"2024-01-01T00:00:{i % 60:02d}Z" for i in range(n)],
        }
    )
    snap = await ds.write(table)
    assert sorted(f.partition["p"] for f in snap.files) == ["a", "b"]
    assert snap.row_count == n
    assert sum(f.row_count or 0 for f in snap.files) == n
    v = {f.partition["p"]: f.stats["v"] for f in snap.files}
    assert (v["b"].min, v["b"].max) == (0, n - 1)
    assert v["a"].min == 1
    assert snap.manifest.max_timestamp == "2024-01-01T00:00:59.000000Z"
    back = await ds.read_table(snap.id)
    assert sorted(back.column("v").to_pylist()) == list(range(n))
    for f in snap.files:  # sizes and checksums describe the stored bytes
        assert (await store.head(f.key)).size == f.size
