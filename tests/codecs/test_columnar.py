"""Parquet and Arrow IPC: round trips, streaming by row groups, stats, schemas, errors."""

from __future__ import annotations

import io
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from aiolode import ArrowIPC, CorruptDataError, Parquet, SchemaViolationError  # noqa: E402
from aiolode.codecs import Codec, ColumnStats  # noqa: E402
from aiolode.errors import (  # noqa: E402
    CodecNotStreamableError,
    InvalidInputError,
    MissingDependencyError,
)

from .strategies import batches, cut, filled, schema_of, splits, tabular  # noqa: E402

CODECS: list[Codec] = [Parquet(row_group_size=7), ArrowIPC()]
IDS = ["parquet", "arrow"]


def _json(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    return v


def expected_stats(spec: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, ColumnStats]:
    out = {}
    for name, kind in spec.items():
        values = [r[name] for r in rows if r.get(name) is not None]
        nulls = len(rows) - len(values)
        if kind == "list" or not values:
            out[name] = ColumnStats(min=None, max=None, null_count=nulls)
        else:
            out[name] = ColumnStats(
                min=_json(min(values)), max=_json(max(values)), null_count=nulls
            )
    return out


def with_codec_schema(codec: Codec, schema: Any) -> Codec:
    if isinstance(codec, Parquet):
        return Parquet(row_group_size=codec.row_group_size, schema=schema)
    return ArrowIPC(schema=schema)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@settings(max_examples=25, deadline=None)
@given(case=tabular())
def test_round_trip_and_stats(
    codec: Codec, case: tuple[dict[str, str], list[dict[str, Any]]]
) -> None:
    spec, rows = case
    c = with_codec_schema(codec, schema_of(spec))
    ef = c.encode(rows)
    assert ef.row_count == len(rows)
    assert c.decode(ef.data) == filled(spec, rows)
    assert c.to_arrow(ef.data).schema.names == list(spec)
    assert ef.stats == expected_stats(spec, rows)
    # The same records through pyarrow's own inference (no schema) read back the same
    # whenever inference can see a type, i.e. no all-null column.
    if all(any(r.get(n) is not None for r in rows) for n in spec) and rows:
        assert codec.decode(codec.encode(rows).data) == filled(spec, rows)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@settings(max_examples=25, deadline=None)
@given(case=tabular(), st_data=st.data())
def test_streaming_encode_equals_one_shot(
    codec: Codec, case: tuple[dict[str, str], list[dict[str, Any]]], st_data: st.DataObject
) -> None:
    spec, rows = case
    c = with_codec_schema(codec, schema_of(spec))
    one = c.encode(rows, timestamp_field="id")
    enc = c.open_encoder(timestamp_field="id")
    parts = [enc.write(b) for b in batches(rows, st_data.draw(splits(len(rows))))]
    tail = enc.finish()
    assert b"".join(parts) + tail.data == one.data
    assert (tail.row_count, tail.stats) == (one.row_count, one.stats)
    assert (tail.min_timestamp, tail.max_timestamp) == (one.min_timestamp, one.max_timestamp)


def test_parquet_stream_emits_each_row_group_as_soon_as_complete() -> None:
    codec = Parquet(row_group_size=100)
    enc = codec.open_encoder()
    out = [
        enc.write([{"i": i, "s": f"row {i}"} for i in range(k, k + 30)]) for k in range(0, 300, 30)
    ]
    # Row groups complete at 120, 210 and 300 rows (the 4th, 7th and 10th
    # writes); other writes emit nothing (the first only the 4-byte header).
    assert [len(b) > 4 for b in out] == [False, False, False, True] + [False, False, True] * 2
    tail = enc.finish()
    whole = b"".join(out) + tail.data
    md = pq.ParquetFile(io.BytesIO(whole)).metadata
    assert [md.row_group(g).num_rows for g in range(md.num_row_groups)] == [100, 100, 100]
    # finish() added only the footer: every row group was emitted by write().
    assert len(tail.data) < sum(len(b) for b in out)
    assert md.serialized_size < len(tail.data)
    got = [r for b in codec.iter_batches(io.BytesIO(whole), batch_size=64) for r in b]
    assert got == [{"i": i, "s": f"row {i}"} for i in range(300)]


def test_stream_schema_inferred_over_first_row_group_then_fixed() -> None:
    codec = Parquet(row_group_size=4)
    enc = codec.open_encoder()
    parts = [
        enc.write([{"a": None, "b": 1}]),  # a: null so far
        enc.write([{"a": "x", "b": 2.5}]),  # a widens to string, b to double
        enc.write([{"b": 3, "c": True}]),  # a new column while the schema is open
        enc.write([{"a": "y", "b": 4, "c": False}]),  # 4 rows: row group out, schema fixed
    ]
    with pytest.raises(SchemaViolationError) as ei:
        enc.write([{"a": "z", "b": 5, "d": 1}])  # a new column after that
    assert ei.value.field == "d"
    with pytest.raises(SchemaViolationError) as ei:
        enc.write([{"a": 1.5}])
    assert ei.value.field == "a"
    parts.append(enc.write([{"b": 6}]))
    tail = enc.finish()
    assert tail.row_count == 5
    assert codec.decode(b"".join(parts) + tail.data) == [
        {"a": None, "b": 1.0, "c": None},
        {"a": "x", "b": 2.5, "c": None},
        {"a": None, "b": 3.0, "c": True},
        {"a": "y", "b": 4.0, "c": False},
        {"a": None, "b": 6.0, "c": None},
    ]
    assert tail.stats is not None
    assert tail.stats["a"] == ColumnStats(min="x", max="y", null_count=3)
    assert tail.stats["c"] == ColumnStats(min=False, max=True, null_count=3)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_incompatible_batch_is_rejected_before_the_schema_is_fixed(codec: Codec) -> None:
    enc = codec.open_encoder()
    first = enc.write([{"a": 1}])
    with pytest.raises(SchemaViolationError) as ei:
        enc.write([{"a": "one"}])
    assert ei.value.field == "a"
    data = first + enc.write([{"a": 2}]) + enc.finish().data
    assert codec.decode(data) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_inconsistent_types_name_the_field(codec: Codec) -> None:
    with pytest.raises(SchemaViolationError) as ei:
        codec.encode([{"ok": 1, "bad": 1}, {"ok": 2, "bad": "two"}])
    assert ei.value.field == "bad"
    with pytest.raises(SchemaViolationError) as ei:
        codec.encode([{"ok": 1, 2: "int key"}])
    assert ei.value.field == "2"
    with pytest.raises(SchemaViolationError, match="record 1"):
        codec.encode([{"a": 1}, "not a mapping"])
    with pytest.raises(SchemaViolationError, match="no fields"):
        codec.encode([{}, {}])


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_schema_is_enforced(codec: Codec) -> None:
    schema = pa.schema([("id", pa.int32()), ("name", pa.string())])
    c = with_codec_schema(codec, schema)
    # Absent keys become nulls; values convert to the schema's types.
    assert c.decode(c.encode([{"id": 1}, {"name": "x", "id": 2}]).data) == [
        {"id": 1, "name": None},
        {"id": 2, "name": "x"},
    ]
    assert c.to_arrow(c.encode([{"id": 1}]).data).schema == schema
    with pytest.raises(SchemaViolationError) as ei:
        c.encode([{"id": 1, "extra": 2}])  # would be silently dropped otherwise
    assert ei.value.field == "extra"
    with pytest.raises(SchemaViolationError) as ei:
        c.encode([{"id": "one"}])
    assert ei.value.field == "id"
    with pytest.raises(SchemaViolationError) as ei:
        c.encode([{"id": 2**40}])  # does not fit int32
    assert ei.value.field == "id"
    # Arrow input is cast safely to the schema, or rejected naming the column.
    assert c.decode(c.encode(pa.table({"name": ["n"], "id": pa.array([7], pa.int64())})).data) == [
        {"id": 7, "name": "n"}
    ]
    with pytest.raises(SchemaViolationError) as ei:
        c.encode(pa.table({"id": [1.5], "name": ["n"]}))
    assert ei.value.field == "id"
    with pytest.raises(SchemaViolationError) as ei:
        c.encode(pa.table({"id": [1], "zzz": ["n"]}))
    assert ei.value.field == "zzz"


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_arrow_input_table_and_batch(codec: Codec) -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            "ts": pa.array([t, t + timedelta(hours=1)], pa.timestamp("ns", "UTC")),
            "v": [1.5, None],
            "blob": [b"\x00", b"\x01"],
            "tag": pa.array(["a", "b"]).dictionary_encode(),
        }
    )
    for data in (table, table.to_batches()[0]):
        ef = codec.encode(data, timestamp_field="ts")
        assert ef.row_count == 2
        assert (ef.min_timestamp, ef.max_timestamp) == (
            "2024-01-01T00:00:00.000000Z",
            "2024-01-01T01:00:00.000000Z",
        )
        assert ef.stats is not None
        assert ef.stats["v"] == ColumnStats(min=1.5, max=1.5, null_count=1)
        assert ef.stats["blob"] == ColumnStats(min=None, max=None, null_count=0)
        assert codec.to_arrow(ef.data).num_rows == 2


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@pytest.mark.parametrize(
    ("column", "expect"),
    [
        (pa.array([3, 1, 2]), ("1970-01-01T00:00:01.000000Z", "1970-01-01T00:00:03.000000Z")),
        (pa.array([0.5, 2.0, 1.0]), ("1970-01-01T00:00:00.500000Z", "1970-01-01T00:00:02.000000Z")),
        (
            pa.array(["2024-01-01T00:00:00+02:00", "2024-01-01T00:00:00Z", "2023-12-31"]),
            ("2023-12-31T00:00:00.000000Z", "2024-01-01T00:00:00.000000Z"),
        ),
        (
            pa.array([date(2024, 1, 2), date(2024, 1, 1)]),
            ("2024-01-01T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z"),
        ),
        (
            pa.array([datetime(2024, 1, 1, 5), datetime(2024, 1, 1, 6)], pa.timestamp("s")),
            ("2024-01-01T05:00:00.000000Z", "2024-01-01T06:00:00.000000Z"),
        ),
    ],
)
def test_timestamp_column_kinds(codec: Codec, column: Any, expect: tuple[str, str]) -> None:
    ef = codec.encode(pa.table({"ts": column}), timestamp_field="ts")
    assert (ef.min_timestamp, ef.max_timestamp) == expect


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@pytest.mark.parametrize(
    "records",
    [
        [{"x": 1}],  # missing column
        [{"ts": 1}, {"ts": None}],  # null
        [{"ts": "not a time"}],
        [{"ts": True}],
        [{"ts": [1]}],
        [{"ts": float("nan")}],
    ],
)
def test_bad_timestamp_column_names_the_field(codec: Codec, records: list[dict[str, Any]]) -> None:
    with pytest.raises(SchemaViolationError) as ei:
        codec.encode(records, timestamp_field="ts")
    assert ei.value.field == "ts"


