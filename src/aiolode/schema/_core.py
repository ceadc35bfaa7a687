"""Dataset schemas: column names, logical types and nullability, as plain values.

A :class:`Schema` describes the records of a dataset independently of any file
format: it serialises to and from JSON (:meth:`Schema.to_json`), so it can be
stored with a dataset's history and read back without pyarrow (JSON Lines
datasets never need it), and it converts to and from a ``pyarrow.Schema``
(:meth:`Schema.to_arrow`, :meth:`Schema.from_arrow`) for the Arrow codecs.

Logical types
-------------
A :class:`Field` has a ``type`` from this closed vocabulary; physical variants
Arrow keeps apart for storage reasons are one logical type:

==================================  ==============================================
logical type                        Arrow types
==================================  ==============================================
``null``                            null (a column whose every value is null)
``bool``                            bool
``int8`` … ``int64``,               the integer of that width
``uint8`` … ``uint64``
``float16``, ``float32``,           half, float, double
``float64``
``string``                          string, large_string, string_view
``binary``                          binary, large_binary, binary_view, fixed_size_binary
``date``                            date32, date64
``time[s|ms|us|ns]``                time32, time64
``timestamp[unit]``,                timestamp without / with a time zone (``UTC``
``timestamp[unit, tz=ZONE]``        for every spelling of UTC)
``duration[unit]``                  duration
``decimal(P, S)``                   decimal32/64/128/256 of precision P, scale S
``list``                            list, large_list, fixed_size_list, list_view
                                    (one child field, ``item``)
``struct``                          struct (its fields are the children)
``map``                             map (children ``key``, not nullable, and ``value``)
==================================  ==============================================

Dictionary and run-end encoded columns take their value type; extension types
their storage type. Unions and intervals have no logical type.

Evolution
---------
:func:`merge` decides whether the records of a new write fit a recorded schema
and what the dataset's schema is afterwards:

- a recorded column may be absent from a write when it is nullable;
- a column of type ``null`` (every value null) fits any nullable column, and a
  recorded ``null`` column takes the first real type written to it;
- values are converted into the recorded type only where the conversion can be
  checked value by value (an int into a narrower int or into a float, a
  timestamp into another unit, an RFC 3339 string into a timestamp or date);
  the codecs then refuse any value that would change (``1.5`` into an int
  column, ``2**40`` into ``int32``, ``2**53 + 1`` into ``float64``);
- nothing else converts: a float never becomes an int, a number never becomes
  a string;
- ``mode="add_columns"`` also accepts new columns (recorded as nullable; old
  rows read them as null) and **widens** a recorded type when the write's type
  holds every value of it exactly: ``int8 → int16 → int32 → int64``, unsigned
  to a wider signed or unsigned int, ``int8/16, uint8/16 → float32``,
  ``int32, uint32 → float64``, ``float16 → float32 → float64``, a decimal to
  one with at least as many integer and fraction digits, a timestamp, time or
  duration to a finer unit; recursively in lists, maps and structs (whose new
  children are added as nullable). ``int64 → float64`` is not a widening (it
  loses digits above 2**53).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, final

import attrs

from .._validate import safe_repr
from ..errors import InvalidInputError, ManifestFormatError, SchemaViolationError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

__all__ = ("Field", "Schema", "SchemaMode", "as_schema", "infer", "merge")

SchemaMode: TypeAlias = Literal["strict", "add_columns"]
"""How :func:`merge` treats a write that differs from the recorded schema."""

_MODES = ("strict", "add_columns")

_INTS: dict[str, tuple[int, int]] = {
    **{f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"uint{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)},
}
#: Mantissa bits: the widest integer a float holds exactly.
_FLOATS: dict[str, int] = {"float16": 11, "float32": 24, "float64": 53}
_SIMPLE = frozenset({"null", "bool", "string", "binary", "date", *_INTS, *_FLOATS})
_NESTED = frozenset({"list", "struct", "map"})
_UNITS = ("s", "ms", "us", "ns")
_UNIT_RE = re.compile(r"^(time|duration)\[(s|ms|us|ns)\]$")
_TS_RE = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=([^\[\]]+))?\]$")
_DEC_RE = re.compile(r"^decimal\((\d{1,2}), (\d{1,2})\)$")
_UTC_NAMES = frozenset({"utc", "z", "+00:00", "-00:00", "etc/utc", "gmt", "etc/gmt", "zulu"})
#: Deeper nesting is refused: it is almost surely a cyclic structure.
MAX_DEPTH = 64


def _type_error(message: str) -> InvalidInputError:
    return InvalidInputError(message)


def _check_type(typ: object) -> None:
    if not isinstance(typ, str):
        raise _type_error(f"a field type is a str such as 'int64', not {safe_repr(typ)}")
    if typ in _SIMPLE or typ in _NESTED or _UNIT_RE.match(typ) or _TS_RE.match(typ):
        return
    m = _DEC_RE.match(typ)
    if m is not None and 1 <= int(m[1]) <= 76 and int(m[2]) <= int(m[1]):
        return
    raise _type_error(
        f"unknown logical type {safe_repr(typ)}; see aiolode.schema for the vocabulary "
        "(int64, float64, string, timestamp[us, tz=UTC], decimal(10, 2), list, struct …)"
    )


def _check_children(field: Field, _attr: Any, children: tuple[Field, ...]) -> None:
    if not isinstance(children, tuple) or not all(isinstance(c, Field) for c in children):
        raise _type_error(f"children of field {field.name!r} must be a tuple of Field")
    typ = field.type
    if typ == "null" and not field.nullable:
        raise _type_error(f"field {field.name!r} of type null must be nullable")
    if typ == "list" and len(children) != 1:
        raise _type_error(f"list field {field.name!r} needs exactly one child (its item)")
    if typ == "map" and (len(children) != 2 or children[0].nullable):
        raise _type_error(
            f"map field {field.name!r} needs two children, a non-nullable key and a value"
        )
    if typ == "struct":
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise _type_error(f"struct field {field.name!r} has duplicate child names")
    if typ not in _NESTED and children:
        raise _type_error(f"field {field.name!r} of type {typ} cannot have children")


def _check_name(_inst: Any, _attr: Any, name: Any) -> None:
    if not isinstance(name, str):
        raise _type_error(f"a field name is a str, not {safe_repr(name)}")
    if not _encodable(name):
        raise _type_error(f"field name {name!r} is not valid Unicode text")


def _check_bool(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise _type_error(f"nullable must be a bool, not {safe_repr(value)}")


def _safe_str(value: object) -> str:
    """``str(value)`` made encodable (lone surrogates escaped), for error fields."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:  # a hostile __repr__
        text = f"<{type(value).__name__}>"
    return text.encode("utf-8", "backslashreplace").decode()


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _canonical_type(typ: Any) -> str:
    """Spellings of UTC are one zone."""
    if not isinstance(typ, str):
        return typ  # type: ignore[no-any-return]  # the validator says why
    m = _TS_RE.match(typ)
    if m is not None and m[2] is not None and m[2].lower() in _UTC_NAMES:
        return f"timestamp[{m[1]}, tz=UTC]"
    return typ


