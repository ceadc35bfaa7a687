"""What a check found: :class:`Problem`, :class:`ProblemKind`, :class:`VerifyReport`,
and :class:`Findings`, the one mutable object a check fills while it runs."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, final

import attrs

from ..manifest import _fields as F

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ("Findings", "Problem", "ProblemKind", "VerifyReport")


class ProblemKind(enum.Enum):
    """What is wrong. Grouped by what an operator does about it."""

    #: A commit record, descriptor, low-water mark, volume root, index segment
    #: or segment list does not decode, has an unsupported format version, or
    #: contradicts itself, its key or the documents that name it.
    INVALID_RECORD = "invalid_record"
    #: The history is not one linear chain: a gap in the sequence, a parent
    #: that is not the previous snapshot, ids or times going backwards.
    BROKEN_CHAIN = "broken_chain"
    #: A committed record references an object that does not exist.
    MISSING_OBJECT = "missing_object"
    #: A referenced object's size differs from the recorded size.
    SIZE_MISMATCH = "size_mismatch"
    #: A referenced object's bytes do not match the recorded digest.
    CHECKSUM_MISMATCH = "checksum_mismatch"
    #: The store failed while checking; the result for this key is unknown.
    STORAGE_ERROR = "storage_error"


@final
@attrs.frozen
class Problem:
    """One thing :func:`~aiolode.verify_dataset` / :func:`~aiolode.verify_volume` found wrong.

    Attributes
    ----------
    kind
        The category (:class:`ProblemKind`).
    message
        Human-readable description.
    key
        The store key involved (record, segment or data object), if any.
    snapshot_id
        The snapshot whose record is wrong or which references the object.
    """

    kind: ProblemKind = attrs.field(validator=F.is_a(ProblemKind))
    message: str = attrs.field(validator=F.str_)
    key: str | None = attrs.field(default=None, validator=F.opt_str)
    snapshot_id: str | None = attrs.field(default=None, validator=F.opt_str)

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"


@final
@attrs.frozen
class VerifyReport:
    """The outcome of an integrity check.

    Attributes
    ----------
    target
        ``"dataset"`` or ``"volume"``.
    id
        The dataset or volume id.
    head
        The newest snapshot id found in the log (``None``: no snapshot).
    snapshot_id
        The newest snapshot whose objects were checked (the end of the range).
    records_checked
        Commit records (dataset) or roots + index documents (volume) decoded.
    snapshots_checked
        Snapshots in range whose history and objects were checked.
    objects_checked
        Distinct data/block objects fetched (or, without a digest, stat'ed).
    bytes_checked
        Bytes read to verify digests.
    problems
        Everything found wrong, sorted (empty: healthy).
    orphans
        Keys under the dataset/volume prefix that no committed record
        references (aborted or in-flight writes, staged blocks never
        committed), sorted. Nothing is deleted.
    orphan_bytes
        Their total size.
    """

    target: str = attrs.field(validator=F.one_of("dataset", "volume"))
    id: str = attrs.field(validator=F.str_)
    head: str | None = attrs.field(validator=F.opt_str)
    snapshot_id: str | None = attrs.field(validator=F.opt_str)
    records_checked: int = attrs.field(validator=F.count)
    snapshots_checked: int = attrs.field(validator=F.count)
    objects_checked: int = attrs.field(validator=F.count)
    bytes_checked: int = attrs.field(validator=F.count)
    problems: tuple[Problem, ...] = attrs.field(converter=F.to_tuple, validator=F.tuple_of(Problem))
    orphans: tuple[str, ...] = attrs.field(converter=F.to_tuple, validator=F.tuple_of(str))
    orphan_bytes: int = attrs.field(validator=F.count)

    @property
    def ok(self) -> bool:
        """Whether no problem was found (orphans are not problems)."""
        return not self.problems

    def by_kind(self, kind: ProblemKind) -> list[Problem]:
        """The problems of one kind."""
        return [p for p in self.problems if p.kind is kind]


@attrs.define
class Findings:
    """Everything a running check has learnt so far.

    Problems are *added*, never raised: a check goes on after the first one.
    ``referenced`` collects every key a committed document names (and the
    log's own objects), so what is left of the listing are the orphans.
    """

    problems: list[Problem] = attrs.field(factory=list)
    referenced: set[str] = attrs.field(factory=set)
    records: int = 0
    objects: int = 0
    nbytes: int = 0
    snapshots: int = 0
    #: The newest snapshot of the log (``None``: none found yet).
    head: str | None = None
    #: The newest snapshot checked (the end of the range, once reached).
    checked_to: str | None = None

    def add(
        self, kind: ProblemKind, message: str, *, key: str | None = None, snap: str | None = None
    ) -> None:
        """Record one problem."""
        self.problems.append(Problem(kind, message, key, snap))

    def report(self, target: str, owner_id: str, listing: Mapping[str, int]) -> VerifyReport:
        """The final report; ``listing`` is every key under the owner's prefix, with its size."""
        # Objects are checked concurrently: sort so equal stores give equal reports.
        problems = tuple(
            sorted(
                self.problems,
                key=lambda p: (p.snapshot_id or "", p.key or "", p.kind.value, p.message),
            )
        )
        orphans = tuple(sorted(k for k in listing if k not in self.referenced))
        return VerifyReport(
            target=target,
            id=owner_id,
            head=self.head,
            snapshot_id=self.checked_to,
            records_checked=self.records,
            snapshots_checked=self.snapshots,
            objects_checked=self.objects,
            bytes_checked=self.nbytes,
            problems=problems,
            orphans=orphans,
            orphan_bytes=sum(listing[k] for k in orphans),
        )
