"""What an ingestor did: counts that always balance, drops by reason and event type."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, final

import attrs

from .._validate import safe_repr
from ..errors import InvalidInputError

if TYPE_CHECKING:
    import logging

__all__ = (
    "BUFFER_FULL",
    "DEADLINE",
    "DROP_REASONS",
    "INVALID",
    "WRITE_FAILED",
    "Counters",
    "Drop",
    "DropLog",
    "IngestStats",
)

BUFFER_FULL: Final = "buffer_full"
"""Buffered, ``on_full="drop_newest"``/``"drop_oldest"``: no room in the buffer."""
INVALID: Final = "invalid"
"""The codec refused the record on its own (Strict: raised to its emitter)."""
WRITE_FAILED: Final = "write_failed"
"""A permanent store error (permission, dataset dropped...); Strict: raised to the emitter."""
DEADLINE: Final = "deadline"
"""``aclose`` (or the block's exit) ran past its deadline before the record was written."""
DROP_REASONS: Final = (BUFFER_FULL, DEADLINE, INVALID, WRITE_FAILED)

#: Event types listed by name in snapshot metadata; the rest are summed under "*".
MAX_EVENT_TYPES_IN_METADATA = 64


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"counts must be a mapping, not {safe_repr(value)}")
    return dict(value)


@final
@attrs.frozen
class Drop:
    """One dropped record, as handed to an ``on_drop`` callback.

    Attributes
    ----------
    record
        The record as it would have been written (lineage fields included).
    seq
        Its position in the run.
    event_type
        Its event type.
    reason
        One of ``"buffer_full"``, ``"invalid"``, ``"write_failed"``, ``"deadline"``.
    """

    record: Mapping[str, Any]
    seq: int
    event_type: str
    reason: str


@final
@attrs.frozen
class IngestStats:
    """A consistent picture of an ingestor's counters at one instant.

    ``emitted == written + dropped + in_doubt + pending`` always holds
    (:attr:`balanced`); after the ingestor closed, ``pending`` is 0 and
    ``in_doubt`` is 0 unless the deadline of ``aclose`` cut off the resolution
    of a commit whose outcome the store would not tell.

    Attributes
    ----------
    emitted
        Records accepted by ``emit`` (each got a ``seq``), dropped ones included.
    written
        Records in committed snapshots.
    dropped
        Records that will never be written (sum of :attr:`dropped_by_reason`).
    dropped_by_reason
        ``{reason: count}`` (reasons: ``buffer_full``, ``invalid``,
        ``write_failed``, ``deadline``).
    dropped_by_event_type
        ``{event_type: {reason: count}}``.
    in_doubt
        Records of a batch whose commit outcome was still unknown when the
        close deadline passed (see ``stats.in_doubt_batches``).
    pending
        Records held (queued or being committed).
    pending_bytes
        Their estimated encoded size.
    batches
        Snapshots committed with records.
    bytes_written
        Estimated encoded bytes of the records written.
    flushes
        ``{trigger: count}``: why each batch was cut (``rows``, ``bytes``,
        ``interval``, ``full``, ``flush``, ``close``, ``writer_free``).
    retries
        Batch commits retried after a transient failure.
    lookups
        Batches whose commit outcome the store would not tell, looked up by key.
    artifacts, artifact_bytes
        Artifacts stored by ``emit_artifact`` and their size.
    last_snapshot_id
        The newest snapshot this ingestor committed.
    last_error
        The last store error met (retried or not), as text.
    in_doubt_batches
        Batch keys whose outcome was unknown at close (look them up in the
        snapshots' ``metadata["ingest"]["batch"]``).

    Raises
    ------
    InvalidInputError
        ``dropped_by_reason`` or ``flushes`` is not a mapping.
    """

    emitted: int = 0
    written: int = 0
    dropped: int = 0
    dropped_by_reason: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)
    dropped_by_event_type: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    in_doubt: int = 0
    pending: int = 0
    pending_bytes: int = 0
    batches: int = 0
    bytes_written: int = 0
    flushes: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)
    retries: int = 0
    lookups: int = 0
    artifacts: int = 0
    artifact_bytes: int = 0
    last_snapshot_id: str | None = None
    last_error: str | None = None
    in_doubt_batches: tuple[str, ...] = ()

    @property
    def balanced(self) -> bool:
        """``emitted == written + dropped + in_doubt + pending``."""
        return self.emitted == self.written + self.dropped + self.in_doubt + self.pending


