"""Parquet on pyarrow: statistics from the row-group footer, streaming by row groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO, cast, final

from .._validate import safe_repr
from ..errors import CorruptDataError, InvalidInputError
from ._arrowbase import ArrowStreamEncoder, DrainSink
from ._base import Codec, EncodedFile, check_data, check_encode_args, check_file, register_codec
from ._tabular import StatsAccumulator, encode_table, pyarrow_module
from ._timestamps import TimestampRange

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

    from ..schema._core import Schema, SchemaMode
    from ._base import ColumnStats, Records

__all__ = ["Parquet"]

_COMPRESSIONS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")

#: A stream encoder writes a row group early once this much Arrow data is
#: pending, so wide rows cannot make one row group exhaust memory.
MAX_BUFFERED_BYTES = 128 * 1024 * 1024


def _leaf_count(typ: pa.DataType) -> int:
    """Parquet leaf columns under one Arrow type (the footer lists leaves only)."""
    import pyarrow as pa

    t = pa.types
    if t.is_struct(typ):
        return sum(_leaf_count(typ.field(i).type) for i in range(typ.num_fields))
    if t.is_map(typ):
        return _leaf_count(typ.key_type) + _leaf_count(typ.item_type)
    if t.is_list(typ) or t.is_large_list(typ) or t.is_fixed_size_list(typ):
        return _leaf_count(typ.value_type)
    if hasattr(t, "is_list_view") and (t.is_list_view(typ) or t.is_large_list_view(typ)):
        return _leaf_count(typ.value_type)
    return 1


def _is_nested(typ: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_nested(typ))


def footer_stats(
    metadata: pa.parquet.FileMetaData, schema: pa.Schema, nulls: dict[str, int]
) -> dict[str, ColumnStats]:
    """Per top-level column statistics from the row-group footer, merged.

    min/max come from the footer (no pass over the data); null counts come from
    Arrow (``nulls``), which also knows them for nested and null-typed columns
    whose footer entries are per leaf or absent.
    """
    acc = StatsAccumulator()
    leaf_index: list[tuple[str, int | None]] = []
    leaf = 0
    for f in schema:
        n = _leaf_count(f.type)
        leaf_index.append((f.name, None if _is_nested(f.type) or n != 1 else leaf))
        leaf += n
    for name, _ in leaf_index:
        acc.add(name, None, None, nulls.get(name, 0))
    for g in range(metadata.num_row_groups):
        rg = metadata.row_group(g)
        for name, j in leaf_index:
            if j is None:
                acc.add(name, None, None, 0, known=False)
                continue
            st = rg.column(j).statistics
            if st is not None and st.has_min_max:
                acc.add(name, st.min, st.max, 0)
            elif st is None or st.num_values > 0:
                # Values present but extremes unknown (too long, unsupported type).
                if st is None and _is_null_type(schema.field(name).type):
                    continue
                acc.add(name, None, None, 0, known=False)
    return acc.result()


def _is_null_type(typ: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_null(typ))


def _corrupt(exc: BaseException) -> CorruptDataError:
    return CorruptDataError(f"not a valid Parquet file: {exc}", format="parquet")


def _arrow_exc() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowException, OSError, ValueError)


class _ParquetEncoder(ArrowStreamEncoder):
    def __init__(
        self,
        codec: Parquet,
        timestamp_field: str | None,
        schema: Schema | None,
        mode: SchemaMode,
    ) -> None:
        super().__init__(
            physical=codec.schema,
            schema=schema,
            mode=mode,
            timestamp_field=timestamp_field,
            flush_rows=codec.row_group_size,
            flush_bytes=MAX_BUFFERED_BYTES,
        )
        self._codec = codec
        self._writer: Any = None

    def _open(self, sink: DrainSink, schema: pa.Schema) -> None:
        self._writer = self._codec._new_writer(sink, schema)

    def _write_unit(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=self._codec.row_group_size)

    def _close(self) -> dict[str, ColumnStats] | None:
        self._writer.close()
        assert self._fixed is not None
        return footer_stats(self._writer.writer.metadata, self._fixed, self.null_counts())


@final
@register_codec
class Parquet(Codec):
    """Apache Parquet via pyarrow (``aiolode[parquet]``).

    Takes mappings (columns are the union of keys, types inferred by pyarrow
    or taken from ``schema``) or a ``pyarrow.Table``/``RecordBatch``, written
    without Python-level loops. Records per-file :class:`ColumnStats` from the
    row-group statistics in the footer (min/max of top-level scalar columns;
    null counts of every column). Compresses internally, so an outer
    compressor is refused (``accepts_outer_compression`` is False).

    Streams by row groups: :meth:`open_encoder` buffers at most one row group
    (``row_group_size`` rows, or 128 MiB of Arrow data, whichever comes first)
    and emits it as soon as it is complete. Its schema is ``schema`` if given,
    else inferred from the records of the first row group (nulls and ints
    widen across batches); later batches must fit it. Decoding is random
    access (:meth:`iter_batches` over a seekable file, row group by row group);
    a forward-only stream cannot be decoded (the footer is at the end).

    Parameters
    ----------
    compression
        ``"zstd"`` (default), ``"snappy"``, ``"gzip"``, ``"brotli"``, ``"lz4"``
        or ``"none"``.
    row_group_size
        Rows per row group (default 1,048,576, pyarrow's).
    schema
        A ``pyarrow.Schema`` the records must fit; not recorded in the manifest
        (the file's footer carries the schema readers use).
    compression_level
        Codec-specific level, or ``None`` for the codec's default.

    Raises
    ------
    InvalidInputError
        An unknown compression, a non-positive row group size, or a ``schema``
        that is not a ``pyarrow.Schema``.
    """

    name = "parquet"
    extension = ".parquet"
    accepts_outer_compression = False
    streaming = True
    supports_forward_stream = False
    supports_random_access = True

    def __init__(
        self,
        compression: str = "zstd",
        row_group_size: int = 1024 * 1024,
        schema: pa.Schema | None = None,
        compression_level: int | None = None,
    ) -> None:
        if compression not in _COMPRESSIONS:
            raise InvalidInputError(
                f"Parquet compression must be one of {_COMPRESSIONS}, not {safe_repr(compression)}"
            )
        if isinstance(row_group_size, bool) or not isinstance(row_group_size, int):
            raise InvalidInputError(
                f"row_group_size must be an int, not {safe_repr(row_group_size)}"
            )
        if row_group_size < 1:
            raise InvalidInputError(f"row_group_size must be positive, not {row_group_size}")
        if compression_level is not None and (
            isinstance(compression_level, bool) or not isinstance(compression_level, int)
        ):
            raise InvalidInputError(
                f"compression_level must be an int or None, not {safe_repr(compression_level)}"
            )
        if schema is not None:
            pyarrow_module()
            import pyarrow as pa

            if not isinstance(schema, pa.Schema):
                raise InvalidInputError(f"schema must be a pyarrow.Schema, not {safe_repr(schema)}")
        self.compression = compression
        self.row_group_size = row_group_size
        self.schema = schema
        self.compression_level = compression_level

    @classmethod
    def _option_names(cls) -> frozenset[str]:
        return frozenset({"compression", "row_group_size", "compression_level"})

    def options(self) -> dict[str, Any]:
        # docstring inherited
        return {
            "compression": self.compression,
            "compression_level": self.compression_level,
            "row_group_size": self.row_group_size,
        }

    def _new_writer(self, where: Any, schema: pa.Schema) -> Any:
        import pyarrow.parquet as pq

        return pq.ParquetWriter(
            where,
            schema,
            compression=cast("Any", self.compression),
            compression_level=self.compression_level,
        )

    def encode(
        self,
        records: Records,
        *,
        timestamp_field: str | None = None,
        schema: Schema | None = None,
        schema_mode: SchemaMode = "strict",
    ) -> EncodedFile:
        # docstring inherited
        check_encode_args(timestamp_field, schema)
        pyarrow_module()
        import pyarrow as pa

        table, logical = encode_table(records, self.schema, schema, schema_mode)
        lo = hi = None
        if timestamp_field is not None:
            ts = TimestampRange(timestamp_field)
            ts.add_table(table)
            lo, hi = ts.result()
        sink = pa.BufferOutputStream()
        writer = self._new_writer(sink, table.schema)
        try:
            if table.num_rows:  # no empty row group: streamed files have none either
                writer.write_table(table, row_group_size=self.row_group_size)
        finally:
            writer.close()
        nulls = {n: c.null_count for n, c in zip(table.schema.names, table.columns, strict=True)}
        stats = footer_stats(writer.writer.metadata, table.schema, nulls)
        return EncodedFile(
            data=sink.getvalue().to_pybytes(),
            row_count=table.num_rows,
            stats=stats,
            min_timestamp=lo,
            max_timestamp=hi,
            schema=logical,
        )

    def open_encoder(
        self,
        *,
        timestamp_field: str | None = None,
        schema: Schema | None = None,
        schema_mode: SchemaMode = "strict",
    ) -> _ParquetEncoder:
        # docstring inherited
        check_encode_args(timestamp_field, schema)
        pyarrow_module()
        return _ParquetEncoder(self, timestamp_field, schema, schema_mode)

    def to_arrow(self, data: bytes | bytearray | memoryview) -> pa.Table:
        # docstring inherited
        check_data(data)
        pyarrow_module()
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(pa.BufferReader(data))
        except _arrow_exc() as exc:
            raise _corrupt(exc) from exc

    def decode(self, data: bytes | bytearray | memoryview) -> list[dict[str, Any]]:
        # docstring inherited
        rows: list[dict[str, Any]] = self.to_arrow(data).to_pylist()
        return rows

    def iter_batches(
        self, file: BinaryIO, batch_size: int = 65536
    ) -> Iterator[list[dict[str, Any]]]:
        # docstring inherited
        check_file(file, batch_size)
        pyarrow_module()
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(file)
        except _arrow_exc() as exc:
            raise _corrupt(exc) from exc
        for g in range(pf.num_row_groups):
            # One row group in memory at a time; yield outside the try so a
            # consumer's exception is not mistaken for corruption.
            try:
                table = pf.read_row_group(g)
            except _arrow_exc() as exc:
                raise _corrupt(exc) from exc
            for batch in table.to_batches(max_chunksize=batch_size):
                rows: list[dict[str, Any]] = batch.to_pylist()
                if rows:
                    yield rows