@final
@attrs.frozen
class Field:
    """One column (or nested child) of a :class:`Schema`.

    Attributes
    ----------
    name
        Column name.
    type
        Logical type (see the module docstring), e.g. ``"int64"``,
        ``"timestamp[us, tz=UTC]"``, ``"list"``.
    nullable
        Whether values may be null or absent (default ``True``).
    children
        Child fields of ``list`` (one, ``item``), ``map`` (``key``, ``value``)
        and ``struct`` (its fields); empty for every other type.

    Raises
    ------
    InvalidInputError
        A name that is not text, an unknown type, or children that do not fit the type.
    """

    name: str = attrs.field(validator=_check_name)
    type: str = attrs.field(converter=_canonical_type)
    nullable: bool = attrs.field(default=True, validator=_check_bool)
    children: tuple[Field, ...] = attrs.field(default=(), validator=_check_children)

    @type.validator
    def _check_type_field(self, _attr: Any, value: object) -> None:
        _check_type(value)

    @property
    def type_name(self) -> str:
        """The full type as text: ``list<int64>``, ``struct<a: int64, b: string>``."""
        if self.type == "list":
            return f"list<{self.children[0].type_name}>"
        if self.type == "map":
            return f"map<{self.children[0].type_name}, {self.children[1].type_name}>"
        if self.type == "struct":
            inner = ", ".join(f"{c.name}: {c.type_name}" for c in self.children)
            return f"struct<{inner}>"
        return self.type

    def child(self, name: str) -> Field | None:
        """The child field called ``name``, or ``None``."""
        for c in self.children:
            if c.name == name:
                return c
        return None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe mapping (``children`` only when there are any)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.children:
            out["children"] = [c.to_json() for c in self.children]
        return out

    @classmethod
    def from_json(cls, data: object, *, _depth: int = 0) -> Field:
        """Rebuild a field from :meth:`to_json` output (as stored).

        Raises
        ------
        ManifestFormatError
            ``data`` is not a valid field document.
        """
        if _depth > MAX_DEPTH:
            raise ManifestFormatError("schema nests deeper than allowed", field="schema")
        if not isinstance(data, Mapping):
            raise ManifestFormatError(
                f"schema field must be an object, not {safe_repr(data)}", field="schema"
            )
        unknown = set(data) - {"name", "type", "nullable", "children"}
        if unknown:
            raise ManifestFormatError(
                f"schema field has unknown keys {sorted(map(str, unknown))}", field="schema"
            )
        children = data.get("children", [])
        if not isinstance(children, list):
            raise ManifestFormatError("schema field children must be a list", field="schema")
        try:
            return cls(
                name=data.get("name"),  # type: ignore[arg-type]
                type=data.get("type"),
                nullable=data.get("nullable", True),
                children=tuple(cls.from_json(c, _depth=_depth + 1) for c in children),
            )
        except InvalidInputError as exc:
            raise ManifestFormatError(f"invalid schema field: {exc}", field="schema") from exc


