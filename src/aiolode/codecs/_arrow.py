"""Arrow IPC file format (Feather v2) on pyarrow: random access and forward streaming."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, BinaryIO, cast, final

from .._validate import safe_repr
from ..errors import CorruptDataError, InvalidInputError
from ._arrowbase import ArrowStreamEncoder, DrainSink
from ._base import (
    Codec,
    EncodedFile,
    check_data,
    check_encode_args,
    check_file,
    checked_chunks,
    register_codec,
)
from ._tabular import StatsAccumulator, add_table_stats, encode_table, pyarrow_module
from ._timestamps import TimestampRange

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pyarrow as pa

    from ..schema._core import Schema, SchemaMode
    from ._base import ColumnStats, Records

__all__ = ["ArrowIPC"]

_COMPRESSIONS = (None, "lz4", "zstd")

#: The IPC file format is ``ARROW1`` + 2 padding bytes, then the IPC *stream*
#: format (ending with an end-of-stream marker), then a footer. Skipping the
#: prefix lets a forward-only reader decode it as a stream.
_FILE_MAGIC = b"ARROW1\x00\x00"

#: Stream encoders emit a record batch once this many rows are pending.
FLUSH_ROWS = 64 * 1024
FLUSH_BYTES = 64 * 1024 * 1024


def _corrupt(exc: BaseException | str) -> CorruptDataError:
    return CorruptDataError(f"not a valid Arrow IPC file: {exc}", format="arrow")


def _arrow_exc() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowException, OSError, ValueError)


class _ChunkReader(io.RawIOBase):
    """A forward-only file over an iterator of chunks (for ``pa.ipc.open_stream``)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._pos >= len(self._buf):
            try:
                self._buf = bytes(next(self._it))
            except StopIteration:
                return 0
            self._pos = 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n


class _ArrowEncoder(ArrowStreamEncoder):
    def __init__(
        self,
        codec: ArrowIPC,
        timestamp_field: str | None,
        schema: Schema | None,
        mode: SchemaMode,
    ) -> None:
        super().__init__(
            physical=codec.schema,
            schema=schema,
            mode=mode,
            timestamp_field=timestamp_field,
            flush_rows=FLUSH_ROWS,
            flush_bytes=FLUSH_BYTES,
        )
        self._codec = codec
        self._writer: Any = None
        self._stats = StatsAccumulator()

    def _open(self, sink: DrainSink, schema: pa.Schema) -> None:
        self._writer = self._codec._new_writer(sink, schema)

    def _write_unit(self, table: pa.Table) -> None:
        # One batch per unit regardless of how the caller's batches were cut,
        # so a streamed file equals the one-shot encoding of the same rows.
        self._writer.write_table(table.combine_chunks(), max_chunksize=FLUSH_ROWS)
        add_table_stats(self._stats, table)

    def _close(self) -> dict[str, ColumnStats] | None:
        self._writer.close()
        assert self._fixed is not None
        for f in self._fixed:
            # Columns of a file with no rows still get an (empty) entry.
            self._stats.add(f.name, None, None, 0)
        return self._stats.result()


