"""Caller metadata: one set of rules for every history (datasets and volumes).

What a caller passes as ``metadata=`` is validated *before any I/O*, encoded
into JSON with a small lossless tagging scheme for the Python types crawlers
and web backends actually have (aware datetimes, dates, UUIDs, decimals,
bytes), and handed back **deeply immutable**: the value a write returns and the
value a later read decodes are built by the same function from the same JSON,
so they are equal and of the same types, and nothing a caller does to the
object it holds can change what the library returns afterwards.

Encoding (``docs/spec/manifest-v3.md``)::

    datetime (aware)  {"$datetime": "2026-11-30T02:35:00.123456+00:00"}
    date              {"$date": "2026-11-30"}
    UUID              {"$uuid": "7d44…-…"}
    Decimal           {"$decimal": "1.10"}
    bytes-like        {"$bytes": "<base64>"}
    a mapping whose only key starts with "$"   {"$map": {...}}   (escaped)

Lists and tuples both come back as tuples; mappings as :class:`FrozenDict`
(a ``dict`` subclass that refuses mutation, so ``json.dumps`` still works).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import sys
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

from .._validate import safe_repr
from ..errors import InvalidInputError

__all__ = [
    "DEFAULT_MAX_METADATA_BYTES",
    "FrozenDict",
    "Metadata",
    "as_metadata",
    "check_metadata",
    "decode_metadata",
    "encode_metadata",
    "escape_legacy_metadata",
    "freeze",
]

#: Default limit on a snapshot's metadata, encoded (it is copied into the commit
#: record of every snapshot and read back by every reader of that record).
DEFAULT_MAX_METADATA_BYTES = 64 * 1024
#: Nesting deeper than this is refused (and never reaches Python's recursion limit).
MAX_DEPTH = 64

#: Python refuses to turn ints of more than 4300 digits into text (and back).
_MAX_INT_BITS = 13_000

_TAGS = ("$datetime", "$date", "$uuid", "$decimal", "$bytes", "$map")


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses mutation: what the library hands out stays as it was.

    It is a real ``dict`` (``json.dumps``, ``isinstance(x, dict)`` and ``==`` work);
    ``dict(x)`` or ``x.copy()`` give a mutable copy.
    """

    __slots__ = ()

    def _immutable(self, *_: object, **__: object) -> NoReturn:
        raise TypeError(
            "this mapping is immutable (it belongs to a snapshot); use dict(value) for a copy"
        )

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        self._immutable()

    def __delitem__(self, key: str) -> NoReturn:
        self._immutable()

    def clear(self) -> NoReturn:
        self._immutable()

    def pop(self, *args: Any) -> NoReturn:
        self._immutable()

    def popitem(self) -> NoReturn:
        self._immutable()

    def setdefault(self, *args: Any) -> NoReturn:
        self._immutable()

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._immutable()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._immutable()

    def copy(self) -> dict[str, Any]:
        """A plain, mutable (shallow) copy."""
        return dict(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((k, _hashable(v)) for k, v in self.items())))


