"""Arrow-native inputs (Polars, DuckDB, RecordBatchReaders, lists of batches) and
schemas on the write path (FileSpec.schema in, Prepared.schema out)."""

from __future__ import annotations

from typing import Any

import pytest

import aiolode
from aiolode.dataset._write import FileSpec, check_records, prepare_records, stream_records
from aiolode.schema import Field, Schema

pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")

CODECS: dict[str, Any] = {
    "jsonl": aiolode.JSONL,
    "parquet": aiolode.Parquet,
    "arrow": aiolode.ArrowIPC,
}


@pytest.fixture(params=list(CODECS))
def codec(request: pytest.FixtureRequest) -> aiolode.Codec:
    return CODECS[request.param]()  # type: ignore[no-any-return]


def frame(n: int = 1000) -> Any:
    return pl.DataFrame(
        {
            "day": [f"d{i % 3}" for i in range(n)],
            "n": list(range(n)),
            "s": [f"row {i}" for i in range(n)],
        }
    )


def by_n(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["n"])


def sources() -> dict[str, Any]:
    table = frame().to_arrow()
    return {
        "polars": frame(),
        "table": table,
        "batch": table.combine_chunks().to_batches()[0],
        "batches": table.to_batches(max_chunksize=128),
        "reader": pa.RecordBatchReader.from_batches(
            table.schema, table.to_batches(max_chunksize=100)
        ),
        "duckdb": duckdb.sql("select * from range(1000) t(n)").select(
            "'d' || (n % 3) as day, n, 'row ' || n as s"
        ),
    }


@pytest.mark.parametrize("kind", list(sources()))
@pytest.mark.parametrize("partitioned", [False, True])
async def test_write_takes_arrow_data(
    memory: aiolode.MemoryStore,
    codec: aiolode.Codec,
    kind: str,
    partitioned: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layout: aiolode.Layout = aiolode.HiveLayout("day") if partitioned else aiolode.DefaultLayout()
    calls: list[int] = []
    original = layout.partition_values

    def counted(rec: Any) -> dict[str, str]:
        calls.append(1)
        return original(rec)

    monkeypatch.setattr(layout, "partition_values", counted)
    ds = aiolode.Dataset("d", memory, codec=codec, layout=layout)
    snap = await ds.write(sources()[kind])
    assert snap.row_count == 1000
    assert len(snap.files) == (3 if partitioned else 1)
    # Split with Arrow kernels: the layout saw one row per partition, not 1000.
    assert len(calls) <= 3
    got = by_n(await ds.read(snap))
    assert got == [{"day": f"d{i % 3}", "n": i, "s": f"row {i}"} for i in range(1000)]


@pytest.mark.parametrize("partitioned", [False, True])
async def test_stream_write_records_takes_arrow_streams(
    memory: aiolode.MemoryStore, codec: aiolode.Codec, partitioned: bool
) -> None:
    layout: aiolode.Layout = aiolode.HiveLayout("day") if partitioned else aiolode.DefaultLayout()
    ds = aiolode.Dataset("d", memory, codec=codec, layout=layout)
    table = frame().to_arrow()
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=64))
    snap = await ds.stream_write_records(reader)
    assert snap.row_count == 1000
    assert len(snap.files) == (3 if partitioned else 1)
    assert by_n(await ds.read(snap)) == by_n(table.to_pylist())
    # Items may mix mappings and Arrow batches; order within a partition is kept.

    async def mixed() -> Any:
        yield {"day": "d0", "n": -1, "s": "first"}
        yield pa.table({"day": ["d0", "d1"], "n": [-2, -3], "s": ["second", "third"]})
        yield {"day": "d0", "n": -4, "s": "fourth"}

    snap = await ds.stream_write_records(mixed())
    rows = await ds.read(snap)
    assert [r["s"] for r in rows if r["day"] == "d0"] == ["first", "second", "fourth"]
    assert snap.row_count == 4


