"""Run lineage: which run (of which job, after which parent, which attempt) wrote what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, final

import attrs

from .._validate import check_int, safe_repr
from ..errors import InvalidInputError

__all__ = ("Run",)

_MAX_ID = 200


def _check_id(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if (
        not isinstance(value, str)
        or not value
        or len(value) > _MAX_ID
        or not value.isprintable()
        or value.strip() != value
    ):
        raise InvalidInputError(
            f"{name} must be a non-empty printable str of at most {_MAX_ID} characters "
            f"without surrounding spaces{' (or None)' if optional else ''}, not {safe_repr(value)}"
        )


def _required(_: object, attr: attrs.Attribute[str], value: object) -> None:
    _check_id(attr.name, value, optional=False)


def _optional(_: object, attr: attrs.Attribute[str | None], value: object) -> None:
    _check_id(attr.name, value, optional=True)


def _attempt(_: object, attr: attrs.Attribute[int], value: object) -> None:
    check_int(attr.name, value)


@final
@attrs.frozen
class Run:
    """The lineage of one ingestion run, carried into every snapshot and record.

    Every snapshot an :class:`~aiolode.Ingestor` commits records all of these
    fields in its metadata (``metadata["ingest"]["run"]``); every record carries
    ``run_id`` (plus ``source`` and ``category`` when set), so
    ``ds.files(where={"run_id": ...})`` prunes to one run on a layout
    partitioned by it (:func:`~aiolode.quarry_layout`).

    Parameters
    ----------
    run_id
        This run's id (1-200 printable characters). A run resumed after a
        crash keeps its ``run_id`` and increments ``attempt``.
    job_id
        The job this run belongs to (a schedule, a crawl definition), if any.
    parent_run_id
        The run this one continues or derives from, if any.
    attempt
        1 for the first attempt; a retry of the same run counts up.
    source, category
        What is ingested (Quarry's first two partition keys), if known.

    Raises
    ------
    InvalidInputError
        An id is empty, too long, not printable or padded; ``attempt < 1``.
    """

    run_id: str = attrs.field(validator=_required)
    job_id: str | None = attrs.field(default=None, validator=_optional, kw_only=True)
    parent_run_id: str | None = attrs.field(default=None, validator=_optional, kw_only=True)
    attempt: int = attrs.field(default=1, validator=_attempt, kw_only=True)
    source: str | None = attrs.field(default=None, validator=_optional, kw_only=True)
    category: str | None = attrs.field(default=None, validator=_optional, kw_only=True)

    @classmethod
    def new(cls, **kwargs: Any) -> Run:
        """A run with a fresh id that sorts by start time
        (``"20261130T043426Z-1a2b3c4d"``); other fields as for the constructor.

        Raises
        ------
        InvalidInputError
            As for the constructor.
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return cls(f"{stamp}-{uuid.uuid4().hex[:8]}", **kwargs)

    def next_attempt(self) -> Run:
        """The same run, one attempt later (for a retry after a crash)."""
        return attrs.evolve(self, attempt=self.attempt + 1)

    def describe(self) -> dict[str, Any]:
        """The lineage as recorded in snapshot metadata (``None`` fields included)."""
        return attrs.asdict(self)
