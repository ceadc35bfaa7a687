"""The Codec ABC: records to bytes and back, with statistics, whole or streamed.

A codec turns records (mappings with ``str`` keys, or a ``pyarrow.Table`` /
``RecordBatch`` where the codec is Arrow-based) into the bytes of one data file
and back. Encoding also reports what the manifest records about the file: row
count, per-column statistics, and the min/max of a timestamp field.

Every method is synchronous and CPU-only (no I/O): the Dataset runs them in
worker threads, never on the event loop.

Timestamps (``timestamp_field=``)
---------------------------------
Every record must carry the field, with one of:

- a :class:`datetime.datetime` (a naive one is taken as UTC) or a
  :class:`datetime.date` (midnight UTC);
- an ISO-8601 string accepted by :meth:`datetime.datetime.fromisoformat`
  (``"2024-05-01T12:00:00Z"``, ``"2024-05-01 12:00:00+02:00"``; no offset means UTC);
- a number (``int``/``float``, not ``bool``): seconds since the Unix epoch;
- in Arrow data, a timestamp or date column, or a numeric column of epoch seconds.

A record missing the field, a null, or a value of any other kind raises
:class:`~aiolode.errors.SchemaViolationError` naming the field. The reported
``min_timestamp``/``max_timestamp`` are UTC ISO strings with microseconds and a
``Z`` suffix (``"2024-05-01T10:00:00.000000Z"``), the form manifests use.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, TypeAlias, cast

import attrs

from .._options import build_from_options
from .._validate import check_int
from ..errors import CodecNotStreamableError, InvalidInputError, ManifestFormatError
from ..schema._core import Schema

if TYPE_CHECKING:
    from typing import Self

    import pyarrow as pa

    from ..schema._core import SchemaMode

__all__ = [
    "Codec",
    "ColumnStats",
    "EncodedFile",
    "EncodedTail",
    "Records",
    "StatValue",
    "StreamEncoder",
    "check_data",
    "check_encode_args",
    "check_file",
    "checked_chunks",
    "codec_from_name",
    "register_codec",
]

StatValue: TypeAlias = "str | int | float | bool | None"
"""A JSON-safe statistic: numbers, strings, booleans; timestamps and dates as
ISO strings; ``None`` when unknown (no non-null value, or not comparable)."""

Records: TypeAlias = "Iterable[Mapping[str, Any]] | pa.Table | pa.RecordBatch | Any"
"""What ``encode``/``write`` accept: mappings, or Arrow data for every codec (a
``pyarrow.Table``/``RecordBatch``, a list of RecordBatches, or anything with
``__arrow_c_stream__``: see :mod:`aiolode.codecs._arrowdata`)."""


@attrs.frozen
class ColumnStats:
    """Statistics of one top-level column over one data file.

    Attributes
    ----------
    min, max
        Smallest and largest non-null value, JSON-safe (see :data:`StatValue`);
        ``None`` when the column has no non-null value or its values are not
        comparable scalars (nested, binary, mixed types).
    null_count
        Rows where the column is null or absent.
    """

    min: str | int | float | bool | None
    max: str | int | float | bool | None
    null_count: int


@attrs.frozen
class EncodedFile:
    """One encoded data file and what the manifest records about it.

    Attributes
    ----------
    data
        The complete file bytes (before any outer compression).
    row_count
        Number of records encoded.
    stats
        Per-column statistics keyed by top-level column name, or ``None`` if the
        codec does not compute them.
    min_timestamp, max_timestamp
        UTC ISO strings (``...Z``) of the ``timestamp_field`` extremes, or
        ``None`` when no field was given or there were no rows.
    schema
        The :class:`~aiolode.schema.Schema` the file's records have: the
        ``schema`` passed to the encoder merged with the records (see
        :func:`aiolode.schema.merge`), or the records' own when none was passed.
    """

    data: bytes
    row_count: int
    stats: dict[str, ColumnStats] | None = None
    min_timestamp: str | None = None
    max_timestamp: str | None = None
    schema: Schema | None = None


@attrs.frozen
class EncodedTail:
    """What :meth:`StreamEncoder.finish` returns: the last bytes and the totals.

    Attributes
    ----------
    data
        Bytes still to emit after everything :meth:`StreamEncoder.write`
        returned (a Parquet footer, a final row group); possibly ``b""``.
    row_count, stats, min_timestamp, max_timestamp, schema
        Totals over every record written, as in :class:`EncodedFile`.
    """

    data: bytes
    row_count: int
    stats: dict[str, ColumnStats] | None = None
    min_timestamp: str | None = None
    max_timestamp: str | None = None
    schema: Schema | None = None


class StreamEncoder(abc.ABC):
    """Incremental encoder of one data file, from :meth:`Codec.open_encoder`.

    The concatenation of every :meth:`write` result and ``finish().data`` is one
    complete file, decodable by the codec. Not thread-safe: use it from one
    thread at a time (successive worker-thread calls are fine).
    """

    @abc.abstractmethod
    def write(self, records: Records) -> bytes:
        """Encode a batch; return the bytes ready to emit now (possibly ``b""``).

        Memory: the batch plus whatever the codec buffers (at most about one
        Parquet row group; nothing for JSONL).

        Raises
        ------
        SchemaViolationError
            A record does not fit (non-``str`` key, unserialisable value, a type
            that does not fit the schema fixed by earlier batches, a bad
            timestamp); ``.field`` names the column. The encoder stays usable:
            nothing of the rejected batch was written.
        InvalidInputError
            The encoder is already finished.
        """

    @abc.abstractmethod
    def finish(self) -> EncodedTail:
        """Flush and close; return the final bytes and the totals. Call once.

        Raises
        ------
        InvalidInputError
            The encoder is already finished.
        """

    def abort(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release buffers without producing a file (after a failed write)."""

    @property
    @abc.abstractmethod
    def row_count(self) -> int:
        """Records accepted so far."""


