"""Integrity check (``fsck``) of a Dataset or a Volume, straight from the stored format.

:func:`verify_dataset` and :func:`verify_volume` read what is on storage the way
a stranger would: they list the dataset's (volume's) prefix once, decode every
commit record (volume root, index segment, segment list) strictly, check that
the history is one linear chain, and fetch every object the snapshots in range
reference to compare its size and digest with what the record says. They
*report* what they find (:class:`VerifyReport`) instead of raising on the first
problem, and list unreferenced objects (orphans of aborted or in-flight writes)
without deleting anything.

They deliberately do not go through the Dataset/Volume read path: a check that
trusts the code it checks proves little. They use the documented formats
(``docs/spec``, ``docs/volume.md``) and the one manifest converter.
"""

from __future__ import annotations

import enum
import heapq
import re
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar, final

import anyio
import attrs

from ._concurrency import bounded_map
from .checksum import OFFLOAD_THRESHOLD, compute_checksum, parse_recorded
from .errors import (
    AiolodeError,
    FormatError,
    InvalidInputError,
    ObjectNotFoundError,
    SnapshotNotFoundError,
)
from .manifest._converter import decode
from .manifest._volume import VolumeSegment

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from .dataset import Dataset
    from .manifest._volume import SegmentRef
    from .store import Store
    from .volume import Volume

__all__ = ["Problem", "ProblemKind", "VerifyReport", "verify_dataset", "verify_volume"]

T = TypeVar("T")

#: Objects fetched (and hashed) at once.
_CONCURRENCY = 8
#: Commit records / roots fetched and held at once: bounds memory on long histories.
_WINDOW = 256
_DATASET_RECORD_RE = re.compile(r"(\d{16})\.json")
_VOLUME_ROOT_RE = re.compile(r"(\d{20})\.json")
_CHUNK = 1 << 20


class ProblemKind(enum.Enum):
    """What is wrong. Grouped by what an operator does about it."""

    #: A commit record, volume root, index segment or segment list does not
    #: decode, has an unsupported format version, or contradicts itself or its key.
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
    """One thing :func:`verify_dataset` / :func:`verify_volume` found wrong.

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

    kind: ProblemKind
    message: str
    key: str | None = None
    snapshot_id: str | None = None

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
        Everything found wrong, in discovery order (empty: healthy).
    orphans
        Keys under the dataset/volume prefix that no committed record
        references (aborted or in-flight writes, staged blocks never
        committed), sorted. Nothing is deleted.
    orphan_bytes
        Their total size.
    """

    target: str
    id: str
    head: str | None
    snapshot_id: str | None
    records_checked: int
    snapshots_checked: int
    objects_checked: int
    bytes_checked: int
    problems: tuple[Problem, ...]
    orphans: tuple[str, ...]
    orphan_bytes: int

    @property
    def ok(self) -> bool:
        """Whether no problem was found (orphans are not problems)."""
        return not self.problems

    def by_kind(self, kind: ProblemKind) -> list[Problem]:
        """The problems of one kind."""
        return [p for p in self.problems if p.kind is kind]


# ------------------------------------------------------------------ shared bits
@attrs.define
class _Acc:
    """Mutable accumulator while a check runs."""

    problems: list[Problem] = attrs.field(factory=list)
    records: int = 0
    objects: int = 0
    nbytes: int = 0

    def add(
        self, kind: ProblemKind, message: str, *, key: str | None = None, snap: str | None = None
    ) -> None:
        self.problems.append(Problem(kind, message, key, snap))


@attrs.frozen
class _ObjectRef:
    key: str
    size: int
    checksum: str | None
    snapshot_id: str


