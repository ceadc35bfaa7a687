"""Turning what a producer emits into the record that is written.

Each record gets its lineage (``run_id``, ``event_type``; ``source`` and
``category`` from the run when set; ``day`` when the layout partitions by it)
here, at ``emit`` time, so a bad record is refused to the producer that
emitted it rather than discovered in a batch later. The ``seq`` field is
added when the record is accepted (the ingestor's buffer numbers records).

For a JSON Lines dataset the buffer holds each record as its JSON line
(bytes), encoded here exactly as the codec would write it, so the buffer's
byte capacity is close to the memory it takes: a small record of ten fields
is ~250 bytes as JSON but 1-2 KiB as Python objects. The lines are decoded
back (in bulk, off the event loop) just before their batch is written; the
file written is the same as if the records had been kept as objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import orjson

from .._validate import safe_repr
from ..errors import InvalidInputError, SchemaViolationError

if TYPE_CHECKING:
    from ..layout import Layout
    from ._run import Run

__all__ = (
    "ITEM_OVERHEAD",
    "RESERVED_FIELDS",
    "RecordMaker",
    "decode_lines",
    "encode_line",
    "estimate_size",
    "with_seq",
)

#: Fields the ingestor sets on every record (``seq`` is added on acceptance).
RESERVED_FIELDS = ("run_id", "seq", "event_type")

_MAX_EVENT_TYPE = 200
#: Room for ``"seq":<int>,`` added after the size estimate.
_SEQ_BYTES = 24
#: What holding one record costs besides its payload (the buffer's item, the
#: bytes object's header), counted against the buffer's byte capacity.
ITEM_OVERHEAD = 128
#: The JSON Lines codec's orjson options: datetimes and dataclasses go through
#: ``_json_default`` (ISO text; refused), exactly as the codec writes them.
_LINE_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _json_default(value: Any) -> Any:
    # The same value kinds the JSONL codec writes (as ISO strings / lists / objects).
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | list | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _non_finite(value: Any, depth: int = 0) -> bool:
    """Whether a NaN or an infinity hides in ``value`` (orjson would write null;
    the JSON Lines codec refuses them)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if depth > 64:
        return False  # orjson refuses deeper nesting anyway
    if isinstance(value, Mapping):
        return any(_non_finite(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v, depth + 1) for v in value)
    return False