def _unique_fields(_inst: Any, _attr: Any, fields: tuple[Field, ...]) -> None:
    if not isinstance(fields, tuple) or not all(isinstance(f, Field) for f in fields):
        raise _type_error("Schema fields must be a tuple of aiolode.schema.Field")
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise _type_error(f"schema has two columns called {dup!r}")


def _to_fields(fields: object) -> tuple[Field, ...]:
    if isinstance(fields, Field):
        raise _type_error("Schema takes an iterable of Field, not one Field")
    if isinstance(fields, str | bytes) or not isinstance(fields, Iterable):
        raise _type_error(f"Schema takes an iterable of Field, not {type(fields).__name__}")
    return tuple(f for f in fields)  # tuple() would trust a lying __len__


@final
@attrs.frozen
class Schema:
    """The columns of a record dataset, in order.

    Attributes
    ----------
    fields
        The top-level columns (unique names).

    Raises
    ------
    InvalidInputError
        Not :class:`Field` objects, or two columns with one name.
    """

    fields: tuple[Field, ...] = attrs.field(converter=_to_fields, validator=_unique_fields)

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field | None:
        """The column called ``name``, or ``None``."""
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __str__(self) -> str:
        cols = ", ".join(
            f"{f.name}: {f.type_name}{'' if f.nullable else ' not null'}" for f in self.fields
        )
        return f"Schema({cols})"

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        """A JSON-safe mapping: ``{"fields": [{"name", "type", "nullable", ...}]}``."""
        return {"fields": [f.to_json() for f in self.fields]}

    @classmethod
    def from_json(cls, data: object) -> Schema:
        """Rebuild a schema from :meth:`to_json` output (as stored with a dataset).

        Raises
        ------
        ManifestFormatError
            ``data`` is not a valid schema document.
        """
        if not isinstance(data, Mapping) or set(data) != {"fields"}:
            raise ManifestFormatError(
                f"schema must be an object with one key 'fields', not {safe_repr(data)}",
                field="schema",
            )
        raw = data["fields"]
        if not isinstance(raw, list):
            raise ManifestFormatError("schema fields must be a list", field="schema")
        try:
            return cls(tuple(Field.from_json(f) for f in raw))
        except InvalidInputError as exc:
            raise ManifestFormatError(f"invalid schema: {exc}", field="schema") from exc

    # ---------------------------------------------------------------- Arrow
    def to_arrow(self) -> pa.Schema:
        """The ``pyarrow.Schema`` of these columns (canonical physical types).

        Raises
        ------
        MissingDependencyError
            pyarrow is not installed.
        """
        lib = _pyarrow()
        out: pa.Schema = lib.schema([_field_to_arrow(lib, f) for f in self.fields])
        return out

    @classmethod
    def from_arrow(cls, schema: object) -> Schema:
        """The logical schema of a ``pyarrow.Schema``.

        Raises
        ------
        InvalidInputError
            ``schema`` is not a ``pyarrow.Schema``.
        SchemaViolationError
            A column has a type with no logical equivalent (union, interval);
            ``.field`` names it.
        MissingDependencyError
            pyarrow is not installed.
        """
        pa = _pyarrow()
        if not isinstance(schema, pa.Schema):
            raise InvalidInputError(f"expected a pyarrow.Schema, not {type(schema).__name__}")
        try:
            return cls(tuple(_field_from_arrow(pa, f, f.name) for f in schema))
        except InvalidInputError as exc:
            if isinstance(exc, SchemaViolationError):
                raise
            raise SchemaViolationError(f"Arrow schema has no logical equivalent: {exc}") from exc


def as_schema(value: object) -> Schema:
    """``value`` as a :class:`Schema`: a Schema, a ``pyarrow.Schema``, or its JSON form.

    Raises
    ------
    InvalidInputError
        Anything else (``SchemaViolationError`` for Arrow types with no logical form).
    MissingDependencyError
        A ``pyarrow.Schema`` was given and pyarrow cannot be imported (it can).
    """
    if isinstance(value, Schema):
        return value
    if type(value).__module__.startswith("pyarrow"):
        return Schema.from_arrow(value)
    if isinstance(value, Mapping):
        try:
            return Schema.from_json(value)
        except ManifestFormatError as exc:
            raise InvalidInputError(str(exc)) from exc
    raise InvalidInputError(
        f"schema must be an aiolode.schema.Schema, a pyarrow.Schema or its JSON form, "
        f"not {type(value).__name__}"
    )


# --------------------------------------------------------------------- Arrow
def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(
            "Arrow schemas need the 'pyarrow' package: pip install 'aiolode[parquet]'",
            package="pyarrow",
            extra="parquet",
        ) from exc
    return pyarrow