async def _list_prefix(store: Store, prefix: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    async with aclosing(store.list(prefix)) as it:
        async for info in it:
            sizes[info.key] = info.size
    return sizes


async def _check_object(store: Store, ref: _ObjectRef, acc: _Acc) -> None:
    """Fetch (digest) or stat (no digest) one object; record what is wrong."""
    try:
        if ref.checksum is None:
            size = (await store.head(ref.key)).size
        else:
            try:
                algo, _ = parse_recorded(ref.checksum)
            except FormatError as exc:
                acc.add(
                    ProblemKind.INVALID_RECORD,
                    f"object {ref.key!r}: unusable recorded checksum ({exc})",
                    key=ref.key,
                    snap=ref.snapshot_id,
                )
                return
            hasher = algo.hasher()
            size = 0
            async with aclosing(store.iter_bytes(ref.key, chunk_size=_CHUNK)) as chunks:
                async for chunk in chunks:
                    size += len(chunk)
                    if len(chunk) >= OFFLOAD_THRESHOLD:
                        await anyio.to_thread.run_sync(hasher.update, chunk)
                    else:
                        hasher.update(chunk)
            acc.nbytes += size
    except ObjectNotFoundError:
        acc.objects += 1
        acc.add(
            ProblemKind.MISSING_OBJECT,
            f"snapshot {ref.snapshot_id} references missing object {ref.key!r}",
            key=ref.key,
            snap=ref.snapshot_id,
        )
        return
    except AiolodeError as exc:
        acc.add(
            ProblemKind.STORAGE_ERROR,
            f"could not check {ref.key!r}: {type(exc).__name__}: {exc}",
            key=ref.key,
            snap=ref.snapshot_id,
        )
        return
    acc.objects += 1
    if size != ref.size:
        acc.add(
            ProblemKind.SIZE_MISMATCH,
            f"object {ref.key!r} has {size} bytes, snapshot {ref.snapshot_id} records {ref.size}",
            key=ref.key,
            snap=ref.snapshot_id,
        )
        return
    if ref.checksum is not None:
        actual = algo.format(hasher.hexdigest())
        if actual != ref.checksum:
            acc.add(
                ProblemKind.CHECKSUM_MISMATCH,
                f"object {ref.key!r}: expected {ref.checksum}, got {actual}",
                key=ref.key,
                snap=ref.snapshot_id,
            )


async def _check_objects(store: Store, refs: Iterable[_ObjectRef], acc: _Acc) -> None:
    async def one(ref: _ObjectRef) -> None:
        await _check_object(store, ref, acc)

    await bounded_map(one, refs, limit=_CONCURRENCY)


async def _fetch_docs(store: Store, keys: list[str]) -> list[bytes | AiolodeError]:
    """Get each key; an aiolode error is returned in its place, not raised."""

    async def one(key: str) -> bytes | AiolodeError:
        try:
            return await store.get(key)
        except AiolodeError as exc:
            return exc

    return await bounded_map(one, keys, limit=_CONCURRENCY)


async def _digest_problem(
    acc: _Acc, key: str, raw: bytes, recorded: str | None, what: str, snap: str | None
) -> bool:
    """Check an index document against the digest its reference records.

    Returns True (and records the problem) when they differ.
    """
    if recorded is None:
        return False
    try:
        algo, _ = parse_recorded(recorded)
    except FormatError as exc:
        # A damaged reference is a problem to report, not a reason to stop.
        acc.add(
            ProblemKind.INVALID_RECORD,
            f"{what} {key!r}: its reference records an unusable digest ({exc})",
            key=key,
            snap=snap,
        )
        return True
    actual = await compute_checksum(algo, raw)  # off the loop for large segments
    if actual == recorded:
        return False
    acc.add(
        ProblemKind.CHECKSUM_MISMATCH,
        f"{what} {key!r} has digest {actual}, its reference records {recorded}",
        key=key,
        snap=snap,
    )
    return True


async def _fetch_window(
    store: Store, seqs: list[int], keys: Mapping[int, str]
) -> dict[int, bytes | AiolodeError]:
    """Fetch the documents of the sequence numbers in ``seqs`` that have a key."""
    present = [s for s in seqs if s in keys]
    return dict(zip(present, await _fetch_docs(store, [keys[s] for s in present]), strict=True))


def _decode_doc(
    acc: _Acc, key: str, raw: bytes | AiolodeError, cls: type[T], what: str, snap: str | None
) -> T | None:
    """Decode a fetched document; record why it cannot be (and return None)."""
    if isinstance(raw, AiolodeError):
        _doc_problem(acc, key, raw, what, snap)
        return None
    try:
        return decode(raw, cls, key=key)
    except FormatError as exc:
        _doc_problem(acc, key, exc, what, snap)
        return None


def _link_problems(
    acc: _Acc,
    key: str,
    sid: str,
    parent_id: str | None,
    created_at: datetime,
    prev_id: str | None,
    prev_time: datetime | None,
    *,
    check_parent: bool,
) -> None:
    """Report a snapshot that does not follow its predecessor in the chain."""
    if check_parent and parent_id != prev_id:
        acc.add(
            ProblemKind.BROKEN_CHAIN,
            f"snapshot {sid} has parent {parent_id!r}, expected {prev_id!r}",
            key=key,
            snap=sid,
        )
    if prev_time is not None and created_at < prev_time:
        acc.add(
            ProblemKind.BROKEN_CHAIN,
            f"snapshot {sid} was created at {created_at.isoformat()}, before "
            f"its predecessor ({prev_time.isoformat()})",
            key=key,
            snap=sid,
        )


def _doc_problem(acc: _Acc, key: str, err: AiolodeError, what: str, snap: str | None) -> None:
    if isinstance(err, ObjectNotFoundError):
        acc.add(ProblemKind.MISSING_OBJECT, f"{what} {key!r} is missing", key=key, snap=snap)
    elif isinstance(err, FormatError):
        acc.add(ProblemKind.INVALID_RECORD, f"{what} {key!r}: {err}", key=key, snap=snap)
    else:
        acc.add(
            ProblemKind.STORAGE_ERROR,
            f"could not read {what} {key!r}: {type(err).__name__}: {err}",
            key=key,
            snap=snap,
        )


def _sequence_numbers(
    listing: dict[str, int], prefix: str, pattern: re.Pattern[str]
) -> dict[int, str]:
    out: dict[int, str] = {}
    for key in listing:
        if key.startswith(prefix):
            m = pattern.fullmatch(key[len(prefix) :])
            if m is not None and int(m.group(1)) > 0:
                out[int(m.group(1))] = key
    return out


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    # Objects are checked concurrently: sort so equal stores give equal reports.
    return tuple(
        sorted(problems, key=lambda p: (p.snapshot_id or "", p.key or "", p.kind.value, p.message))
    )


def _orphans(listing: dict[str, int], referenced: set[str]) -> tuple[tuple[str, ...], int]:
    keys = sorted(k for k in listing if k not in referenced)
    return tuple(keys), sum(listing[k] for k in keys)


# ---------------------------------------------------------------------- dataset
async def _partition_files(
    store: Store,
    parts: list[tuple[Any, Any, bool]],
    referenced: set[str],
    to_check: list[_ObjectRef],
    acc: _Acc,
) -> None:
    """Read the partition manifests (format v2) records name: their data files
    are referenced, and checked when their snapshot is in range."""
    from .manifest._dataset import PartitionManifest

    docs = await _fetch_docs(store, [ref.key for _, ref, _ in parts])
    for (m, ref, in_range), raw in zip(parts, docs, strict=True):
        pm = _decode_doc(acc, ref.key, raw, PartitionManifest, "partition manifest", m.snapshot_id)
        if pm is None:
            continue
        for f in pm.files:
            referenced.add(f.key)
        if pm.partition != ref.partition or len(pm.files) != ref.file_count:
            acc.add(
                ProblemKind.INVALID_RECORD,
                f"partition manifest {ref.key!r} does not match snapshot {m.snapshot_id}'s summary",
                key=ref.key,
                snap=m.snapshot_id,
            )
        if in_range:
            to_check.extend(_ObjectRef(f.key, f.size, f.checksum, m.snapshot_id) for f in pm.files)


async def verify_dataset(ds: Dataset, snapshot_id: str | None = None) -> VerifyReport:
    """Check a dataset's history and data files; report, never repair.

    Checks, for every commit record of the log: it decodes (schema, version,
    fields; every snapshot names a known codec and compressor with valid
    options, as a reader needs), belongs to this dataset at its sequence number, and continues a
    linear chain (no gap; each snapshot's parent is the previous snapshot; ids
    increase; ``created_at`` never decreases). For every snapshot up to
    ``snapshot_id`` (default: the newest), every data file it references
    exists with the recorded size and, when a checksum is recorded, the
    recorded digest. Keys under the dataset's root that no record references
    (and that are not log records or the ``latest`` hint) are listed as orphans.

    A write committing while the check runs may show up as an orphan (its
    data files are stored before its record). Data files are checked as
    bytes: a file without a checksum is only stat'ed, and decoding (codec,
    compressor) is not attempted.

    Cost: one listing of the dataset root; one ``get`` per commit record
    (records after ``snapshot_id`` included, since they may reference objects
    that are otherwise orphans); per referenced file in range one streamed
    ``get`` (checksum recorded) or one ``head`` (none); at most 8 in flight.
    Memory: the listing (key and size per object), the referenced key set,
    and at most 256 decoded records; one 1 MiB chunk per object in flight.

    Parameters
    ----------
    ds
        The dataset.
    snapshot_id
        Check the history and files of snapshots up to this one (the whole
        log is still decoded, for the chain and for orphans). ``None``: all.

    Returns
    -------
    VerifyReport
        ``report.ok`` is ``True`` when no problem was found.

    Raises
    ------
    SnapshotNotFoundError
        ``snapshot_id`` is not an id of a record in the log.
    InvalidInputError
        ``snapshot_id`` is not a str.
    StorageError
        Listing the dataset root failed (individual object failures are
        reported as :attr:`ProblemKind.STORAGE_ERROR`, not raised).
    """
    from .dataset._read import components
    from .manifest._dataset import CommitRecord
    from .manifest._ids import dataset_snapshot_id as format_snapshot_id
    from .manifest._ids import parse_dataset_snapshot_id as parse_snapshot_id

    store = ds.store
    layout = ds.layout
    root = layout.root(ds.id)
    log_prefix = layout.log_prefix(ds.id)
    hint_key = f"{log_prefix}_latest.json"
    end: tuple[int, int] | None = None
    if snapshot_id is not None:
        end = parse_snapshot_id(snapshot_id, dataset_id=ds.id)

    listing = await _list_prefix(store, root)
    records = _sequence_numbers(listing, log_prefix, _DATASET_RECORD_RE)
    last_seq = max(records, default=0)
    if end is not None and end[0] not in records:
        raise SnapshotNotFoundError(
            f"dataset {ds.id!r} has no snapshot {snapshot_id!r}",
            dataset_id=ds.id,
            snapshot_id=snapshot_id,
        )
    # The hint, the low-water mark and the descriptor are the log's own objects.
    referenced: set[str] = {
        hint_key,
        f"{log_prefix}_lwm.json",
        f"{root}_dataset.json",
        *records.values(),
    }
    acc = _Acc()
    head: str | None = None
    checked_to: str | None = None
    snapshots_checked = 0
    prev_id: str | None = None  # last snapshot id of the previous readable record
    prev_time: Any = None
    expected_prev_readable = True

    for start in range(1, last_seq + 1, _WINDOW):
        seqs = list(range(start, min(start + _WINDOW, last_seq + 1)))
        docs = await _fetch_window(store, seqs, records)
        to_check: list[_ObjectRef] = []
        # Format v2 partition manifests named by records: (manifest, ref, in range).
        parts: list[tuple[Any, Any, bool]] = []
        for seq in seqs:
            key = f"{log_prefix}{seq:016d}.json"
            first_id = format_snapshot_id(seq, 0)
            if seq not in docs:
                acc.add(
                    ProblemKind.BROKEN_CHAIN,
                    f"commit record {seq} is missing but record {last_seq} exists (a gap)",
                    key=key,
                    snap=first_id,
                )
                expected_prev_readable = False
                continue
            rec = _decode_doc(acc, key, docs[seq], CommitRecord, "commit record", first_id)
            acc.records += 1
            if rec is None:
                expected_prev_readable = False
                continue
            if rec.seq != seq or rec.dataset_id != ds.id:
                acc.add(
                    ProblemKind.INVALID_RECORD,
                    f"commit record {key!r} says dataset {rec.dataset_id!r} seq {rec.seq}",
                    key=key,
                    snap=first_id,
                )
            if not rec.snapshots:
                acc.add(
                    ProblemKind.INVALID_RECORD,
                    f"commit record {key!r} holds no snapshot",
                    key=key,
                    snap=first_id,
                )
            for idx, m in enumerate(rec.snapshots):
                sid = format_snapshot_id(seq, idx)
                for f in m.files:
                    referenced.add(f.key)
                for pref in m.partition_manifests:
                    referenced.add(pref.key)
                    parts.append((m, pref, end is None or (seq, idx) <= end))
                if m.snapshot_id != sid or m.dataset_id != ds.id:
                    acc.add(
                        ProblemKind.INVALID_RECORD,
                        f"record {key!r} position {idx} holds snapshot {m.snapshot_id!r} of "
                        f"dataset {m.dataset_id!r}, expected {sid!r}",
                        key=key,
                        snap=sid,
                    )
                # The parent of the first snapshot of a record is the last
                # snapshot of the previous record; the check is skipped when that
                # record was unreadable (already reported).
                _link_problems(
                    acc, key, sid, m.parent_id, m.created_at, prev_id, prev_time,
                    check_parent=expected_prev_readable,
                )  # fmt: skip
                try:
                    # What a reader will follow: an unknown codec/compressor or
                    # invalid options make the snapshot unreadable.
                    components(m)
                except FormatError as exc:
                    acc.add(
                        ProblemKind.INVALID_RECORD,
                        f"snapshot {sid} cannot be decoded: {exc}",
                        key=key,
                        snap=sid,
                    )
                in_range = end is None or (seq, idx) <= end
                if in_range:
                    snapshots_checked += 1
                    checked_to = sid
                    to_check.extend(_ObjectRef(f.key, f.size, f.checksum, sid) for f in m.files)
                prev_id = sid
                prev_time = m.created_at
                expected_prev_readable = True
                head = sid
        await _partition_files(store, parts, referenced, to_check, acc)
        await _check_objects(store, to_check, acc)
    orphans, orphan_bytes = _orphans(listing, referenced)
    return VerifyReport(
        target="dataset",
        id=ds.id,
        head=head,
        snapshot_id=checked_to,
        records_checked=acc.records,
        snapshots_checked=snapshots_checked,
        objects_checked=acc.objects,
        bytes_checked=acc.nbytes,
        problems=_sorted(acc.problems),
        orphans=orphans,
        orphan_bytes=orphan_bytes,
    )


# ----------------------------------------------------------------------- volume
@attrs.define
class _Segment:
    """A decoded, self-validated segment (``None`` fields: unusable)."""

    seg: VolumeSegment | None
    nbytes: int = 0


def _validate_segment(seg: VolumeSegment, total: int) -> str | None:
    prev_end = 0
    for i, (off, length) in enumerate(zip(seg.offsets, seg.lengths, strict=True)):
        if length <= 0:
            return f"entry {i} has length {length}"
        if off < prev_end:
            return f"entry {i} at {off} overlaps or precedes the previous entry (ends {prev_end})"
        prev_end = off + length
        if prev_end > total:
            return f"entry {i} ends at {prev_end}, past the volume's length {total}"
    for name in seg.names:
        if not name or "/" in name:
            return f"block name {name!r} is not one key segment"
    for recorded in seg.checksums or ():
        try:
            parse_recorded(recorded)
        except FormatError as exc:
            return f"unusable block checksum: {exc}"
    return None


def _union_overlap(segs: list[VolumeSegment]) -> tuple[int, int] | None:
    """First overlap between entries of different segments (each sorted), if any."""
    merged = heapq.merge(*(zip(s.offsets, s.lengths, strict=True) for s in segs))
    prev_end = 0
    for off, length in merged:
        if off < prev_end:
            return off, length
        prev_end = max(prev_end, off + length)
    return None


async def verify_volume(vol: Volume, snapshot_id: str | None = None) -> VerifyReport:
    """Check a volume's roots, index and blocks; report, never repair.

    Checks, for every root of the log: it decodes, belongs to this volume at
    its sequence number, continues a linear chain (no gap; each parent is the
    previous snapshot; ``created_at`` never decreases), agrees with the
    volume's ``total_length`` and checksum setting, and its totals match its
    segments. Every referenced segment list and segment decodes and is valid
    (entries sorted, disjoint, positive, inside ``[0, N)``; counts and byte
    totals match the references). For the newest snapshot in range, the
    union of its segments is disjoint. Every block referenced by a snapshot
    in range exists with the recorded length and, with checksums, digest.
    Keys under ``volumes/<id>/`` no root references are listed as orphans:
    blocks staged but never committed (possibly by a writer that will still
    commit them), segments of lost commit races.

    Cost: one listing of the volume prefix; one ``get`` per root, per segment
    list and per distinct segment (segments are shared between roots, so
    each is read once); per distinct block in range one streamed ``get``
    (checksums) or one ``head`` (none); at most 8 in flight. CPU: O(E) over
    all segment entries E, plus O(B log k) for the union check. Memory: the
    listing, every distinct segment decoded (about 150 bytes per entry), and
    at most 256 roots.

    Parameters
    ----------
    vol
        The volume.
    snapshot_id
        Check blocks of snapshots up to this one (the whole log is still
        decoded, for the chain and for orphans). ``None``: all.

    Returns
    -------
    VerifyReport
        ``report.ok`` is ``True`` when no problem was found.

    Raises
    ------
    SnapshotNotFoundError
        ``snapshot_id`` is not the id of a root in the log.
    StorageError
        Listing the volume prefix failed (individual failures are reported).
    """
    from .manifest._volume import VolumeRoot, VolumeSegmentList

    store = vol.store
    prefix = f"volumes/{vol.id}/"
    log_prefix = f"{prefix}_log/"
    blocks_prefix = f"{prefix}blocks/"
    end: int | None = None
    if snapshot_id is not None:
        if not isinstance(snapshot_id, str):
            raise InvalidInputError(f"a snapshot id is a str, not {type(snapshot_id).__name__}")
        if len(snapshot_id) == 20 and snapshot_id.isdigit() and int(snapshot_id) > 0:
            end = int(snapshot_id)

    listing = await _list_prefix(store, prefix)
    roots = _sequence_numbers(listing, log_prefix, _VOLUME_ROOT_RE)
    if snapshot_id is not None and (end is None or end not in roots):
        raise SnapshotNotFoundError(
            f"volume {vol.id!r} has no snapshot {snapshot_id!r}",
            volume_id=vol.id,
            snapshot_id=snapshot_id,
        )
    last_seq = max(roots, default=0)
    referenced: set[str] = {f"{prefix}_latest", f"{prefix}_log/_lwm.json", *roots.values()}
    acc = _Acc()
    segments: dict[str, _Segment] = {}
    lists: dict[str, tuple[SegmentRef, ...] | None] = {}
    checksum_name = vol.checksum.name if vol.checksum is not None else None
    block_refs: dict[tuple[str, int, str | None], _ObjectRef] = {}
    seen_blocks: set[tuple[str, int, str | None]] = set()
    head: str | None = None
    checked_to: str | None = None
    snapshots_checked = 0
    prev_id: str | None = None
    prev_time: Any = None
    prev_readable = True
    target_segs: list[VolumeSegment] | None = None
    target_id: str | None = None

    async def load_segments(refs: list[SegmentRef], sid: str) -> None:
        todo = list(dict.fromkeys(r.key for r in refs if r.key not in segments))
        digests = {r.key: r.digest for r in refs}
        for key, raw in zip(todo, await _fetch_docs(store, todo), strict=True):
            referenced.add(key)
            acc.records += 1
            if isinstance(raw, AiolodeError):
                _doc_problem(acc, key, raw, "index segment", sid)
                segments[key] = _Segment(None)
                continue
            if await _digest_problem(acc, key, raw, digests.get(key), "index segment", sid):
                # Its entries cannot be trusted, but it still references its blocks.
                try:
                    damaged = decode(raw, VolumeSegment, key=key)
                    referenced.update(f"{blocks_prefix}{n}" for n in damaged.names)
                except FormatError:
                    pass
                segments[key] = _Segment(None)
                continue
            seg = _decode_doc(acc, key, raw, VolumeSegment, "index segment", sid)
            if seg is None:
                segments[key] = _Segment(None)
                continue
            # Even an invalid segment's blocks are not orphans: it references them.
            referenced.update(f"{blocks_prefix}{n}" for n in seg.names)
            problem = None if seg.volume_id == vol.id else f"belongs to {seg.volume_id!r}"
            problem = problem or _validate_segment(seg, vol.total_length)
            if problem is None and (seg.checksums is None) != (checksum_name is None):
                # Blocks with and without digests must not mix: a block
                # without one would silently skip verification.
                problem = (
                    "records checksums but the volume has none"
                    if checksum_name is None
                    else f"records no checksums but the volume uses {checksum_name}"
                )
            if problem is not None:
                acc.add(
                    ProblemKind.INVALID_RECORD,
                    f"index segment {key!r}: {problem}",
                    key=key,
                    snap=sid,
                )
                segments[key] = _Segment(None)
                continue
            segments[key] = _Segment(seg, sum(seg.lengths))

    for start in range(1, last_seq + 1, _WINDOW):
        seqs = list(range(start, min(start + _WINDOW, last_seq + 1)))
        docs = await _fetch_window(store, seqs, roots)
        for seq in seqs:
            sid = f"{seq:020d}"
            key = f"{log_prefix}{sid}.json"
            if seq not in docs:
                acc.add(
                    ProblemKind.BROKEN_CHAIN,
                    f"root {sid} is missing but root {last_seq} exists (a gap)",
                    key=key,
                    snap=sid,
                )
                prev_readable = False
                continue
            root = _decode_doc(acc, key, docs[seq], VolumeRoot, "root", sid)
            acc.records += 1
            if root is None:
                prev_readable = False
                continue
            bad = []
            if root.volume_id != vol.id or root.sequence != seq or root.snapshot_id != sid:
                bad.append(
                    f"says volume {root.volume_id!r} sequence {root.sequence} id "
                    f"{root.snapshot_id!r}"
                )
            if root.total_length != vol.total_length:
                bad.append(f"total_length {root.total_length} != {vol.total_length}")
            if root.checksum != checksum_name:
                bad.append(f"checksum {root.checksum!r} != the volume's {checksum_name!r}")
            for msg in bad:
                acc.add(ProblemKind.INVALID_RECORD, f"root {key!r} {msg}", key=key, snap=sid)
            _link_problems(
                acc, key, sid, root.parent_id, root.created_at, prev_id, prev_time,
                check_parent=prev_readable,
            )  # fmt: skip
            prev_id, prev_time, prev_readable, head = sid, root.created_at, True, sid

            frozen: tuple[SegmentRef, ...] | None = ()
            if root.frozen_key is not None:
                referenced.add(root.frozen_key)
                if root.frozen_key not in lists:
                    fk = root.frozen_key
                    (got,) = await _fetch_docs(store, [fk])
                    acc.records += 1
                    lists[fk] = None
                    if isinstance(got, AiolodeError) or not await _digest_problem(
                        acc, fk, got, root.frozen_digest, "segment list", sid
                    ):
                        doc = _decode_doc(acc, fk, got, VolumeSegmentList, "segment list", sid)
                        if doc is not None:
                            lists[fk] = doc.segments
                frozen = lists[root.frozen_key]
            if frozen is None:
                continue  # unreadable list, reported once when first read
            if len(frozen) != root.frozen_count:
                acc.add(
                    ProblemKind.INVALID_RECORD,
                    f"root {key!r} expects {root.frozen_count} frozen segments, its list "
                    f"has {len(frozen)}",
                    key=key,
                    snap=sid,
                )
            refs = [*frozen, *root.segments]
            await load_segments(refs, sid)
            decoded: list[VolumeSegment] = []
            usable = True
            for ref in refs:
                s = segments[ref.key]
                if s.seg is None:
                    usable = False
                    continue
                if len(s.seg.offsets) != ref.count or s.nbytes != ref.nbytes:
                    acc.add(
                        ProblemKind.INVALID_RECORD,
                        f"segment {ref.key!r} has {len(s.seg.offsets)} blocks / {s.nbytes} "
                        f"bytes, root {sid} says {ref.count} / {ref.nbytes}",
                        key=ref.key,
                        snap=sid,
                    )
                decoded.append(s.seg)
            count = sum(len(s.offsets) for s in decoded)
            nbytes = sum(segments[r.key].nbytes for r in refs if segments[r.key].seg is not None)
            if usable and (count != root.block_count or nbytes != root.committed_bytes):
                acc.add(
                    ProblemKind.INVALID_RECORD,
                    f"root {key!r} totals ({root.block_count} blocks, {root.committed_bytes} "
                    f"bytes) do not match its segments ({count}, {nbytes})",
                    key=key,
                    snap=sid,
                )
            in_range = end is None or seq <= end
            for seg in decoded:
                cks = seg.checksums
                for i, name in enumerate(seg.names):
                    bkey = f"{blocks_prefix}{name}"
                    referenced.add(bkey)
                    entry = (bkey, seg.lengths[i], None if cks is None else cks[i])
                    # A block is checked once per distinct entry: segments that
                    # copied it (merges) must agree with what is stored too.
                    if in_range and entry not in seen_blocks:
                        seen_blocks.add(entry)
                        block_refs[entry] = _ObjectRef(*entry, snapshot_id=sid)
            if in_range:
                snapshots_checked += 1
                checked_to = sid
                target_segs, target_id = decoded, sid
        # Blocks are shared by every later snapshot: check each once, as soon
        # as its first snapshot is known, so memory stays one window of refs.
        await _check_objects(store, list(block_refs.values()), acc)
        block_refs = {}
    if target_segs is not None and target_id is not None:
        overlap = _union_overlap(target_segs)
        if overlap is not None:
            acc.add(
                ProblemKind.INVALID_RECORD,
                f"snapshot {target_id}: block at {overlap[0]} (+{overlap[1]}) overlaps another "
                "segment's block",
                snap=target_id,
            )
    orphans, orphan_bytes = _orphans(listing, referenced)
    return VerifyReport(
        target="volume",
        id=vol.id,
        head=head,
        snapshot_id=checked_to,
        records_checked=acc.records,
        snapshots_checked=snapshots_checked,
        objects_checked=acc.objects,
        bytes_checked=acc.nbytes,
        problems=_sorted(acc.problems),
        orphans=orphans,
        orphan_bytes=orphan_bytes,
    )
