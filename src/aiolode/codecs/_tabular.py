"""Records → Arrow tables with typed errors, and Arrow-side statistics.

Shared by the Arrow-based codecs (and JSONL's ``to_arrow``). pyarrow is an
optional dependency, imported lazily by :func:`pyarrow_module`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from itertools import chain
from typing import TYPE_CHECKING, Any, cast

from .._validate import safe_repr
from ..errors import InvalidInputError, SchemaViolationError
from ..schema._core import MAX_DEPTH, Field, Schema, SchemaMode, merge, unify, value_type
from ._arrowdata import arrow_table, describe, is_arrow, rows_of
from ._base import ColumnStats
from ._deps import require_pyarrow
from ._timestamps import json_safe

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

    import pyarrow as pa

__all__ = [
    "StatsAccumulator",
    "add_table_stats",
    "check_rows",
    "conform",
    "prepare_table",
    "pyarrow_module",
    "records_to_table",
    "table_stats",
    "to_table",
]


def pyarrow_module() -> ModuleType:
    """Import pyarrow, or explain how to install it.

    Raises
    ------
    MissingDependencyError
        pyarrow is not installed.
    """
    return require_pyarrow("this codec")


def _arrow_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError,
            TypeError, ValueError)  # fmt: skip


def check_rows(records: Iterable[Any]) -> list[Mapping[str, Any]]:
    """Materialise ``records`` as a list, checking each is a mapping.

    Raises
    ------
    SchemaViolationError
        A record is not a mapping.
    """
    rows = rows_of(records)
    for i, rec in enumerate(rows):
        if type(rec) is not dict and not isinstance(rec, Mapping):
            raise SchemaViolationError(
                f"record {i} is a {describe(rec)}, not a mapping with str keys"
            )
    return rows


def _column_names(rows: list[Mapping[str, Any]]) -> list[str]:
    # Union of keys in first-seen order: pyarrow's from_pylist would take the
    # first row's keys only and silently drop the rest.
    names = list(dict.fromkeys(chain.from_iterable(rows)))
    for name in names:
        if type(name) is not str or not _encodable(name):
            raise SchemaViolationError(
                f"record key {name!r} is not valid str text", field=_safe_str(name)
            )
    return names


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _safe_str(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text.encode("utf-8", "backslashreplace").decode()


def _parse_temporal(values: list[Any], field: Field) -> list[Any]:
    """Strings of a timestamp/date column parsed (RFC 3339 / ISO 8601) in Python.

    A naive string in a zoned column is UTC, and a zoned one in a naive column
    is turned into UTC wall time: the instant is kept either way.
    """
    is_date = field.type == "date"
    aware = ", tz=" in field.type
    out = []
    for v in values:
        if isinstance(v, str):
            try:
                v = date.fromisoformat(v) if is_date else datetime.fromisoformat(v)
            except ValueError:
                kind = "an ISO 8601 date" if is_date else "an RFC 3339 timestamp"
                raise SchemaViolationError(
                    f"column {field.name!r} ({field.type}) holds {v!r}, not {kind}",
                    field=field.name,
                ) from None
        if isinstance(v, datetime) and not is_date:
            if aware and v.tzinfo is None:
                v = v.replace(tzinfo=UTC)
            elif not aware and v.tzinfo is not None:
                v = v.astimezone(UTC).replace(tzinfo=None)
        out.append(v)
    return out


_NESTED_TYPES = (list, tuple, dict)


def _check_nesting(name: str, values: list[Any]) -> None:
    """Refuse nesting deeper than MAX_DEPTH (a cyclic structure) before pyarrow
    sees it: pyarrow's converter recurses in C and crashes the process."""
    stack = [(v, 0) for v in values if isinstance(v, (_NESTED_TYPES, Mapping))]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SchemaViolationError(
                f"column {name!r} nests deeper than {MAX_DEPTH} levels (a cyclic structure?)",
                field=name,
            )
        items = v.values() if isinstance(v, Mapping) else v
        stack.extend((x, depth + 1) for x in items if isinstance(x, (_NESTED_TYPES, Mapping)))