class Codec(abc.ABC):
    """A record encoding. Subclass to add one, then :func:`register_codec` it.

    Class attributes describe capabilities the Dataset checks once, up front:

    - ``name`` is recorded in manifests and must be unique; ``extension`` (with
      its dot) ends data-file keys;
    - ``accepts_outer_compression`` is ``False`` for formats that compress
      internally (Parquet): pairing them with a Compressor is refused;
    - ``streaming``: :meth:`open_encoder` works (bounded-memory encode);
    - ``supports_forward_stream``: :meth:`iter_decode` decodes a forward-only
      chunk stream (JSONL, Arrow IPC);
    - ``supports_random_access``: :meth:`iter_batches` decodes from a seekable
      file piece by piece (Parquet row groups, Arrow IPC record batches).
    """

    name: ClassVar[str]
    extension: ClassVar[str]
    accepts_outer_compression: ClassVar[bool] = True
    streaming: ClassVar[bool] = True
    supports_forward_stream: ClassVar[bool] = False
    supports_random_access: ClassVar[bool] = False

    # ---------------------------------------------------------------- options
    @abc.abstractmethod
    def options(self) -> dict[str, Any]:
        """Return the JSON-safe options recorded in the manifest."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Rebuild the codec from :meth:`options` (as read from a manifest).

        Unknown option names are ignored so that a newer writer's extra options
        do not make a file unreadable.

        Raises
        ------
        ManifestFormatError
            An option has an invalid value.
        """
        if not isinstance(options, Mapping):
            raise ManifestFormatError(
                f"{cls.name} options must be a JSON object, not {type(options).__name__}",
                field="codec_options",
            )
        return build_from_options(
            cls, options, cls._option_names(), what=f"codec {cls.name!r}", field="codec_options"
        )

    @classmethod
    def _option_names(cls) -> frozenset[str]:
        """Names :meth:`from_options` passes to ``__init__``."""
        return frozenset()

    # ----------------------------------------------------------------- encode
    @abc.abstractmethod
    def encode(
        self,
        records: Records,
        *,
        timestamp_field: str | None = None,
        schema: Schema | None = None,
        schema_mode: SchemaMode = "strict",
    ) -> EncodedFile:
        """Encode a whole batch into one file.

        With ``schema`` (a dataset's recorded schema), the records must fit it
        as :func:`aiolode.schema.merge` says for ``schema_mode``, and every
        value is converted exactly or refused: nothing is stored lossily.
        Without one, the records' own types are used; a column holding values
        of two types (``200`` and ``"timeout"``) is refused. The result's
        ``schema`` is what was written.

        Memory: the records plus the encoded file (Arrow codecs: plus one
        columnar copy of the records).

        Raises
        ------
        SchemaViolationError
            A record does not fit the codec or schema, a value would not convert
            exactly, a non-nullable column is missing or null, or a timestamp is
            missing or invalid; ``.field`` names the column.
        InvalidInputError
            Arrow input that is not tabular (a Series), or a bad ``schema_mode``.
        MissingDependencyError
            The codec (or Arrow input) needs pyarrow, which is not installed.
        """

    @abc.abstractmethod
    def open_encoder(
        self,
        *,
        timestamp_field: str | None = None,
        schema: Schema | None = None,
        schema_mode: SchemaMode = "strict",
    ) -> StreamEncoder:
        """Start an incremental encode of one file (see :class:`StreamEncoder`).

        ``schema`` and ``schema_mode`` as for :meth:`encode`; every batch must
        fit. Columnar encoders fix their file schema when they write their
        first row group or record batch: a later batch that would add or
        change a column is refused.

        Raises
        ------
        CodecNotStreamableError
            The codec cannot encode incrementally (``streaming`` is False).
        MissingDependencyError
            The codec needs pyarrow, which is not installed.
        """

    # ----------------------------------------------------------------- decode
    @abc.abstractmethod
    def decode(self, data: bytes | bytearray | memoryview) -> list[dict[str, Any]]:
        """Decode a whole file into records (memory: the file plus the records).

        Raises
        ------
        CorruptDataError
            ``data`` is not a valid file of this codec.
        """

    @abc.abstractmethod
    def to_arrow(self, data: bytes | bytearray | memoryview) -> pa.Table:
        """Decode a whole file into a ``pyarrow.Table``.

        Raises
        ------
        CorruptDataError
            ``data`` is not a valid file of this codec.
        SchemaViolationError
            (JSONL) the records do not form a table (inconsistent column types).
        MissingDependencyError
            pyarrow is not installed.
        """

    def iter_decode(self, chunks: Iterable[bytes]) -> Iterator[list[dict[str, Any]]]:
        """Decode a forward-only stream of chunks (boundaries anywhere) in batches.

        Memory: one chunk plus one batch of records.

        Raises
        ------
        CodecNotStreamableError
            The codec needs random access (``supports_forward_stream`` is False).
        CorruptDataError
            The stream is not a valid file of this codec (raised when reached).
        """
        raise CodecNotStreamableError(
            f"codec {self.name!r} cannot decode a forward-only stream; "
            "use iter_batches() on a seekable file"
        )

    def iter_batches(
        self, file: BinaryIO, batch_size: int = 65536
    ) -> Iterator[list[dict[str, Any]]]:
        """Decode a seekable file piece by piece (at most ``batch_size`` records each).

        Memory: about one row group / record batch.

        Raises
        ------
        CodecNotStreamableError
            The codec has no random-access layout (``supports_random_access``).
        CorruptDataError
            The file is not a valid file of this codec.
        """
        raise CodecNotStreamableError(
            f"codec {self.name!r} has no random-access layout; use iter_decode()"
        )

    # ------------------------------------------------------------------ dunder
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options() == self.options()

    def __hash__(self) -> int:
        return hash((type(self), repr(sorted(self.options().items()))))


