"""JSONL's fast paths (column-wise scan, one orjson call per batch) are exact:
the same scan state, the same bytes and the same first error as the row-wise
scan and one ``dumps`` per record, whatever the records hold.

Every test runs twice: with the C fast paths (``_jsonl_speedups``) and with the
Python code alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolode import JSONL, SchemaViolationError
from aiolode.codecs import _jsonl

from .strategies import json_records

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module", autouse=True, params=["C", "Python"])
def _speedups(request: pytest.FixtureRequest) -> Iterator[None]:
    saved = _jsonl._fast_scan, _jsonl._fast_lines
    if request.param == "Python":
        _jsonl._fast_scan = _jsonl._fast_lines = None
    try:
        yield
    finally:
        _jsonl._fast_scan, _jsonl._fast_lines = saved


class _PosingMeta(type):
    """A metaclass whose classes hash and compare equal to ``str``: in a set of
    types, such a class hides as ``str``."""

    def __eq__(cls, other: object) -> bool:
        return other is str or type.__eq__(cls, other)

    def __hash__(cls) -> int:
        return hash(str)


class _Backwards(str, metaclass=_PosingMeta):
    """A str posing as plain ``str`` whose order is reversed."""

    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        return str.__lt__(self, other)  # type: ignore[operator]


class _UnhashableMeta(type):
    __hash__ = None  # type: ignore[assignment]

    def __eq__(cls, other: object) -> bool:
        return type.__eq__(cls, other)


class _Unhashable(str, metaclass=_UnhashableMeta):
    """A str whose class cannot be put in a set."""


class _DictMeta(type):
    def __eq__(cls, other: object) -> bool:
        return other is dict or type.__eq__(cls, other)

    def __hash__(cls) -> int:
        return hash(dict)


class _PosingDict(dict[str, Any], metaclass=_DictMeta):
    """A dict posing as plain ``dict`` whose items lie."""

    def __getitem__(self, key: str) -> Any:
        return "lie"


_VALUES = st.sampled_from(
    [
        _Backwards("m"),
        _Backwards("b"),
        _Unhashable("q"),
        None,
        0,
        -0.0,
        1,
        -5,
        True,
        False,
        2**63 - 1,
        -(2**63),
        2**63,
        -(2**63) - 1,
        1.5,
        1e308,
        -1e308,
        float("nan"),
        float("inf"),
        "",
        "a",
        "},{",
        'x"},{"y',
        "\u00e9",
        "\ud800",
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2023, 1, 1),
        date(2024, 1, 1),
        [1, 2],
        [{"a": 1}, {"b": 2}],
        {"x": 1},
        {"k": [1, None]},
        (1, 2),
        b"x",
        {1, 2},
    ]
)
#: Records with clashing, hostile and nested values; keys shared across records.
_HOSTILE = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d", "\ud800"]), _VALUES, max_size=4),
    max_size=12,
)


def _row_wise(batch: list[Any]) -> Any:
    try:
        return _jsonl._scan(batch, 3)
    except SchemaViolationError as exc:
        return ("error", str(exc), exc.field)


def _fast(batch: list[Any], monkeypatch: pytest.MonkeyPatch, slice_rows: int = 2048) -> Any:
    monkeypatch.setattr(_jsonl, "_COLUMNS_FROM", 1)
    monkeypatch.setattr(_jsonl, "_SLICE", slice_rows)
    cols = _jsonl._scan_columns(batch, 3)
    return _row_wise(batch) if cols is None else cols


def _same(a: Any, b: Any) -> bool:
    # repr tells 1 from 1.0 and True from 1; an all-null column's record index
    # is never read, so it may differ.
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    if list(a) != list(b):
        return False
    for k, x in a.items():
        y = b[k]
        if x[0] == _jsonl._NULL:
            if y[0] != _jsonl._NULL or y[4] != 0:
                return False
        elif repr(x) != repr(y):
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(batch=_HOSTILE, slice_rows=st.sampled_from([1, 3, 2048]))
def test_column_scan_equals_row_scan(batch: list[Any], slice_rows: int) -> None:
    # Slices are scanned apart and folded: the same state as one row-wise pass.
    with pytest.MonkeyPatch.context() as mp:
        assert _same(_row_wise(batch), _fast(batch, mp, slice_rows))


@settings(max_examples=60, deadline=None)
@given(batch=json_records, slice_rows=st.sampled_from([2, 2048]))
def test_column_scan_equals_row_scan_on_valid_records(batch: list[Any], slice_rows: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        assert _same(_row_wise(batch), _fast(batch, mp, slice_rows))


def _per_record(batch: list[Any]) -> bytes | None:
    try:
        return b"".join(
            orjson.dumps(r, default=_jsonl._default, option=_jsonl._OPTS) + b"\n" for r in batch
        )
    except (TypeError, ValueError):
        return None


@settings(max_examples=300, deadline=None)
@given(
    batch=_HOSTILE.filter(bool) | json_records.filter(bool),
    slice_rows=st.sampled_from([1, 3, 2048]),
)
def test_one_dumps_call_gives_the_same_lines(batch: list[Any], slice_rows: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_jsonl, "_SLICE", slice_rows)
        fast = _jsonl._dump_lines(batch)
    if fast is not None:
        assert fast == _per_record(batch)


def test_separators_inside_records_take_the_per_record_path() -> None:
    batch = [{"s": "a},{b"}, {"l": [{"x": 1}, {"y": 2}]}, {"n": 1}]
    assert _jsonl._dump_lines(batch) is None
    ef = JSONL().encode(batch)
    assert ef.data == _per_record(batch)
    assert JSONL().decode(ef.data) == batch


def test_large_batch_errors_name_the_first_bad_record_and_field() -> None:
    # Big enough for the column-wise scan: its refusal defers to the row-wise one.
    rows: list[dict[str, Any]] = [{"a": i, "b": "x"} for i in range(100)]
    rows[40]["b"] = 7
    rows[70]["a"] = float("nan")
    with pytest.raises(SchemaViolationError, match="record 40") as err:
        JSONL().encode(rows)
    assert err.value.field == "b"
    rows[40]["b"] = "x"
    with pytest.raises(SchemaViolationError, match="record 70") as err:
        JSONL().encode(rows)
    assert err.value.field == "a"


def test_large_batch_stats_and_bytes() -> None:
    rows: list[dict[str, Any]] = [
        {"i": i, "f": i / 2 if i % 3 else i, "s": f"s{i:03d}", "n": None, "b": i % 2 == 0}
        for i in range(100)
    ]
    rows[5]["ts"] = datetime(2024, 1, 2, tzinfo=UTC)
    rows[9]["ts"] = "2024-01-01"
    ef = JSONL().encode(rows)
    assert ef.data == _per_record(rows)
    s = ef.stats
    assert s is not None
    assert (s["i"].min, s["i"].max, s["i"].null_count) == (0, 99, 0)
    assert (s["f"].min, s["f"].max) == (0, 99)
    assert (s["s"].min, s["s"].max) == ("s000", "s099")
    assert (s["n"].min, s["n"].null_count) == (None, 100)
    assert (s["b"].min, s["b"].max) == (False, True)
    assert (s["ts"].min, s["ts"].max, s["ts"].null_count) == (
        "2024-01-01",
        "2024-01-02T00:00:00+00:00",
        98,
    )
    assert [f.type_name for f in ef.schema.fields] == [
        "int64",
        "float64",
        "string",
        "null",
        "bool",
        "string",
    ]


class _Str(str):
    __slots__ = ()


class _Int(int):
    __slots__ = ()


#: A value and ones that are equal to it (or look alike) but differ in type or sign.
_LOOKALIKES = st.sampled_from(
    [
        ("a", [_Str("a"), "b", "", None, 1, datetime(2024, 1, 1)]),
        (1, [_Int(1), True, 1.0, 2, 2**63, None, "1"]),
        (0, [False, -0.0, 0.0, -(2**63) - 1, None]),
        (True, [1, _Int(1), False, None, 1.0]),
        (2**63 - 1, [2**63, -(2**63), 0, None]),
        (0.0, [-0.0, 0, float("nan"), None]),
    ]
)


@st.composite
def _near_constant(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Columns of one repeated value with a few look-alikes at drawn places."""
    n = draw(st.integers(1, 40))
    columns = {}
    for name in ("a", "b", "c"):
        value, others = draw(_LOOKALIKES)
        column = [value] * n
        for i in draw(st.lists(st.integers(0, n - 1), max_size=3)):
            column[i] = draw(st.sampled_from(others))
        columns[name] = column
    return [{k: c[i] for k, c in columns.items()} for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(batch=_near_constant(), slice_rows=st.sampled_from([3, 2048]))
def test_constant_columns_scan_like_rows(batch: list[Any], slice_rows: int) -> None:
    # A constant column's min and max are its first value only when every
    # value has its exact type: a str subclass, True among 1s, 1.0 among 1s
    # or -0.0 among 0.0s takes the general path and gives the row-wise answer.
    with pytest.MonkeyPatch.context() as mp:
        assert _same(_row_wise(batch), _fast(batch, mp, slice_rows))


def test_constant_column_stats_are_its_value() -> None:
    rows = [{"s": "x", "i": 7, "b": False, "v": i} for i in range(50)]
    s = JSONL().encode(rows).stats
    assert s is not None
    assert [(s[k].min, s[k].max) for k in ("s", "i", "b")] == [("x", "x"), (7, 7), (False, False)]
    assert type(s["b"].min) is bool
    rows[30]["i"] = _Int(7)  # equal, but not an exact int: still an int64 column
    rows[40]["s"] = _Str("x")
    s = JSONL().encode(rows).stats
    assert s is not None
    assert (s["i"].min, s["s"].max) == (7, "x")


def _built(cols: Any) -> Any:
    # The schema as built before the cache: one to_field per column.
    return _jsonl.Schema(
        tuple(
            _jsonl.to_field(k, c[1] if c[0] == _jsonl._NESTED else _jsonl._KIND_TYPES[c[0]])
            for k, c in cols.items()
        )
    )


@settings(max_examples=200, deadline=None)
@given(batch=_HOSTILE | _near_constant(), size=st.sampled_from([1, 2, 512]))
def test_cached_schemas_are_the_built_ones(batch: list[Any], size: int) -> None:
    # Whatever the cache holds (even when it is cleared while full), a layout's
    # schema and each column's Field are the ones to_field builds.
    try:
        cols = _jsonl._scan(batch, 0)
    except SchemaViolationError:
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_jsonl, "_CACHE_SIZE", size)
        for _ in range(2):
            assert _jsonl._schema_of(cols) == _built(cols)
            for k, c in cols.items():
                assert _jsonl._field_of(k, c) == _built({k: c}).fields[0]


