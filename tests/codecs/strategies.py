"""Hypothesis strategies for codec tests: JSON-ish records and typed tabular records."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import strategies as st

KEYS = st.sampled_from(["a", "b", "name", "ts", "x y", "é", "n0"]) | st.text(min_size=1, max_size=6)

# JSON values of one type per column (a write refuses a column of two types):
# a strategy of value strategies, one drawn per column.
_JSON_SCALARS: list[st.SearchStrategy[Any]] = [
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    # ints and floats together make one float64 column
    st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.booleans(),
]


def _optional_struct(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional={k: st.none() | v for k, v in fields.items()})


json_types: st.SearchStrategy[st.SearchStrategy[Any]] = st.recursive(
    st.sampled_from(_JSON_SCALARS),
    lambda inner: (
        inner.map(lambda v: st.lists(st.none() | v, max_size=4))
        | st.dictionaries(st.text(max_size=5), inner, max_size=3).map(_optional_struct)
    ),
    max_leaves=6,
)


@st.composite
def typed_json_records(draw: st.DrawFn, max_rows: int = 30) -> list[dict[str, Any]]:
    """Records whose columns each hold one JSON type (or null / absent)."""
    names = draw(st.lists(KEYS, unique=True, max_size=5))
    kinds = {n: draw(json_types) for n in names}
    rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=max_rows))):
        rec: dict[str, Any] = {}
        for n in draw(st.permutations(names)):
            choice = draw(st.integers(min_value=0, max_value=4))
            if choice == 0:
                continue
            rec[n] = None if choice == 1 else draw(kinds[n])
        rows.append(rec)
    return rows


json_records = typed_json_records()

instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)

# Arrow-typed columns: name -> value strategy (one Arrow type per column).
KINDS: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": st.text(max_size=12),
    "bool": st.booleans(),
    "ts": instants,
    "date": st.dates(min_value=date(1, 1, 1)),
    "list": st.lists(st.integers(min_value=-1000, max_value=1000), max_size=3),
}


def arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "ts": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "list": pa.list_(pa.int64()),
    }[kind]


@st.composite
def tabular(
    draw: st.DrawFn, min_rows: int = 0, max_rows: int = 40
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A column spec (name -> kind) and records fitting it.

    Keys may be absent or ``None`` in any record, except column ``id`` (int),
    always present so that every record has at least one field.
    """
    names = draw(st.lists(KEYS.filter(lambda k: k != "id"), unique=True, max_size=5))
    spec = {"id": "int"} | {n: draw(st.sampled_from(sorted(KINDS))) for n in names}
    n = draw(st.integers(min_value=min_rows, max_value=max_rows))
    rows = []
    for i in range(n):
        rec: dict[str, Any] = {"id": i}
        for name in names:
            choice = draw(st.integers(min_value=0, max_value=5))
            if choice == 0:
                continue  # absent
            rec[name] = None if choice == 1 else draw(KINDS[spec[name]])
        rows.append(rec)
    return spec, rows


def schema_of(spec: dict[str, str]) -> Any:
    import pyarrow as pa

    return pa.schema([(n, arrow_type(k)) for n, k in spec.items()])


def filled(spec: dict[str, str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a columnar codec gives back: every column in every row, absent → None."""
    return [{n: r.get(n) for n in spec} for r in rows]


@st.composite
def splits(draw: st.DrawFn, n: int, max_parts: int = 6) -> list[int]:
    """Sorted cut points in ``[0, n]`` (duplicates allowed: empty pieces)."""
    cuts = draw(st.lists(st.integers(min_value=0, max_value=n), max_size=max_parts))
    return sorted(cuts)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def batches(rows: list[Any], points: list[int]) -> list[list[Any]]:
    bounds = [0, *points, len(rows)]
    return [rows[a:b] for a, b in itertools.pairwise(bounds)]
