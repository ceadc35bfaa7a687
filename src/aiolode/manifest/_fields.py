"""Field checks of the manifest models: one set for both ways a model is built.

A model is built either by a caller (``FileRef(...)``, ``Manifest(...)``) or by
:func:`~aiolode.manifest.decode` from a stored document. Both run the same
attrs converters and validators below. A converter never raises: it converts
what it can (an iterable to a tuple, a mapping to a frozen one) and hands
anything else on unchanged; the field's validator, which knows the model and
the field, then raises :class:`~aiolode.InvalidInputError` naming both and the
bad value. That is the seam: a caller gets the ``InvalidInputError`` itself,
while the decoder (cattrs wraps what a constructor raises, and the decoder
catches ``ValueError``, which ``InvalidInputError`` is) reports it as
:class:`~aiolode.ManifestFormatError` with the path of the field.

The checks are cheap on purpose: decoding a snapshot of 100,000 files runs
them 100,000 times (``benchmarks/bench_manifest_decode.py``). Values that come
out of cattrs (plain ``dict``/``tuple``/``str``) take the first, exact-type
branch of each check. A :class:`FrozenDict` is taken as it is: only a
converter or a decode builds one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from .._keys import validate_key
from .._validate import safe_repr
from ..errors import InvalidInputError, InvalidKeyError
from ._metadata import MAX_DEPTH, FrozenDict

if TYPE_CHECKING:
    from collections.abc import Callable

    import attrs

__all__ = [
    "aware",
    "count",
    "fail",
    "is_a",
    "json_map",
    "json_scalar",
    "key",
    "map_of",
    "one_of",
    "opt_aware",
    "opt_count",
    "opt_json_map",
    "opt_key",
    "opt_str",
    "str_",
    "str_map",
    "to_frozen_map",
    "to_json_map",
    "to_opt_json_map",
    "to_str_map",
    "to_tuple",
    "tuple_of",
]


def fail(owner: str, name: str, value: object, expected: str, detail: str = "") -> NoReturn:
    """Raise the error of a bad field value."""
    raise InvalidInputError(
        f"{owner}.{name} must be {expected}, not {safe_repr(value)}{detail}", field=name
    )


def _bad(inst: object, attr: attrs.Attribute[Any], value: object, expected: str) -> NoReturn:
    fail(type(inst).__name__, attr.name, value, expected)


# ------------------------------------------------------------------ validators
def str_(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """A ``str``."""
    if type(value) is not str and not isinstance(value, str):
        _bad(inst, attr, value, "a str")


def opt_str(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """A ``str`` or ``None``."""
    if value is not None and type(value) is not str and not isinstance(value, str):
        _bad(inst, attr, value, "a str or None")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# Each check starts with the exact-type test a decoded value passes.
def count(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """An ``int >= 0`` (not a bool)."""
    if not (type(value) is int and value >= 0) and not _is_count(value):
        _bad(inst, attr, value, "an int >= 0")


def opt_count(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """``None`` or an ``int >= 0`` (not a bool)."""
    if value is not None and not (type(value) is int and value >= 0) and not _is_count(value):
        _bad(inst, attr, value, "None or an int >= 0")


_SCALARS = frozenset({str, int, float, bool, type(None)})


def json_scalar(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """``None``, a bool, an int, a float or a str (what a JSON scalar decodes to)."""
    if type(value) not in _SCALARS and not isinstance(value, str | int | float):
        _bad(inst, attr, value, "a JSON scalar (str, int, float, bool or None)")


def aware(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """A timezone-aware ``datetime``."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        _bad(inst, attr, value, "a timezone-aware datetime")


