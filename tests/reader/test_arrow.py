"""The Arrow bridge end to end: DuckDB and Polars read what the Dataset API reads.

Every pyarrow/DuckDB/Polars call blocks, so it runs in a worker thread
(``anyio.to_thread.run_sync``); the event loop stays free to serve the store
filesystem's callbacks.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import anyio.to_thread
import pytest

import aiolode
import aiolode.store
import aiolode.testing
from aiolode.arrow import Route, plan
from aiolode.reader import DatasetReader, arrow_dataset

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


def uses_store_filesystem(adset: Any) -> bool:
    fs = getattr(adset, "filesystem", None)
    if (
        fs is not None
        and fs.type_name.startswith("py::aiolode+")
        and fs.type_name != ("py::aiolode+buffers")
    ):
        return True
    return any(uses_store_filesystem(c) for c in getattr(adset, "children", None) or [])


async def duck_view(ds: aiolode.Dataset, **kw: Any) -> Any:
    """The dataset DuckDB may scan: DuckDB's scans over a Python filesystem can
    deadlock in pyarrow (see arrow_dataset), so a store without a native
    filesystem gives DuckDB the "memory" route."""
    store = ds.store
    native = await store.arrow_filesystem()
    fs = "auto" if native is not None or store.objects_in_memory else "memory"
    return await ds.to_arrow_dataset(filesystem=fs, **kw)


def duck_groups(adset: Any, where: str = "true") -> Groups:
    assert not uses_store_filesystem(adset), "DuckDB over the store filesystem can deadlock"
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
        adset = await ds.to_arrow_dataset(as_of=as_of)
        expected = await api_groups(ds, snaps[: upto + 1])
        duck = await duck_view(ds, as_of=as_of)
        assert await anyio.to_thread.run_sync(duck_groups, duck) == expected
        assert await anyio.to_thread.run_sync(polars_groups, adset) == expected
        count = await anyio.to_thread.run_sync(adset.count_rows)
        assert count == sum(c for c, _ in expected.values())

    everything = await api_groups(ds, snaps)
    adset = await ds.to_arrow_dataset()
    # Filters on partition columns, in SQL, Polars and pyarrow.
    only_a_d1 = {k: v for k, v in everything.items() if k == ("a", "d1")}
    assert (
        await anyio.to_thread.run_sync(
            duck_groups, await duck_view(ds), "source = 'a' and day = 'd1'"
        )
        == only_a_d1
    )
    b_or_c = {k: v for k, v in everything.items() if k[0] in ("b", "c", "w/é %")}
    expr = pl.col("source").is_in(["b", "c", "w/é %"])
    assert await anyio.to_thread.run_sync(polars_groups, adset, expr) == b_or_c

    # where= prunes the files handed over.
    pruned = await duck_view(ds, where={"source": "a"})
    assert await anyio.to_thread.run_sync(duck_groups, pruned) == {
        k: v for k, v in everything.items() if k[0] == "a"
    }
    # Time travel and pruning together.
    old = await duck_view(ds, as_of=snaps[0].id, where={"day": "d1"})
    assert await anyio.to_thread.run_sync(duck_groups, old) == await api_groups(ds, snaps[:1])
    # The thin Dataset method gives the same view.
    via_ds = await ds.to_arrow_dataset(as_of=snaps[0].id, where={"day": "d1"})
    assert await anyio.to_thread.run_sync(polars_groups, via_ds) == await api_groups(ds, snaps[:1])


async def test_native_filesystems_are_used_where_the_store_offers_one(
    store: aiolode.Store,
) -> None:
    ds, _ = await crawl(store, "parquet")
    adset = await ds.to_arrow_dataset()
    # The bridge follows the store's capabilities, never its class: a store
    # offering pyarrow's own filesystem is read natively, one keeping objects in
    # memory through buffers, anything else through the store filesystem.
    offered = await store.arrow_filesystem()
    if offered is not None:
        expected = offered.filesystem.type_name
    elif store.objects_in_memory:
        expected = "py::aiolode+buffers"
    else:
        expected = f"py::aiolode+{store.name}"
    # And what each store offers today.
    assert (
        expected
        == {
            "memory": "py::aiolode+buffers",  # the bytes are in memory already
            "file": "local",
            "s3": "s3",
            "gcs": "py::aiolode+gcs",  # no native GCS filesystem: reads go through the store
        }[store.name if store.name in ("memory", "s3", "gcs") else "file"]
    )
    assert adset.filesystem.type_name == expected
    frags = await anyio.to_thread.run_sync(lambda: list(adset.get_fragments()))
    assert all((f.buffer is not None) == store.objects_in_memory for f in frags)
    forced = await ds.to_arrow_dataset(filesystem="store")
    assert type((await ds.to_arrow_dataset(filesystem="store")).filesystem).__name__ == (
        "PyFileSystem"
    )
    assert type(forced.filesystem).__name__ == "PyFileSystem"
    assert await anyio.to_thread.run_sync(forced.count_rows) == 16
    assert forced.filesystem.handler.statistics().requests > 0


class NativeFiles(aiolode.store.WrapperStore):
    """A FileStore that offers pyarrow's LocalFileSystem, as FileStore itself
    does once the store branch lands: exercises the NATIVE route here."""

    def __init__(self, inner: aiolode.FileStore) -> None:
        super().__init__(inner)
        self.files = inner

    async def arrow_filesystem(self) -> Any:
        import pyarrow.fs as pafs

        from aiolode.store import ArrowFilesystem

        root = await anyio.to_thread.run_sync(os.path.realpath, self.files.root)
        return ArrowFilesystem(filesystem=pafs.LocalFileSystem(), path=lambda k: f"{root}/{k}")


@pytest.mark.parametrize("codec", ["parquet", "arrow", "jsonl", "jsonl-gzip", "jsonl-zstd"])
async def test_native_route_reads_and_checks_every_file(tmp_path: Any, codec: str) -> None:
    async with NativeFiles(aiolode.FileStore(tmp_path)) as store:
        ds, snaps = await crawl(store, codec)
        files = await ds.files()
        routes = plan(files, native=await store.arrow_filesystem(), filesystem="auto",
                      objects_in_memory=False)  # fmt: skip
        want = Route.EAGER if codec == "jsonl-zstd" else Route.NATIVE
        assert {p.route for p in routes.items} == {want}
        adset = await arrow_dataset(store, files)
        if want is Route.NATIVE:
            assert adset.filesystem.type_name == "local"
        expected = await api_groups(ds, snaps)
        assert await anyio.to_thread.run_sync(duck_groups, adset) == expected
        # Damage one file: building the dataset says which, as an aiolode error.
        f = snaps[1].files[0]
        data = await store.get(f.key)
        await store.put(f.key, data[: len(data) // 2], mode="overwrite")
        with pytest.raises(aiolode.CorruptDataError) as ei:
            await arrow_dataset(store, files)
        assert ei.value.key == f.key
        assert ei.value.snapshot_id == snaps[1].id
        await store.delete(f.key)
        with pytest.raises(aiolode.ObjectNotFoundError) as ei2:
            await arrow_dataset(store, files)
        assert ei2.value.key == f.key


async def test_schema_types_and_partition_columns(memory: aiolode.MemoryStore) -> None:
    ds, _ = await crawl(memory, "parquet")
    adset = await ds.to_arrow_dataset()
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
    narrow = await ds.to_arrow_dataset(schema=schema)
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
    from aiolode.arrow._fs import store_filesystem

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
    stats = fs.handler.statistics()
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
    assert fs.handler.statistics().bytes_fetched < f.size / 2


async def test_verify_catches_corruption_pyarrow_would_miss(tmp_path: Any) -> None:
    # Files read in place (the native route) are pyarrow's: only verify=True
    # reads their digests (same-size damage is what needs a checksum).
    async with NativeFiles(aiolode.FileStore(tmp_path)) as store:
        ds, snaps = await crawl(store, "jsonl")
        await arrow_dataset(store, await ds.files(), verify=True)  # intact: fine
        f = snaps[1].files[0]
        data = await store.get(f.key)
        await store.put(f.key, data.replace(b"1", b"9"), mode="overwrite")
        with pytest.raises(aiolode.ChecksumMismatchError) as ei:
            await arrow_dataset(store, await ds.files(), verify=True)
        assert ei.value.key == f.key
        # Without verification pyarrow reads the altered bytes as they are.
        adset = await arrow_dataset(store, await ds.files())
        assert await anyio.to_thread.run_sync(adset.count_rows) == 16


async def test_compressed_jsonl_is_always_verified(memory: aiolode.MemoryStore) -> None:
    ds, snaps = await crawl(memory, "jsonl-zstd")
    f = snaps[0].files[0]
    data = bytearray(await memory.get(f.key))
    data[-5] ^= 0xFF
    await memory.put(f.key, bytes(data), mode="overwrite")
    with pytest.raises(aiolode.ChecksumMismatchError):
        await ds.to_arrow_dataset()


async def test_unsupported_cases(memory: aiolode.MemoryStore) -> None:
    raw = aiolode.Dataset("raw", memory)
    await raw.write(b"blob")
    with pytest.raises(aiolode.UnsupportedOperationError):
        await raw.to_arrow_dataset()
    ds, _ = await crawl(memory, "parquet")
    with pytest.raises(aiolode.UnsupportedOperationError):
        await ds.to_arrow_dataset(filesystem="native")
    with pytest.raises(aiolode.InvalidInputError):
        await ds.to_arrow_dataset(filesystem="ftp")


async def test_empty_dataset_gives_an_empty_arrow_dataset(memory: aiolode.MemoryStore) -> None:
    empty = aiolode.Dataset("nothing", memory, codec=aiolode.JSONL())
    await empty.write([])  # exists, with no rows
    adset = await DatasetReader(memory).dataset("nothing").to_arrow_dataset()
    assert await anyio.to_thread.run_sync(adset.count_rows) == 0
    with pytest.raises(aiolode.DatasetNotFoundError):
        await DatasetReader(memory).dataset("never").to_arrow_dataset()
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
        adset = await ds.to_arrow_dataset()
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
    from aiolode.arrow._fs import store_filesystem

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
        await ds.to_arrow_dataset(filesystem="memory")
    assert ei.value.key == f.key


async def test_buffer_filesystem_refuses_every_call(memory: aiolode.MemoryStore) -> None:
    ds, _ = await crawl(memory, "parquet")
    adset = await ds.to_arrow_dataset()
    with pytest.raises(NotImplementedError, match="in-memory buffers"):
        await anyio.to_thread.run_sync(adset.filesystem.open_input_file, "anything")
    with pytest.raises(NotImplementedError, match="in-memory buffers"):
        await anyio.to_thread.run_sync(adset.filesystem.get_file_info, "anything")
    # A wrapped memory store is still read from buffers.
    wrapped = aiolode.Dataset(
        ds.id, aiolode.testing.CountingStore(memory), codec=aiolode.Parquet(), layout=HIVE
    )
    assert (await wrapped.to_arrow_dataset()).filesystem.type_name == "py::aiolode+buffers"


async def test_duckdb_over_a_memory_store_never_deadlocks(memory: aiolode.MemoryStore) -> None:
    """Regression: DuckDB calls pyarrow's Scanner.to_reader(), which holds the GIL
    while a scan over a Python filesystem waits for it under one of pyarrow's
    locks. Over the old store filesystem this hung about once per few hundred
    queries (CI hung for 90 min); buffers need no Python on pyarrow's threads.
    A hang here ends the run through faulthandler_timeout, with every stack."""
    ds, snaps = await crawl(memory, "parquet")
    adset = await ds.to_arrow_dataset()
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


DAMAGES = ["truncate", "extend", "garbage", "delete"]


async def damage(store: aiolode.Store, key: str, how: str) -> None:
    if how == "delete":
        await store.delete(key)
        return
    data = await store.get(key)
    new = {
        "truncate": data[: len(data) // 2],
        "extend": data + data,
        "garbage": bytes(len(data)),
    }[how]
    await store.put(key, new, mode="overwrite")


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("filesystem", ["auto", "memory", "store"])
async def test_every_route_refuses_damaged_files_with_typed_errors(
    memory: aiolode.MemoryStore, codec: str, how: str, filesystem: str
) -> None:
    """No checksum: the recorded size and row count are what catches damage."""
    c, comp = CODECS[codec]()
    ds = aiolode.Dataset("events", memory, codec=c, compressor=comp, layout=HIVE, checksum=None)
    snap = await ds.write(rows("a", "d1", 50) + rows("b", "d2", 50))
    f = snap.files[0]
    assert f.checksum is None
    await damage(memory, f.key, how)
    files = await ds.files()
    try:
        adset = await arrow_dataset(memory, files, filesystem=filesystem)
    except aiolode.AiolodeError as exc:
        err = exc
        assert isinstance(err, aiolode.ObjectNotFoundError | aiolode.CorruptDataError), err
        assert (err.key, err.snapshot_id) == (f.key, snap.id)
        return
    # Built: only where pyarrow never looks past the recorded size, and then
    # the rows are the ones written.
    assert how == "extend", (how, filesystem)
    table = await anyio.to_thread.run_sync(adset.to_table)
    assert table.num_rows == 100


async def test_row_count_mismatch_is_caught_where_cheap(memory: aiolode.MemoryStore) -> None:
    import attrs

    for codec in ("parquet", "arrow", "jsonl"):
        c, comp = CODECS[codec]()
        ds = aiolode.Dataset(codec, memory, codec=c, compressor=comp)
        await ds.write(rows("a", "d1", 10))
        (f,) = await ds.files()
        wrong = attrs.evolve(f, file=attrs.evolve(f.file, row_count=11))
        with pytest.raises(aiolode.CorruptDataError, match="records") as ei:
            await arrow_dataset(memory, [wrong])
        assert ei.value.key == f.key


async def test_store_route_maps_the_stores_errors(memory: aiolode.MemoryStore) -> None:
    from aiolode.testing import Fail, FaultInjectingStore, Rule

    ds, _ = await crawl(memory, "parquet")
    files = await ds.files()
    faulty = FaultInjectingStore(
        memory, [Rule(op="get_range", key="*", action=Fail(aiolode.TransientStorageError))]
    )
    with pytest.raises(aiolode.TransientStorageError) as ei:
        await arrow_dataset(faulty, files, filesystem="store")
    assert ei.value.key in {f.key for f in files}


async def test_bad_arguments_and_missing_pyarrow(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    ds, _ = await crawl(memory, "parquet")
    files = await ds.files()
    with pytest.raises(aiolode.InvalidInputError):
        await arrow_dataset(memory, files, schema={"not": "a schema"})
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(aiolode.MissingDependencyError) as ei:
        await arrow_dataset(memory, files)
    assert ei.value.extra == "parquet"
    from aiolode.arrow import arrow_filesystem

    with pytest.raises(aiolode.MissingDependencyError):
        await arrow_filesystem(memory)


def test_plan_is_typed_and_pure() -> None:
    from aiolode.manifest import FileRef
    from aiolode.reader import DataFile

    def df(codec: str, comp: str | None) -> DataFile:
        return DataFile(file=FileRef(key=f"k.{codec}", size=1, row_count=1), snapshot_id="s",
                        codec=codec, compressor=comp)  # fmt: skip

    files = [df("parquet", None), df("parquet", "zstd"), df("jsonl", "gzip"), df("jsonl", "zstd")]
    native = object()
    p = plan(files, native=native, filesystem="auto", objects_in_memory=False)  # type: ignore[arg-type]
    assert [x.route for x in p.items] == [Route.NATIVE, Route.STORE, Route.NATIVE, Route.EAGER]
    p = plan(files, native=None, filesystem="auto", objects_in_memory=True)
    assert [x.route for x in p.items] == [Route.MEMORY, Route.MEMORY, Route.EAGER, Route.EAGER]
    p = plan(files, native=None, filesystem="store", objects_in_memory=True)
    assert p.files(Route.STORE) == files[:2]
