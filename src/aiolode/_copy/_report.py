"""What a copy did (:class:`CopyReport`), what it is doing (:class:`CopyProgress`),
and :class:`Tally`, the one mutable object a copy fills while it runs."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeAlias, final

import anyio
import attrs

from .._validate import safe_repr
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from typing import Any

__all__ = ("CopyProgress", "CopyProgressCallback", "CopyReport", "Tally", "check_progress")


@final
@attrs.frozen
class CopyProgress:
    """How far a running copy has got (handed to the ``progress`` callback).

    Attributes
    ----------
    bytes
        Bytes written to the destination so far (objects and records).
    objects
        Objects (data files, partition manifests, index documents, blocks)
        copied so far, not counting those already present.
    records
        Log records copied so far: every snapshot they commit is complete at
        the destination.
    snapshots
        Snapshots those records commit.
    records_total
        Log records this copy will write when it finishes.
    """

    bytes: int
    objects: int
    records: int
    snapshots: int
    records_total: int


CopyProgressCallback: TypeAlias = Callable[[CopyProgress], "Awaitable[object] | object"]
"""Called (sync or async) with a :class:`CopyProgress` after every object and every
record, and after every chunk of a streamed object."""


@final
@attrs.frozen
class CopyReport:
    """What :func:`~aiolode.copy_dataset` or :func:`~aiolode.copy_volume` did.

    Attributes
    ----------
    kind
        ``"dataset"`` or ``"volume"``.
    source_id, destination_id
        The source's id and the destination's (the same unless renamed).
    first_seq, last_seq
        The log records this run copied (sequence numbers, inclusive);
        ``None`` when it copied none (the destination was up to date).
    records
        Log records copied.
    snapshots
        Snapshots those records commit (a dataset record may commit several,
        or only a maintenance operation).
    objects
        Objects copied (data files, partition manifests, checkpoints,
        idempotency-key markers, index segments and segment lists, blocks).
    bytes
        Bytes written to the destination (objects, records and the descriptor).
    verified
        Objects found already at the destination (a run that was interrupted,
        or a concurrent copy), checked against the source and kept.
    repaired
        Objects found at the destination that failed that check, copied again.
    skipped
        Data files of snapshots the source had expired and already collected.
    head
        The newest snapshot id at the destination after the copy (``None``:
        none).
    """

    kind: Literal["dataset", "volume"]
    source_id: str
    destination_id: str
    first_seq: int | None
    last_seq: int | None
    records: int
    snapshots: int
    objects: int
    bytes: int
    verified: int
    repaired: int
    skipped: int
    head: str | None

    @property
    def up_to_date(self) -> bool:
        """Whether the destination already held everything (nothing was copied)."""
        return self.records == 0 and self.objects == 0 and self.repaired == 0


def check_progress(progress: object) -> CopyProgressCallback | None:
    """Validate a ``progress=`` argument.

    Raises
    ------
    InvalidInputError
        Not ``None`` and not callable.
    """
    if progress is None or callable(progress):
        return progress
    raise InvalidInputError(f"progress must be a callable or None, not {safe_repr(progress)}")


@attrs.define
class Tally:
    """Counters of one copy; reports them to the progress callback as they move."""

    callback: CopyProgressCallback | None = None
    records_total: int = 0
    bytes: int = 0
    objects: int = 0
    records: int = 0
    snapshots: int = 0
    verified: int = 0
    repaired: int = 0
    skipped: int = 0
    _lock: anyio.Lock = attrs.field(factory=anyio.Lock, init=False, repr=False)

    def progress(self) -> CopyProgress:
        """The counters as a :class:`CopyProgress` (no I/O)."""
        return CopyProgress(
            bytes=self.bytes,
            objects=self.objects,
            records=self.records,
            snapshots=self.snapshots,
            records_total=self.records_total,
        )

    async def report(self) -> None:
        """Hand the counters to the callback (awaited when it returns an awaitable).

        Calls are serialised, and the counters only grow, so the callback sees
        every figure non-decreasing even though objects are copied concurrently.
        """
        if self.callback is None:
            return
        async with self._lock:
            res: Any = self.callback(self.progress())
            if inspect.isawaitable(res):
                await res

    async def add_bytes(self, n: int) -> None:
        """Count ``n`` more bytes written, and report."""
        self.bytes += n
        await self.report()