def _field_to_arrow(pa: Any, f: Field) -> Any:
    return pa.field(f.name, _type_to_arrow(pa, f), nullable=f.nullable)


def _type_to_arrow(pa: Any, f: Field) -> Any:
    t = f.type
    simple = {
        "null": pa.null(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "binary": pa.binary(),
        "date": pa.date32(),
        "float16": pa.float16(),
        "float32": pa.float32(),
        "float64": pa.float64(),
    }
    if t in simple:
        return simple[t]
    if t in _INTS:
        return getattr(pa, t)()
    if t == "list":
        return pa.list_(_field_to_arrow(pa, f.children[0]))
    if t == "map":
        k, v = f.children
        return pa.map_(_type_to_arrow(pa, k), _field_to_arrow(pa, v))
    if t == "struct":
        return pa.struct([_field_to_arrow(pa, c) for c in f.children])
    m = _TS_RE.match(t)
    if m is not None:
        return pa.timestamp(m[1], tz=m[2])
    m = _UNIT_RE.match(t)
    if m is not None:
        if m[1] == "duration":
            return pa.duration(m[2])
        return pa.time32(m[2]) if m[2] in ("s", "ms") else pa.time64(m[2])
    m = _DEC_RE.match(t)
    assert m is not None
    p, s = int(m[1]), int(m[2])
    return pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)


def _field_from_arrow(pa: Any, f: Any, path: str) -> Field:
    return Field(f.name, **_type_from_arrow(pa, f.type, path), nullable=bool(f.nullable))


def _type_from_arrow(pa: Any, typ: Any, path: str) -> dict[str, Any]:
    t = pa.types
    if isinstance(typ, pa.ExtensionType):
        return _type_from_arrow(pa, typ.storage_type, path)
    if t.is_dictionary(typ):
        return _type_from_arrow(pa, typ.value_type, path)
    if hasattr(t, "is_run_end_encoded") and t.is_run_end_encoded(typ):
        return _type_from_arrow(pa, typ.value_type, path)
    if t.is_null(typ):
        return {"type": "null"}
    if t.is_boolean(typ):
        return {"type": "bool"}
    if t.is_integer(typ) or t.is_floating(typ):
        return {
            "type": {"halffloat": "float16", "float": "float32", "double": "float64"}.get(
                str(typ), str(typ)
            )
        }
    if t.is_string(typ) or t.is_large_string(typ) or _is(t, "is_string_view", typ):
        return {"type": "string"}
    if (
        t.is_binary(typ)
        or t.is_large_binary(typ)
        or t.is_fixed_size_binary(typ)
        or _is(t, "is_binary_view", typ)
    ):
        return {"type": "binary"}
    if t.is_date(typ):
        return {"type": "date"}
    if t.is_timestamp(typ):
        tz = f", tz={typ.tz}" if typ.tz else ""
        return {"type": f"timestamp[{typ.unit}{tz}]"}
    if t.is_time(typ):
        return {"type": f"time[{typ.unit}]"}
    if t.is_duration(typ):
        return {"type": f"duration[{typ.unit}]"}
    if t.is_decimal(typ):
        return {"type": f"decimal({typ.precision}, {typ.scale})"}
    if t.is_map(typ):
        key = Field("key", **_type_from_arrow(pa, typ.key_type, f"{path}.key"), nullable=False)
        item = _field_from_arrow(pa, typ.item_field, f"{path}.value")
        return {"type": "map", "children": (key, attrs.evolve(item, name="value"))}
    if (
        t.is_list(typ)
        or t.is_large_list(typ)
        or t.is_fixed_size_list(typ)
        or _is(t, "is_list_view", typ)
        or _is(t, "is_large_list_view", typ)
    ):
        item = _field_from_arrow(pa, typ.value_field, f"{path}[]")
        return {"type": "list", "children": (attrs.evolve(item, name="item"),)}
    if t.is_struct(typ):
        kids = tuple(
            _field_from_arrow(pa, typ.field(i), f"{path}.{typ.field(i).name}")
            for i in range(typ.num_fields)
        )
        return {"type": "struct", "children": kids}
    top = path.split(".", 1)[0].split("[", 1)[0]
    raise SchemaViolationError(
        f"column {path!r} has Arrow type {typ}, which aiolode schemas cannot describe",
        field=top,
    )


def _is(t: Any, name: str, typ: Any) -> bool:
    fn = getattr(t, name, None)
    return bool(fn(typ)) if fn is not None else False


# ----------------------------------------------------------------- inference
def _conflict(path: str, a: Field, b: Field, where: str = "") -> SchemaViolationError:
    top = path.split(".", 1)[0].split("[", 1)[0]
    return SchemaViolationError(
        f"column {path!r} holds {a.type_name} and {b.type_name} values{where}; "
        "a column holds one type (ints and floats make float64, nulls fit any type)",
        field=top,
    )


