"""The C fast paths of the JSONL codec (``_jsonl_speedups.c``) answer exactly
as the Python code does, or not at all (``None``: the Python code runs).

"Exactly" includes the objects: a column's min and max are the very values
``min()`` and ``max()`` return (the first of equal ones: ``1`` before ``1.0``,
``0.0`` before ``-0.0``), since statistics keep the value's type.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolode import JSONL
from aiolode.codecs import _jsonl

from .test_jsonl_fast import _Backwards, _PosingDict, _Str, _Unhashable


def test_the_fast_paths_are_built() -> None:
    # The build hook compiles them wherever a C compiler is found (CI has one);
    # without them the codec is correct but ~3x slower per 1,000 records.
    if os.environ.get("AIOLODE_PURE_PYTHON"):
        pytest.skip("turned off by AIOLODE_PURE_PYTHON")
    assert _jsonl._fast_scan is not None
    assert _jsonl._fast_lines is not None


speedups = pytest.importorskip("aiolode.codecs._jsonl_speedups")


def _python_scan(batch: list[Any], first: int, keys: Any = None) -> Any:
    """What the Python code makes of each column (of ``keys``, or all) of a
    batch of one key set: ``_column``'s answer, else (a float column whose sum
    overflows, say) the row-wise scan's."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_jsonl, "_fast_scan", None)
        for k in batch[0] if keys is None else keys:
            values = [rec[k] for rec in batch]
            c = _jsonl._column(k, values, batch, first)
            out[k] = _jsonl._scan([{k: v} for v in values], first)[k] if c is None else c
    return out


def _assert_same_scan(fast: Any, exact: Any, *, identical: bool = True) -> None:
    """``fast`` answers as ``exact`` for every column it answers (``None``: a
    column left to the Python code), min and max being the same objects
    (unless not ``identical``: values the Python code converts, a str subclass
    made a str, are new objects on every run)."""
    for k, c in fast.items():
        if c is None:
            continue
        e = exact[k]
        assert c == e, k
        assert [type(x) for x in c] == [type(x) for x in e], k
        if identical:
            assert c[2] is e[2], k  # min: the same object
            assert c[3] is e[3], k  # max


def _pipeline(batch: list[Any], first: int, *, fast: bool) -> Any:
    """The scan an encode gets: the column scan (C and Python, or Python alone),
    else the row-wise one, or the error it raises."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_jsonl, "_COLUMNS_FROM", 1)
        if not fast:
            mp.setattr(_jsonl, "_fast_scan", None)
        try:
            cols = _jsonl._scan_columns(batch, first)
            return _jsonl._scan(batch, first) if cols is None else cols
        except _jsonl.SchemaViolationError as exc:
            return ("error", str(exc), exc.field)


class _Key:
    """A key that compares equal to a str and hashes like it (user code)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __hash__(self) -> int:
        return hash(self.text)

    def __eq__(self, other: object) -> bool:
        return other == self.text


#: Column families: mostly one kind (so the C code answers), and the mixes,
#: look-alikes and hostile values it must either get right or hand back.
_FAMILIES: list[st.SearchStrategy[Any]] = [
    st.text(max_size=6),
    st.sampled_from(["a", "b", "ab", "", "\u00e9", "\U0001f600", "zz"]),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**53, 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 2.0**53, -1.5]),
    st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1, 1.0, True, 0, -0.0, 0.0, 2**53 + 1, 2.0**53]),
    st.booleans(),
    st.none(),
    st.sampled_from(
        [
            2**63,
            -(2**63) - 1,
            float("nan"),
            float("inf"),
            _Str("a"),
            _Backwards("b"),
            _Unhashable("c"),
            datetime(2024, 1, 1, tzinfo=UTC),
            [1],
            {"x": 1},
            (1,),
            b"x",
            "\ud800",
        ]
    ),
]
_NAMES = ["alpha", "beta", "gamma", "delta", "é-key"]