def test_str_subclass_names_are_kept_not_cached() -> None:
    # (orjson refuses such keys when writing; the scan and the schema keep them.)
    cols = _jsonl._scan([{_Str("a"): 1, "b": "x"}, {"a": 2, "b": "y"}], 0)
    first = _jsonl._schema_of(cols)
    assert first == _jsonl.Schema((_jsonl.to_field("a", "int64"), _jsonl.to_field("b", "string")))
    assert type(first.fields[0].name) is _Str
    again = _jsonl._schema_of(_jsonl._scan([{"a": 1, "b": "x"}], 0))
    assert again == first
    assert type(again.fields[0].name) is str
    assert type(_jsonl._schema_of(cols).fields[0].name) is _Str


@pytest.mark.parametrize("cls", [_Backwards, _Unhashable])
def test_types_posing_as_str_take_the_exact_scan(cls: type[str]) -> None:
    """A metaclass can make a class hash and compare equal to ``str`` (or refuse
    hashing): the column scan tells types apart by identity, so such values get
    the row-wise scan's answer, not reversed statistics or a TypeError."""
    batch: list[Any] = [{"a": "m"}] + [{"a": cls(x)} for x in "zbqa"] * 4
    with pytest.MonkeyPatch.context() as mp:
        assert _same(_row_wise(batch), _fast(batch, mp))
        fast = JSONL().encode(batch)
        mp.setattr(_jsonl, "_COLUMNS_FROM", 10**9)  # the row-wise scan only
        exact = JSONL().encode(batch)
    assert fast.stats == exact.stats
    assert fast.data == exact.data


def test_records_posing_as_dict_take_the_exact_scan() -> None:
    batch: list[Any] = [{"a": "x"}] + [_PosingDict(a="q") for _ in range(10)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_jsonl, "_COLUMNS_FROM", 1)
        assert _jsonl._scan_columns(batch, 3) is None
        assert _same(_row_wise(batch), _fast(batch, mp))