def unify(a: Field, b: Field, path: str) -> Field:
    """The one type holding values of types ``a`` and ``b`` within one write.

    ``null`` joins anything; ints and floats make ``float64``; lists, maps and
    structs join element by element (struct children are the union).

    Raises
    ------
    SchemaViolationError
        No such type (``.field`` is the top-level column).
    """
    if a == b:
        return a
    ta, tb = a.type, b.type
    if ta == "null":
        return attrs.evolve(b, name=a.name)
    if tb == "null":
        return a
    if ta == tb and not a.children and not b.children:
        return a
    num = {"int64", "float64"}
    if ta in num and tb in num:
        return attrs.evolve(a, type="float64")
    if ta.startswith("decimal(") and tb.startswith("decimal("):
        return attrs.evolve(a, type=_wider_decimal(ta, tb))
    if ta == tb == "list":
        item = unify(a.children[0], b.children[0], f"{path}[]")
        return attrs.evolve(a, children=(item,))
    if ta == tb == "map":
        k = unify(a.children[0], b.children[0], f"{path}.key")
        v = unify(a.children[1], b.children[1], f"{path}.value")
        return attrs.evolve(a, children=(k, v))
    if ta == tb == "struct":
        kids = list(a.children)
        index = {c.name: i for i, c in enumerate(kids)}
        for c in b.children:
            i = index.get(c.name)
            if i is None:
                index[c.name] = len(kids)
                kids.append(c)
            else:
                kids[i] = unify(kids[i], c, f"{path}.{c.name}")
        return attrs.evolve(a, children=tuple(kids))
    raise _conflict(path, a, b)


def unify_schemas(a: Schema, b: Schema) -> Schema:
    """One schema holding the records of ``a`` and ``b`` within one write
    (columns are the union, types joined by :func:`unify`).

    Raises
    ------
    SchemaViolationError
        A column's types do not join.
    """
    cols = list(a.fields)
    index = {f.name: i for i, f in enumerate(cols)}
    for f in b.fields:
        i = index.get(f.name)
        if i is None:
            index[f.name] = len(cols)
            cols.append(f)
        else:
            cols[i] = unify(cols[i], f, f.name)
    return Schema(tuple(cols))


def _decimal_parts(t: str) -> tuple[int, int]:
    m = _DEC_RE.match(t)
    assert m is not None
    return int(m[1]), int(m[2])


def _wider_decimal(ta: str, tb: str) -> str:
    pa_, sa = _decimal_parts(ta)
    pb, sb = _decimal_parts(tb)
    s = max(sa, sb)
    p = min(max(pa_ - sa, pb - sb) + s, 76)
    return f"decimal({p}, {s})"


def _decimal_type(v: Decimal, path: str) -> str:
    if not v.is_finite():
        raise SchemaViolationError(f"column {path!r} holds {v}; decimals must be finite",
                                   field=path.split(".", 1)[0].split("[", 1)[0])  # fmt: skip
    _sign, digits, exp = v.as_tuple()
    assert isinstance(exp, int)
    scale = max(0, -exp)
    precision = max(len(digits) + max(exp, 0), scale, 1)
    if precision > 76:
        raise SchemaViolationError(
            f"column {path!r} holds a decimal of {precision} digits (at most 76)",
            field=path.split(".", 1)[0].split("[", 1)[0],
        )
    return f"decimal({precision}, {scale})"


_INT64_MIN, _INT64_MAX = _INTS["int64"]


# Inference works on light type terms, made Fields once per column at the end:
# a logical type name (str), ("list", item) or ("struct", ((name, term), ...)).
TypeTerm: TypeAlias = "str | tuple[Any, ...]"


def term_of(f: Field) -> TypeTerm:
    """The type term of a field (its nullability aside)."""
    if f.type == "list":
        return ("list", term_of(f.children[0]))
    if f.type == "struct":
        return ("struct", tuple((c.name, term_of(c)) for c in f.children))
    if f.type == "map":
        return ("map", term_of(f.children[0]), term_of(f.children[1]))
    return f.type


def to_field(name: str, t: TypeTerm, nullable: bool = True) -> Field:
    """The (nullable) Field of a type term."""
    if isinstance(t, str):
        return Field(name, t, nullable=nullable or t == "null")
    if t[0] == "list":
        return Field(name, "list", nullable=nullable, children=(to_field("item", t[1]),))
    if t[0] == "map":
        key = to_field("key", t[1], nullable=False)
        return Field(name, "map", nullable=nullable, children=(key, to_field("value", t[2])))
    kids = tuple(to_field(n, c) for n, c in t[1])
    return Field(name, "struct", nullable=nullable, children=kids)


def term_name(t: TypeTerm) -> str:
    """``list<int64>``, ``struct<a: string>`` … of a type term."""
    if isinstance(t, str):
        return t
    if t[0] == "list":
        return f"list<{term_name(t[1])}>"
    if t[0] == "map":
        return f"map<{term_name(t[1])}, {term_name(t[2])}>"
    return "struct<" + ", ".join(f"{n}: {term_name(c)}" for n, c in t[1]) + ">"