async def test_polars_series_and_other_objects_are_named_in_the_error(
    memory: aiolode.MemoryStore,
) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.Parquet())
    with pytest.raises(aiolode.InvalidInputError, match=r"polars\.Series.*DataFrame"):
        await ds.write(pl.Series("a", [1, 2]))
    for bad in (42, b"bytes", {"a": 1}, object()):
        with pytest.raises(aiolode.InvalidInputError, match="__arrow_c_stream__") as ei:
            check_records(bad)
        assert "Polars" in str(ei.value)
    with pytest.raises(aiolode.InvalidInputError, match="list"):
        await ds.write([pa.record_batch({"a": [1]}), {"a": 2}])
    with pytest.raises(aiolode.SchemaViolationError, match="batch 1"):
        await ds.write([pa.record_batch({"a": [1]}), pa.record_batch({"a": ["x"]})])
    with pytest.raises(aiolode.SchemaViolationError, match="bytes"):
        await ds.stream_write_records([{"a": 1}, b"bytes"])
    assert not await ds.exists()  # nothing recorded by refused writes
    assert [o async for o in memory.list()] == []


async def test_partition_column_nulls_and_missing_are_refused(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.Parquet(), layout=aiolode.HiveLayout("day"))
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await ds.write(pa.table({"day": ["a", None], "n": [1, 2]}))
    assert ei.value.field == "day"
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await ds.write(pa.table({"n": [1, 2]}))
    assert ei.value.field == "day"
    with pytest.raises(aiolode.SchemaViolationError):
        await ds.write(pa.table({"day": pa.array([{"x": 1}]), "n": [1]}))


async def test_typed_partition_values_split_like_records(memory: aiolode.MemoryStore) -> None:
    from datetime import date

    ds = aiolode.Dataset(
        "d", memory, codec=aiolode.Parquet(), layout=aiolode.HiveLayout("day", "k")
    )
    days = [date(2024, 1, 1 + i % 2) for i in range(10)]
    snap = await ds.write(pa.table({"day": days, "k": [i % 3 for i in range(10)], "n": range(10)}))
    recs = [{"day": d, "k": i % 3, "n": i} for i, d in enumerate(days)]
    ref = await aiolode.Dataset("r", memory, codec=aiolode.Parquet(), layout=ds.layout).write(recs)
    assert sorted(map(str, (f.partition for f in snap.files))) == sorted(
        map(str, (f.partition for f in ref.files))
    )


# ------------------------------------------------------------------ schemas
def spec_for(
    store: aiolode.Store,
    codec: aiolode.Codec,
    schema: Schema | None = None,
    mode: str = "strict",
    layout: aiolode.Layout | None = None,
) -> FileSpec:
    return FileSpec(
        store=store,
        dataset_id="d",
        layout=layout or aiolode.DefaultLayout(),
        codec=codec,
        compressor=None,
        checksum=None,
        timestamp_field=None,
        retry=aiolode.Retry(),
        schema=schema,
        schema_mode=mode,  # type: ignore[arg-type]
    )


async def keys(store: aiolode.Store) -> list[str]:
    return [o.key async for o in store.list()]


async def test_prepared_schema_first_write_then_enforced(
    memory: aiolode.MemoryStore, codec: aiolode.Codec
) -> None:
    first = await prepare_records(spec_for(memory, codec), [{"id": 1, "s": "a"}])
    assert first.schema == Schema([Field("id", "int64"), Field("s", "string")])
    before = await keys(memory)
    # A float where the schema has an int: refused, nothing left behind.
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await prepare_records(spec_for(memory, codec, first.schema), [{"id": 1.5, "s": "b"}])
    assert ei.value.field == "id"
    assert "int64" in str(ei.value)
    assert "float64" in str(ei.value)
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await prepare_records(spec_for(memory, codec, first.schema), [{"id": "x"}])
    assert ei.value.field == "id"
    # A new column: refused in strict mode, added (nullable) with add_columns.
    with pytest.raises(aiolode.SchemaViolationError, match="add_columns") as ei:
        await prepare_records(spec_for(memory, codec, first.schema), [{"id": 2, "new": True}])
    assert ei.value.field == "new"
    assert await keys(memory) == before
    grown = await prepare_records(
        spec_for(memory, codec, first.schema, "add_columns"), [{"id": 2, "new": True}]
    )
    assert grown.schema == Schema(
        [Field("id", "int64"), Field("s", "string"), Field("new", "bool")]
    )
    same = await prepare_records(spec_for(memory, codec, first.schema), [{"id": 3}])
    assert same.schema == first.schema
    empty = await prepare_records(spec_for(memory, codec, first.schema), [])
    assert (empty.files, empty.schema) == ([], first.schema)