def test_timestamps_with_offsets_in_records() -> None:
    tz = timezone(timedelta(hours=9))
    rows = [{"ts": datetime(2024, 1, 1, 9, tzinfo=tz)}, {"ts": datetime(2024, 1, 1, 1, tzinfo=tz)}]
    ef = Parquet().encode(rows, timestamp_field="ts")
    assert (ef.min_timestamp, ef.max_timestamp) == (
        "2023-12-31T16:00:00.000000Z",
        "2024-01-01T00:00:00.000000Z",
    )


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@settings(max_examples=20, deadline=None)
@given(case=tabular(min_rows=1), st_data=st.data())
def test_truncated_or_garbled_files_are_corrupt(
    codec: Codec, case: tuple[dict[str, str], list[dict[str, Any]]], st_data: st.DataObject
) -> None:
    data = codec.encode(case[1]).data
    n = st_data.draw(st.integers(min_value=0, max_value=len(data) - 1))
    for call in (codec.decode, codec.to_arrow, lambda d: list(codec.iter_batches(io.BytesIO(d)))):
        with pytest.raises(CorruptDataError) as ei:
            call(data[:n])
        assert ei.value.format == codec.name


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@pytest.mark.parametrize("junk", [b"", b"PAR1", b"ARROW1\x00\x00", b"{}\n" * 10])
def test_not_this_format(codec: Codec, junk: bytes) -> None:
    with pytest.raises(CorruptDataError):
        codec.decode(junk)