def unify_terms(a: TypeTerm, b: TypeTerm, path: str) -> TypeTerm:
    """:func:`unify` on type terms.

    Raises
    ------
    SchemaViolationError
        No type holds both.
    """
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if isinstance(a, str) and isinstance(b, str):
        if {a, b} == {"int64", "float64"}:
            return "float64"
        if a.startswith("decimal(") and b.startswith("decimal("):
            return _wider_decimal(a, b)
    elif isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] == "list":
            return ("list", unify_terms(a[1], b[1], f"{path}[]"))
        if a[0] == "map":
            return (
                "map",
                unify_terms(a[1], b[1], f"{path}.key"),
                unify_terms(a[2], b[2], f"{path}.value"),
            )
        kids = dict(a[1])
        for n, c in b[1]:
            kids[n] = c if n not in kids else unify_terms(kids[n], c, f"{path}.{n}")
        return ("struct", tuple(kids.items()))
    raise SchemaViolationError(
        f"column {path!r} holds {term_name(a)} and {term_name(b)} values; a column holds "
        "one type (ints and floats make float64, nulls fit any type)",
        field=_top(path),
    )


_JSON_KINDS = (
    "str, int, float, bool, None, lists and str-keyed mappings (datetime, date and time as "
    "ISO strings)"
)
_KINDS = (
    "str, int, float, bool, None, lists and str-keyed mappings, bytes, datetime, date, "
    "time, timedelta and Decimal"
)


def term(value: Any, path: str, json: bool = False, depth: int = 0) -> TypeTerm:
    """The type term of one Python value (see :func:`value_type`).

    Raises
    ------
    SchemaViolationError
        As :func:`value_type`.
    """
    tv = type(value)
    if tv is str:
        if json or _encodable(value):
            return "string"  # JSONL: the encoder itself refuses lone surrogates
    elif tv is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return "int64"
    elif tv is float:
        if not json or -math.inf < value < math.inf:
            return "float64"
    elif value is None:
        return "null"
    elif tv is bool:
        return "bool"
    elif tv is list or tv is tuple:
        if depth >= MAX_DEPTH:
            raise _too_deep(path)
        item: TypeTerm = "null"
        sub = f"{path}[]"
        for v in value:
            t = term(v, sub, json, depth + 1)
            if t != item:
                item = unify_terms(item, t, sub)
        return ("list", item)
    elif tv is dict:
        return _struct_term(value, path, json, depth)
    return _slow_term(value, path, json, depth)


def _too_deep(path: str) -> SchemaViolationError:
    top = _top(path)
    return SchemaViolationError(
        f"column {top!r} nests deeper than {MAX_DEPTH} levels (a cyclic structure?)", field=top
    )


def _struct_term(value: Mapping[Any, Any], path: str, json: bool, depth: int) -> TypeTerm:
    if depth >= MAX_DEPTH:
        raise _too_deep(path)
    kids: dict[str, TypeTerm] = {}
    for k, v in value.items():
        if type(k) is not str and not isinstance(k, str):
            raise SchemaViolationError(
                f"column {path!r} holds a mapping with the key {safe_repr(k)}, not a str",
                field=_top(path),
            )
        sub = f"{path}.{k}"
        t = term(v, sub, json, depth + 1)
        kids[k] = t if k not in kids else unify_terms(kids[k], t, sub)
    for k in kids:
        if not _encodable(k):
            raise SchemaViolationError(
                f"column {path!r} holds a mapping with the key {safe_repr(k)}, not valid "
                "Unicode text",
                field=_top(path),
            )
    return ("struct", tuple(kids.items()))


def _slow_term(value: Any, path: str, json: bool, depth: int) -> TypeTerm:
    top = _top(path)
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return "int64"
        if not json and 0 <= value <= _INTS["uint64"][1]:
            return "uint64"
        raise SchemaViolationError(
            f"column {path!r} holds the integer {value}, outside the 64-bit range that "
            "Arrow, Parquet and JSON readers hold exactly; store it as a str",
            field=top,
        )
    if isinstance(value, float):
        if json and not -math.inf < value < math.inf:
            raise SchemaViolationError(
                f"column {path!r} holds {value}; JSON has no NaN or infinity", field=top
            )
        return "float64"
    if isinstance(value, str):
        if not json and not _encodable(value):
            raise SchemaViolationError(
                f"column {path!r} holds a str that is not valid Unicode (a lone surrogate)",
                field=top,
            )
        return "string"
    if isinstance(value, datetime):
        if json:
            return "string"
        return "timestamp[us, tz=UTC]" if value.tzinfo is not None else "timestamp[us]"
    if isinstance(value, date):
        return "string" if json else "date"
    if isinstance(value, time):
        return "string" if json else "time[us]"
    if not json:
        if isinstance(value, bytes | bytearray | memoryview):
            return "binary"
        if isinstance(value, timedelta):
            return "duration[us]"
        if isinstance(value, Decimal):
            return _decimal_type(value, path)
    if isinstance(value, Mapping):
        return _struct_term(value, path, json, depth)
    if isinstance(value, list | tuple):
        return term(list(value), path, json, depth)
    raise SchemaViolationError(
        f"column {path!r} holds a {type(value).__name__}; records hold "
        f"{_JSON_KINDS if json else _KINDS}",
        field=top,
    )


