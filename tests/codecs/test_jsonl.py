"""JSONL: round trips, streaming equivalence, chunk boundaries, stats, typed errors."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolode import JSONL, CorruptDataError, SchemaViolationError
from aiolode.codecs import ColumnStats
from aiolode.errors import CodecNotStreamableError, InvalidInputError
from aiolode.schema import Field

from .strategies import batches, cut, json_records, splits

codec = JSONL()


def expected_stats(rows: list[dict[str, Any]]) -> dict[str, ColumnStats]:
    """Stats computed the obvious way, independently of the codec's single pass."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    out = {}
    for name in names:
        values = [r[name] for r in rows if r.get(name) is not None]
        kinds = {
            "bool" if isinstance(v, bool) else "num" if isinstance(v, int | float) else
            "str" if isinstance(v, str) else "other"
            for v in values
        }  # fmt: skip
        comparable = len(kinds) == 1 and "other" not in kinds
        out[name] = ColumnStats(
            min=min(values) if comparable else None,
            max=max(values) if comparable else None,
            null_count=len(rows) - len(values),
        )
    return out


@settings(max_examples=30, deadline=None)
@given(rows=json_records)
def test_round_trip_and_stats(rows: list[dict[str, Any]]) -> None:
    ef = codec.encode(rows)
    assert ef.row_count == len(rows)
    assert codec.decode(ef.data) == rows
    assert ef.data.count(b"\n") == len(rows)
    assert ef.stats == expected_stats(rows)
    assert (ef.min_timestamp, ef.max_timestamp) == (None, None)


@settings(max_examples=30, deadline=None)
@given(rows=json_records, st_data=st.data())
def test_streaming_encode_equals_one_shot(
    rows: list[dict[str, Any]], st_data: st.DataObject
) -> None:
    one = codec.encode(rows)
    enc = codec.open_encoder()
    out = b"".join(enc.write(b) for b in batches(rows, st_data.draw(splits(len(rows)))))
    tail = enc.finish()
    assert out + tail.data == one.data
    assert (tail.row_count, tail.stats) == (one.row_count, one.stats)
    assert enc.row_count == len(rows)


@settings(max_examples=30, deadline=None)
@given(rows=json_records, st_data=st.data())
def test_iter_decode_any_chunk_boundaries(
    rows: list[dict[str, Any]], st_data: st.DataObject
) -> None:
    data = codec.encode(rows).data
    chunks = cut(data, st_data.draw(splits(len(data), max_parts=12)))
    got = [r for batch in codec.iter_decode(iter(chunks)) for r in batch]
    assert got == rows


def test_iter_decode_final_line_without_newline_and_blank_lines() -> None:
    got = list(codec.iter_decode([b'{"a":1}\n\n{"a"', b":2}\r\n", b'  \n{"a":3}']))
    assert [r for b in got for r in b] == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert codec.decode(b'{"a":1}\n\n  \n{"a":2}') == [{"a": 1}, {"a": 2}]
    assert codec.decode(b"") == []


def test_non_ascii_is_written_as_utf8() -> None:
    data = codec.encode([{"name": "Zoë ☃"}]).data
    assert data == '{"name":"Zoë ☃"}\n'.encode()


def test_datetimes_are_written_as_iso_strings_and_read_back_as_strings() -> None:
    t = datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    rows = [{"t": t, "d": date(2024, 5, 1), "nested": {"when": t}, "tup": (1, 2)}]
    back = codec.decode(codec.encode(rows).data)
    assert back == [
        {
            "t": "2024-05-01T12:30:00+02:00",
            "d": "2024-05-01",
            "nested": {"when": "2024-05-01T12:30:00+02:00"},
            "tup": [1, 2],
        }
    ]


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([{"a": 1}, {"blob": b"\x00"}], "blob"),
        ([{"s": {1, 2}}], "s"),
        ([{"f": math.nan}], "f"),
        ([{"f": [1.0, math.inf]}], "f"),
        ([{"n": {"inner": {1: "int key"}}}], "n"),
        ([{"u": "lone \ud800 surrogate"}], "u"),
        ([{1: "int key"}], "1"),
        ([{None: "none key"}], "None"),
    ],
)
def test_unserialisable_values_name_the_field(rows: list[Any], field: str) -> None:
    with pytest.raises(SchemaViolationError) as ei:
        codec.encode(rows)
    assert ei.value.field == field


def test_records_must_be_mappings() -> None:
    with pytest.raises(SchemaViolationError, match="record 1"):
        codec.encode([{"a": 1}, [("a", 1)]])


def test_rejected_batch_leaves_stream_usable() -> None:
    enc = codec.open_encoder(timestamp_field="ts")
    first = enc.write([{"ts": 1, "v": 1}])
    with pytest.raises(SchemaViolationError):
        enc.write([{"ts": 2, "v": 2}, {"ts": 3, "v": b"bytes"}])
    with pytest.raises(SchemaViolationError):
        enc.write([{"ts": 2, "v": 2}, {"v": 3}])  # timestamp missing in row 2
    second = enc.write([{"ts": 4, "v": 4}])
    tail = enc.finish()
    assert codec.decode(first + second + tail.data) == [{"ts": 1, "v": 1}, {"ts": 4, "v": 4}]
    assert tail.row_count == 2
    assert tail.stats is not None
    assert tail.stats["v"] == ColumnStats(min=1, max=4, null_count=0)
    assert tail.min_timestamp == "1970-01-01T00:00:01.000000Z"
    assert tail.max_timestamp == "1970-01-01T00:00:04.000000Z"
    with pytest.raises(InvalidInputError):
        enc.write([{"ts": 5}])
    with pytest.raises(InvalidInputError):
        enc.finish()