@st.composite
def _batches(draw: st.DrawFn) -> list[Any]:
    width = draw(st.integers(1, 4))
    names = _NAMES[:width]
    families = st.sampled_from(_FAMILIES[:-1]) | st.sampled_from(_FAMILIES)  # hostile: less
    columns = [
        st.none() | family if draw(st.booleans()) else family
        for family in (draw(families) for _ in names)
    ]
    n = draw(st.integers(1, 30))
    # Half the batches are plain (for the C code to answer), half may hold
    # records of another shape here and there.
    irregular = draw(st.booleans())
    batch: list[Any] = []
    for _ in range(n):
        items = [(k, draw(c)) for k, c in zip(names, columns, strict=True)]
        if draw(st.integers(0, 5)) == 0:
            items.reverse()  # another key order
        if draw(st.integers(0, 5)) == 0:
            # Equal keys, other str objects (no identity shortcut).
            items = [("".join(list(k)), v) for k, v in items]
        rec: Any = dict(items)
        shape = draw(st.integers(0, 40)) if irregular else -1
        if shape == 0:
            rec.pop(names[0])  # a missing key
        elif shape == 1:
            rec["extra"] = 1  # an extra key
        elif shape == 2:
            rec = {_Key(k) if i == 0 else k: v for i, (k, v) in enumerate(rec.items())}
        elif shape == 3:
            rec = _PosingDict(rec)
        elif shape == 4:
            rec = {}
        elif shape == 5:
            rec = {**rec, "\ud800": 1}
            rec.pop(names[0])
        batch.append(rec)
    return batch


@settings(max_examples=1500, deadline=None)
@given(batch=_batches(), first=st.integers(0, 10**6))
def test_scan_answers_as_python_or_not_at_all(batch: list[Any], first: int) -> None:
    fast = speedups.scan(batch, first)
    if fast is not None:
        assert list(fast) == list(batch[0])  # every column, in the same order
        answered = [k for k, c in fast.items() if c is not None]
        _assert_same_scan(fast, _python_scan(batch, first, answered))
    # And what an encode gets, C code and Python code together.
    with_c = _pipeline(batch, first, fast=True)
    without = _pipeline(batch, first, fast=False)
    if isinstance(without, tuple):
        assert with_c == without
    else:
        assert list(with_c) == list(without)
        _assert_same_scan(with_c, without, identical=False)


def test_scan_answers_the_common_batches() -> None:
    # Not only "None" everywhere: plain batches, in any key order, are its own.
    base = [
        {"s": f"v{i % 7}", "i": i - 50, "f": i / 3, "m": i if i % 2 else float(i), "b": i % 3 == 0}
        for i in range(100)
    ]
    shuffled = [dict(reversed(r.items())) if i % 5 == 0 else r for i, r in enumerate(base)]
    nulls = [{**r, "n": None, "s": None if i % 4 else r["s"]} for i, r in enumerate(base)]
    for batch in (base, shuffled, nulls):
        fast = speedups.scan(batch, 7)
        assert fast is not None
        assert None not in fast.values()
        _assert_same_scan(fast, _python_scan(batch, 7))
    assert speedups.scan(nulls, 7)["n"] == [_jsonl._NULL, None, None, None, 0, 7]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (2**63, "beyond int64"),
        (-(2**63) - 1, "beyond int64"),
        (float("nan"), "NaN"),
        (float("-inf"), "infinity"),
        ("x", "two kinds (int and str)"),
        (True, "two kinds (int and bool)"),
        (_Str("x"), "a str subclass"),
        (datetime(2024, 1, 1), "a datetime (written as its ISO string)"),
        ([1], "nested"),
    ],
)
def test_scan_hands_back_what_python_must_decide(value: Any, why: str) -> None:
    batch: list[Any] = [{"a": i, "b": f"s{i}"} for i in range(10)]
    batch[6] = {"a": value, "b": "s6"}
    fast = speedups.scan(batch, 0)
    assert fast is not None
    assert fast["a"] is None, why  # that column is the Python code's
    assert fast["b"] == [_jsonl._STR, None, "s0", "s9", 10, 0]  # the other is not