def value_type(value: Any, path: str, *, json: bool = False, depth: int = 0) -> Field:
    """The logical type of one Python value (``name`` is the last path part).

    ``json=True`` gives the JSON Lines view: dates, times and datetimes are
    ISO strings there, and bytes, decimals and durations are refused.

    Raises
    ------
    SchemaViolationError
        A value of an unsupported kind, an int outside the 64-bit range, a
        non-finite float (``json=True``), a non-``str`` mapping key, or nesting
        deeper than :data:`MAX_DEPTH` (a cyclic structure).
    """
    return to_field(path.rsplit(".", 1)[-1], term(value, path, json, depth))


def infer(data: object) -> Schema:
    """The schema of records or of Arrow data.

    Records (an iterable of mappings with ``str`` keys) give one nullable
    column per key, in first-seen order, typed from the Python values:
    ``int`` → ``int64``, ``float`` → ``float64`` (with ints: ``float64``),
    ``str`` → ``string``, ``bytes`` → ``binary``, ``bool`` → ``bool``, aware /
    naive ``datetime`` → ``timestamp[us, tz=UTC]`` / ``timestamp[us]``,
    ``date`` → ``date``, ``time`` → ``time[us]``, ``timedelta`` →
    ``duration[us]``, ``Decimal`` → ``decimal(P, S)``, lists → ``list``,
    mappings → ``struct``; a column that is always null or absent is ``null``.
    Arrow data (a ``pyarrow.Schema``, ``Table``, ``RecordBatch`` or anything
    with a ``schema`` attribute holding one) gives its schema's logical form.

    Cost: one pass over the records' values in Python (Arrow data: none).

    Raises
    ------
    SchemaViolationError
        A record is not a mapping, a key is not a ``str``, a value has an
        unsupported kind, or a column holds values of two types (``.field``).
    InvalidInputError
        ``data`` is neither records nor Arrow data.
    """
    mod = type(data).__module__
    if mod.startswith("pyarrow"):
        pa = _pyarrow()
        if isinstance(data, pa.Schema):
            return Schema.from_arrow(data)
        schema = getattr(data, "schema", None)
        if isinstance(schema, pa.Schema):
            return Schema.from_arrow(schema)
    if isinstance(data, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
        data, Iterable
    ):
        raise InvalidInputError(
            f"infer() takes records (an iterable of mappings) or Arrow data, not "
            f"{type(data).__name__}"
        )
    cols: dict[str, TypeTerm] = {}
    for i, rec in enumerate(data):
        if not isinstance(rec, Mapping):
            raise SchemaViolationError(f"record {i} is a {type(rec).__name__}, not a mapping")
        for k, v in rec.items():
            if k not in cols and (not isinstance(k, str) or not _encodable(k)):
                raise SchemaViolationError(
                    f"record {i} key {safe_repr(k)} is not valid str text", field=_safe_str(k)
                )
            t = term(v, k)
            old = cols.get(k)
            cols[k] = t if old is None or old == t else unify_terms(old, t, k)
    return Schema(tuple(to_field(k, t) for k, t in cols.items()))


# ----------------------------------------------------------------- evolution
def _kind(t: str) -> str:
    if t in _INTS:
        return "int"
    if t in _FLOATS:
        return "float"
    if t.startswith("decimal("):
        return "decimal"
    if t.startswith("timestamp["):
        return "timestamp"
    if t.startswith("time["):
        return "time"
    if t.startswith("duration["):
        return "duration"
    return t


def _unit(t: str) -> int:
    return _UNITS.index(t[t.index("[") + 1 :].split(",", 1)[0].rstrip("]"))


def _aware(t: str) -> bool:
    return ", tz=" in t


def widens(old: str, new: str) -> bool:
    """Whether every value of scalar type ``old`` is exactly a value of ``new``.

    The promotions of ``mode="add_columns"`` (see the module docstring).
    """
    if old == new or old == "null":
        return True
    ko, kn = _kind(old), _kind(new)
    if ko == "int" and kn == "int":
        lo, hi = _INTS[old]
        nlo, nhi = _INTS[new]
        return nlo <= lo and hi <= nhi
    if ko == "int" and kn == "float":
        lo, hi = _INTS[old]
        return bool(max(-lo, hi) < 2 ** _FLOATS[new])
    if ko == "float" and kn == "float":
        return _FLOATS[old] <= _FLOATS[new]
    if ko == "decimal" and kn == "decimal":
        po, so = _decimal_parts(old)
        pn, sn = _decimal_parts(new)
        return sn >= so and pn - sn >= po - so
    if ko == kn == "timestamp":
        return _aware(old) == _aware(new) and _unit(old) <= _unit(new)
    if ko == kn and ko in ("time", "duration"):
        return _unit(old) <= _unit(new)
    return False