def _explain_column(name: str, values: list[Any], exc: BaseException) -> SchemaViolationError:
    """Why pyarrow could not build one column from Python values (errors only)."""
    try:
        col: Field | None = None
        for v in values:
            f = value_type(v, name)
            col = f if col is None else unify(col, f, name)
    except SchemaViolationError as sv:
        return sv
    return SchemaViolationError(
        f"column {name!r} has values that do not form one Arrow type: {exc}", field=name
    )


def records_to_table(records: Iterable[Any], target: Schema | None = None) -> pa.Table:
    """Build a table from mappings: columns are the union of keys, types inferred.

    Strings in columns that ``target`` says are timestamps or dates are parsed
    first (RFC 3339 / ISO 8601); every other conversion to ``target`` is left
    to :func:`conform`, which checks it.

    Raises
    ------
    SchemaViolationError
        Not mappings, non-``str`` keys, or a column whose values do not form one type.
    """
    pyarrow_module()
    import pyarrow as pa

    rows = check_rows(records)
    names = _column_names(rows)
    if rows and not names and (target is None or not target.fields):
        # A columnar file cannot hold rows without columns: the count would be lost.
        raise SchemaViolationError(
            f"{len(rows)} record(s) have no fields; a columnar file needs at least one column"
        )
    errors = _arrow_errors()
    arrays = []
    for name in names:
        values = [r.get(name) for r in rows]
        _check_nesting(name, values)
        want = target.field(name) if target is not None else None
        typ = None
        if want is not None and (want.type == "date" or want.type.startswith("timestamp[")):
            values = _parse_temporal(values, want)
            typ = _arrow_type(want)
        try:
            arrays.append(pa.array(values, type=typ))
        except errors as exc:
            raise _explain_column(name, values, exc) from exc
    if not names and rows and target is not None:
        # Records without fields, every column null: conform() checks nullability.
        nulls: Any = pa.nulls
        out: pa.Table = pa.table({f.name: nulls(len(rows), _arrow_type(f)) for f in target.fields})
        return out
    out = pa.Table.from_arrays(arrays, names=names)
    return out


def physical_schema(schema: Schema, physical: pa.Schema | None) -> pa.Schema:
    """``schema`` in Arrow, taking ``physical``'s type for each column it has."""
    pyarrow_module()
    import pyarrow as pa

    out = schema.to_arrow()
    if physical is None:
        return out
    schema_out: pa.Schema = pa.schema(
        [f.with_type(physical.field(f.name).type) if f.name in physical.names else f for f in out]
    )
    return schema_out


def _arrow_type(f: Field) -> pa.DataType:
    typ: pa.DataType = Schema((f,)).to_arrow().field(0).type
    return typ


def _logical(table_field: Any, name: str) -> Field:
    import pyarrow as pa

    return Schema.from_arrow(pa.schema([table_field])).fields[0]