@settings(max_examples=20, deadline=None)
@given(case=tabular(), st_data=st.data())
def test_arrow_forward_stream_decode_at_any_boundaries(
    case: tuple[dict[str, str], list[dict[str, Any]]], st_data: st.DataObject
) -> None:
    spec, rows = case
    codec = ArrowIPC(schema=schema_of(spec))
    data = codec.encode(rows).data
    chunks = cut(data, st_data.draw(splits(len(data), max_parts=10)))
    assert [r for b in codec.iter_decode(iter(chunks)) for r in b] == filled(spec, rows)
    n = st_data.draw(st.integers(min_value=0, max_value=len(data) - 1))
    with pytest.raises(CorruptDataError):
        list(codec.iter_decode(iter(cut(data[:n], [n // 2]))))


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_iter_batches_respects_batch_size(codec: Codec) -> None:
    rows = [{"i": i} for i in range(50)]
    data = codec.encode(rows).data
    got = list(codec.iter_batches(io.BytesIO(data), batch_size=6))
    assert all(0 < len(b) <= 6 for b in got)
    assert [r for b in got for r in b] == rows


def test_parquet_cannot_decode_a_forward_stream() -> None:
    with pytest.raises(CodecNotStreamableError):
        next(iter(Parquet().iter_decode(iter([b"PAR1"]))))


def test_parquet_options_and_validation() -> None:
    c = Parquet(compression="snappy", row_group_size=10, compression_level=None)
    assert c.options() == {"compression": "snappy", "compression_level": None, "row_group_size": 10}
    assert Parquet.accepts_outer_compression is False
    assert (Parquet.extension, ArrowIPC.extension) == (".parquet", ".arrow")
    for bad in (
        {"compression": "zip"},
        {"row_group_size": 0},
        {"row_group_size": 1.5},
        {"compression_level": "max"},
        {"schema": {"a": "int"}},
    ):
        with pytest.raises(InvalidInputError):
            Parquet(**bad)
    with pytest.raises(InvalidInputError):
        ArrowIPC(compression="gzip")


@pytest.mark.parametrize("compression", ["none", "snappy", "gzip", "brotli", "lz4", "zstd"])
def test_parquet_compressions_are_readable_by_pyarrow(compression: str) -> None:
    data = Parquet(compression=compression).encode([{"a": i} for i in range(10)]).data
    assert pq.read_table(pa.BufferReader(data)).column("a").to_pylist() == list(range(10))


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_arrow_compressions(compression: str | None) -> None:
    codec = ArrowIPC(compression=compression)
    data = codec.encode([{"a": i} for i in range(10)]).data
    assert codec.decode(data) == [{"a": i} for i in range(10)]
    assert pa.ipc.open_file(pa.BufferReader(data)).read_all().num_rows == 10


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_empty_file(codec: Codec) -> None:
    ef = codec.encode([])
    assert (ef.row_count, codec.decode(ef.data), ef.stats) == (0, [], {})
    enc = codec.open_encoder()
    tail = enc.finish()
    assert (tail.row_count, codec.decode(tail.data)) == (0, [])
    with pytest.raises(InvalidInputError):
        enc.finish()


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_stats_of_strings_and_large_values(codec: Codec) -> None:
    rows = [{"s": "b", "n": 2**62}, {"s": "ä", "n": -(2**62)}, {"s": "a", "n": None}]
    ef = codec.encode(rows)
    assert ef.stats == {
        "s": ColumnStats(min="a", max="ä", null_count=0),
        "n": ColumnStats(min=-(2**62), max=2**62, null_count=1),
    }


def test_missing_pyarrow_is_one_missing_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    for codec in (Parquet(), ArrowIPC()):
        for call in (
            lambda c=codec: c.encode([{"a": 1}]),
            lambda c=codec: c.decode(b"x"),
            lambda c=codec: c.open_encoder(),
            lambda c=codec: list(c.iter_batches(io.BytesIO(b"x"))),
        ):
            with pytest.raises(MissingDependencyError, match=r"aiolode\[parquet\]") as ei:
                call()
            assert (ei.value.package, ei.value.extra) == ("pyarrow", "parquet")
            assert isinstance(ei.value, ImportError)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_nan_is_ignored_by_float_stats(codec: Codec) -> None:
    nan = float("nan")
    assert codec.encode([{"f": 1.0}, {"f": nan}, {"f": -2.0}]).stats == {
        "f": ColumnStats(min=-2.0, max=1.0, null_count=0)
    }
    # Only NaN: no meaningful extremes (and NaN is not JSON).
    assert codec.encode([{"f": nan}]).stats == {"f": ColumnStats(min=None, max=None, null_count=0)}


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_out_of_range_integers_name_the_field(codec: Codec) -> None:
    with pytest.raises(SchemaViolationError) as ei:
        codec.encode([{"ok": 1, "big": 2**64}])
    assert ei.value.field == "big"