def opt_aware(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """``None`` or a timezone-aware ``datetime``."""
    if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
        _bad(inst, attr, value, "None or a timezone-aware datetime")


def key(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """A valid store key (a stored key that is empty, absolute or escaping is never read)."""
    try:
        validate_key(value)
    except InvalidKeyError as exc:
        raise InvalidKeyError(
            f"{type(inst).__name__}.{attr.name} must be a valid store key, not "
            f"{safe_repr(value)}: {exc}",
            key=value[:1024] if isinstance(value, str) else None,
            field=attr.name,
        ) from None


def opt_key(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """``None`` or a valid store key."""
    if value is not None:
        key(inst, attr, value)


def is_a(cls: type[Any]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """An instance of ``cls``."""

    def check(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, cls):
            _bad(inst, attr, value, f"a {cls.__name__}")

    return check


def one_of(*allowed: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """One of the strings ``allowed``."""
    names = frozenset(allowed)
    text = "one of " + ", ".join(repr(a) for a in allowed)

    def check(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or value not in names:
            _bad(inst, attr, value, text)

    return check


# ------------------------------------------------------------------ converters
# Converters run before validators and never raise: what they cannot convert
# they hand on unchanged, and the field's validator (which knows the field's
# name) reports it. They are plain named functions, as mypy's attrs plugin needs.
def _is_seq(value: object) -> bool:
    return not isinstance(value, str | bytes | bytearray | memoryview | Mapping) and isinstance(
        value, Iterable
    )


def to_tuple(value: Any) -> Any:
    """Converter: an iterable (not a str, bytes or mapping) as a tuple."""
    if type(value) is tuple:
        return value
    if type(value) is list:
        return tuple(value)
    if _is_seq(value):
        # Through iter(): tuple() of the object itself trusts its __len__.
        return tuple(iter(value))
    return value


def to_str_map(value: Any) -> Any:
    """Converter: a mapping of ``str`` to ``str`` as a :class:`FrozenDict`."""
    if type(value) is FrozenDict:
        return value  # built by a converter or a decode
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                return value
        return FrozenDict(value)
    return value


def to_frozen_map(value: Any) -> Any:
    """Converter: a str-keyed mapping as a :class:`FrozenDict` (values as they are)."""
    if type(value) is FrozenDict:
        return value
    if isinstance(value, Mapping):
        for k in value:
            if not isinstance(k, str):
                return value
        return FrozenDict(value)
    return value


class _NotJSON(Exception):
    pass


def _freeze_json(value: Any, depth: int) -> Any:
    # Exact types first: what json.loads (and so a decode) produces.
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None or t is FrozenDict:
        return value
    if depth >= MAX_DEPTH:
        raise _NotJSON(f"is nested deeper than {MAX_DEPTH} levels (or contains itself)")
    if t is dict or isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _NotJSON(f"has a non-str key {safe_repr(k)}")
            out[k] = _freeze_json(v, depth + 1)
        return FrozenDict(out)
    if t is list or t is tuple or isinstance(value, list | tuple):
        return tuple([_freeze_json(v, depth + 1) for v in value])
    if isinstance(value, str | int | float):
        return value
    raise _NotJSON(f"holds a {type(value).__name__}, which has no JSON form")


def to_json_map(value: Any) -> Any:
    """Converter: a str-keyed mapping of JSON values, deeply frozen (lists → tuples)."""
    if type(value) is FrozenDict or not isinstance(value, Mapping):
        return value
    try:
        return _freeze_json(value, 0)
    except _NotJSON:
        return value


def to_opt_json_map(value: Any) -> Any:
    """Converter: ``None``, or as :func:`to_json_map`."""
    return None if value is None else to_json_map(value)


# --------------------------------------------- validators of converted fields
def tuple_of(cls: type[Any]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """Validator (after :func:`to_tuple`): a tuple of ``cls`` instances."""
    expected = f"a list of {cls.__name__}"

    def check(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not tuple:
            _bad(inst, attr, value, expected)
        for item in value:
            if not isinstance(item, cls):
                fail(type(inst).__name__, attr.name, value, expected, f" (holds {safe_repr(item)})")

    return check


def str_map(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """Validator (after :func:`to_str_map`): converted, so a mapping of str to str."""
    if type(value) is not FrozenDict:
        _bad(inst, attr, value, "a mapping of str to str")


def map_of(cls: type[Any]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """Validator (after :func:`to_frozen_map`): a mapping of str to ``cls`` instances."""
    expected = f"a mapping of str to {cls.__name__}"

    def check(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not FrozenDict:
            _bad(inst, attr, value, expected)
        for v in value.values():
            if not isinstance(v, cls):
                _bad(inst, attr, value, expected)

    return check


def _json_why(value: object) -> str:
    try:
        _freeze_json(value, 0)
    except _NotJSON as exc:
        return f" (it {exc})"
    return ""


def json_map(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """Validator (after :func:`to_json_map`): a str-keyed mapping of JSON values."""
    if type(value) is not FrozenDict:
        fail(
            type(inst).__name__,
            attr.name,
            value,
            "a str-keyed mapping of JSON values",
            _json_why(value) if isinstance(value, Mapping) else "",
        )


def opt_json_map(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    """Validator (after :func:`to_opt_json_map`): ``None`` or as :func:`json_map`."""
    if value is not None:
        json_map(inst, attr, value)