def test_scan_runs_no_user_code() -> None:
    calls: list[str] = []

    class Loud(str):
        def __eq__(self, other: object) -> bool:
            calls.append("eq")
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    batch: list[Any] = [{"a": 1, "b": 2} for _ in range(5)]
    batch[3] = {Loud("a"): 1, "b": 2}  # a key that is not an exact str
    batch.append({"b": 3, Loud("a"): 4})
    assert speedups.scan(batch, 0) is None
    batch = [{"a": "x", "b": 2} for _ in range(5)]
    batch[3] = {"a": Loud("v"), "b": 2}  # a value that is not an exact str
    fast = speedups.scan(batch, 0)
    assert fast is not None
    assert fast["a"] is None
    assert calls == []


_FINALIZER_EMPTIES_BATCH = """
import gc, json
from aiolode.codecs._jsonl_speedups import scan

batch = [{f"k{j}" * 3: f"value-{i}-{j}" * 5 for j in range(3)} for i in range(4)]
fired = []
junk = []

class Bomb:
    def __del__(self):
        fired.append(1)
        for rec in batch:
            rec.clear()
        junk.extend("X" * 75 + str(i) for i in range(1000))  # reuse freed memory

gc.disable()
bomb = Bomb()
bomb.self = bomb
del bomb
keep = [[] for _ in range(500)] + [{} for _ in range(500)]  # drain the free lists
gc.set_threshold(1)
gc.enable()
result = scan(batch, 0)
gc.set_threshold(700)
print(json.dumps([bool(fired), result]))
"""


def test_scan_owns_its_answer_before_allocating_it() -> None:
    # Building the result may start a garbage collection, whose finalizers may
    # empty the batch: the keys, mins and maxes must be owned before that (they
    # were borrowed: freed objects read back, a crash under the debug
    # allocator, which fills freed memory).
    proc = subprocess.run(
        [sys.executable, "-c", _FINALIZER_EMPTIES_BATCH],
        env={**os.environ, "PYTHONMALLOC": "debug"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fired, result = json.loads(proc.stdout)
    assert fired  # the finalizer did run inside the scan
    assert result == {
        f"k{j}" * 3: [_jsonl._STR, None, f"value-0-{j}" * 5, f"value-3-{j}" * 5, 4, 0]
        for j in range(3)
    }


@pytest.mark.parametrize("first", [2**63 - 1, 2**63 - 2, 2**63, 2**70, -1])
def test_scan_leaves_huge_record_numbers_to_python(first: int) -> None:
    # first + i must not overflow C's integers (a wrong index, or an error).
    assert speedups.scan([{"a": None}, {"a": 1}], first) is None


def test_scan_refuses_non_lists() -> None:
    rows = [{"a": 1}, {"a": 2}]
    assert speedups.scan(tuple(rows), 0) is None
    assert speedups.scan([], 0) is None
    assert speedups.scan([{}], 0) is None
    with pytest.raises(TypeError):
        speedups.scan(rows)


_SEP = re.compile(rb"\},\{")


def _python_lines(data: bytes, n: int) -> bytes | None:
    lines, seps = _SEP.subn(b"}\n{", data)
    return lines[1:-1] + b"\n" if seps == n - 1 else None


_TEXT = st.sampled_from(["", "},{", "}", "{", ",", "a},{b", '"', "[", "]", "x"])


@settings(max_examples=1000, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "},{"]),
            _TEXT
            | st.integers(-(2**63), 2**63 - 1)
            | st.lists(st.dictionaries(_TEXT, _TEXT, max_size=2)),
            max_size=3,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_lines_answer_as_python_or_not_at_all(rows: list[dict[str, Any]]) -> None:
    data = orjson.dumps(rows)
    fast = speedups.lines(data, len(rows))
    if fast is not None:
        assert fast == _python_lines(data, len(rows))
    # And the whole encode: the same bytes with the C code or without.
    with pytest.MonkeyPatch.context() as mp:
        with_c = _jsonl._dump_lines(rows)
        mp.setattr(_jsonl, "_fast_lines", None)
        assert _jsonl._dump_lines(rows) == with_c


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=12), n=st.integers(-2, 6))
def test_lines_on_any_bytes(data: bytes, n: int) -> None:
    # Short, odd or foreign input: an answer the Python transform agrees
    # with, or None; never a read out of bounds.
    fast = speedups.lines(data, n)
    if fast is not None:
        assert fast == _python_lines(data, n)


