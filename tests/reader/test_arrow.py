"""The Arrow bridge end to end: DuckDB and Polars read what the Dataset API reads.

Every pyarrow/DuckDB/Polars call blocks, so it runs in a worker thread
(``anyio.to_thread.run_sync``); the event loop stays free to serve the store
filesystem's callbacks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio.to_thread
import pytest

import aiolode
from aiolode.reader import DatasetReader, arrow_dataset, to_arrow_dataset

pa = pytest.importorskip("pyarrow")
duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")

HIVE = aiolode.HiveLayout("source", "day")

CODECS: dict[str, Any] = {
    "jsonl": lambda: (aiolode.JSONL(), None),
    "jsonl-gzip": lambda: (aiolode.JSONL(), aiolode.Gzip()),
    "jsonl-zstd": lambda: (aiolode.JSONL(), aiolode.Zstd()),
    "parquet": lambda: (aiolode.Parquet(), None),
    "arrow": lambda: (aiolode.ArrowIPC(), None),
}

Groups = dict[tuple[str, str], tuple[int, int]]


def rows(source: str, day: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"source": source, "day": day, "n": start + i, "tag": f"t{i % 3}"} for i in range(n)]


async def crawl(store: aiolode.Store, codec: str) -> tuple[aiolode.Dataset, list[aiolode.Snapshot]]:
    c, comp = CODECS[codec]()
    ds = aiolode.Dataset(
        "events", store, codec=c, compressor=comp, layout=HIVE, checksum=aiolode.SHA256()
    )
    snaps = [
        await ds.write(rows("a", "d1", 5) + rows("b", "d1", 3)),
        await ds.write(rows("a", "d2", 4, start=10)),
        # A value that must be escaped in the path: readers see it decoded.
        await ds.write(rows("b", "d1", 2, start=100) + rows("c", "d3", 1) + rows("w/é %", "d1", 1)),
    ]
    # An aborted write's file under a committed partition: never data.
    await store.put(f"datasets/events/data/source=a/day=d1/orphan{c.extension}", b"junk")
    return ds, snaps


def group(records: list[dict[str, Any]]) -> Groups:
    count: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    for r in records:
        k = (r["source"], r["day"])
        count[k] += 1
        total[k] += r["n"]
    return {k: (count[k], total[k]) for k in count}


async def api_groups(ds: aiolode.Dataset, snaps: list[aiolode.Snapshot]) -> Groups:
    records: list[dict[str, Any]] = []
    for s in snaps:
        records += await ds.read(s)
    return group(records)


def duck_groups(adset: Any, where: str = "true") -> Groups:
    con = duckdb.connect()
    try:
        con.register("events", adset)
        got = con.sql(
            f"select source, day, count(*), sum(n) from events where {where} group by all"
        ).fetchall()
    finally:
        con.close()
    return {(s, d): (int(c), int(t)) for s, d, c, t in got}


def polars_groups(adset: Any, expr: Any = None) -> Groups:
    lf = pl.scan_pyarrow_dataset(adset)
    if expr is not None:
        lf = lf.filter(expr)
    df = lf.group_by("source", "day").agg(pl.len().alias("c"), pl.col("n").sum().alias("t"))
    return {(r["source"], r["day"]): (r["c"], r["t"]) for r in df.collect().to_dicts()}


@pytest.fixture(params=list(CODECS))
def codec(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_duckdb_and_polars_read_what_the_dataset_api_reads(
    store: aiolode.Store, codec: str
) -> None:
    ds, snaps = await crawl(store, codec)
    for upto in (0, len(snaps) - 1):
        as_of = None if upto == len(snaps) - 1 else snaps[upto].id
        adset = await to_arrow_dataset(ds, as_of=as_of)
        expected = await api_groups(ds, snaps[: upto + 1])
        assert await anyio.to_thread.run_sync(duck_groups, adset) == expected
        assert await anyio.to_thread.run_sync(polars_groups, adset) == expected
        count = await anyio.to_thread.run_sync(adset.count_rows)
        assert count == sum(c for c, _ in expected.values())

    everything = await api_groups(ds, snaps)
    adset = await to_arrow_dataset(ds)
    # Filters on partition columns, in SQL, Polars and pyarrow.
    only_a_d1 = {k: v for k, v in everything.items() if k == ("a", "d1")}
    assert (
        await anyio.to_thread.run_sync(duck_groups, adset, "source = 'a' and day = 'd1'")
        == only_a_d1
    )
    b_or_c = {k: v for k, v in everything.items() if k[0] in ("b", "c", "w/é %")}
    expr = pl.col("source").is_in(["b", "c", "w/é %"])
    assert await anyio.to_thread.run_sync(polars_groups, adset, expr) == b_or_c

    # where= prunes the files handed over.
    pruned = await to_arrow_dataset(ds, where={"source": "a"})
    assert await anyio.to_thread.run_sync(duck_groups, pruned) == {
        k: v for k, v in everything.items() if k[0] == "a"
    }
    # Time travel and pruning together.
    old = await to_arrow_dataset(ds, as_of=snaps[0].id, where={"day": "d1"})
    assert await anyio.to_thread.run_sync(duck_groups, old) == await api_groups(ds, snaps[:1])
    # The thin Dataset method gives the same view.
    via_ds = await ds.to_arrow_dataset(as_of=snaps[0].id, where={"day": "d1"})
    assert await anyio.to_thread.run_sync(duck_groups, via_ds) == await api_groups(ds, snaps[:1])


async def test_native_filesystems_are_used_where_pyarrow_has_one(store: aiolode.Store) -> None:
    ds, _ = await crawl(store, "parquet")
    adset = await to_arrow_dataset(ds)
    expected = {
        "memory": "py::aiolode+buffers",  # the bytes are in memory already: no Python filesystem
        "file": "local",
        "s3": "s3",
        "gcs": "py::aiolode+gcs",  # no native GCS filesystem: reads go through the store
    }[store.name if store.name in ("memory", "s3", "gcs") else "file"]
    assert adset.filesystem.type_name == expected
    frags = await anyio.to_thread.run_sync(lambda: list(adset.get_fragments()))
    assert all((f.buffer is not None) == (store.name == "memory") for f in frags)
    forced = await to_arrow_dataset(ds, filesystem="store")
    assert type((await ds.to_arrow_dataset(filesystem="store")).filesystem).__name__ == (
        "PyFileSystem"
    )
    with pytest.raises(aiolode.InvalidInputError, match="unexpected keyword"):
        await ds.to_arrow_dataset(filesytem="store")
    assert type(forced.filesystem).__name__ == "PyFileSystem"
    assert await anyio.to_thread.run_sync(forced.count_rows) == 16
    assert forced.filesystem.handler.stats.requests > 0


async def test_schema_types_and_partition_columns(memory: aiolode.MemoryStore) -> None:
    ds, _ = await crawl(memory, "parquet")
    adset = await to_arrow_dataset(ds)
    assert adset.schema.field("source").type == pa.string()
    assert adset.schema.field("n").type == pa.int64()
    # Each fragment carries its partition values: pyarrow skips whole files.
    import pyarrow.compute as pc

    frags = await anyio.to_thread.run_sync(
        lambda: list(adset.get_fragments(filter=pc.field("source") == "c"))
    )
    assert len(frags) == 1
    assert "d3" in str(frags[0].partition_expression)
    # A given schema skips inspection and is used as is.
    schema = pa.schema([("source", pa.string()), ("day", pa.string()), ("n", pa.int64())])
    narrow = await to_arrow_dataset(ds, schema=schema)
    assert narrow.schema == schema
    table = await anyio.to_thread.run_sync(narrow.to_table)
    assert table.num_rows == 16
    assert table.column_names == ["source", "day", "n"]


async def test_store_filesystem_parquet_footer_costs_one_range_request(
    memory: aiolode.MemoryStore,
) -> None:
    import pyarrow.parquet as pq

    ds = aiolode.Dataset("big", memory, codec=aiolode.Parquet(row_group_size=2_000))
    import hashlib

    # Incompressible strings, so the footer sits far from the start of the file.
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]
    table = pa.table({"i": list(range(20_000)), "s": digests})
    snap = await ds.write(table)
    (f,) = snap.files
    counting = aiolode.testing.CountingStore(memory)
    from aiolode.reader._fs import store_filesystem

    fs = store_filesystem(counting, sizes={f.key: f.size})

    def footer() -> Any:
        with fs.open_input_file(f.key) as fh:
            return pq.ParquetFile(fh).metadata

    with counting.measure() as m:
        meta = await anyio.to_thread.run_sync(footer)
    assert meta.num_rows == 20_000
    assert meta.num_row_groups == 10
    assert m.counts["get_range"] == 1, m.counts
    assert m.counts.total_calls == 1, m.counts
    stats = fs.handler.stats
    assert stats.requests == 1
    assert stats.head_requests == 0
    assert f.size > 500_000
    assert stats.bytes_fetched <= 2 * 64 * 1024  # the tail (page-aligned), not the file
    # Opening it again is served by the page cache.
    with counting.measure() as m:
        await anyio.to_thread.run_sync(footer)
    assert m.counts.total_calls == 0, m.counts

    # A column scan reads only that column's chunks, in range requests.
    def one_column() -> Any:
        with fs.open_input_file(f.key) as fh:
            return pq.ParquetFile(fh).read(columns=["i"])

    got = await anyio.to_thread.run_sync(one_column)
    assert got.column("i").to_pylist() == list(range(20_000))
    assert fs.handler.stats.bytes_fetched < f.size / 2


async def test_verify_catches_corruption_pyarrow_would_miss(tmp_path: Any) -> None:
    async with aiolode.FileStore(tmp_path) as store:
        ds, snaps = await crawl(store, "jsonl")
        await to_arrow_dataset(ds, verify=True)  # intact: fine
        f = snaps[1].files[0]
        data = await store.get(f.key)
        await store.put(f.key, data.replace(b"1", b"9"), mode="overwrite")
        with pytest.raises(aiolode.ChecksumMismatchError) as ei:
            await to_arrow_dataset(ds, verify=True)
        assert ei.value.key == f.key
        # Without verification pyarrow reads the altered bytes as they are.
        adset = await to_arrow_dataset(ds)
        assert await anyio.to_thread.run_sync(adset.count_rows) == 16


async def test_compressed_jsonl_is_always_verified(memory: aiolode.MemoryStore) -> None:
    ds, snaps = await crawl(memory, "jsonl-zstd")
    f = snaps[0].files[0]
    data = bytearray(await memory.get(f.key))
    data[-5] ^= 0xFF
    await memory.put(f.key, bytes(data), mode="overwrite")
    with pytest.raises(aiolode.ChecksumMismatchError):
        await to_arrow_dataset(ds)


async def test_unsupported_cases(memory: aiolode.MemoryStore) -> None:
    raw = aiolode.Dataset("raw", memory)
    await raw.write(b"blob")
    with pytest.raises(aiolode.UnsupportedOperationError):
        await to_arrow_dataset(raw)
    ds, _ = await crawl(memory, "parquet")
    with pytest.raises(aiolode.UnsupportedOperationError):
        await to_arrow_dataset(ds, filesystem="native")
    with pytest.raises(aiolode.InvalidInputError):
        await to_arrow_dataset(ds, filesystem="ftp")


async def test_empty_dataset_gives_an_empty_arrow_dataset(memory: aiolode.MemoryStore) -> None:
    reader = DatasetReader(memory)
    adset = await reader.to_arrow_dataset("nothing")
    assert await anyio.to_thread.run_sync(adset.count_rows) == 0
    adset = await arrow_dataset(memory, [], schema=pa.schema([("x", pa.int64())]))
    assert adset.schema.names == ["x"]


@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_iso_strings_stay_strings_like_the_dataset_api(kind: str, tmp_path: Any) -> None:
    store: aiolode.Store = (
        aiolode.MemoryStore() if kind == "memory" else aiolode.FileStore(tmp_path)
    )
    async with store:
        ds = aiolode.Dataset(
            "dated", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("day")
        )
        snap = await ds.write(
            [
                {"day": "2024-05-01", "at": "2024-05-01T10:00:00", "n": 1},
                {"day": "2024-05-02", "at": "x", "n": 2},
            ]
        )
        adset = await to_arrow_dataset(ds)
        assert adset.schema.field("day").type == pa.string()
        table = await anyio.to_thread.run_sync(adset.to_table)
        assert sorted(table.to_pylist(), key=lambda r: r["n"]) == [
            {k: r[k] for k in table.column_names} for r in await ds.read(snap)
        ]
        got = await anyio.to_thread.run_sync(
            lambda: duckdb.connect().from_arrow(adset).filter("day = '2024-05-02'").fetchall()
        )
        assert len(got) == 1


async def test_store_filesystem_refuses_the_event_loop_thread(memory: aiolode.MemoryStore) -> None:
    from aiolode.reader._fs import store_filesystem

    await memory.put("k", b"data")
    fs = store_filesystem(memory)
    # On the loop thread, waiting for the loop would deadlock: it raises instead.
    with pytest.raises(Exception, match="event loop"):
        fs.get_file_info("k")
    info = await anyio.to_thread.run_sync(fs.get_file_info, "k")
    assert info.size == 4
    missing = await anyio.to_thread.run_sync(fs.get_file_info, "nope")
    assert missing.type == pa.fs.FileType.NotFound
    with pytest.raises(Exception, match="read-only"):
        await anyio.to_thread.run_sync(fs.delete_file, "k")
    listed = await anyio.to_thread.run_sync(
        lambda: fs.get_file_info(pa.fs.FileSelector("", recursive=True))
    )
    assert [i.path for i in listed] == ["k"]


async def test_memory_route_reads_verified_buffers_on_any_store(store: aiolode.Store) -> None:
    """filesystem="memory": every file fetched whole, verified, served from buffers."""
    ds, snaps = await crawl(store, "parquet")
    files = await ds.files()
    counting = aiolode.testing.CountingStore(store)
    with counting.measure() as m:
        adset = await arrow_dataset(counting, files, filesystem="memory")
    assert m.counts.total_calls == m.counts["get"] == len(files) == sum(len(s.files) for s in snaps)
    assert adset.filesystem.type_name == "py::aiolode+buffers"
    frags = await anyio.to_thread.run_sync(lambda: list(adset.get_fragments()))
    assert len(frags) == len(files)
    assert all(f.buffer is not None for f in frags)
    expected = await api_groups(ds, snaps)
    assert await anyio.to_thread.run_sync(duck_groups, adset) == expected
    assert await anyio.to_thread.run_sync(polars_groups, adset) == expected
    # The files' bytes were checked against their manifests on the way in.
    f = snaps[1].files[0]
    data = bytearray(await store.get(f.key))
    data[len(data) // 2] ^= 0x01
    await store.put(f.key, bytes(data), mode="overwrite")
    with pytest.raises(aiolode.ChecksumMismatchError) as ei:
        await to_arrow_dataset(ds, filesystem="memory")
    assert ei.value.key == f.key


async def test_buffer_filesystem_refuses_every_call(memory: aiolode.MemoryStore) -> None:
    ds, _ = await crawl(memory, "parquet")
    adset = await to_arrow_dataset(ds)
    with pytest.raises(NotImplementedError, match="in-memory buffers"):
        await anyio.to_thread.run_sync(adset.filesystem.open_input_file, "anything")
    with pytest.raises(NotImplementedError, match="in-memory buffers"):
        await anyio.to_thread.run_sync(adset.filesystem.get_file_info, "anything")
    # A wrapped memory store is still read from buffers.
    wrapped = aiolode.Dataset(
        ds.id, aiolode.testing.CountingStore(memory), codec=aiolode.Parquet(), layout=HIVE
    )
    assert (await to_arrow_dataset(wrapped)).filesystem.type_name == "py::aiolode+buffers"


async def test_duckdb_over_a_memory_store_never_deadlocks(memory: aiolode.MemoryStore) -> None:
    """Regression: DuckDB calls pyarrow's Scanner.to_reader(), which holds the GIL
    while a scan over a Python filesystem waits for it under one of pyarrow's
    locks. Over the old store filesystem this hung about once per few hundred
    queries (CI hung for 90 min); buffers need no Python on pyarrow's threads.
    A hang here ends the run through faulthandler_timeout, with every stack."""
    ds, snaps = await crawl(memory, "parquet")
    adset = await to_arrow_dataset(ds)
    expected = await api_groups(ds, snaps)

    def many() -> set[tuple[tuple[tuple[str, str], tuple[int, int]], ...]]:
        con = duckdb.connect()
        try:
            con.register("events", adset)
            seen = set()
            for _ in range(300):
                got = con.sql("select source, day, count(*), sum(n) from events group by all")
                seen.add(tuple(sorted(((s, d), (int(c), int(t))) for s, d, c, t in got.fetchall())))
            return seen
        finally:
            con.close()

    assert await anyio.to_thread.run_sync(many) == {tuple(sorted(expected.items()))}