class Metadata(FrozenDict):
    """A snapshot's metadata: a deeply immutable ``dict`` (see the module docs).

    Built only by :func:`check_metadata` (caller input) and
    :func:`decode_metadata` (stored documents), so both give the same values.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (Metadata, (dict(self),))

    def __repr__(self) -> str:
        return dict.__repr__(self)


def as_metadata(value: Any) -> Metadata:
    """Model converter: ``value`` as :class:`Metadata`.

    Metadata a decode or :func:`check_metadata` built passes as it is; anything
    else (a model built by hand) is checked like caller metadata, without the
    size limit (which is a dataset's option, not a property of the model).

    Raises
    ------
    InvalidInputError
        See :func:`check_metadata`.
    """
    if isinstance(value, Metadata):
        return value
    return check_metadata(value, max_bytes=sys.maxsize)


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


def freeze(value: Any) -> Any:
    """A deeply immutable copy of a JSON-like value (mappings → FrozenDict, lists → tuples).

    Values already frozen are returned as they are (no copy).
    """
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


# ------------------------------------------------------------------- encoding
def _fail(path: str, why: str) -> NoReturn:
    raise InvalidInputError(f"metadata{path} {why}", field="metadata")


def _encode(value: Any, path: str, depth: int, active: set[int]) -> Any:
    if depth > MAX_DEPTH:
        _fail(path, f"is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            _fail(path, "is an integer too large to encode (over 4,000 digits)")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            _fail(path, f"is {value!r}: JSON has no NaN or infinity")
        return float(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # json.dumps would accept a lone surrogate that no UTF-8 document can hold.
            _fail(path, "holds a string not encodable as UTF-8 (a lone surrogate?)")
        return value[:]  # a plain str, also for str subclasses (enums)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            _fail(path, "is a naive datetime: give it a timezone (e.g. datetime.now(UTC))")
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            # Like a float NaN: no faithful, comparable form (a NaN never equals itself).
            _fail(path, f"is Decimal({str(value)!r}): only finite decimals are kept")
        return {"$decimal": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping | list | tuple):
        if id(value) in active:
            _fail(path, "contains itself (a cycle)")
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                out: dict[str, Any] = {}
                for k, v in value.items():
                    if not isinstance(k, str):
                        # json.dumps would turn 1 into "1": readers would see other keys.
                        _fail(path, f"has a non-str key {safe_repr(k)} (JSON keys are strings)")
                    sub = f"{path}[{k!r}]" if len(path) < 200 else path
                    out[_encode(k, path, depth + 1, active)] = _encode(v, sub, depth + 1, active)
                if len(out) == 1 and next(iter(out)).startswith("$"):
                    return {"$map": out}
                return out
            return [
                _encode(v, f"{path}[{i}]" if len(path) < 200 else path, depth + 1, active)
                for i, v in enumerate(value)
            ]
        finally:
            active.discard(id(value))
    _fail(
        path,
        f"holds a {type(value).__name__}, which has no JSON form (accepted: str, int, float, "
        "bool, None, aware datetime, date, UUID, Decimal, bytes, lists and str-keyed mappings)",
    )


def encode_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of (already validated or frozen) metadata, with type tags.

    Raises
    ------
    InvalidInputError
        A value has no JSON form (see :func:`check_metadata`).
    """
    encoded = _encode(metadata, "", 0, set())
    assert isinstance(encoded, dict)
    return encoded


def _decode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH + 2:
        raise ValueError(f"metadata is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag in _TAGS:
                return _decode_tag(tag, inner, depth)
        return FrozenDict({k: _decode(v, depth + 1) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_decode(v, depth + 1) for v in value)
    return value


def _decode_tag(tag: str, inner: Any, depth: int) -> Any:
    if tag == "$map":
        if not isinstance(inner, dict):
            raise ValueError("a $map tag must hold an object")
        return FrozenDict({k: _decode(v, depth + 1) for k, v in inner.items()})
    if not isinstance(inner, str):
        raise ValueError(f"a {tag} tag must hold a string")
    try:
        if tag == "$datetime":
            value = dt.datetime.fromisoformat(inner)
            if value.tzinfo is None:
                raise ValueError("a $datetime must carry a UTC offset")
            return value
        if tag == "$date":
            return dt.date.fromisoformat(inner)
        if tag == "$uuid":
            return uuid.UUID(inner)
        if tag == "$decimal":
            number = decimal.Decimal(inner)
            if not number.is_finite():
                raise ValueError("a $decimal must be finite")
            return number
        return base64.b64decode(inner.encode("ascii"), validate=True)
    except (ValueError, decimal.InvalidOperation, binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid {tag} value {inner!r}: {exc}") from exc


def decode_metadata(value: object) -> Metadata:
    """Metadata as stored (tagged JSON) → the frozen Python value.

    Raises
    ------
    ValueError, TypeError
        Not a JSON object, or a malformed tag (the manifest converter turns
        these into :class:`~aiolode.ManifestFormatError`).
    """
    if not isinstance(value, dict):
        raise TypeError(f"metadata must be a JSON object, got {type(value).__name__}")
    out = _decode(value, 0)
    if not isinstance(out, FrozenDict):
        raise TypeError(f"metadata must decode to a mapping, got {type(out).__name__}")
    return Metadata(out)


def escape_legacy_metadata(value: Any) -> Any:
    """Raw metadata of a document written before tags existed, made safe to decode
    with tags: a mapping whose only key starts with ``$`` is wrapped in ``$map``,
    so old data reads back literally (used by format migrations)."""
    if isinstance(value, dict):
        out = {k: escape_legacy_metadata(v) for k, v in value.items()}
        if len(out) == 1 and next(iter(out)).startswith("$"):
            return {"$map": out}
        return out
    if isinstance(value, list):
        return [escape_legacy_metadata(v) for v in value]
    return value


def check_metadata(metadata: object, *, max_bytes: int = DEFAULT_MAX_METADATA_BYTES) -> Metadata:
    """Validate caller metadata and return exactly what a reader will decode.

    ``None`` → ``{}``. The result is the frozen decode of the encoded form, so
    the snapshot a write returns holds the same value, of the same types, as
    the one read back later.

    Cost: CPU only (one encode and one decode of the metadata).

    Raises
    ------
    InvalidInputError
        Not a mapping with string keys; a value with no JSON form (NaN, a naive
        datetime, a set, an arbitrary object …); a lone surrogate; a cycle or
        nesting deeper than 64 levels; or more than ``max_bytes`` encoded.
    """
    if metadata is None:
        return Metadata()
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(
            f"metadata must be a mapping or None, not {type(metadata).__name__}",
            field="metadata",
        )
    encoded = encode_metadata(metadata)
    text = json.dumps(encoded, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise InvalidInputError(
            f"metadata is {size:,} bytes encoded; the limit is {max_bytes:,} "
            "(it is copied into the commit record of every snapshot: store large values "
            "as data, or raise max_metadata_bytes)"
        )
    return decode_metadata(json.loads(text))