def test_lines_of_one_record_and_of_separators_in_values() -> None:
    assert speedups.lines(b'[{"a":1}]', 1) == b'{"a":1}\n'
    assert speedups.lines(b'[{"a":1},{"a":2}]', 2) == b'{"a":1}\n{"a":2}\n'
    assert speedups.lines(b'[{"a":"},{"}]', 1) is None  # one inside a value
    assert speedups.lines(b"[]", 0) is None
    assert speedups.lines(b'[{"a":1}]', -(2**63)) is None  # n - 1 must not overflow


@settings(max_examples=200, deadline=None)
@given(batch=_batches())
def test_encode_is_the_same_with_or_without_the_c_code(batch: list[Any]) -> None:
    def encode() -> Any:
        try:
            ef = JSONL().encode(batch)
        except Exception as exc:  # whatever it is, the same one both ways
            return ("error", type(exc), str(exc), getattr(exc, "field", None))
        # Typed: ColumnStats compare 1 equal to 1.0.
        stats = [
            (k, type(c.min), c.min, type(c.max), c.max, c.null_count)
            for k, c in (ef.stats or {}).items()
        ]
        return ef.data, stats, ef.schema, ef.row_count

    with_c = encode()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_jsonl, "_fast_scan", None)
        mp.setattr(_jsonl, "_fast_lines", None)
        assert encode() == with_c


def test_no_call_holds_the_gil_over_more_than_a_bounded_number_of_values() -> None:
    # The C scan holds the GIL for its whole call (~40 ns a value): wide
    # records are scanned in fewer records per call, so an event loop in
    # another thread is never stalled for long; the answer is the same.
    wide = [{f"c{j}": f"v{i}-{j}" for j in range(300)} for i in range(700)]
    wider_first = [{f"c{j}": "x" for j in range(300)} | {"n": 1}, *wide]
    scan = _jsonl._fast_scan
    assert scan is not None
    for batch in (wide, [{"c0": "x"}, *wide], wider_first):
        answered: list[int] = []

        def counting(part: list[Any], first: int, answered: list[int] = answered) -> Any:
            out = scan(part, first)
            if out is not None:  # then every record has the first's width
                answered.append(len(part) * len(part[0]))
            return out

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_jsonl, "_fast_scan", counting)
            with_c = _pipeline(batch, 0, fast=True)
        # (A narrow record first: its slice mixes widths, which the C scan
        # hands back whole; the Python scan's per-column passes take it.)
        assert answered or len(batch[0]) == 1
        assert max(answered, default=0) <= _jsonl._CELLS
        assert with_c == _pipeline(batch, 0, fast=False)
    narrow = [{"a": 1}] * (_jsonl._SLICE + 1)
    assert len(next(_jsonl._parts(narrow))[1]) == _jsonl._SLICE
    huge = [{f"c{j}": 1 for j in range(10**5)}, {"a": 2}]
    assert len(next(_jsonl._parts(huge))[1]) == 1


@pytest.mark.parametrize("fast", [True, False])
def test_a_float_column_with_an_int_beyond_floats_names_the_record(fast: bool) -> None:
    # sum() of a float and 10**400 raises OverflowError: the int is refused first.
    rows: list[dict[str, Any]] = [{"a": 1.5, "b": "x"} for _ in range(8)]
    rows[7]["a"] = 10**400
    with pytest.MonkeyPatch.context() as mp:
        if not fast:
            mp.setattr(_jsonl, "_fast_scan", None)
        with pytest.raises(_jsonl.SchemaViolationError, match="record 7") as err:
            JSONL().encode(rows)
        assert err.value.field == "a"
        # Finite floats whose sum overflows are fine, by either path.
        stats = JSONL().encode([{"a": 1e308, "b": 1} for _ in range(8)]).stats
    assert stats is not None
    assert (stats["a"].min, stats["a"].max) == (1e308, 1e308)
