"""Object checks shared by both kinds of history: listing, fetching and decoding
documents without raising, and checking data objects against their recorded
size and digest (with :class:`~aiolode.checksum.StreamVerifier`, the one place
that decides whether stored bytes are the bytes that were written)."""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, TypeVar

import attrs

from .._concurrency import bounded_map
from ..checksum import StreamVerifier, verify_object
from ..errors import (
    AiolodeError,
    ChecksumMismatchError,
    CorruptDataError,
    FormatError,
    ObjectNotFoundError,
)
from ..manifest._converter import decode
from ._report import ProblemKind

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..store import Store
    from ._report import Findings

__all__ = (
    "ObjectRef",
    "check_digest",
    "check_objects",
    "decode_doc",
    "doc_problem",
    "fetch_docs",
    "list_prefix",
)

T = TypeVar("T")

#: Objects fetched (and hashed) at once.
CONCURRENCY = 8
#: Chunk size of streamed object reads.
_CHUNK = 1 << 20


@attrs.frozen
class ObjectRef:
    """A data object or block as a committed document records it."""

    key: str
    size: int
    checksum: str | None
    snapshot_id: str


async def list_prefix(store: Store, prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` with its size (one paged listing).

    Raises
    ------
    StorageError
        The listing failed.
    """
    sizes: dict[str, int] = {}
    async with aclosing(store.list(prefix)) as it:
        async for info in it:
            sizes[info.key] = info.size
    return sizes


async def fetch_docs(store: Store, keys: list[str]) -> list[bytes | AiolodeError]:
    """Get each key, :data:`CONCURRENCY` at a time; an aiolode error is returned
    in the key's place, not raised."""

    async def one(key: str) -> bytes | AiolodeError:
        try:
            return await store.get(key)
        except AiolodeError as exc:
            return exc

    return await bounded_map(one, keys, limit=CONCURRENCY)


def doc_problem(
    findings: Findings, key: str, err: AiolodeError, what: str, snap: str | None
) -> None:
    """Record why a document could not be used (missing, undecodable, unreadable)."""
    if isinstance(err, ObjectNotFoundError):
        findings.add(ProblemKind.MISSING_OBJECT, f"{what} {key!r} is missing", key=key, snap=snap)
    elif isinstance(err, FormatError):
        findings.add(ProblemKind.INVALID_RECORD, f"{what} {key!r}: {err}", key=key, snap=snap)
    else:
        findings.add(
            ProblemKind.STORAGE_ERROR,
            f"could not read {what} {key!r}: {type(err).__name__}: {err}",
            key=key,
            snap=snap,
        )


def decode_doc(
    findings: Findings,
    key: str,
    raw: bytes | AiolodeError,
    cls: type[T],
    what: str,
    snap: str | None,
) -> T | None:
    """Decode a fetched document with the manifest converter; record why it
    cannot be (and return ``None``)."""
    if isinstance(raw, AiolodeError):
        doc_problem(findings, key, raw, what, snap)
        return None
    try:
        return decode(raw, cls, key=key)
    except FormatError as exc:
        doc_problem(findings, key, exc, what, snap)
        return None


async def check_digest(
    findings: Findings, key: str, raw: bytes, recorded: str | None, what: str, snap: str | None
) -> bool:
    """Check a document against the digest its reference records (``None``: no
    digest, nothing to check). True, with the problem recorded, when they differ."""
    if recorded is None:
        return False
    try:
        await verify_object(raw, key=key, size=None, checksum=recorded)
    except ChecksumMismatchError as exc:
        findings.add(
            ProblemKind.CHECKSUM_MISMATCH,
            f"{what} {key!r} has digest {exc.actual}, its reference records {recorded}",
            key=key,
            snap=snap,
        )
        return True
    except FormatError as exc:
        # A damaged reference is a problem to report, not a reason to stop.
        findings.add(
            ProblemKind.INVALID_RECORD,
            f"{what} {key!r}: its reference records an unusable digest ({exc})",
            key=key,
            snap=snap,
        )
        return True
    return False


async def _check_object(store: Store, ref: ObjectRef, findings: Findings) -> None:
    """Stream (digest recorded) or stat (none) one object; record what is wrong."""
    try:
        verifier = StreamVerifier(
            key=ref.key, size=ref.size, checksum=ref.checksum, snapshot_id=ref.snapshot_id
        )
    except FormatError as exc:
        findings.add(
            ProblemKind.INVALID_RECORD,
            f"object {ref.key!r}: unusable recorded checksum ({exc})",
            key=ref.key,
            snap=ref.snapshot_id,
        )
        return
    try:
        if ref.checksum is None:
            verifier.seen = (await store.head(ref.key)).size
        else:
            async with aclosing(store.iter_bytes(ref.key, chunk_size=_CHUNK)) as chunks:
                async for chunk in chunks:
                    findings.nbytes += len(chunk)
                    # Raises as soon as the object outgrows its recorded size.
                    await verifier.aupdate(chunk)
        verifier.check()
    except ObjectNotFoundError:
        findings.objects += 1
        findings.add(
            ProblemKind.MISSING_OBJECT,
            f"snapshot {ref.snapshot_id} references missing object {ref.key!r}",
            key=ref.key,
            snap=ref.snapshot_id,
        )
    except CorruptDataError:
        findings.objects += 1
        more = "at least " if verifier.seen > ref.size and ref.checksum is not None else ""
        findings.add(
            ProblemKind.SIZE_MISMATCH,
            f"object {ref.key!r} has {more}{verifier.seen} bytes, snapshot "
            f"{ref.snapshot_id} records {ref.size}",
            key=ref.key,
            snap=ref.snapshot_id,
        )
    except ChecksumMismatchError as exc:
        findings.objects += 1
        findings.add(
            ProblemKind.CHECKSUM_MISMATCH,
            f"object {ref.key!r}: expected {ref.checksum}, got {exc.actual}",
            key=ref.key,
            snap=ref.snapshot_id,
        )
    except AiolodeError as exc:
        findings.add(
            ProblemKind.STORAGE_ERROR,
            f"could not check {ref.key!r}: {type(exc).__name__}: {exc}",
            key=ref.key,
            snap=ref.snapshot_id,
        )
    else:
        findings.objects += 1


async def check_objects(store: Store, refs: Iterable[ObjectRef], findings: Findings) -> None:
    """Check every object of ``refs``, :data:`CONCURRENCY` at a time; never raises
    for one object (what is wrong goes into ``findings``)."""

    async def one(ref: ObjectRef) -> None:
        await _check_object(store, ref, findings)

    await bounded_map(one, refs, limit=CONCURRENCY)
