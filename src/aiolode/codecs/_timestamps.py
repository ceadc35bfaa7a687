"""Timestamp-field extraction shared by the codecs (see the ``_base`` docstring)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._validate import safe_repr
from ..errors import SchemaViolationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TimestampRange", "iso_utc", "json_safe", "to_utc"]


def iso_utc(dt: datetime) -> str:
    """The manifest form of an instant: UTC, microseconds, ``Z`` suffix."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _bad(field: str, value: Any, why: str = "") -> SchemaViolationError:
    return SchemaViolationError(
        f"timestamp field {field!r} has {value!r}{why}; expected a datetime, an ISO-8601 "
        "string or epoch seconds",
        field=field,
    )


def to_utc(value: Any, field: str) -> datetime:
    """Interpret one timestamp value as an aware UTC datetime.

    Raises
    ------
    SchemaViolationError
        ``value`` is missing (``None``) or of an unsupported kind or range.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise _bad(field, value, " (not ISO-8601)") from None
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad(field, value)
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise _bad(field, value, " (out of range)") from None
    if value is None:
        raise SchemaViolationError(f"timestamp field {field!r} is null", field=field)
    raise _bad(field, value)


class TimestampRange:
    """Running min/max of a timestamp field over records or Arrow columns."""

    __slots__ = ("field", "hi", "lo")

    def __init__(self, field: str) -> None:
        self.field = field
        self.lo: datetime | None = None
        self.hi: datetime | None = None

    def add(self, dt: datetime) -> None:
        if self.lo is None or dt < self.lo:
            self.lo = dt
        if self.hi is None or dt > self.hi:
            self.hi = dt

    def add_value(self, value: Any) -> None:
        self.add(to_utc(value, self.field))

    def add_records(self, records: list[Any]) -> None:
        """Fold in the field of every mapping (missing → error)."""
        field = self.field
        marker = _MISSING
        for i, rec in enumerate(records):
            value = rec.get(field, marker)
            if value is marker:
                raise SchemaViolationError(
                    f"record {i} has no timestamp field {field!r}", field=field
                )
            self.add(to_utc(value, field))

    def add_table(self, table: pa.Table | pa.RecordBatch) -> None:
        """Fold in a column without a Python loop over rows (except string columns).

        Raises
        ------
        SchemaViolationError
            The column is missing, has nulls, or is of an unsupported type.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        field = self.field
        if table.num_rows == 0:
            return
        if field not in table.schema.names:
            raise SchemaViolationError(
                f"records have no timestamp field {safe_repr(field)}", field=field
            )
        col = table.column(field)
        if col.null_count:
            raise SchemaViolationError(
                f"timestamp field {field!r} has {col.null_count} null value(s)", field=field
            )
        typ = col.type
        if pa.types.is_timestamp(typ):
            # Nanosecond scalars cannot become datetime without pandas; the
            # manifest keeps microseconds anyway.
            col = pc.cast(col, pa.timestamp("us", typ.tz), safe=False)
            mm = pc.min_max(col)
            self.add_value(mm["min"].as_py())
            self.add_value(mm["max"].as_py())
        elif pa.types.is_date(typ) or pa.types.is_integer(typ) or pa.types.is_floating(typ):
            mm = pc.min_max(col)
            self.add_value(mm["min"].as_py())
            self.add_value(mm["max"].as_py())
            # min_max skips NaN; a NaN epoch is still invalid.
            if pa.types.is_floating(typ) and pc.any(pc.is_nan(col)).as_py():
                raise _bad(field, float("nan"))
        elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
            for value in pc.unique(col).to_pylist():
                self.add_value(value)
        else:
            raise SchemaViolationError(
                f"timestamp field {field!r} has Arrow type {typ}; expected a timestamp, "
                "date, number (epoch seconds) or ISO-8601 string column",
                field=field,
            )

    def merge(self, other: TimestampRange) -> None:
        if other.lo is not None:
            self.add(other.lo)
        if other.hi is not None:
            self.add(other.hi)

    def result(self) -> tuple[str | None, str | None]:
        return (
            iso_utc(self.lo) if self.lo is not None else None,
            iso_utc(self.hi) if self.hi is not None else None,
        )


_MISSING: Any = object()


def json_safe(value: Any) -> str | int | float | bool | None:
    """Turn a statistic into a JSON-safe scalar, or ``None`` if it has no such form.

    Aware datetimes become manifest-form UTC strings (``...Z``); naive ones the
    same form without the ``Z``; dates and times their ``isoformat()``; decimals
    their string; non-finite floats and binary values ``None``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return iso_utc(value)
        # Naive (an Arrow timestamp without zone): kept naive, fixed width like iso_utc.
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return None