def convertible(src: str, dst: str) -> bool:
    """Whether values of scalar type ``src`` may be written into a ``dst`` column,
    each checked (an int into a narrower int, a string into a timestamp …)."""
    if src == dst or src == "null":
        return True
    ks, kd = _kind(src), _kind(dst)
    pairs = {
        ("int", "int"),
        ("int", "float"),
        ("float", "float"),
        ("int", "decimal"),
        ("decimal", "decimal"),
        ("timestamp", "timestamp"),
        ("date", "timestamp"),
        ("string", "timestamp"),
        ("string", "date"),
        ("time", "time"),
        ("duration", "duration"),
    }
    return (ks, kd) in pairs


def _top(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def _mismatch(path: str, recorded: Field, incoming: Field, mode: str) -> SchemaViolationError:
    hint = (
        "" if mode == "add_columns" or not widens(recorded.type, incoming.type)
        else "; mode='add_columns' would widen it"
    )  # fmt: skip
    return SchemaViolationError(
        f"column {path!r} is {incoming.type_name} in this write, but the schema has "
        f"{recorded.type_name}{hint}",
        field=_top(path),
    )


def _merge_field(r: Field, f: Field, mode: str, path: str) -> Field:
    if f.type == "null":
        return r
    if r.type == "null":
        # A column that was always null carries no type yet: the first one wins.
        return Field(r.name, f.type, nullable=r.nullable, children=f.children)
    if r.type == f.type and r.type not in _NESTED:
        return r
    if r.type == f.type == "list":
        item = _merge_field(r.children[0], f.children[0], mode, f"{path}[]")
        return attrs.evolve(r, children=(item,))
    if r.type == f.type == "map":
        k = _merge_field(r.children[0], f.children[0], mode, f"{path}.key")
        v = _merge_field(r.children[1], f.children[1], mode, f"{path}.value")
        return attrs.evolve(r, children=(k, v))
    if r.type == f.type == "struct":
        return attrs.evolve(r, children=_merge_children(r.children, f.children, mode, path))
    if r.type in _NESTED or f.type in _NESTED:
        raise _mismatch(path, r, f, mode)
    if mode == "add_columns" and widens(r.type, f.type):
        return attrs.evolve(r, type=f.type)
    if convertible(f.type, r.type):
        return r
    raise _mismatch(path, r, f, mode)


def _merge_children(
    recorded: tuple[Field, ...], incoming: tuple[Field, ...], mode: str, path: str
) -> tuple[Field, ...]:
    out = list(recorded)
    index = {c.name: i for i, c in enumerate(out)}
    seen: set[str] = set()
    for f in incoming:
        sub = f"{path}.{f.name}" if path else f.name
        seen.add(f.name)
        i = index.get(f.name)
        if i is None:
            if mode != "add_columns":
                names = [c.name for c in recorded]
                raise SchemaViolationError(
                    f"column {sub!r} ({f.type_name}) is not in the schema {names}; "
                    "mode='add_columns' adds new nullable columns",
                    field=_top(sub),
                )
            index[f.name] = len(out)
            out.append(attrs.evolve(f, nullable=True))
        else:
            out[i] = _merge_field(out[i], f, mode, sub)
    for r in recorded:
        if r.name not in seen and not r.nullable:
            sub = f"{path}.{r.name}" if path else r.name
            raise SchemaViolationError(
                f"column {sub!r} ({r.type_name}) is not nullable, and this write does not have it",
                field=_top(sub),
            )
    return tuple(out)


def merge(recorded: Schema, incoming: Schema, *, mode: SchemaMode = "strict") -> Schema:
    """The dataset's schema after a write of ``incoming`` records.

    ``mode="strict"`` keeps ``recorded`` unchanged: the write must have only
    recorded columns, with the same types or types converted value by value
    (see the module docstring), and every non-nullable column.
    ``mode="add_columns"`` also appends the write's new columns (nullable) and
    widens recorded types where the module docstring says it is safe.
    Nullability of values is checked by the codecs, which see them.

    Raises
    ------
    SchemaViolationError
        The write does not fit; the message names the column and both types
        (``.field`` is the top-level column). The caller adds which snapshot
        recorded the schema.
    InvalidInputError
        An argument is not a :class:`Schema`, or an unknown ``mode``.
    """
    if not isinstance(recorded, Schema) or not isinstance(incoming, Schema):
        raise InvalidInputError(
            f"merge() takes two aiolode.schema.Schema, not {type(recorded).__name__} "
            f"and {type(incoming).__name__}"
        )
    if mode not in _MODES:
        raise InvalidInputError(f"mode must be one of {_MODES}, not {safe_repr(mode)}")
    return Schema(_merge_children(recorded.fields, incoming.fields, mode, ""))
