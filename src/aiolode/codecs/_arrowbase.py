"""What the Arrow-based codecs share: a drainable sink and the schema-fixing encoder."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, SchemaViolationError
from ._base import EncodedTail, StreamEncoder
from ._tabular import pyarrow_module, to_table
from ._timestamps import TimestampRange

if TYPE_CHECKING:
    import pyarrow as pa

    from ._base import ColumnStats, Records

__all__ = ["ArrowStreamEncoder", "DrainSink", "unify"]


class DrainSink:
    """A write-only file object whose bytes are taken out after every write.

    pyarrow writers write into it; the stream encoder returns :meth:`drain`
    after each batch, so it never holds more than what one write produced.
    """

    def __init__(self) -> None:
        # pyarrow hands each write over as a fresh ``bytes``: keep them as they
        # are. Joining a row group's parts (or growing one buffer) is a memcpy of
        # tens of MiB that holds the GIL and stalls the event loop while a large
        # table encodes in a worker thread; drain_parts() avoids any copy.
        self._parts: list[bytes] = []
        self._pos = 0
        self.closed = False

    def write(self, data: Any) -> int:
        b = data if type(data) is bytes else bytes(data)
        self._parts.append(b)
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        # pyarrow closes its wrapper, not ours: bytes written at close stay drainable.
        pass

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def drain(self) -> bytes:
        """Take the bytes written since the last drain, as one object."""
        parts = self.drain_parts()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def drain_parts(self) -> list[bytes]:
        """Take the bytes written since the last drain, as written (no copy)."""
        parts, self._parts = self._parts, []
        return parts


def unify(current: pa.Schema, new: pa.Schema) -> pa.Schema:
    """Widen ``current`` to accept ``new`` (nulls → any type, int → float, new columns).

    Raises
    ------
    SchemaViolationError
        A column's types cannot be unified; ``.field`` names it.
    """
    pyarrow_module()
    import pyarrow as pa

    try:
        return pa.unify_schemas([current, new], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        for f in new:
            i = current.get_field_index(f.name)
            if i < 0:
                continue
            try:
                pa.unify_schemas(
                    [pa.schema([current.field(i)]), pa.schema([f])], promote_options="permissive"
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise SchemaViolationError(
                    f"column {f.name!r} is {f.type} in this batch but "
                    f"{current.field(i).type} before",
                    field=f.name,
                ) from exc
        raise SchemaViolationError(f"batch schema does not fit earlier batches: {exc}") from exc


class ArrowStreamEncoder(StreamEncoder):
    """Incremental encoder for Arrow-based formats.

    Batches are buffered until ``flush_rows`` rows (or ``flush_bytes`` bytes)
    are pending, then written as one unit (a Parquet row group, an IPC batch).
    Until the first unit is written the schema is the union of the batches seen
    (nulls and ints widen); from then on it is fixed and every batch must fit it.
    A ``schema`` given up front is fixed from the start.
    """

    def __init__(
        self,
        *,
        schema: pa.Schema | None,
        timestamp_field: str | None,
        flush_rows: int,
        flush_bytes: int,
    ) -> None:
        self._fixed: pa.Schema | None = schema
        self._inferred: pa.Schema | None = None
        self._sink = DrainSink()
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._flush_rows = flush_rows
        self._flush_bytes = flush_bytes
        self._ts = TimestampRange(timestamp_field) if timestamp_field is not None else None
        self._rows = 0
        self._done = False
        self._nulls: dict[str, int] = {}
        self._opened = False

    # -- format hooks
    @abc.abstractmethod
    def _open(self, sink: DrainSink, schema: pa.Schema) -> None:
        """Open the format writer on ``sink`` with the now-fixed ``schema``."""

    @abc.abstractmethod
    def _write_unit(self, table: pa.Table) -> None:
        """Write buffered rows (already of the fixed schema)."""

    @abc.abstractmethod
    def _close(self) -> dict[str, ColumnStats] | None:
        """Close the writer (footer to the sink); return the file's statistics."""

    @property
    def row_count(self) -> int:
        return self._rows

    def write(self, records: Records) -> bytes:
        # docstring inherited
        self._accept(records)
        return self._sink.drain()

    def write_parts(self, records: Records) -> list[bytes]:
        """Like :meth:`write`, but return the encoded bytes as the writer produced
        them (several objects, none copied). The Dataset's large-table pipeline
        uses it: joining a whole row group is a GIL-holding memcpy.
        """
        self._accept(records)
        return self._sink.drain_parts()

    def _accept(self, records: Records) -> None:
        if self._done:
            raise InvalidInputError(f"the {type(self).__name__} is already finished")
        table = to_table(records, self._fixed)
        if table.num_rows == 0 and table.num_columns == 0:
            return
        inferred = None
        if self._fixed is None:
            inferred = (
                table.schema if self._inferred is None else unify(self._inferred, table.schema)
            )
        if self._ts is not None:
            # Check before buffering so a rejected batch leaves no trace.
            ts = TimestampRange(self._ts.field)
            ts.add_table(table)
            self._ts.merge(ts)
        if inferred is not None:
            self._inferred = inferred
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        self._rows += table.num_rows
        if self._pending_rows >= self._flush_rows or self._pending_bytes >= self._flush_bytes:
            self._flush(final=False)

    def _concat_pending(self) -> pa.Table:
        pyarrow_module()
        import pyarrow as pa

        if self._fixed is None:
            schema = self._inferred if self._inferred is not None else pa.schema([])
        else:
            schema = self._fixed
        parts = [t if t.schema.equals(schema) else _widen(t, schema) for t in self._pending]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def _flush(self, *, final: bool) -> None:
        table = self._concat_pending()
        if not self._opened:
            self._fixed = table.schema
            self._open(self._sink, table.schema)
            self._opened = True
        if final or table.nbytes >= self._flush_bytes:
            full = table.num_rows
        else:
            full = (table.num_rows // self._flush_rows) * self._flush_rows
        unit = table.slice(0, full) if full < table.num_rows else table
        if full:
            self._write_unit(unit)
            for name, col in zip(unit.schema.names, unit.columns, strict=True):
                self._nulls[name] = self._nulls.get(name, 0) + col.null_count
        rest = table.slice(full) if full < table.num_rows else None
        self._pending = [rest] if rest is not None else []
        self._pending_rows = rest.num_rows if rest is not None else 0
        self._pending_bytes = rest.nbytes if rest is not None else 0

    def finish(self) -> EncodedTail:
        # docstring inherited
        if self._done:
            raise InvalidInputError(f"the {type(self).__name__} is already finished")
        self._done = True
        if self._pending or not self._opened:
            self._flush(final=True)
        stats = self._close()
        lo, hi = self._ts.result() if self._ts is not None else (None, None)
        return EncodedTail(
            data=self._sink.drain(),
            row_count=self._rows,
            stats=stats,
            min_timestamp=lo,
            max_timestamp=hi,
        )

    def abort(self) -> None:
        # docstring inherited
        self._done = True
        self._pending = []
        self._sink.drain()

    def null_counts(self) -> dict[str, int]:
        """Nulls per column over every row written (Arrow keeps the counts)."""
        return self._nulls


def _widen(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast an earlier batch to the unified schema (adds absent columns as nulls)."""
    from ._tabular import conform

    return conform(table, schema)