def conform(table: pa.Table, schema: Schema, physical: pa.Schema | None = None) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, every conversion checked.

    A column whose logical type already matches keeps its physical type (or
    takes ``physical``'s, when given and logically the same). Others are cast
    with pyarrow's safe cast, which refuses any value that would change
    (``1.5`` into an int, ``2**40`` into ``int32``); strings in timestamp and
    date columns are parsed. Absent nullable columns become nulls.

    Raises
    ------
    SchemaViolationError
        A column outside ``schema``, a value that does not convert exactly, a
        missing non-nullable column or a null in one; ``.field`` names it.
    """
    pyarrow_module()
    import pyarrow as pa

    errors = _arrow_errors()
    for name in table.schema.names:
        if schema.field(name) is None:
            raise SchemaViolationError(
                f"column {name!r} is not in the schema {schema.names}", field=name
            )
    if len(set(table.schema.names)) != len(table.schema.names):
        dup = next(n for n in table.schema.names if table.schema.names.count(n) > 1)
        raise SchemaViolationError(f"Arrow data has two columns called {dup!r}", field=dup)
    columns: list[Any] = []
    fields: list[Any] = []
    nulls: Any = pa.nulls
    for want in schema.fields:
        name = want.name
        phys = (
            physical.field(name).type if physical is not None and name in physical.names else None
        )
        i = table.schema.get_field_index(name)
        if i < 0:
            if not want.nullable:
                raise SchemaViolationError(
                    f"column {name!r} ({want.type_name}) is not nullable, and the records "
                    "do not have it",
                    field=name,
                )
            typ = phys if phys is not None else _arrow_type(want)
            columns.append(nulls(table.num_rows, typ))
            fields.append(pa.field(name, typ, nullable=True))
            continue
        col = table.column(i)
        have = _logical(table.schema.field(i), name)
        if have.type != want.type or have.children != want.children:
            col = _cast(col, have, want, phys, errors)
        elif phys is not None and col.type != phys:
            try:
                col = col.cast(phys, safe=True)
            except errors as exc:
                raise _no_fit(name, have, want, exc) from exc
        if not want.nullable and col.null_count:
            raise SchemaViolationError(
                f"column {name!r} ({want.type_name}) is not nullable but has "
                f"{col.null_count} null value(s)",
                field=name,
            )
        columns.append(col)
        fields.append(pa.field(name, col.type, nullable=want.nullable))
    try:
        out: pa.Table = pa.Table.from_arrays(
            columns, schema=pa.schema(fields, cast("Any", table.schema.metadata))
        )
        return out
    except errors as exc:
        raise SchemaViolationError(f"records do not fit the schema: {exc}") from exc


def _no_fit(name: str, have: Field, want: Field, exc: BaseException) -> SchemaViolationError:
    return SchemaViolationError(
        f"column {name!r} is {have.type_name} in this write and its values do not all "
        f"convert exactly to the schema's {want.type_name}: {exc}",
        field=name,
    )


def _cast(
    col: Any, have: Field, want: Field, phys: Any, errors: tuple[type[BaseException], ...]
) -> Any:
    import pyarrow as pa

    target = phys if phys is not None else _arrow_type(want)
    if have.type == "string" and (want.type == "date" or want.type.startswith("timestamp[")):
        values = _parse_temporal(col.to_pylist(), want)
        try:
            return pa.array(values, type=target)
        except errors as exc:
            raise _no_fit(want.name, have, want, exc) from exc
    try:
        return col.cast(target, safe=True)
    except errors as exc:
        raise _no_fit(want.name, have, want, exc) from exc


def prepare_table(
    records: Any,
    *,
    schema: Schema | None,
    mode: SchemaMode,
    physical: pa.Schema | None = None,
) -> tuple[pa.Table, Schema]:
    """Records or Arrow data as a table fitting ``schema`` (merged per ``mode``).

    Returns the conformed table and the schema it has (``schema`` merged with
    what the records hold; with no ``schema``, what they hold).

    Raises
    ------
    SchemaViolationError
        The records do not fit (see :func:`aiolode.schema.merge` and :func:`conform`).
    InvalidInputError
        Arrow input that is not tabular.
    """
    pyarrow_module()
    table = arrow_table(records) if is_arrow(records) else records_to_table(records, schema)
    incoming = Schema.from_arrow(table.schema)
    if table.num_rows == 0 and table.num_columns == 0:
        if schema is None:
            return table, incoming
        return physical_schema(schema, physical).empty_table(), schema
    if schema is None:
        if physical is not None:
            return conform(table, incoming, physical), incoming
        return table, incoming
    merged = merge(schema, incoming, mode=mode)
    return conform(table, merged, physical), merged


def encode_table(
    records: Any, physical: pa.Schema | None, schema: Schema | None, mode: SchemaMode
) -> tuple[pa.Table, Schema]:
    """What a columnar codec's one-shot ``encode`` writes: the table and its schema.

    ``physical`` is the codec's own pinned ``pyarrow.Schema`` (its types are
    kept), ``schema`` the dataset's recorded one (merged per ``mode``).

    Raises
    ------
    SchemaViolationError, InvalidInputError
        See :func:`prepare_table`.
    """
    if mode not in ("strict", "add_columns"):
        raise InvalidInputError(
            f"schema_mode must be 'strict' or 'add_columns', not {safe_repr(mode)}"
        )
    if schema is None and physical is not None:
        schema = Schema.from_arrow(physical)
    if schema is None:
        # One write holds one type per column; pyarrow already refuses mixes.
        return prepare_table(records, schema=None, mode=mode)
    return prepare_table(records, schema=schema, mode=mode, physical=physical)


def to_table(records: Any, schema: Schema | None = None, mode: SchemaMode = "strict") -> pa.Table:
    """Records of any accepted kind as a table (see :func:`prepare_table`).

    Raises
    ------
    SchemaViolationError
        See :func:`prepare_table`.
    """
    return prepare_table(records, schema=schema, mode=mode)[0]


def _comparable(typ: pa.DataType) -> bool:
    import pyarrow as pa

    t = pa.types
    return bool(
        t.is_integer(typ)
        or t.is_floating(typ)
        or t.is_boolean(typ)
        or t.is_string(typ)
        or t.is_large_string(typ)
        or t.is_timestamp(typ)
        or t.is_date(typ)
        or t.is_time(typ)
        or t.is_decimal(typ)
    )


class StatsAccumulator:
    """Running per-column min/max/null count, merged across batches or row groups.

    Raw Python values are compared (decimals as decimals, instants as
    datetimes) and only made JSON-safe by :meth:`result`. A column whose
    extremes are unknown for a part holding non-null values (no statistics
    written, values not comparable) ends with ``min``/``max`` ``None``.
    """

    __slots__ = ("_cols",)

    def __init__(self) -> None:
        # name -> [lo, hi, null_count, known]
        self._cols: dict[str, list[Any]] = {}

    def add(self, name: str, lo: Any, hi: Any, nulls: int, *, known: bool = True) -> None:
        """Fold in one part: ``known=False`` when it has values of unknown extremes."""
        cur = self._cols.get(name)
        if cur is None:
            self._cols[name] = [lo, hi, nulls, known]
            return
        cur[2] += nulls
        cur[3] = cur[3] and known
        try:
            if lo is not None and (cur[0] is None or lo < cur[0]):
                cur[0] = lo
            if hi is not None and (cur[1] is None or hi > cur[1]):
                cur[1] = hi
        except TypeError:
            # Different kinds across parts (cannot happen within one schema).
            cur[3] = False

    def add_nulls(self, name: str, nulls: int) -> None:
        """Fold in a part where the column is entirely null."""
        self.add(name, None, None, nulls)

    def result(self) -> dict[str, ColumnStats]:
        out: dict[str, ColumnStats] = {}
        for name, (lo, hi, nulls, known) in self._cols.items():
            if not known:
                lo = hi = None
            lo, hi = json_safe(lo), json_safe(hi)
            if lo is None or hi is None:
                lo = hi = None
            out[name] = ColumnStats(min=lo, max=hi, null_count=nulls)
        return out


def add_table_stats(acc: StatsAccumulator, table: pa.Table | pa.RecordBatch) -> None:
    """Fold every top-level column of ``table`` into ``acc``, vectorised.

    Columns that are not comparable scalars (nested, binary, dictionary) get
    ``min``/``max`` ``None`` and their null count.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, f in enumerate(table.schema):
        col: Any = table.column(i)
        nulls = col.null_count
        if nulls == len(col):
            acc.add_nulls(f.name, nulls)
        elif not _comparable(f.type):
            acc.add(f.name, None, None, nulls, known=False)
        else:
            if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
                # datetime has microseconds; as_py() of ns scalars needs pandas.
                col = pc.cast(col, pa.timestamp("us", f.type.tz), safe=False)
            mm = pc.min_max(col)
            acc.add(f.name, mm["min"].as_py(), mm["max"].as_py(), nulls)


def table_stats(table: pa.Table | pa.RecordBatch) -> dict[str, ColumnStats]:
    """Statistics of every top-level column of one table (see :func:`add_table_stats`)."""
    acc = StatsAccumulator()
    add_table_stats(acc, table)
    return acc.result()