@final
@register_codec
class ArrowIPC(Codec):
    """Arrow IPC *file* format (also known as Feather v2; ``aiolode[parquet]``).

    Columnar and uncompressed by default, so an outer compressor is accepted
    (or use ``compression="zstd"``/``"lz4"`` for Arrow's own buffer
    compression). Statistics are computed with Arrow kernels (min/max of
    top-level scalar columns, null counts of all). Streams both ways: the
    encoder emits a record batch every 65,536 rows; :meth:`iter_decode` reads a
    forward-only chunk stream, :meth:`iter_batches` a seekable file.

    Parameters
    ----------
    compression
        ``None`` (default), ``"lz4"`` or ``"zstd"`` buffer compression.
    schema
        A ``pyarrow.Schema`` the records must fit (not recorded in the manifest).

    Raises
    ------
    InvalidInputError
        An unknown compression, or a ``schema`` that is not a ``pyarrow.Schema``.
    """

    name = "arrow"
    extension = ".arrow"
    accepts_outer_compression = True
    streaming = True
    supports_forward_stream = True
    supports_random_access = True

    def __init__(self, compression: str | None = None, schema: pa.Schema | None = None) -> None:
        if compression not in _COMPRESSIONS:
            raise InvalidInputError(
                f"Arrow IPC compression must be one of {_COMPRESSIONS}, not {safe_repr(compression)}"
            )
        if schema is not None:
            pyarrow_module()
            import pyarrow as pa

            if not isinstance(schema, pa.Schema):
                raise InvalidInputError(f"schema must be a pyarrow.Schema, not {safe_repr(schema)}")
        self.compression = compression
        self.schema = schema

    @classmethod
    def _option_names(cls) -> frozenset[str]:
        return frozenset({"compression"})

    def options(self) -> dict[str, Any]:
        # docstring inherited
        return {"compression": self.compression}

    def _new_writer(self, where: Any, schema: pa.Schema) -> Any:
        pyarrow_module()
        import pyarrow as pa

        opts = pa.ipc.IpcWriteOptions(compression=cast("Any", self.compression))
        return pa.ipc.new_file(where, schema, options=opts)

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
        acc = StatsAccumulator()
        add_table_stats(acc, table)
        sink = pa.BufferOutputStream()
        with self._new_writer(sink, table.schema) as writer:
            if table.num_rows:  # no empty batch: streamed files have none either
                writer.write_table(table, max_chunksize=FLUSH_ROWS)
        return EncodedFile(
            data=sink.getvalue().to_pybytes(),
            row_count=table.num_rows,
            stats=acc.result(),
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
    ) -> _ArrowEncoder:
        # docstring inherited
        check_encode_args(timestamp_field, schema)
        pyarrow_module()
        return _ArrowEncoder(self, timestamp_field, schema, schema_mode)

    def to_arrow(self, data: bytes | bytearray | memoryview) -> pa.Table:
        # docstring inherited
        check_data(data)
        pyarrow_module()
        import pyarrow as pa

        try:
            with pa.ipc.open_file(pa.BufferReader(data)) as reader:
                table = reader.read_all()
            # IPC buffers are not checked on read: a damaged offset or length
            # would be followed out of bounds (a segfault, found by the damage
            # matrix) by the first access. Full validation refuses it first.
            table.validate(full=True)
        except _arrow_exc() as exc:
            raise _corrupt(exc) from exc
        return table

    def decode(self, data: bytes | bytearray | memoryview) -> list[dict[str, Any]]:
        # docstring inherited
        rows: list[dict[str, Any]] = self.to_arrow(data).to_pylist()
        return rows

    def iter_decode(self, chunks: Iterable[bytes]) -> Iterator[list[dict[str, Any]]]:
        # docstring inherited
        pyarrow_module()
        import pyarrow as pa

        raw = _ChunkReader(checked_chunks(chunks))
        magic = raw.read(len(_FILE_MAGIC)) or b""
        while len(magic) < len(_FILE_MAGIC):
            more = raw.read(len(_FILE_MAGIC) - len(magic))
            if not more:
                break
            magic += more
        if magic != _FILE_MAGIC:
            raise _corrupt("missing ARROW1 magic")
        buffered = io.BufferedReader(raw, 1 << 16)
        try:
            reader = pa.ipc.open_stream(buffered)
        except _arrow_exc() as exc:
            raise _corrupt(exc) from exc
        while True:
            try:
                batch = reader.read_next_batch()
                batch.validate(full=True)  # see to_arrow
            except StopIteration:
                break
            except _arrow_exc() as exc:
                raise _corrupt(exc) from exc
            rows: list[dict[str, Any]] = batch.to_pylist()
            if rows:
                yield rows
        # The footer follows the end-of-stream marker: check it is complete so
        # a truncated file is reported here as it is by decode().
        rest = buffered.read()
        if len(rest) < 10 or rest[-6:] != b"ARROW1":
            raise _corrupt("truncated (no footer)")
        footer_len = int.from_bytes(rest[-10:-6], "little", signed=True)
        if footer_len + 10 != len(rest):
            raise _corrupt("truncated or trailing bytes after the footer")

    def iter_batches(
        self, file: BinaryIO, batch_size: int = 65536
    ) -> Iterator[list[dict[str, Any]]]:
        # docstring inherited
        check_file(file, batch_size)
        pyarrow_module()
        import pyarrow as pa

        try:
            reader = pa.ipc.open_file(cast("Any", file))
        except _arrow_exc() as exc:
            raise _corrupt(exc) from exc
        for i in range(reader.num_record_batches):
            try:
                batch = reader.get_batch(i)
                batch.validate(full=True)  # see to_arrow
            except _arrow_exc() as exc:
                raise _corrupt(exc) from exc
            for start in range(0, batch.num_rows, batch_size):
                rows: list[dict[str, Any]] = batch.slice(start, batch_size).to_pylist()
                yield rows