class Counters:
    """The mutable counters behind :class:`IngestStats` (one per ingestor)."""

    def __init__(self) -> None:
        self.emitted = 0
        self.written = 0
        self.in_doubt = 0
        self.batches = 0
        self.bytes_written = 0
        self.retries = 0
        self.lookups = 0
        self.artifacts = 0
        self.artifact_bytes = 0
        self.by_reason: Counter[str] = Counter()
        self.by_type: dict[str, Counter[str]] = {}
        self.flushes: Counter[str] = Counter()
        self.last_snapshot_id: str | None = None
        self.last_error: str | None = None
        self.in_doubt_batches: list[str] = []

    @property
    def dropped(self) -> int:
        """Total drops."""
        return sum(self.by_reason.values())

    def drop(self, reason: str, event_type: str, n: int = 1) -> None:
        """Count ``n`` drops."""
        self.by_reason[reason] += n
        per = self.by_type.get(event_type)
        if per is None:
            per = self.by_type[event_type] = Counter()
        per[reason] += n

    def snapshot(self, pending: int, pending_bytes: int) -> IngestStats:
        """The counters as an immutable :class:`IngestStats`."""
        return IngestStats(
            emitted=self.emitted,
            written=self.written,
            dropped=self.dropped,
            dropped_by_reason=dict(self.by_reason),
            dropped_by_event_type={t: dict(c) for t, c in self.by_type.items()},
            in_doubt=self.in_doubt,
            pending=pending,
            pending_bytes=pending_bytes,
            batches=self.batches,
            bytes_written=self.bytes_written,
            flushes=dict(self.flushes),
            retries=self.retries,
            lookups=self.lookups,
            artifacts=self.artifacts,
            artifact_bytes=self.artifact_bytes,
            last_snapshot_id=self.last_snapshot_id,
            last_error=self.last_error,
            in_doubt_batches=tuple(self.in_doubt_batches),
        )

    def drops_metadata(self) -> dict[str, Any]:
        """The drop tally as recorded in snapshot metadata (cumulative for this
        ingestor; at most :data:`MAX_EVENT_TYPES_IN_METADATA` event types by name,
        so the metadata stays small whatever the producers emit)."""
        by_type: dict[str, dict[str, int]] = {}
        rest: Counter[str] = Counter()
        for i, (t, c) in enumerate(
            sorted(self.by_type.items(), key=lambda kv: -sum(kv[1].values()))
        ):
            if i < MAX_EVENT_TYPES_IN_METADATA:
                by_type[t] = dict(c)
            else:
                rest.update(c)
        if rest:
            by_type["*"] = dict(rest)
        return {"total": self.dropped, "by_reason": dict(self.by_reason), "by_event_type": by_type}


class DropLog:
    """Rate-limited warnings about drops: at most one line per ``interval`` seconds,
    summing what was dropped since the last line, so a storm of drops costs a
    handful of log records, not one per record."""

    def __init__(self, logger: logging.Logger, label: str, interval: float = 10.0) -> None:
        self._logger = logger
        self._label = label
        self._interval = interval
        self._last = -float("inf")
        self._unlogged: Counter[str] = Counter()

    def note(self, reason: str, n: int = 1) -> None:
        """Record ``n`` drops; log a summary if the last line is old enough."""
        self._unlogged[reason] += n
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._emit(now)

    def flush(self) -> None:
        """Log whatever was dropped since the last line (at close)."""
        if self._unlogged:
            self._emit(time.monotonic())

    def _emit(self, now: float) -> None:
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self._unlogged.items()))
        self._logger.warning("%s: dropped %s", self._label, parts)
        self._unlogged.clear()
        self._last = now