def encode_line(record: Mapping[str, Any]) -> bytes:
    """``record`` as the JSON Lines codec writes it (without the newline).

    Raises
    ------
    SchemaViolationError
        A value JSON Lines cannot hold (NaN and infinities included).
    """
    try:
        line = orjson.dumps(record, default=_json_default, option=_LINE_OPTS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise SchemaViolationError(
            f"record is not JSON-serialisable ({exc}); JSON Lines takes str, int (64-bit), "
            "float, bool, None, lists, str-keyed mappings, and datetime/date/time"
        ) from None
    if _non_finite(record):
        raise SchemaViolationError("record holds a NaN or an infinite float; JSON Lines cannot")
    return line


def with_seq(line: bytes, seq: int) -> bytes:
    """The JSON line of a record (a non-empty object) with ``"seq": seq`` added last."""
    return b'%s,"seq":%d}' % (line[:-1], seq)


def decode_lines(lines: list[bytes]) -> list[dict[str, Any]]:
    """Decode buffered JSON lines in one C call (run it off the event loop)."""
    out: list[dict[str, Any]] = orjson.loads(b"[" + b",".join(lines) + b"]")
    return out


def estimate_size(record: Mapping[str, Any], *, strict_json: bool) -> int:
    """Estimated encoded size of ``record`` (its JSON Lines size).

    With ``strict_json`` (a JSON Lines dataset) a value JSON cannot hold is
    refused here; otherwise (Parquet, Arrow take more types) the estimate
    falls back to the length of the record's ``repr``.

    Raises
    ------
    SchemaViolationError
        ``strict_json`` and a value is not JSON-serialisable.
    """
    try:
        return len(orjson.dumps(record, default=_json_default)) + 1
    except (TypeError, orjson.JSONEncodeError) as exc:
        if strict_json:
            raise SchemaViolationError(
                f"record is not JSON-serialisable ({exc}); JSON Lines takes str, int, float, "
                "bool, None, lists, str-keyed mappings, and datetime/date/time"
            ) from None
        return len(safe_repr(record, limit=1 << 20)) + 1


def _utc_day(value: datetime, what: str) -> str:
    """The UTC day of an aware datetime.

    Raises
    ------
    InvalidInputError
        The moment is outside years 1 to 9999 in UTC, or its tzinfo answers
        ``utcoffset()`` with something that is not a timedelta of less than a day.
    """
    try:
        return value.astimezone(UTC).date().isoformat()
    except (OverflowError, TypeError, ValueError):
        raise InvalidInputError(
            f"{what} must be a time between years 1 and 9999 in UTC, not {safe_repr(value)}"
        ) from None


def _as_day(value: object, what: str) -> str:
    if isinstance(value, datetime):
        try:
            naive = value.utcoffset() is None
        except (TypeError, ValueError):
            naive = False  # a tzinfo answering nonsense: refused below
        if naive:
            raise InvalidInputError(f"{what} must be timezone-aware, not {safe_repr(value)}")
        return _utc_day(value, what)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(f"{what} is not an ISO 8601 time: {safe_repr(value)}") from None
        if parsed.tzinfo is None:
            # A bare date (or naive time) names its own day; nothing to convert.
            return parsed.date().isoformat()
        return _utc_day(parsed, what)
    raise InvalidInputError(
        f"{what} must be an aware datetime, a date or an ISO 8601 string, not {safe_repr(value)}"
    )


class RecordMaker:
    """Builds the written form of emitted records for one ingestor."""

    def __init__(self, run: Run, layout: Layout, *, time_field: str | None, lines: bool) -> None:
        self._run_id = run.run_id
        self._fixed: dict[str, str] = {"run_id": run.run_id}
        if run.source is not None:
            self._fixed["source"] = run.source
        if run.category is not None:
            self._fixed["category"] = run.category
        self._layout = layout
        self._partitioned = bool(layout.partition_keys)
        self._needs_day = "day" in layout.partition_keys
        self._time_field = time_field
        self._lines = lines

    def make(
        self, record: object, event_type: object, event_time: object
    ) -> tuple[dict[str, Any] | bytes, int]:
        """The record to write (without ``seq``) — its JSON line for a JSON Lines
        dataset, else a dict — and what holding it costs, in bytes.

        Raises
        ------
        InvalidInputError
            Not a mapping; a bad ``event_type`` or event time; a field the
            ingestor sets holds another value; a partition field is missing.
        SchemaViolationError
            A value the dataset's codec cannot hold (JSON Lines), or a
            partition value of an unsupported type.
        """
        if not isinstance(record, Mapping):
            raise InvalidInputError(f"emit() takes a mapping, not {safe_repr(record)}")
        if (
            not isinstance(event_type, str)
            or not event_type
            or len(event_type) > _MAX_EVENT_TYPE
            or not event_type.isprintable()
        ):
            raise InvalidInputError(
                f"event_type must be a non-empty printable str of at most {_MAX_EVENT_TYPE} "
                f"characters, not {safe_repr(event_type)}"
            )
        out = dict(record)
        if "seq" in out:
            raise InvalidInputError(
                "record field 'seq' is set by the ingestor (the record's position in the run)"
            )
        self._set(out, "event_type", event_type)
        for k, v in self._fixed.items():
            self._set(out, k, v)
        if self._needs_day:
            self._set(out, "day", self._day(out, event_time))
        elif event_time is not None:
            _as_day(event_time, "event_time")  # validated even when no day is derived
        if self._partitioned:
            self._layout.partition_values(out)  # raises if a partition field is missing
        if self._lines:
            line = encode_line(out)
            return line, len(line) + _SEQ_BYTES + ITEM_OVERHEAD
        return out, estimate_size(out, strict_json=False) + _SEQ_BYTES + ITEM_OVERHEAD

    def _day(self, out: Mapping[str, Any], event_time: object) -> str:
        if event_time is not None:
            return _as_day(event_time, "event_time")
        if self._time_field is not None:
            if self._time_field not in out:
                raise InvalidInputError(
                    f"record has no time field {self._time_field!r} (the ingestor's time_field) "
                    "and no event_time was given"
                )
            return _as_day(out[self._time_field], f"record field {self._time_field!r}")
        return datetime.now(UTC).date().isoformat()

    @staticmethod
    def _set(out: dict[str, Any], key: str, value: str) -> None:
        have = out.get(key, value)
        if have != value:
            raise InvalidInputError(
                f"record field {key!r} is {safe_repr(have)}, but the ingestor sets it to "
                f"{value!r} (from the run or the emit call)"
            )
        out[key] = value
