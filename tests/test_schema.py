"""aiolode.schema: value types, JSON and Arrow forms, inference and evolution."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiolode
from aiolode.errors import InvalidInputError, ManifestFormatError, SchemaViolationError
from aiolode.schema import Field, Schema, infer, merge

S = Schema


def test_fields_are_frozen_values_that_round_trip_through_json() -> None:
    s = S(
        [
            Field("id", "int64", nullable=False),
            Field("at", "timestamp[us, tz=+00:00]"),  # spellings of UTC are one zone
            Field("tags", "list", children=(Field("item", "string"),)),
            Field(
                "m",
                "map",
                children=(Field("key", "string", nullable=False), Field("value", "float64")),
            ),
            Field(
                "addr", "struct", children=(Field("city", "string"), Field("zip", "decimal(10, 2)"))
            ),
        ]
    )
    assert s.field("at") == Field("at", "timestamp[us, tz=UTC]")
    text = json.dumps(s.to_json())
    assert S.from_json(json.loads(text)) == s
    assert str(s.field("m").type_name) == "map<string, float64>"
    assert s.field("addr").type_name == "struct<city: string, zip: decimal(10, 2)>"
    with pytest.raises(AttributeError):
        s.fields[0].name = "x"  # type: ignore[misc]
    assert "id: int64 not null" in str(s)
    assert aiolode.Schema is Schema


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": 1, "type": "int64"},
        {"name": "a", "type": "int65"},
        {"name": "a", "type": 7},
        {"name": "a", "type": "int64", "nullable": "yes"},
        {"name": "a", "type": "list"},
        {"name": "a", "type": "int64", "children": (Field("x", "int64"),)},
        {"name": "\ud800", "type": "int64"},
        {"name": "a", "type": "decimal(3, 5)"},
        {"name": "a", "type": "null", "nullable": False},
    ],
)
def test_invalid_fields_are_invalid_input(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        Field(**kwargs)


@pytest.mark.parametrize(
    "doc",
    [
        None,
        [],
        {"fields": {}},
        {"fields": [{"name": "a"}]},
        {"fields": [1]},
        {"x": []},
        {"fields": [{"name": "a", "type": "int64", "bogus": 1}]},
        {"fields": [{"name": "a", "type": "int64"}, {"name": "a", "type": "int64"}]},
    ],
)
def test_damaged_stored_schema_is_a_format_error(doc: Any) -> None:
    with pytest.raises(ManifestFormatError):
        Schema.from_json(doc)


def test_infer_records() -> None:
    rows = [
        {"i": 1, "f": 1, "s": "x", "b": True, "n": None, "t": datetime(2024, 1, 1, tzinfo=UTC)},
        {
            "i": 2,
            "f": 2.5,
            "d": date(2024, 1, 1),
            "tm": time(1),
            "dur": timedelta(1),
            "dec": Decimal("1.25"),
            "by": b"x",
            "l": [1, None],
            "st": {"a": 1},
        },
        {"st": {"b": "y"}, "naive": datetime(2024, 1, 1)},
    ]
    s = infer(rows)
    types = {f.name: f.type_name for f in s}
    assert types == {
        "i": "int64",
        "f": "float64",
        "s": "string",
        "b": "bool",
        "n": "null",
        "t": "timestamp[us, tz=UTC]",
        "d": "date",
        "tm": "time[us]",
        "dur": "duration[us]",
        "dec": "decimal(3, 2)",
        "by": "binary",
        "l": "list<int64>",
        "st": "struct<a: int64, b: string>",
        "naive": "timestamp[us]",
    }
    with pytest.raises(SchemaViolationError) as ei:
        infer([{"status": 200}, {"status": "timeout"}])
    assert ei.value.field == "status"
    assert "int64" in str(ei.value)
    assert "string" in str(ei.value)
    for bad in ([{"a": {1, 2}}], [{1: "x"}], ["not a mapping"], [{"a": 2**70}]):
        with pytest.raises(SchemaViolationError):
            infer(bad)
    with pytest.raises(InvalidInputError):
        infer(42)


def test_infer_arrow_and_back() -> None:
    pa = pytest.importorskip("pyarrow")
    t = pa.table(
        {
            "s": pa.array(["a"], pa.large_string()),
            "d": pa.array(["x"]).dictionary_encode(),
            "ts": pa.array([1], pa.timestamp("ns", "Etc/UTC")),
            "l": pa.array([[1]], pa.large_list(pa.int32())),
        }
    )
    s = infer(t)
    assert [f.type_name for f in s] == ["string", "string", "timestamp[ns, tz=UTC]", "list<int32>"]
    assert Schema.from_arrow(s.to_arrow()) == s
    with pytest.raises(SchemaViolationError) as ei:
        Schema.from_arrow(pa.schema([("iv", pa.month_day_nano_interval())]))
    assert ei.value.field == "iv"
    with pytest.raises(InvalidInputError):
        Schema.from_arrow("not a schema")


REC = S([Field("id", "int64", nullable=False), Field("v", "int32"), Field("s", "string")])


@pytest.mark.parametrize(
    ("incoming", "mode", "result"),
    [
        (S([Field("id", "int64")]), "strict", REC),  # absent nullable columns
        (S([Field("id", "int32"), Field("v", "int64")]), "strict", REC),  # value-checked
        (S([Field("id", "int64"), Field("v", "null")]), "strict", REC),
        (
            S([Field("id", "int64"), Field("v", "int64")]),
            "add_columns",
            S([Field("id", "int64", nullable=False), Field("v", "int64"), Field("s", "string")]),
        ),
        (
            S([Field("id", "int64"), Field("new", "bool", nullable=False)]),
            "add_columns",
            S([*REC.fields, Field("new", "bool")]),
        ),
        (
            S([Field("id", "int64"), Field("v", "float64")]),
            "add_columns",
            S([Field("id", "int64", nullable=False), Field("v", "float64"), Field("s", "string")]),
        ),
    ],
)
def test_merge_accepts(incoming: Schema, mode: Any, result: Schema) -> None:
    assert merge(REC, incoming, mode=mode) == result


@pytest.mark.parametrize(
    ("incoming", "mode", "field"),
    [
        (S([Field("id", "float64")]), "strict", "id"),  # 1.5 into an int: never
        (S([Field("id", "float64")]), "add_columns", "id"),  # int64 -> float64 is lossy
        (S([Field("id", "string")]), "add_columns", "id"),
        (S([Field("s", "string")]), "strict", "id"),  # the non-nullable column is missing
        (S([Field("id", "int64"), Field("x", "bool")]), "strict", "x"),
        (
            S([Field("id", "int64"), Field("s", "list", children=(Field("item", "string"),))]),
            "add_columns",
            "s",
        ),
    ],
)
def test_merge_refuses_naming_the_column_and_both_types(
    incoming: Schema, mode: Any, field: str
) -> None:
    with pytest.raises(SchemaViolationError) as ei:
        merge(REC, incoming, mode=mode)
    assert ei.value.field == field
    got = incoming.field(field)
    rec = REC.field(field)
    if got is not None and rec is not None:
        assert got.type_name in str(ei.value)
        assert rec.type_name in str(ei.value)


def test_merge_nested_and_null_columns() -> None:
    rec = S([Field("a", "struct", children=(Field("x", "int32"),)), Field("n", "null")])
    inc = S(
        [
            Field("a", "struct", children=(Field("x", "int64"), Field("y", "string"))),
            Field("n", "string"),
        ]
    )
    with pytest.raises(SchemaViolationError, match=r"a\.y"):
        merge(rec, inc)
    got = merge(rec, inc, mode="add_columns")
    assert got.field("a") == Field(
        "a", "struct", children=(Field("x", "int64"), Field("y", "string"))
    )
    assert got.field("n") == Field("n", "string")  # a null column takes the first type
    with pytest.raises(InvalidInputError):
        merge(rec, inc, mode="loose")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        merge(rec, {"fields": []})  # type: ignore[arg-type]


scalar_types = st.sampled_from(
    [
        "null",
        "bool",
        "int8",
        "int32",
        "int64",
        "uint16",
        "float32",
        "float64",
        "string",
        "binary",
        "date",
        "time[ms]",
        "timestamp[us]",
        "timestamp[ns, tz=UTC]",
        "duration[s]",
        "decimal(10, 2)",
    ]
)
fields = st.recursive(
    st.builds(
        lambda n, t, nullable: Field(n, t, nullable or t == "null"),
        st.text(min_size=1, max_size=5),
        scalar_types,
        st.booleans(),
    ),
    lambda inner: (
        st.builds(
            lambda n, c: Field(
                n, "list", children=(Field("item", c.type, c.nullable, c.children),)
            ),
            st.text(min_size=1, max_size=5),
            inner,
        )
        | st.builds(
            lambda n, cs: Field(n, "struct", children=tuple({c.name: c for c in cs}.values())),
            st.text(min_size=1, max_size=5),
            st.lists(inner, max_size=3),
        )
    ),
    max_leaves=6,
)
schemas = st.lists(fields, max_size=5).map(
    lambda fs: Schema(tuple({f.name: f for f in fs}.values()))
)


@settings(max_examples=100, deadline=None)
@given(schemas)
def test_json_round_trip_and_merge_with_itself(s: Schema) -> None:
    assert Schema.from_json(json.loads(json.dumps(s.to_json()))) == s
    assert merge(s, s) == s
    assert merge(s, s, mode="add_columns") == s


@settings(max_examples=100, deadline=None)
@given(schemas)
def test_arrow_round_trip(s: Schema) -> None:
    pytest.importorskip("pyarrow")
    assert Schema.from_arrow(s.to_arrow()) == s
