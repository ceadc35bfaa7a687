"""Hypothesis strategies for fuzzing code built on aiolode.

Valid inputs (that must be accepted and round-trip exactly) and invalid ones
(that must be refused with a typed :class:`~aiolode.InvalidInputError`, never
anything else)::

    from hypothesis import given
    from aiolode.testing import strategies as ast

    @given(key=ast.keys(), data=st.binary())
    async def test_roundtrip(store, key, data): ...

    @given(key=ast.bad_keys())
    async def test_refused(store, key):
        with pytest.raises(InvalidKeyError):
            await store.get(key)

This module needs `Hypothesis <https://hypothesis.readthedocs.io>`_ (it is not
a dependency of aiolode itself, and :mod:`aiolode.testing` does not import it).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from .._keys import MAX_KEY_BYTES
from ._faults import READ_OPS, Action, Corrupt, Crash, Fail, LoseAck, Rule, Truncate
from ._ops import OPS

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = (
    "bad_ids",
    "bad_keys",
    "bad_metadata",
    "corruptions",
    "dataset_ids",
    "fault_rules",
    "json_metadata",
    "json_values",
    "key_segments",
    "keys",
    "mutated_documents",
    "partition_text",
    "partition_values",
    "prefixes",
)

_CONTROL = "".join(chr(c) for c in range(0x20)) + "\x7f"

# Segments that have broken path handling somewhere: dots that are not "." or
# "..", escapes, separators of other systems, reserved-looking names, unicode.
_NASTY_SEGMENTS = [
    "a",
    "..a",
    "a..",
    "...",
    ".hidden",
    "_log",
    "%2F",
    "%2e%2e",
    "%",
    "key=value",
    "=",
    "a b",
    " ",
    "+",
    "~",
    "*",
    "?",
    "#",
    "CON",
    "nul",
    "日本語",
    "ключ",
    "🚀",
    "e\u0301",  # combining accent: not NFC
    "\u00e9",
    "\u200b",  # zero-width space
    "\ufeff",
    "\x80\x85\x9f",  # C1 controls: allowed in keys, awkward in XML
]


def _chars() -> SearchStrategy[str]:
    # Everything validate_key accepts in a segment: no "/", no backslash, no C0
    # control or DEL, no lone surrogates (not UTF-8 encodable).
    return st.characters(exclude_categories=["Cs"], exclude_characters="/\\" + _CONTROL)


def key_segments() -> SearchStrategy[str]:
    """One valid key segment (never ``""``, ``"."`` or ``".."``)."""
    free = st.text(_chars(), min_size=1, max_size=24).filter(lambda s: s not in (".", ".."))
    return st.one_of(st.sampled_from(_NASTY_SEGMENTS), free)


def keys(*, max_segments: int = 5) -> SearchStrategy[str]:
    """Valid store keys: ``/``-joined segments, at most 1,024 UTF-8 bytes.

    Every value is accepted by every store and must round-trip byte for byte.
    Segments stay at most 96 UTF-8 bytes, so a filesystem (255-byte names) can
    hold every key.
    """
    return (
        st.lists(key_segments(), min_size=1, max_size=max_segments)
        .map("/".join)
        .filter(lambda k: len(k.encode("utf-8")) <= MAX_KEY_BYTES)
    )


def prefixes() -> SearchStrategy[str]:
    """Valid listing prefixes: ``""``, a key, a key ending in ``/``, or a partial segment."""
    return st.one_of(
        st.just(""),
        keys(),
        keys().map(lambda k: k + "/").filter(lambda p: len(p.encode()) <= MAX_KEY_BYTES),
        st.tuples(keys(), key_segments())
        .map(lambda t: f"{t[0]}/{t[1][:1]}")
        .filter(lambda p: not p.endswith("/.") and len(p.encode()) <= MAX_KEY_BYTES),
    )


def _insert(s: str, pos: int, piece: str) -> str:
    i = pos % (len(s) + 1)
    return s[:i] + piece + s[i:]


def bad_keys() -> SearchStrategy[object]:
    """Values every store must refuse with :class:`~aiolode.InvalidKeyError`, before any I/O.

    Non-strings, empty, absolute, empty / ``.`` / ``..`` segments, a trailing
    ``/``, C0 controls, DEL, NUL, backslashes, lone surrogates, and keys over
    1,024 UTF-8 bytes, alone or hidden inside an otherwise valid key.
    """
    k = keys(max_segments=3)
    pos = st.integers(min_value=0, max_value=2000)
    forbidden = st.one_of(
        st.sampled_from([*_CONTROL, "\\"]),
        st.characters(categories=["Cs"]),
    )
    return st.one_of(
        st.sampled_from(["", "/", "//", ".", "..", "./", "../", "a/", "/a", "a//b", "a/./b"]),
        k.map(lambda s: "/" + s),
        k.map(lambda s: s + "/"),
        st.tuples(k, k).map(lambda t: f"{t[0]}//{t[1]}"),
        st.tuples(k, st.sampled_from([".", ".."]), k).map("/".join),
        k.map(lambda s: "../" + s),
        k.map(lambda s: s + "/.."),
        st.tuples(k, pos, forbidden).map(lambda t: _insert(t[0], t[1], t[2])),
        st.tuples(k, st.integers(min_value=1, max_value=64)).map(
            lambda t: (t[0] + "/" + "x" * MAX_KEY_BYTES)[: MAX_KEY_BYTES + t[1]]
        ),
        st.integers(min_value=MAX_KEY_BYTES // 4 + 1, max_value=600).map(lambda n: "🚀" * n),
        st.one_of(st.none(), st.binary(max_size=8), st.integers(), st.floats(), st.booleans()),
        st.lists(k, max_size=2),
    )


def dataset_ids() -> SearchStrategy[str]:
    """Valid dataset ids: 1-200 of letters, digits, ``_ - .``, starting alphanumeric."""
    first = st.sampled_from("abcXYZ019")
    rest = st.text(st.sampled_from("abcdefXYZ0129_-."), max_size=40)
    long = st.integers(min_value=150, max_value=199).map(lambda n: "d" + "x" * n)
    return st.one_of(st.tuples(first, rest).map("".join), long, st.sampled_from(["a", "0", "a..b"]))


def bad_ids() -> SearchStrategy[object]:
    """Ids that neither a Dataset nor a Volume may accept (:class:`~aiolode.InvalidKeyError`).

    Non-strings, empty, ``.`` and ``..``, anything with ``/``, a backslash, a
    control character or a lone surrogate.
    """
    seg = key_segments()
    return st.one_of(
        st.sampled_from(["", ".", "..", "/", "a/b", "/a", "a/", "../x", "a\\b", "a\x00", "\n"]),
        st.tuples(seg, seg).map(lambda t: f"{t[0]}/{t[1]}"),
        st.tuples(seg, st.integers(0, 64), st.sampled_from([*_CONTROL, "\\", "\ud800"])).map(
            lambda t: _insert(t[0], t[1], t[2])
        ),
        st.one_of(st.none(), st.binary(max_size=8), st.integers(), st.booleans()),
    )


def partition_text() -> SearchStrategy[str]:
    """Partition values as text, biased towards what could escape a path segment.

    Includes ``"/"``, ``"."``, ``".."``, ``"="``, ``"%"`` and percent-escapes,
    controls, NUL, unicode; a layout must escape them so no value creates or
    escapes a segment, and decode them back exactly. Includes ``""``.
    """
    tricky = st.sampled_from(
        [
            *["", ".", "..", "...", "/", "a/b", "../etc", "=", "a=b", "%", "%2F", "%25", "%zz"],
            *["\x00", "\\", " ", "\t\n", "_", "__HIVE_DEFAULT_PARTITION__", "null", "日本"],
            *["🚀", "e\u0301"],
        ]
    )
    text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
    return st.one_of(tricky, text, st.lists(tricky, min_size=2, max_size=4).map("".join))


def partition_values() -> SearchStrategy[str | int | float | bool | date | datetime]:
    """Partition values of every supported type: text, int, float, bool, date, datetime."""
    return st.one_of(
        partition_text(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.dates(),
        st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))])),
        st.datetimes(),
    )


def json_values(*, max_leaves: int = 20) -> SearchStrategy[Any]:
    """JSON values that survive ``json.dumps``/``json.loads`` unchanged.

    Finite floats, 64-bit ints, strings without lone surrogates, lists and
    string-keyed objects, nested.
    """
    text = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def json_metadata(*, max_leaves: int = 20) -> SearchStrategy[dict[str, Any]]:
    """Snapshot metadata that must be accepted and read back equal (``{}`` included)."""
    text = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)
    return st.dictionaries(text, json_values(max_leaves=max_leaves), max_size=6)


class _Opaque:
    """An object JSON cannot encode."""

    def __repr__(self) -> str:
        return "<opaque>"


def bad_metadata() -> SearchStrategy[object]:
    """Metadata that must be refused with :class:`~aiolode.InvalidInputError`.

    Not a mapping; non-string keys; NaN or infinities; naive datetimes, sets,
    arbitrary objects; anywhere in the structure.
    """
    poison = st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.datetimes(),  # naive
        st.frozensets(st.integers(), max_size=2).map(set),
        st.builds(_Opaque),
        st.complex_numbers(allow_nan=False, allow_infinity=False),
    )
    key = st.text(max_size=5)
    poisoned = st.recursive(
        poison,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(list),
            st.dictionaries(key, inner, min_size=1, max_size=3),
        ),
        max_leaves=5,
    )
    return st.one_of(
        st.tuples(json_metadata(max_leaves=5), key, poisoned).map(lambda t: {**t[0], t[1]: t[2]}),
        st.tuples(
            json_metadata(max_leaves=5), st.one_of(st.integers(), st.none(), st.floats())
        ).map(lambda t: {**t[0], t[1]: "value"}),
        st.one_of(
            st.text(max_size=5),
            st.integers(),
            st.lists(st.integers(), max_size=3),
            st.binary(max_size=4),
        ),
    )


def corruptions(data: bytes, *, max_bit_flips: int = 8) -> SearchStrategy[bytes]:
    """Damaged versions of ``data``, always different from it.

    Bit flips (1 to ``max_bit_flips`` distinct bits), truncation to any strictly
    shorter prefix, a zeroed range, appended garbage, and a chunk swapped for
    random bytes. Use it on manifests and data files: with checksums on, every
    one must be detected.
    """
    n = len(data)
    options: list[SearchStrategy[bytes]] = [
        st.binary(min_size=1, max_size=16).map(lambda extra: data + extra),
    ]
    if n:
        bits = n * 8

        def flip(positions: list[int]) -> bytes:
            out = bytearray(data)
            for p in positions:
                out[p // 8] ^= 1 << (p % 8)
            return bytes(out)

        options += [
            st.lists(
                st.integers(0, bits - 1),
                min_size=1,
                max_size=min(max_bit_flips, bits),
                unique=True,
            ).map(flip),
            st.integers(0, n - 1).map(lambda k: data[:k]),
            st.tuples(st.integers(0, n - 1), st.integers(1, 64))
            .map(lambda t: data[: t[0]] + bytes(min(t[1], n - t[0])) + data[t[0] + t[1] :])
            .filter(lambda d: d != data),
            st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=32))
            .map(lambda t: data[: t[0]] + t[1] + data[t[0] + len(t[1]) :])
            .filter(lambda d: d != data),
        ]
    return st.one_of(*options)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], fn: Any) -> Any:
    if not path:
        return fn(doc)
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        copy = dict(doc)
        result = _replace(doc[head], rest, fn)
        if result is _DELETE:
            del copy[head]
        else:
            copy[head] = result
        return copy
    items = list(doc)
    result = _replace(doc[head], rest, fn)
    if result is _DELETE:
        del items[head]
    else:
        items[head] = result
    return items


_DELETE = object()


def mutated_documents(doc: dict[str, Any]) -> SearchStrategy[Any]:
    """Structural mutations of a JSON document, e.g. a manifest, always != ``doc``.

    At a random path: delete a field, replace a value with another JSON value
    (wrong type, wrong version, ``null`` …), or add an unexpected field; or
    replace the whole document with a non-object. A reader must refuse each one
    with a typed format error, or (for an unknown extra field) accept it
    unchanged, never crash otherwise.
    """
    paths = _paths(doc)
    inner_paths = [p for p in paths if p]

    def delete(path: tuple[Any, ...]) -> Any:
        return _replace(doc, path, lambda _: _DELETE)

    def set_value(t: tuple[tuple[Any, ...], Any]) -> Any:
        return _replace(doc, t[0], lambda _: t[1])

    containers = [p for p in paths if isinstance(_get(doc, p), dict)]
    options: list[SearchStrategy[Any]] = [
        st.one_of(
            st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2)
        ),
        st.tuples(
            st.sampled_from(containers), st.text(min_size=1, max_size=8), json_values(max_leaves=3)
        )
        .filter(lambda t: t[1] not in _get(doc, t[0]))
        .map(lambda t: _replace(doc, t[0], lambda d: {**d, t[1]: t[2]})),
    ]
    if inner_paths:
        options += [
            st.sampled_from(inner_paths).map(delete),
            st.tuples(
                st.sampled_from(inner_paths),
                st.one_of(json_values(max_leaves=3), st.integers(-2, 1000)),
            ).map(set_value),
        ]
    return st.one_of(*options).filter(lambda d: d != doc)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def fault_rules(
    *, max_rules: int = 3, max_nth: int = 30, reads: bool = True, crash: bool = True
) -> SearchStrategy[list[Rule]]:
    """Random fault schedules for :class:`~aiolode.testing.FaultInjectingStore`.

    Each rule fires once, at the ``nth`` call (``1..max_nth``) of one operation
    (or of any, ``"*"``), with ``Fail``, ``LoseAck``, and when enabled
    ``Crash`` (before or after the call) and, on reads, ``Truncate`` or
    ``Corrupt``. Hypothesis shrinks a failing schedule to the fewest, earliest
    faults, which is what makes a failure readable.

    Parameters
    ----------
    max_rules
        At most this many rules per schedule (at least one).
    max_nth
        Latest call number a rule may target; keep it near the number of store
        calls the operation under test makes.
    reads
        Include ``Truncate`` and ``Corrupt`` on reads.
    crash
        Include ``Crash``.
    """
    ops: list[str] = ["*", *OPS]
    writes: list[Action] = [Fail(), LoseAck()]
    if crash:
        writes += [Crash(), Crash(when="after")]
    any_op = st.builds(
        lambda op, nth, action: Rule(op=op, nth=nth, action=action),
        st.sampled_from(ops),
        st.integers(1, max_nth),
        st.sampled_from(writes),
    )
    options: list[SearchStrategy[Rule]] = [any_op]
    if reads:
        options.append(
            st.builds(
                lambda op, nth, action: Rule(op=op, nth=nth, action=action),
                st.sampled_from(["*", *READ_OPS]),
                st.integers(1, max_nth),
                st.one_of(
                    st.builds(Truncate, st.one_of(st.none(), st.integers(0, 64))),
                    st.builds(Corrupt, st.integers(1, 4)),
                ),
            )
        )
    return st.lists(st.one_of(*options), min_size=1, max_size=max_rules)
