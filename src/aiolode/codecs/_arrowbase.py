"""What the Arrow-based codecs share: a drainable sink and the schema-fixing encoder."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from .._validate import safe_repr
from ..errors import InvalidInputError, SchemaViolationError
from ..schema._core import Schema, unify_schemas
from ._base import EncodedTail, StreamEncoder
from ._tabular import conform, physical_schema, prepare_table, pyarrow_module
from ._timestamps import TimestampRange

if TYPE_CHECKING:
    import pyarrow as pa

    from ..schema._core import SchemaMode
    from ._base import ColumnStats, Records

__all__ = ["ArrowStreamEncoder", "DrainSink"]


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


class ArrowStreamEncoder(StreamEncoder):
    """Incremental encoder for Arrow-based formats.

    Batches are buffered until ``flush_rows`` rows (or ``flush_bytes`` bytes)
    are pending, then written as one unit (a Parquet row group, an IPC batch).

    Schemas: with a recorded ``schema`` (or a codec's pinned ``physical``
    schema), every batch is merged into it per ``mode`` (see
    :func:`aiolode.schema.merge`) and converted exactly. Without one, the
    batches' own types are joined (nulls take any type, ints and floats make
    float64). Either way the file schema is fixed when the first unit is
    written: from then on a batch that would add or change a column is refused.
    """

    def __init__(
        self,
        *,
        physical: pa.Schema | None,
        schema: Schema | None,
        mode: SchemaMode,
        timestamp_field: str | None,
        flush_rows: int,
        flush_bytes: int,
    ) -> None:
        if mode not in ("strict", "add_columns"):
            raise InvalidInputError(
                f"schema_mode must be 'strict' or 'add_columns', not {safe_repr(mode)}"
            )
        self._physical = physical
        self._mode: SchemaMode = mode
        if schema is None and physical is not None:
            schema = Schema.from_arrow(physical)
        self._recorded = schema is not None
        self._schema: Schema | None = schema  # logical schema so far
        self._opened_schema: Schema | None = None
        self._fixed: pa.Schema | None = None  # physical schema once the writer is open
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

    @property
    def schema(self) -> Schema | None:
        """The logical schema of the records accepted so far."""
        return self._schema

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
        if self._recorded:
            table, new = prepare_table(
                records, schema=self._schema, mode=self._mode, physical=self._physical
            )
        else:
            table, incoming = prepare_table(records, schema=None, mode=self._mode)
            new = incoming if self._schema is None else unify_schemas(self._schema, incoming)
            if new != incoming:
                table = conform(table, new)
        if table.num_rows == 0 and table.num_columns == 0:
            return
        if self._opened_schema is not None:
            if new != self._opened_schema:
                raise SchemaViolationError(
                    f"this batch has {new}, but the file was started with "
                    f"{self._opened_schema}: a streamed file cannot change its columns after "
                    "its first row group; write such records in another file",
                    field=_first_difference(self._opened_schema, new),
                )
            assert self._fixed is not None
            table = conform(table, new, self._fixed)
        if self._ts is not None:
            # Check before buffering so a rejected batch leaves no trace.
            ts = TimestampRange(self._ts.field)
            ts.add_table(table)
            self._ts.merge(ts)
        self._schema = new
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        self._rows += table.num_rows
        if self._pending_rows >= self._flush_rows or self._pending_bytes >= self._flush_bytes:
            self._flush(final=False)

    def _concat_pending(self) -> pa.Table:
        pyarrow_module()
        import pyarrow as pa

        schema = self._schema if self._schema is not None else Schema(())
        if not self._pending:
            empty = (
                self._fixed if self._fixed is not None else physical_schema(schema, self._physical)
            )
            return empty.empty_table()
        parts = [conform(t, schema, self._fixed) for t in self._pending]
        physical = self._fixed if self._fixed is not None else parts[0].schema
        parts = [t if t.schema.equals(physical) else conform(t, schema, physical) for t in parts]
        out: pa.Table = pa.concat_tables(parts)
        return out

    def _flush(self, *, final: bool) -> None:
        table = self._concat_pending()
        if self._fixed is None:
            self._fixed = table.schema
            self._opened_schema = self._schema if self._schema is not None else Schema(())
            self._open(self._sink, table.schema)
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
        if self._pending or self._fixed is None:
            self._flush(final=True)
        stats = self._close()
        lo, hi = self._ts.result() if self._ts is not None else (None, None)
        return EncodedTail(
            data=self._sink.drain(),
            row_count=self._rows,
            stats=stats,
            min_timestamp=lo,
            max_timestamp=hi,
            schema=self._schema if self._schema is not None else Schema(()),
        )

    def abort(self) -> None:
        # docstring inherited
        self._done = True
        self._pending = []
        self._sink.drain()

    def null_counts(self) -> dict[str, int]:
        """Nulls per column over every row written (Arrow keeps the counts)."""
        return self._nulls


def _first_difference(old: Schema, new: Schema) -> str | None:
    for f in new.fields:
        if old.field(f.name) != f:
            return f.name
    return None
