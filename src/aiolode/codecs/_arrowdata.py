"""Arrow inputs: the one place that decides whether a ``write()`` argument is Arrow data.

Accepted, without converting through Python objects:

- a ``pyarrow.Table`` or ``RecordBatch``;
- a list or tuple of ``RecordBatch``/``Table`` (one schema);
- anything with ``__arrow_c_stream__`` (the Arrow PyCapsule stream protocol):
  a ``pyarrow.RecordBatchReader``, a Polars or pandas ``DataFrame``, a DuckDB
  relation, …

Detection never imports pyarrow for ordinary records and never consumes a
stream; materialising one (:func:`arrow_table`, :func:`arrow_batches`) may run
the producer (a DuckDB query), so callers run it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ..errors import InvalidInputError, SchemaViolationError
from ._deps import require_pyarrow

if TYPE_CHECKING:
    from collections.abc import Generator

    import pyarrow as pa

__all__ = [
    "ACCEPTED",
    "arrow_batches",
    "arrow_table",
    "describe",
    "is_arrow",
    "is_arrow_batch",
    "rows_of",
]

ACCEPTED = (
    "records (an iterable of mappings with str keys), a pyarrow Table or RecordBatch, "
    "a list of RecordBatches, or an object with __arrow_c_stream__ (a pyarrow "
    "RecordBatchReader, a Polars or pandas DataFrame, a DuckDB relation)"
)


def describe(obj: object) -> str:
    """``module.Type`` of ``obj``, for error messages."""
    t = type(obj)
    mod = t.__module__.split(".", 1)[0]
    return t.__name__ if mod == "builtins" else f"{mod}.{t.__name__}"


def rows_of(records: object) -> list[Any]:
    """Records that are not Arrow data, as a list (a list is returned as is).

    Raises
    ------
    InvalidInputError
        Not an iterable of records (a str, bytes, one mapping, a number …).
    """
    if isinstance(records, list):
        return records
    if isinstance(records, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
        records, Iterable
    ):
        raise InvalidInputError(f"records must be {ACCEPTED}; not {describe(records)}")
    return [r for r in records]  # noqa: C416 - list() would trust a lying __len__


def is_arrow_batch(obj: object) -> bool:
    """True for a ``pyarrow.Table`` or ``RecordBatch`` (pyarrow not imported otherwise)."""
    t = type(obj)
    return t.__module__.startswith("pyarrow") and t.__name__ in ("Table", "RecordBatch")


def is_arrow(obj: object) -> bool:
    """True for every kind of Arrow input listed in the module docstring.

    A list qualifies when its first item is a Table or RecordBatch (the rest are
    checked when it is materialised). Polars ``Series`` speak the stream
    protocol too: they are detected here and refused, with a clear message, by
    :func:`arrow_table`.
    """
    if is_arrow_batch(obj):
        return True
    try:
        if hasattr(type(obj), "__arrow_c_stream__"):
            return True
    except Exception:  # a hostile metaclass
        return False
    return isinstance(obj, list | tuple) and len(obj) > 0 and is_arrow_batch(obj[0])


def _not_tabular(obj: object, exc: BaseException | None = None) -> InvalidInputError:
    detail = f" ({exc})" if exc is not None else ""
    hint = ""
    if type(obj).__name__ == "Series":
        hint = "; a Series is one column: wrap it in a DataFrame"
    return InvalidInputError(
        f"{describe(obj)} is not tabular Arrow data{hint}{detail}; write() takes {ACCEPTED}"
    )


def _arrow_errors(pa: Any) -> tuple[type[BaseException], ...]:
    return (pa.ArrowException, TypeError, ValueError)


def _from_list(pa: Any, items: list[Any] | tuple[Any, ...]) -> Any:
    tables = []
    for i, item in enumerate(items):
        if isinstance(item, pa.RecordBatch):
            item = pa.Table.from_batches([item])
        elif not isinstance(item, pa.Table):
            raise InvalidInputError(
                f"item {i} of the list is a {describe(item)}; a list of Arrow data holds only "
                "pyarrow RecordBatches or Tables"
            )
        tables.append(item)
    first = tables[0].schema
    for i, t in enumerate(tables[1:], 1):
        if not t.schema.equals(first):
            raise SchemaViolationError(
                f"batch {i} has schema ({t.schema.to_string(show_schema_metadata=False)}) "
                f"but batch 0 has ({first.to_string(show_schema_metadata=False)}); "
                "the batches of one write share one schema"
            )
    return pa.concat_tables(tables)


def arrow_table(obj: object) -> pa.Table:
    """Materialise Arrow input as one ``pyarrow.Table`` (blocking: a worker thread).

    Raises
    ------
    InvalidInputError
        ``obj`` is not tabular (a Series, a non-struct stream, mixed list items).
    SchemaViolationError
        The batches of a list disagree on their schema.
    MissingDependencyError
        pyarrow is not installed.
    """
    require_pyarrow()
    import pyarrow as pa

    out: pa.Table
    if isinstance(obj, pa.Table):
        out = obj
        return out
    if isinstance(obj, pa.RecordBatch):
        out = pa.Table.from_batches([obj])
        return out
    if isinstance(obj, list | tuple):
        out = _from_list(pa, obj)
        return out
    try:
        reader = pa.RecordBatchReader.from_stream(cast("Any", obj))
        out = reader.read_all()
        return out
    except InvalidInputError:
        raise
    except _arrow_errors(pa) as exc:
        raise _not_tabular(obj, exc) from exc


def arrow_batches(obj: object) -> Generator[pa.Table, None, None]:
    """Arrow input as a sequence of tables, read lazily (blocking: a worker thread).

    A stream (``RecordBatchReader``, ``__arrow_c_stream__``) is read batch by
    batch, so a large one never sits in memory whole.

    Raises
    ------
    InvalidInputError
        ``obj`` is not tabular (raised when reached).
    MissingDependencyError
        pyarrow is not installed.
    """
    require_pyarrow()
    import pyarrow as pa

    if isinstance(obj, pa.Table | pa.RecordBatch | list | tuple):
        yield arrow_table(obj)
        return
    try:
        reader = pa.RecordBatchReader.from_stream(cast("Any", obj))
    except _arrow_errors(pa) as exc:
        raise _not_tabular(obj, exc) from exc
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except _arrow_errors(pa) as exc:
            raise InvalidInputError(
                f"reading the Arrow stream of {describe(obj)} failed: {exc}"
            ) from exc
        yield pa.Table.from_batches([batch])
