"""Ingestion policies: what ``emit`` promises, and what happens when the store is slow.

Both policies are frozen values; the ingestor records their :meth:`describe`
output in the metadata of every snapshot it commits, so a reader knows under
which trade-off the data was written.
"""

from __future__ import annotations

from typing import Any, Literal, final

import attrs

from .._validate import check_int, check_number, safe_repr
from ..errors import InvalidInputError

__all__ = ("Buffered", "OnFull", "Policy", "Strict")

OnFull = Literal["block", "drop_newest", "drop_oldest"]
"""What :class:`Buffered` does with an emit that finds its buffer full."""

_ON_FULL: tuple[str, ...] = ("block", "drop_newest", "drop_oldest")
MiB = 1024 * 1024


def _rows(_: object, attr: attrs.Attribute[int], value: int) -> None:
    check_int(attr.name, value)


def _bytes(_: object, attr: attrs.Attribute[int], value: int) -> None:
    check_int(attr.name, value)


def _seconds(_: object, attr: attrs.Attribute[float], value: float) -> None:
    check_number(attr.name, value)


def _on_full(_: object, attr: attrs.Attribute[str], value: object) -> None:
    # A str first: ``in`` would hand a hostile object's ``__eq__`` the comparison.
    if not isinstance(value, str) or value not in _ON_FULL:
        raise InvalidInputError(
            f"on_full must be one of {', '.join(_ON_FULL)}, not {safe_repr(value)}"
        )


@final
@attrs.frozen
class Strict:
    """Every ``emit`` returns once its record is durably committed; nothing is dropped.

    Records emitted while a batch is being committed form the next batch, so
    many concurrent producers share one commit (one data file per partition,
    one commit record) and ``emit`` costs about one commit round trip whatever
    the number of producers. When the store slows down, commits take longer and
    ``emit`` waits longer (backpressure): at most one batch is in flight and
    one more is held, so memory is bounded by ``2 * max_batch_rows`` records
    (``2 * max_batch_bytes``) plus one record per blocked producer.

    A record the ingestor cannot write is never dropped silently: its ``emit``
    raises (and the record is counted under ``dropped_by_reason``).

    Parameters
    ----------
    max_batch_rows, max_batch_bytes
        Largest batch (one snapshot) in records and in estimated encoded bytes.
    max_delay
        Seconds a batch may wait for more records before it is committed once
        the writer is free (0: commit at once; larger values trade ``emit``
        latency for bigger batches when producers are few).

    Raises
    ------
    InvalidInputError
        A parameter is out of range.
    """

    max_batch_rows: int = attrs.field(default=1000, validator=_rows)
    max_batch_bytes: int = attrs.field(default=8 * MiB, validator=_bytes)
    max_delay: float = attrs.field(default=0.0, validator=_seconds)

    @property
    def name(self) -> str:
        """``"strict"``."""
        return "strict"

    def describe(self) -> dict[str, Any]:
        """The policy's name and parameters, as recorded in snapshot metadata."""
        return {"name": self.name, **attrs.asdict(self)}


@final
@attrs.frozen
class Buffered:
    """``emit`` returns at once while a bounded buffer has room; batches are
    committed on size or time; when the buffer is full, ``on_full`` decides.

    The buffer counts every record the ingestor holds — queued, and in the
    batch being committed — so memory stays bounded whatever the store does
    (a store that stalls fills the buffer, then ``on_full`` applies). A batch
    is committed as soon as ``flush_rows`` records or ``flush_bytes`` bytes are
    queued, when the oldest queued record is ``flush_interval`` seconds old, or
    at once when the buffer is full. Transient store failures are retried
    (with backoff) for as long as it takes: records are only dropped when the
    buffer is full (or invalid, or on ``aclose`` past its deadline), and every
    drop is counted by reason and event type, logged, and reported in the
    metadata of the next snapshot.

    Parameters
    ----------
    max_buffer_rows, max_buffer_bytes
        Capacity in records and in estimated encoded bytes. A record larger
        than ``max_buffer_bytes`` is accepted only into an empty buffer.
    flush_rows, flush_bytes
        Size thresholds; also the largest batch (one snapshot).
    flush_interval
        Seconds after which a queued record is committed even if the batch is
        small.
    on_full
        ``"block"``: ``emit`` waits for room (first come, first served);
        ``"drop_newest"``: the record being emitted is dropped;
        ``"drop_oldest"``: the oldest record not yet handed to the store is
        dropped to make room (if every held record is already being written,
        the new one is dropped instead).

    Raises
    ------
    InvalidInputError
        A parameter is out of range, or a flush threshold exceeds the capacity.
    """

    max_buffer_rows: int = attrs.field(default=100_000, validator=_rows)
    max_buffer_bytes: int = attrs.field(default=64 * MiB, validator=_bytes)
    flush_rows: int = attrs.field(default=10_000, validator=_rows)
    flush_bytes: int = attrs.field(default=8 * MiB, validator=_bytes)
    flush_interval: float = attrs.field(default=1.0, validator=_seconds)
    on_full: OnFull = attrs.field(default="block", validator=_on_full)

    def __attrs_post_init__(self) -> None:
        if self.flush_rows > self.max_buffer_rows:
            raise InvalidInputError(
                f"flush_rows ({self.flush_rows}) must not exceed max_buffer_rows "
                f"({self.max_buffer_rows})"
            )
        if self.flush_bytes > self.max_buffer_bytes:
            raise InvalidInputError(
                f"flush_bytes ({self.flush_bytes}) must not exceed max_buffer_bytes "
                f"({self.max_buffer_bytes})"
            )
        if self.flush_interval <= 0:
            raise InvalidInputError(f"flush_interval must be > 0, not {self.flush_interval!r}")

    @property
    def name(self) -> str:
        """``"buffered"``."""
        return "buffered"

    def describe(self) -> dict[str, Any]:
        """The policy's name and parameters, as recorded in snapshot metadata."""
        return {"name": self.name, **attrs.asdict(self)}


Policy = Strict | Buffered
"""Either ingestion policy."""