async def test_non_nullable_and_conflicting_partitions(
    memory: aiolode.MemoryStore, codec: aiolode.Codec
) -> None:
    strict = Schema([Field("id", "int64", nullable=False), Field("day", "string")])
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await prepare_records(spec_for(memory, codec, strict), [{"id": 1}, {"day": "x"}])
    assert ei.value.field == "id"
    # A first write whose partitions disagree on a column's type is refused as a
    # whole (files already put are removed).
    hive = aiolode.HiveLayout("day")
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await prepare_records(
            spec_for(memory, codec, layout=hive),
            [{"day": "a", "v": 1}, {"day": "b", "v": "one"}],
        )
    assert ei.value.field == "v"
    # Ints in one partition, floats in another: one float64 column.
    mixed = await prepare_records(
        spec_for(memory, codec, layout=hive), [{"day": "a", "v": 1}, {"day": "b", "v": 1.5}]
    )
    assert mixed.schema is not None
    assert mixed.schema.field("v") == Field("v", "float64")
    assert len(await keys(memory)) == 2


async def test_stream_records_with_a_schema(
    memory: aiolode.MemoryStore, codec: aiolode.Codec
) -> None:
    schema = Schema([Field("id", "int64"), Field("at", "timestamp[us, tz=UTC]")])
    rows = [{"id": i, "at": "2024-05-01T10:00:00Z"} for i in range(10)]
    prep = await stream_records(
        spec_for(memory, codec, schema), iter(rows), max_open_partitions=4, batch_size=3
    )
    assert prep.schema == schema
    assert prep.row_count == 10
    with pytest.raises(aiolode.SchemaViolationError):
        await stream_records(
            spec_for(memory, codec, schema),
            iter([*rows, {"id": 1, "at": "not a time"}]),
            max_open_partitions=4,
            batch_size=3,
        )
    assert len(await keys(memory)) == 1


async def test_rfc3339_strings_round_trip_jsonl_to_parquet(memory: aiolode.MemoryStore) -> None:
    src = aiolode.Dataset("src", memory, codec=aiolode.JSONL())
    from datetime import UTC, datetime

    t = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    snap = await src.write([{"at": t, "n": 1}])
    rows = await src.read(snap)
    assert rows == [{"at": "2024-05-01T12:30:00+00:00", "n": 1}]
    schema = Schema([Field("at", "timestamp[us, tz=UTC]"), Field("n", "int64")])
    prep = await prepare_records(spec_for(memory, aiolode.Parquet(), schema), rows)
    (f,) = prep.files
    back = aiolode.Parquet().decode(await memory.get(f.key))
    assert back[0]["at"] == t


async def test_missing_pyarrow_is_one_error_on_every_path(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    jsonl = aiolode.Dataset("j", memory, codec=aiolode.JSONL())
    snap = await jsonl.write([{"a": 1}])
    df = frame(10)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    # JSONL records need no pyarrow at all, schemas included.
    assert await jsonl.read(snap) == [{"a": 1}]
    assert (await prepare_records(spec_for(memory, aiolode.JSONL()), [{"a": 2}])).schema == Schema(
        [Field("a", "int64")]
    )
    calls = [
        lambda: aiolode.Dataset("p", memory, codec=aiolode.JSONL()).write(df),
        lambda: aiolode.Dataset("q", memory, codec=aiolode.Parquet()).write([{"a": 1}]),
        lambda: jsonl.read_table(snap),
    ]
    for call in calls:
        with pytest.raises(aiolode.MissingDependencyError) as ei:
            await call()
        assert (ei.value.package, ei.value.extra) == ("pyarrow", "parquet")
    with pytest.raises(aiolode.MissingDependencyError):
        Schema([Field("a", "int64")]).to_arrow()
