"""Layouts: exact, escape-proof partition paths."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aiolode
from aiolode._keys import validate_key
from aiolode.layout import (
    TemplateLayout,
    layout_from_description,
    stringify_partition_value,
    validate_dataset_id,
)

NASTY = ["", "/", "..", ".", "a/b", "k=v", "%", "%2F", "\x00", "é", "🙂", " ", "a\\b", "?#&"]
text = st.text(min_size=0, max_size=12)


@pytest.mark.parametrize("value", NASTY)
def test_hive_nasty_values(value: str) -> None:
    layout = aiolode.HiveLayout("source", "day")
    path = layout.partition_path({"source": value, "day": "2024-05-01"})
    segs = path[:-1].split("/")
    assert len(segs) == 2
    assert segs[0].startswith("source=")
    assert segs[1] == "day=2024-05-01"
    key = layout.data_key("ds", {"source": value, "day": "2024-05-01"}, "f.jsonl")
    validate_key(key)  # no escape, no empty or dot segment, no NUL
    assert layout.parse_partition_path(path) == {"source": value, "day": "2024-05-01"}


@given(a=text, b=text)
def test_hive_round_trip_property(a: str, b: str) -> None:
    layout = aiolode.HiveLayout("a", "b")
    path = layout.partition_path({"a": a, "b": b})
    assert path.count("/") == 2
    validate_key("x/" + path + "f")
    assert layout.parse_partition_path(path) == {"a": a, "b": b}


def test_hive_matches_pyarrow_decoding() -> None:
    import pyarrow as pa
    import pyarrow.dataset as pds

    layout = aiolode.HiveLayout("k")
    value = "a/b c=d%é"
    path = layout.partition_path({"k": value})
    hp = pds.HivePartitioning(pa.schema([("k", pa.string())]), segment_encoding="uri")
    expr = hp.parse("/" + path)
    assert expr.equals(pds.field("k") == value)


TEMPLATE = "{network}/{era}/{version}/{table}/range={start}-{end}/"


def test_versioned_template() -> None:
    layout = TemplateLayout(TEMPLATE)
    values = {
        "network": "mainnet",
        "era": "shanghai",
        "version": "v1.2",
        "table": "blocks",
        "start": "100",
        "end": "199",
    }
    path = layout.partition_path(values)
    assert path == "mainnet/shanghai/v1.2/blocks/range=100-199/"
    assert layout.parse_partition_path(path) == values
    assert layout.partition_keys == ("network", "era", "version", "table", "start", "end")


@given(
    start=text.filter(bool),
    end=text.filter(bool),
    table=text.filter(bool),
)
def test_template_round_trip_property(start: str, end: str, table: str) -> None:
    layout = TemplateLayout(TEMPLATE)
    values = {
        "network": "n",
        "era": "e",
        "version": "v",
        "table": table,
        "start": start,
        "end": end,
    }
    path = layout.partition_path(values)
    assert path.count("/") == TEMPLATE.count("/")
    validate_key("x/" + path + "f")
    assert layout.parse_partition_path(path) == values


def test_template_refuses() -> None:
    layout = TemplateLayout(TEMPLATE)
    with pytest.raises(aiolode.InvalidInputError):
        layout.partition_path(
            {"network": "", "era": "e", "version": "v", "table": "t", "start": "1", "end": "2"}
        )
    with pytest.raises(aiolode.InvalidInputError):
        layout.partition_path({"network": "n"})
    with pytest.raises(aiolode.InvalidInputError):
        layout.parse_partition_path("not/matching/")
    for bad in ["{a}{b}/", "no-placeholder/", "{a}", "/{a}/", "{a}/{a}/", "{a}/../", "50%{a}/"]:
        with pytest.raises(aiolode.InvalidInputError):
            TemplateLayout(bad)


def test_template_dot_values_cannot_make_dot_segments() -> None:
    layout = TemplateLayout("{t}/")
    for v in [".", "..", "..."]:
        path = layout.partition_path({"t": v})
        validate_key("x/" + path + "f")
        assert layout.parse_partition_path(path) == {"t": v}


def test_stringify() -> None:
    assert stringify_partition_value("k", "x") == "x"
    assert stringify_partition_value("k", True) == "true"
    assert stringify_partition_value("k", 7) == "7"
    assert stringify_partition_value("k", 0.1) == "0.1"
    assert stringify_partition_value("k", date(2024, 5, 1)) == "2024-05-01"
    assert stringify_partition_value("k", datetime(2024, 5, 1, tzinfo=UTC)).startswith(
        "2024-05-01T00:00:00"
    )
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        stringify_partition_value("k", None)
    assert ei.value.field == "k"


def test_partition_values_missing_field() -> None:
    layout = aiolode.HiveLayout("day")
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        layout.partition_values({"x": 1})
    assert ei.value.field == "day"


def test_hive_key_validation() -> None:
    for bad in [(), ("a-b",), ("a", "a"), ("",), ("a/b",)]:
        with pytest.raises(aiolode.InvalidInputError):
            aiolode.HiveLayout(*bad)


def test_default_and_flat() -> None:
    d = aiolode.DefaultLayout()
    f = aiolode.FlatLayout()
    assert d.models_datasets
    assert not f.models_datasets
    assert d.root("x") == "datasets/x/"
    assert f.root("x") == "x/"
    assert d.partition_path({}) == ""
    assert f.parse_partition_path("") == {}
    with pytest.raises(aiolode.InvalidInputError):
        d.partition_path({"a": "b"})
    with pytest.raises(aiolode.InvalidInputError):
        f.parse_partition_path("a=b/")


@pytest.mark.parametrize(
    "layout",
    [
        aiolode.DefaultLayout(),
        aiolode.FlatLayout(),
        aiolode.HiveLayout("a", "b"),
        TemplateLayout(TEMPLATE, name="versioned"),
    ],
    ids=repr,
)
def test_description_round_trip(layout: aiolode.Layout) -> None:
    again = layout_from_description(layout.describe())
    assert again == layout
    assert again.partition_keys == layout.partition_keys


@pytest.mark.parametrize("good", ["a", "A-1", "events.v2", "x_y", "0" * 200])
def test_dataset_id_ok(good: str) -> None:
    assert validate_dataset_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "_log", ".hidden", "a/b", "a b", "é", "0" * 201, 3])
def test_dataset_id_bad(bad: object) -> None:
    with pytest.raises(aiolode.InvalidKeyError):
        validate_dataset_id(bad)
