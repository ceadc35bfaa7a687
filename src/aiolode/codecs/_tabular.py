"""Records → Arrow tables with typed errors, and Arrow-side statistics.

Shared by the Arrow-based codecs (and JSONL's ``to_arrow``). pyarrow is an
optional dependency, imported lazily by :func:`pyarrow_modules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any

from ..errors import SchemaViolationError, UnsupportedOperationError
from ._base import ColumnStats
from ._timestamps import json_safe

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

    import pyarrow as pa

__all__ = [
    "conform",
    "is_arrow",
    "pyarrow_module",
    "records_to_table",
    "StatsAccumulator",
    "add_table_stats",
    "check_rows",
    "table_stats",
    "to_table",
]


def pyarrow_module() -> ModuleType:
    """Import pyarrow, or explain how to install it.

    Raises
    ------
    UnsupportedOperationError
        pyarrow is not installed.
    """
    try:
        import pyarrow
    except ImportError as exc:
        raise UnsupportedOperationError(
            "this codec needs the 'pyarrow' package: pip install 'aiolode[parquet]'"
        ) from exc
    return pyarrow


def is_arrow(records: object) -> bool:
    """True for a ``pyarrow.Table``/``RecordBatch`` (without importing pyarrow)."""
    mod = type(records).__module__
    if not mod.startswith("pyarrow"):
        return False
    import pyarrow as pa

    return isinstance(records, pa.Table | pa.RecordBatch)


def _arrow_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError,
            TypeError, ValueError)  # fmt: skip


def check_rows(records: Iterable[Any]) -> list[Mapping[str, Any]]:
    """Materialise ``records`` as a list, checking each is a mapping with ``str`` keys.

    Raises
    ------
    SchemaViolationError
        A record is not a mapping, or a key is not a string.
    """
    rows = records if isinstance(records, list) else list(records)
    for i, rec in enumerate(rows):
        if type(rec) is not dict and not isinstance(rec, Mapping):
            raise SchemaViolationError(
                f"record {i} is a {type(rec).__name__}, not a mapping with str keys"
            )
    return rows


def _column_names(rows: list[Mapping[str, Any]]) -> list[str]:
    # Union of keys in first-seen order: pyarrow's from_pylist would take the
    # first row's keys only and silently drop the rest.
    names = list(dict.fromkeys(chain.from_iterable(rows)))
    for name in names:
        if type(name) is not str:
            raise SchemaViolationError(
                f"record key {name!r} is a {type(name).__name__}, not a str", field=str(name)
            )
    return names


def records_to_table(records: Iterable[Any], schema: pa.Schema | None = None) -> pa.Table:
    """Build a table from mappings: columns are the union of keys.

    With ``schema``, values are converted to its types, absent keys become
    nulls, and a key outside the schema is an error (it would be lost).

    Raises
    ------
    SchemaViolationError
        Not mappings, non-``str`` keys, a column whose values do not form one
        Arrow type (or do not fit ``schema``), or a key not in ``schema``.
    """
    pyarrow_module()
    import pyarrow as pa

    rows = check_rows(records)
    names = _column_names(rows)
    if rows and not names and schema is None:
        # A columnar file cannot hold rows without columns: the count would be lost.
        raise SchemaViolationError(
            f"{len(rows)} record(s) have no fields; a columnar file needs at least one column"
        )
    errors = _arrow_errors()
    if schema is not None:
        extra = [n for n in names if schema.get_field_index(n) < 0]
        if extra:
            raise SchemaViolationError(
                f"column {extra[0]!r} is not in the schema {schema.names}", field=extra[0]
            )
        fields = list(schema)
    else:
        fields = [pa.field(n, pa.null()) for n in names]
    arrays = []
    for f in fields:
        name = f.name
        typ = f.type if schema is not None else None
        try:
            arrays.append(pa.array([r.get(name) for r in rows], type=typ))
        except errors as exc:
            want = f" (schema type {typ})" if typ is not None else ""
            raise SchemaViolationError(
                f"column {name!r} has values that do not form one Arrow type{want}: {exc}",
                field=name,
            ) from exc
    if schema is not None:
        try:
            return pa.Table.from_arrays(arrays, schema=schema)
        except errors as exc:
            raise SchemaViolationError(f"records do not fit the schema: {exc}") from exc
    return pa.Table.from_arrays(arrays, names=names)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast an Arrow table to ``schema`` (same column set; order may differ).

    Raises
    ------
    SchemaViolationError
        A column is missing or extra, or cannot be cast safely; ``.field`` names it.
    """
    if table.schema.equals(schema):
        return table
    pyarrow_module()
    import pyarrow as pa

    have = set(table.schema.names)
    for name in table.schema.names:
        if schema.get_field_index(name) < 0:
            raise SchemaViolationError(
                f"column {name!r} is not in the schema {schema.names}", field=name
            )
    columns = []
    for f in schema:
        if f.name not in have:
            if not f.nullable:
                raise SchemaViolationError(f"column {f.name!r} is missing", field=f.name)
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type, safe=True)
            except _arrow_errors() as exc:
                raise SchemaViolationError(
                    f"column {f.name!r} of type {col.type} does not fit schema type {f.type}",
                    field=f.name,
                ) from exc
        columns.append(col)
    try:
        return pa.Table.from_arrays(columns, schema=schema)
    except _arrow_errors() as exc:
        raise SchemaViolationError(f"records do not fit the schema: {exc}") from exc


def to_table(records: Any, schema: pa.Schema | None = None) -> pa.Table:
    """Records of any accepted kind as a table (conformed to ``schema`` if given).

    Raises
    ------
    SchemaViolationError
        See :func:`records_to_table` and :func:`conform`.
    """
    pyarrow_module()
    import pyarrow as pa

    if isinstance(records, pa.RecordBatch):
        records = pa.Table.from_batches([records])
    if isinstance(records, pa.Table):
        return records if schema is None else conform(records, schema)
    return records_to_table(records, schema)


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
