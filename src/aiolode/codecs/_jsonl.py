"""JSON Lines: one JSON object per line, UTF-8, ``\\n``-terminated; streams both ways."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, final

from ..errors import CorruptDataError, InvalidInputError, SchemaViolationError
from ._base import Codec, EncodedFile, EncodedTail, StreamEncoder, register_codec
from ._tabular import is_arrow, pyarrow_module, records_to_table
from ._timestamps import TimestampRange

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pyarrow as pa

    from ._base import ColumnStats, Records

__all__ = ["JSONL"]

_NUM = 1
_STR = 2
_BOOL = 3
_OTHER = 4  # nested, or mixed kinds: no min/max


def _default(value: Any) -> Any:
    # Called by json for values it cannot serialise natively.
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default
)
_encode = _encoder.encode


def _check_nested(value: Any, path: str) -> None:
    """Reject what json would change silently: non-``str`` keys in nested mappings."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if type(k) is not str:
                raise SchemaViolationError(
                    f"column {path!r} holds a mapping with non-str key {k!r}", field=path
                )
            _check_nested(v, path)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_nested(v, path)


def _explain(rec: Mapping[str, Any], index: int, exc: Exception) -> SchemaViolationError:
    """Find which field of ``rec`` made serialisation fail (slow path, errors only)."""
    for k, v in rec.items():
        try:
            _encode(v).encode()
        except (TypeError, ValueError, UnicodeEncodeError) as field_exc:
            return SchemaViolationError(
                f"record {index} field {k!r} is not JSON-serialisable: {field_exc} "
                "(JSONL takes str, int, float (finite), bool, None, lists, str-keyed "
                "mappings, and datetime/date/time as ISO strings)",
                field=k,
            )
    return SchemaViolationError(f"record {index} is not JSON-serialisable: {exc}")


class _Stats:
    """Per-column min/max/null count of scalar JSON values (one Python pass)."""

    __slots__ = ("cols", "rows")

    def __init__(self) -> None:
        # name -> [kind, lo, hi, non_null]
        self.cols: dict[str, list[Any]] = {}
        self.rows = 0

    def add(self, rec: Mapping[str, Any]) -> None:
        cols = self.cols
        for k, v in rec.items():
            if v is None:
                if k not in cols:
                    cols[k] = [0, None, None, 0]
                continue
            tv = type(v)
            if tv is str:
                kind = _STR
            elif tv is bool:
                kind = _BOOL
            elif tv is int or (tv is float and math.isfinite(v)):
                kind = _NUM
            elif isinstance(v, datetime | date | time):
                # Statistics describe the stored value: its ISO string.
                kind, v = _STR, v.isoformat()
            else:
                kind = _OTHER
            c = cols.get(k)
            if c is None:
                cols[k] = [kind, v, v, 1]
                continue
            c[3] += 1
            ck = c[0]
            if ck != kind:
                if ck == 0:
                    c[0], c[1], c[2] = kind, v, v
                    continue
                c[0] = _OTHER
            if c[0] == _OTHER:
                continue
            if v < c[1]:
                c[1] = v
            elif v > c[2]:
                c[2] = v

    def result(self) -> dict[str, ColumnStats]:
        from ._base import ColumnStats

        out: dict[str, ColumnStats] = {}
        for k, (kind, lo, hi, non_null) in self.cols.items():
            if kind in (0, _OTHER):
                lo = hi = None
            out[k] = ColumnStats(min=lo, max=hi, null_count=self.rows - non_null)
        return out


def _encode_batch(
    records: Records, stats: _Stats | None, ts: TimestampRange | None, first_index: int
) -> tuple[bytes, int]:
    """Encode records to newline-terminated lines; return (bytes, count)."""
    if is_arrow(records):
        # Arrow input: its own rows (timestamps become ISO strings via _default).
        rows: Iterable[Any] = records.to_pylist()  # type: ignore[union-attr]
    else:
        rows = records  # type: ignore[assignment]
    lines: list[str] = []
    append = lines.append
    batch = list(rows) if not isinstance(rows, list) else rows
    for i, rec in enumerate(batch, first_index):
        if type(rec) is not dict:
            if not isinstance(rec, Mapping):
                raise SchemaViolationError(
                    f"record {i} is a {type(rec).__name__}, not a mapping with str keys"
                )
            rec = dict(rec)
        for k, v in rec.items():
            if type(k) is not str:
                raise SchemaViolationError(
                    f"record {i} key {k!r} is a {type(k).__name__}, not a str", field=str(k)
                )
            if type(v) is dict or type(v) is list:
                _check_nested(v, k)
        try:
            append(_encode(rec))
        except (TypeError, ValueError) as exc:
            raise _explain(rec, i, exc) from exc
    # Validate everything before folding anything in: a rejected batch leaves
    # the stream encoder's totals untouched.
    if ts is not None:
        ts.add_records(batch)
    if stats is not None:
        for rec in batch:
            stats.add(rec)
        stats.rows += len(batch)
    if not lines:
        return b"", 0
    lines.append("")
    text = "\n".join(lines)
    try:
        data = text.encode()
    except UnicodeEncodeError as exc:
        for i, rec in enumerate(batch, first_index):
            try:
                _encode(rec).encode()
            except UnicodeEncodeError as rec_exc:
                raise _explain(rec, i, rec_exc) from exc
        raise SchemaViolationError(f"records are not valid Unicode: {exc}") from exc
    return data, len(batch)