def test_timestamp_kinds() -> None:
    # Datetimes, dates and ISO strings are one JSON type (strings) ...
    texts = [
        {"ts": datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))},  # 17:00Z
        {"ts": datetime(2024, 1, 1, 9)},  # naive: UTC
        {"ts": "2024-01-01T08:00:00Z"},
        {"ts": "2024-01-02"},  # date only: midnight UTC
        {"ts": date(2023, 12, 31)},
    ]
    ef = codec.encode(texts, timestamp_field="ts")
    assert ef.min_timestamp == "2023-12-31T00:00:00.000000Z"
    assert ef.max_timestamp == "2024-01-02T00:00:00.000000Z"
    assert ef.schema is not None
    assert ef.schema.field("ts") == Field("ts", "string")
    ef = codec.encode(texts[:3], timestamp_field="ts")
    assert ef.min_timestamp == "2024-01-01T08:00:00.000000Z"
    assert ef.max_timestamp == "2024-01-01T17:00:00.000000Z"
    # ... epoch seconds another (ints and floats: float64).
    ef = codec.encode([{"ts": 1704067200}, {"ts": 1704067200.25}], timestamp_field="ts")
    assert ef.min_timestamp == "2024-01-01T00:00:00.000000Z"
    assert ef.max_timestamp == "2024-01-01T00:00:00.250000Z"
    assert ef.schema is not None
    assert ef.schema.field("ts") == Field("ts", "float64")
    assert codec.encode([], timestamp_field="ts").min_timestamp is None


@pytest.mark.parametrize("bad", [None, "soon", True, math.nan, 1e300, [1], {"a": 1}])
def test_bad_timestamp_names_the_field(bad: Any) -> None:
    with pytest.raises(SchemaViolationError) as ei:
        codec.encode([{"ts": 1}, {"ts": bad}], timestamp_field="ts")
    assert ei.value.field == "ts"


def test_missing_timestamp_names_record_and_field() -> None:
    with pytest.raises(SchemaViolationError, match="record 1") as ei:
        codec.encode([{"ts": 1}, {"other": 2}], timestamp_field="ts")
    assert ei.value.field == "ts"


@settings(max_examples=30, deadline=None)
@given(rows=json_records.filter(bool), st_data=st.data())
def test_truncation_mid_record_is_corrupt(
    rows: list[dict[str, Any]], st_data: st.DataObject
) -> None:
    data = codec.encode(rows).data
    # Cutting exactly at a record end ("}" or "\n") yields valid JSONL with
    # fewer records, which only a checksum can notice; anywhere else is corrupt.
    # Prefix lengths ending just before or just after a newline.
    ends = {n for i, b in enumerate(data) if b == 0x0A for n in (i, i + 1)}
    n = st_data.draw(
        st.integers(min_value=1, max_value=len(data) - 1).filter(lambda k: k not in ends)
    )
    with pytest.raises(CorruptDataError) as ei:
        codec.decode(data[:n])
    assert ei.value.format == "jsonl"
    with pytest.raises(CorruptDataError):
        [r for b in codec.iter_decode([data[:n]]) for r in b]


@pytest.mark.parametrize(
    "junk", [b"{not json}\n", b"[1, 2]\n", b'"str"\n', b"\xff\xfe{}\n", b'{"a":1}\n{"a":']
)
def test_corrupt_input(junk: bytes) -> None:
    with pytest.raises(CorruptDataError, match="line"):
        codec.decode(junk)
    with pytest.raises(CorruptDataError):
        list(codec.iter_decode([junk]))


def test_to_arrow_infers_columns_over_all_records() -> None:
    pytest.importorskip("pyarrow")
    rows = [{"a": 1}, {"a": 2.5, "b": "x"}, {"b": None}]
    table = codec.to_arrow(codec.encode(rows).data)
    assert table.column_names == ["a", "b"]
    assert table.to_pylist() == [
        {"a": 1.0, "b": None},
        {"a": 2.5, "b": "x"},
        {"a": None, "b": None},
    ]
    with pytest.raises(SchemaViolationError) as ei:
        codec.to_arrow(codec.encode([{"a": 1}, {"a": "one"}]).data)
    assert ei.value.field == "a"


def test_arrow_input_is_written_row_by_row() -> None:
    pa = pytest.importorskip("pyarrow")
    t = datetime(2024, 1, 1, tzinfo=UTC)
    table = pa.table({"a": [1, None], "t": pa.array([t, t], pa.timestamp("us", "UTC"))})
    back = codec.decode(codec.encode(table, timestamp_field="t").data)
    assert back == [
        {"a": 1, "t": "2024-01-01T00:00:00+00:00"},
        {"a": None, "t": "2024-01-01T00:00:00+00:00"},
    ]
    assert codec.decode(codec.encode(table.to_batches()[0]).data) == back


def test_stats_can_be_turned_off() -> None:
    c = JSONL(stats=False)
    assert c.encode([{"a": 1}]).stats is None
    enc = c.open_encoder()
    enc.write([{"a": 1}])
    assert enc.finish().stats is None
    with pytest.raises(InvalidInputError):
        JSONL(stats="yes")  # type: ignore[arg-type]


def test_capabilities() -> None:
    assert (codec.name, codec.extension) == ("jsonl", ".jsonl")
    assert codec.accepts_outer_compression
    assert codec.streaming
    assert codec.supports_forward_stream
    assert not codec.supports_random_access
    with pytest.raises(CodecNotStreamableError):
        next(iter(codec.iter_batches(None)))  # type: ignore[arg-type]


def test_output_is_standard_json_lines() -> None:
    rows = [{"a": [1, 2], "b": {"c": None, "d": [{"e": 1.5}]}, "c": -0.5, "d": 2**63 - 1}]
    data = codec.encode(rows).data
    assert [json.loads(line) for line in data.splitlines()] == rows