_REGISTRY: dict[str, type[Codec]] = {}


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Make manifests naming ``cls.name`` readable (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def codec_from_name(name: str | None, options: Mapping[str, Any] | None = None) -> Codec | None:
    """Return the codec a manifest records (``None``: raw bytes, no codec).

    Raises
    ------
    ManifestFormatError
        No codec of that name is known, or its options are invalid.
    """
    if name is None:
        return None
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ManifestFormatError(
            f"unknown codec {name!r}; known: {sorted(_REGISTRY)}", field="codec"
        ) from None
    return cls.from_options(options or {})


# ------------------------------------------------------ argument checks
# The codecs' public methods check their arguments first, so that a wrong type
# is an InvalidInputError, never a TypeError/AttributeError from deep inside.
def check_data(data: object) -> None:
    """``data`` must be bytes, a bytearray or a memoryview.

    Raises
    ------
    InvalidInputError
        It is not.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError(
            f"data must be bytes, a bytearray or a memoryview, not {type(data).__name__}"
        )


def check_encode_args(timestamp_field: object, schema: object) -> None:
    """``timestamp_field`` is None or a str; ``schema`` is None or a Schema.

    Raises
    ------
    InvalidInputError
        One is not.
    """
    if timestamp_field is not None and not isinstance(timestamp_field, str):
        raise InvalidInputError(
            f"timestamp_field must be None or a str, not {type(timestamp_field).__name__}"
        )
    if schema is not None and not isinstance(schema, Schema):
        raise InvalidInputError(
            f"schema must be None or an aiolode.Schema, not {type(schema).__name__}"
        )


def checked_chunks(chunks: object) -> Iterator[bytes]:
    """The chunks of a forward-only stream, each checked as it is reached.

    Raises
    ------
    InvalidInputError
        ``chunks`` is not an iterable (at once), or a chunk is not bytes-like
        (when reached).
    """
    if isinstance(chunks, bytes | bytearray | memoryview | str) or not isinstance(chunks, Iterable):
        raise InvalidInputError(f"chunks must be an iterable of bytes, not {type(chunks).__name__}")
    return _each_checked(chunks)


def _each_checked(chunks: Iterable[object]) -> Iterator[bytes]:
    for chunk in chunks:
        check_data(chunk)
        yield bytes(cast("bytes", chunk))


def check_file(file: object, batch_size: object) -> None:
    """``file`` is a readable, seekable binary file; ``batch_size`` an int >= 1.

    Raises
    ------
    InvalidInputError
        One is not.
    """
    check_int("batch_size", batch_size, minimum=1, maximum=2**31 - 1)
    if not all(callable(getattr(file, m, None)) for m in ("read", "seek", "tell")):
        raise InvalidInputError(
            f"file must be a readable, seekable binary file, not {type(file).__name__}"
        )