class _JSONLEncoder(StreamEncoder):
    def __init__(self, stats: bool, timestamp_field: str | None) -> None:
        self._stats = _Stats() if stats else None
        self._ts = TimestampRange(timestamp_field) if timestamp_field is not None else None
        self._rows = 0
        self._done = False

    @property
    def row_count(self) -> int:
        return self._rows

    def write(self, records: Records) -> bytes:
        # docstring inherited
        if self._done:
            raise InvalidInputError("the JSONL encoder is already finished")
        ts = TimestampRange(self._ts.field) if self._ts is not None else None
        data, n = _encode_batch(records, self._stats, ts, self._rows)
        if ts is not None and self._ts is not None:
            self._ts.merge(ts)
        self._rows += n
        return data

    def finish(self) -> EncodedTail:
        # docstring inherited
        if self._done:
            raise InvalidInputError("the JSONL encoder is already finished")
        self._done = True
        lo, hi = self._ts.result() if self._ts is not None else (None, None)
        return EncodedTail(
            data=b"",
            row_count=self._rows,
            stats=self._stats.result() if self._stats is not None else None,
            min_timestamp=lo,
            max_timestamp=hi,
        )

    def abort(self) -> None:
        # docstring inherited
        self._done = True


def _parse_line(line: bytes, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise CorruptDataError(
            f"JSONL line {lineno} is not valid JSON: {exc}", format="jsonl"
        ) from exc
    if type(obj) is not dict:
        raise CorruptDataError(
            f"JSONL line {lineno} is a JSON {type(obj).__name__}, not an object", format="jsonl"
        )
    return obj


@final
@register_codec
class JSONL(Codec):
    """JSON Lines: one JSON object per line (UTF-8, each line ends with ``\\n``).

    Streams both ways (``open_encoder``, ``iter_decode``) and takes any outer
    compressor. Values: ``str``, ``int``, finite ``float``, ``bool``, ``None``,
    lists/tuples and ``str``-keyed mappings of those. ``datetime``/``date``/
    ``time`` are written as ISO-8601 strings and **read back as strings** (JSON
    has no timestamp type); tuples come back as lists. Anything else (bytes,
    sets, NaN, non-``str`` keys, lone surrogates) raises
    :class:`~aiolode.errors.SchemaViolationError` naming the field. Arrow
    tables are accepted too (written row by row).

    Parameters
    ----------
    stats
        Compute per-column :class:`ColumnStats` (min/max of scalar columns whose
        non-null values are all numbers, all strings or all booleans; null
        counts for every column). Costs one extra pass over the values in Python.
    """

    name = "jsonl"
    extension = ".jsonl"
    accepts_outer_compression = True
    streaming = True
    supports_forward_stream = True
    supports_random_access = False

    def __init__(self, stats: bool = True) -> None:
        if not isinstance(stats, bool):
            raise InvalidInputError(f"stats must be a bool, not {stats!r}")
        self.stats = stats

    @classmethod
    def _option_names(cls) -> frozenset[str]:
        return frozenset({"stats"})

    def options(self) -> dict[str, Any]:
        # docstring inherited
        return {"stats": self.stats}

    def encode(self, records: Records, *, timestamp_field: str | None = None) -> EncodedFile:
        # docstring inherited
        stats = _Stats() if self.stats else None
        ts = TimestampRange(timestamp_field) if timestamp_field is not None else None
        data, n = _encode_batch(records, stats, ts, 0)
        lo, hi = ts.result() if ts is not None else (None, None)
        return EncodedFile(
            data=data,
            row_count=n,
            stats=stats.result() if stats is not None else None,
            min_timestamp=lo,
            max_timestamp=hi,
        )

    def open_encoder(self, *, timestamp_field: str | None = None) -> StreamEncoder:
        # docstring inherited
        return _JSONLEncoder(self.stats, timestamp_field)

    def decode(self, data: bytes | bytearray | memoryview) -> list[dict[str, Any]]:
        # docstring inherited
        out: list[dict[str, Any]] = []
        for lineno, line in enumerate(bytes(data).split(b"\n"), 1):
            if line.strip():
                out.append(_parse_line(line, lineno))
        return out

    def iter_decode(self, chunks: Iterable[bytes]) -> Iterator[list[dict[str, Any]]]:
        # docstring inherited
        # Splitting on the byte 0x0A is safe mid-character: UTF-8 never uses it
        # inside a multi-byte sequence.
        pending: list[bytes] = []  # pieces of an unfinished line (no quadratic joins)
        lineno = 0
        for chunk in chunks:
            chunk = bytes(chunk)
            if b"\n" not in chunk:
                if chunk:
                    pending.append(chunk)
                continue
            if pending:
                pending.append(chunk)
                chunk = b"".join(pending)
            parts = chunk.split(b"\n")
            last = parts.pop()
            pending = [last] if last else []
            batch: list[dict[str, Any]] = []
            for line in parts:
                lineno += 1
                if line.strip():
                    batch.append(_parse_line(line, lineno))
            if batch:
                yield batch
        rest = b"".join(pending)
        if rest.strip():
            yield [_parse_line(rest, lineno + 1)]

    def to_arrow(self, data: bytes | bytearray | memoryview) -> pa.Table:
        # docstring inherited
        pyarrow_module()
        return records_to_table(self.decode(data))
