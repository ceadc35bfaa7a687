"""verify_dataset: a dataset's descriptor, log, partition manifests and data
files, checked straight from the stored format (``docs/spec/manifest-v*.md``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, overload

import attrs

from .._validate import safe_repr
from ..checksum import checksum_from_name
from ..codecs import codec_from_name
from ..compression import compressor_from_name
from ..errors import (
    AiolodeError,
    ConfigMismatchError,
    FormatError,
    InvalidInputError,
    SnapshotExpiredError,
    SnapshotNotFoundError,
)
from ..layout import (
    DefaultLayout,
    FlatLayout,
    Layout,
    layout_from_description,
    validate_dataset_id,
)
from ..manifest._converter import decode
from ..manifest._dataset import (
    Checkpoint,
    CommitRecord,
    DatasetDescriptor,
    ExpiryState,
    FileRef,
    KeyMarker,
    PartitionManifest,
    settle_compactions,
)
from ..manifest._ids import (
    DATASET_SEQ_WIDTH,
    dataset_snapshot_id,
    parse_dataset_snapshot_id,
    record_key,
)
from ..store import Store
from ._log import Chain, fetch_window, low_water_mark, records_in, windows
from ._objects import ObjectRef, check_objects, decode_doc, fetch_docs, list_prefix
from ._report import Findings, ProblemKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..manifest._dataset import Manifest, PartitionRef
    from ._report import VerifyReport

__all__ = ("DatasetLike", "verify_dataset")


class DatasetLike(Protocol):
    """What :func:`verify_dataset` reads of a :class:`~aiolode.Dataset` passed whole."""

    @property
    def store(self) -> Store:
        """The store."""

    @property
    def id(self) -> str:
        """The dataset id."""

    @property
    def layout(self) -> Layout:
        """The layout (a :class:`~aiolode.DefaultLayout` may mean "not known yet")."""


def _descriptor_key(root: str) -> str:
    return f"{root}_dataset.json"


def _plain(value: Any) -> Any:
    """Layout descriptions as plain JSON values (records hold tuples and frozen dicts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _snapshot_problems(m: Manifest, root: str) -> list[str]:
    """What makes one snapshot of a record unusable, beyond its identity and chain."""
    out: list[str] = []
    try:
        # What a reader will follow: an unknown codec/compressor or invalid
        # options make the snapshot unreadable.
        codec_from_name(m.codec, m.codec_options)
        compressor_from_name(m.compressor, m.compressor_options)
    except FormatError as exc:
        out.append(f"cannot be decoded: {exc}")
    out += [f"names file {f.key!r} outside {root!r}" for f in m.files if not f.key.startswith(root)]
    out += [
        f"names partition manifest {p.key!r} outside {root!r}"
        for p in m.partition_manifests
        if not p.key.startswith(root)
    ]
    if m.files and m.partition_manifests:
        out.append("has both inline files and partition manifests")
    counts = (
        [p.row_count for p in m.partition_manifests]
        if m.partition_manifests
        else [f.row_count for f in m.files]
    )
    if m.row_count is not None and counts and all(c is not None for c in counts):
        total = sum(c or 0 for c in counts)
        if total != m.row_count:
            out.append(f"records {m.row_count} rows but its files hold {total}")
    return out


def _partition_problem(
    pm: PartitionManifest, ref: PartitionRef, dataset_id: str, directory: str
) -> str | None:
    """How a partition manifest disagrees with the summary that names it."""
    rows = [f.row_count for f in pm.files]
    total_rows = None if any(r is None for r in rows) else sum(r or 0 for r in rows)
    size = sum(f.size for f in pm.files)
    if pm.dataset_id != dataset_id:
        return f"belongs to dataset {pm.dataset_id!r}"
    if not pm.token or pm.token not in ref.key:
        return f"was written by another write (token {pm.token!r})"
    if pm.partition != ref.partition:
        return f"holds partition {dict(pm.partition)!r}, not {dict(ref.partition)!r}"
    strays = [f.key for f in pm.files if f.partition != ref.partition]
    if strays:
        return f"names file {strays[0]!r} of another partition"
    if (len(pm.files), size, total_rows) != (ref.file_count, ref.size, ref.row_count):
        return (
            f"holds {len(pm.files)} files, {size} bytes, {total_rows} rows; the summary "
            f"says {ref.file_count}, {ref.size}, {ref.row_count}"
        )
    outside = [f.key for f in pm.files if not f.key.startswith(directory)]
    if outside:
        return f"names file {outside[0]!r} outside its partition {directory!r}"
    return None


@attrs.define
class _Fold:
    """The files the records add and replace, snapshot by snapshot, as readers
    fold them: what a checkpoint must agree with."""

    #: File key -> (snapshot id, reference, still live).
    files: dict[str, tuple[str, FileRef, bool]] = attrs.field(factory=dict)
    snapshots: set[str] = attrs.field(factory=set)
    #: A record in the walk was missing or unreadable: the fold is incomplete.
    sound: bool = True

    def add(self, m: Manifest, files: tuple[FileRef, ...]) -> None:
        self.snapshots.add(m.snapshot_id)
        for key in m.replaces:
            old = self.files.get(key)
            if old is not None:
                self.files[key] = (old[0], old[1], False)
        for f in files:
            self.files[f.key] = (m.snapshot_id, f, True)


@attrs.define
class _DatasetCheck:
    """One run of :func:`verify_dataset`: its arguments and what it found so far."""

    store: Store
    dataset_id: str
    layout: Layout
    findings: Findings = attrs.field(factory=Findings)
    chain: Chain = attrs.field(factory=Chain)
    #: The last snapshot in range, as ``(seq, index)`` (``None``: all).
    end: tuple[int, int] | None = None
    #: How many snapshots the record ``end`` is in holds (once read).
    end_count: int | None = None
    lwm: int = 1
    listing: Mapping[str, int] = attrs.field(factory=dict)
    #: The expiry state the head leads to: expired snapshots' objects may be gone.
    expiry: ExpiryState = attrs.field(factory=ExpiryState)
    #: Snapshots in records below this belong to a dropped life of the dataset.
    dead_below: int = 1
    #: The previous record of the walk, when it decoded (for the cumulative fields).
    prev: CommitRecord | None = None
    fold: _Fold = attrs.field(factory=_Fold)
    #: Checkpoints in the listing: record sequence number -> key.
    checkpoints: dict[int, str] = attrs.field(factory=dict)
    #: Records already fetched (the head, the expiry holder).
    fetched: dict[int, bytes | AiolodeError] = attrs.field(factory=dict)

    @property
    def root(self) -> str:
        return self.layout.root(self.dataset_id)

    @property
    def log_prefix(self) -> str:
        return self.layout.log_prefix(self.dataset_id)

    def live(self, seq: int, snapshot_id: str) -> bool:
        """Whether the snapshot is retained (its objects must exist)."""
        return seq >= self.dead_below and not self.expiry.covers(seq, snapshot_id)

    # -------------------------------------------------------------- descriptor
    async def check_descriptor(self, listing: Mapping[str, int], given: Layout | None) -> None:
        """Check the descriptor (if any): it decodes, belongs to this dataset, names
        known components and the layout it sits under. Without a ``given`` layout,
        the recorded one replaces the assumed one (for the log prefix).

        Raises
        ------
        ConfigMismatchError
            No layout was given and the descriptor records a custom one.
        """
        key = _descriptor_key(self.root)
        self.findings.referenced.add(key)
        if key not in listing:
            return  # written before descriptors existed: nothing to check
        (raw,) = await fetch_docs(self.store, [key])
        desc = decode_doc(self.findings, key, raw, DatasetDescriptor, "descriptor", None)
        if desc is None:
            return
        problems: list[str] = []
        if desc.dataset_id != self.dataset_id:
            problems.append(f"belongs to dataset {desc.dataset_id!r}")
        try:
            codec_from_name(desc.codec, desc.codec_options)
            compressor_from_name(desc.compressor, desc.compressor_options)
            if desc.checksum is not None:
                checksum_from_name(desc.checksum)
        except FormatError as exc:
            problems.append(f"names an unusable component ({exc})")
        recorded = _plain(desc.layout)
        if given is not None:
            if _plain(given.describe()) != recorded:
                problems.append(f"records layout {recorded!r}, checked with {given.describe()!r}")
        else:
            try:
                rebuilt = layout_from_description(recorded)
            except InvalidInputError:
                raise ConfigMismatchError(
                    f"dataset {self.dataset_id!r} uses the custom layout {recorded!r}: pass it "
                    "(layout=...) to verify the dataset",
                    dataset_id=self.dataset_id,
                    key=key,
                    field="layout",
                ) from None
            if rebuilt.root(self.dataset_id) != self.root:
                problems.append(
                    f"records layout {safe_repr(recorded)}, whose root is not {safe_repr(self.root)}"
                )
            else:
                self.layout = rebuilt
        for problem in problems:
            self.findings.add(ProblemKind.INVALID_RECORD, f"descriptor {key!r} {problem}", key=key)

    # ----------------------------------------------------------------- history
    async def read_head_state(self, records: Mapping[int, str], last: int) -> None:
        """What the newest record says about every snapshot: the expiry state it
        leads to, and whether the dataset was dropped. Decoding problems are
        reported by the walk, not here. Cost: one or two ``get``."""
        head = await self._quiet_record(records, last)
        if head is None:
            return
        if head.dropped:
            self.dead_below = last + 1
        if head.expiry is not None:
            self.expiry = head.expiry
        elif head.expiry_seq:
            holder = await self._quiet_record(records, head.expiry_seq)
            if holder is not None and holder.expiry is not None:
                self.expiry = holder.expiry
            else:
                # Collected below the low-water mark: everything before it is expired.
                self.expiry = ExpiryState(below=max(self.lwm, 1))

    async def _quiet_record(self, records: Mapping[int, str], seq: int) -> CommitRecord | None:
        key = records.get(seq)
        if key is None:
            return None
        (raw,) = await fetch_docs(self.store, [key])
        self.fetched[seq] = raw  # the walk reads it from here, not twice
        if isinstance(raw, bytes):
            try:
                return decode(raw, CommitRecord, key=key)
            except FormatError:
                return None
        return None

    async def check_history(self, records: Mapping[int, str], last: int) -> None:
        """Walk the log in windows: records, chain, partition manifests, files,
        and the checkpoints against the records they fold."""
        for seqs in windows(1, last):
            docs = await fetch_window(
                self.store, [s for s in seqs if s not in self.fetched], records
            )
            docs.update((s, self.fetched.pop(s)) for s in seqs if s in self.fetched)
            to_check: list[ObjectRef] = []
            # Partition manifests named by the records: (snapshot id, ref, check files).
            parts: list[tuple[str, PartitionRef, bool]] = []
            walked: list[tuple[int, CommitRecord | None]] = []
            for seq in seqs:
                key = record_key(self.log_prefix, seq, DATASET_SEQ_WIDTH)
                first_id = dataset_snapshot_id(seq, 0)
                if seq < self.lwm:
                    if seq in docs:
                        self._expired(key, docs[seq])
                    continue
                if seq not in docs:
                    self.chain.gap(self.findings, "commit record", key, first_id, last)
                    self.prev = None
                    self.fold.sound = False
                    walked.append((seq, None))
                    continue
                self.findings.records += 1
                rec = decode_doc(
                    self.findings, key, docs[seq], CommitRecord, "commit record", first_id
                )
                if rec is None:
                    self.chain.broken()
                    self.prev = None
                    self.fold.sound = False
                    walked.append((seq, None))
                    continue
                self._check_record(seq, key, rec, to_check, parts)
                walked.append((seq, rec))
            loaded = await self._check_partitions(parts, to_check)
            await check_objects(self.store, to_check, self.findings)
            for seq, rec in walked:
                if rec is not None:
                    for m in rec.snapshots:
                        if m.partition_manifests:
                            got = [loaded.get(p.key) for p in m.partition_manifests]
                            if any(g is None for g in got):
                                self.fold.sound = False
                            files = tuple(f for g in got if g is not None for f in g)
                        else:
                            files = m.files
                        self.fold.add(m, files)
                    for m in rec.compactions:
                        self.fold.add(m, m.files)
                if seq in self.checkpoints:
                    await self._check_checkpoint(seq, rec)

    def _expired(self, key: str, raw: object) -> None:
        """A record below the low-water mark, not yet collected: what it names is
        not an orphan, but it is no longer checked."""
        if not isinstance(raw, bytes):
            return
        try:
            rec = decode(raw, CommitRecord, key=key)
        except FormatError:
            return
        for m in (*rec.snapshots, *rec.compactions):
            self.findings.referenced.update(f.key for f in m.files)
            self.findings.referenced.update(p.key for p in m.partition_manifests)

    def _check_compactions(
        self, seq: int, key: str, rec: CommitRecord, to_check: list[ObjectRef]
    ) -> None:
        """A compaction's files are referenced; required while every snapshot
        whose rows they hold is retained (then readers may use them)."""
        f = self.findings
        if rec.compactions and rec.snapshots:
            f.add(
                ProblemKind.INVALID_RECORD,
                f"commit record {key!r} commits snapshots and compactions at once",
                key=key,
            )
        for idx, m in enumerate(rec.compactions):
            cid = dataset_snapshot_id(seq, idx)
            if m.operation != "compact" or m.snapshot_id != cid or m.dataset_id != self.dataset_id:
                f.add(
                    ProblemKind.INVALID_RECORD,
                    f"record {key!r} compaction {idx} is {m.operation!r} {m.snapshot_id!r} of "
                    f"dataset {m.dataset_id!r}, expected a compaction {cid!r}",
                    key=key,
                )
            for problem in _snapshot_problems(m, self.root):
                f.add(ProblemKind.INVALID_RECORD, f"compaction {cid} {problem}", key=key)
            for fr in m.files:
                if not fr.key.startswith(self.root):
                    continue
                f.referenced.add(fr.key)
                if not fr.sources or sum(s.rows for s in fr.sources) != fr.row_count:
                    f.add(
                        ProblemKind.INVALID_RECORD,
                        f"compacted file {fr.key!r} does not account for its rows by source",
                        key=key,
                    )
                    continue
                usable = all(self._retained(s.snapshot_id) for s in fr.sources)
                if usable and (self.end is None or seq <= self.end[0]):
                    to_check.append(ObjectRef(fr.key, fr.size, fr.checksum, cid))

    def _retained(self, snapshot_id: str) -> bool:
        try:
            s, _ = parse_dataset_snapshot_id(snapshot_id, dataset_id="")
        except InvalidInputError:
            return False
        return s >= self.lwm and self.live(s, snapshot_id)

    def _check_record(
        self,
        seq: int,
        key: str,
        rec: CommitRecord,
        to_check: list[ObjectRef],
        parts: list[tuple[str, PartitionRef, bool]],
    ) -> None:
        f = self.findings
        first_id = dataset_snapshot_id(seq, 0)
        if rec.seq != seq or rec.dataset_id != self.dataset_id:
            f.add(
                ProblemKind.INVALID_RECORD,
                f"commit record {key!r} says dataset {rec.dataset_id!r} seq {rec.seq}",
                key=key,
                snap=first_id,
            )
        self._check_compactions(seq, key, rec, to_check)
        if not rec.snapshots and not rec.ops and not rec.compactions:
            f.add(
                ProblemKind.INVALID_RECORD,
                f"commit record {key!r} holds no snapshot and no operation",
                key=key,
                snap=first_id,
            )
        genesis = self._check_cumulative(seq, key, rec)
        if genesis:
            # A new life of the dataset after a drop: a chain of its own.
            self.chain.prev_id, self.chain.linked = None, True
        if not rec.snapshots and self.chain.linked and rec.tip != self.chain.prev_id:
            f.add(
                ProblemKind.BROKEN_CHAIN,
                f"commit record {key!r} names {rec.tip!r} as the newest snapshot, expected "
                f"{self.chain.prev_id!r}",
                key=key,
                snap=first_id,
            )
        if self.end is not None and seq == self.end[0]:
            self.end_count = len(rec.snapshots)
        for idx, m in enumerate(rec.snapshots):
            sid = dataset_snapshot_id(seq, idx)
            if m.snapshot_id != sid or m.dataset_id != self.dataset_id:
                f.add(
                    ProblemKind.INVALID_RECORD,
                    f"record {key!r} position {idx} holds snapshot {m.snapshot_id!r} of "
                    f"dataset {m.dataset_id!r}, expected {sid!r}",
                    key=key,
                    snap=sid,
                )
            # The parent of a record's first snapshot is the previous record's
            # last one; not checked after an unreadable record (already reported).
            self.chain.follow(f, key, sid, m.parent_id, m.created_at)
            for problem in _snapshot_problems(m, self.root):
                f.add(ProblemKind.INVALID_RECORD, f"snapshot {sid} {problem}", key=key, snap=sid)
            # Keys outside the dataset's root were reported: never fetched as ours.
            files = [fr for fr in m.files if fr.key.startswith(self.root)]
            # Expired (or dropped) snapshots' objects may have been collected:
            # what is left of them is referenced, nothing is required.
            live = self.live(seq, sid)
            check = live and (self.end is None or (seq, idx) <= self.end)
            f.referenced.update(fr.key for fr in files)
            for pref in m.partition_manifests:
                if pref.key.startswith(self.root):
                    f.referenced.add(pref.key)
                    if live or pref.key in self.listing:
                        parts.append((sid, pref, check))
            if check:
                f.snapshots += 1
                f.checked_to = sid
                to_check.extend(ObjectRef(fr.key, fr.size, fr.checksum, sid) for fr in files)
            f.head = sid
        self.prev = rec

    def _check_cumulative(self, seq: int, key: str, rec: CommitRecord) -> bool:
        """Check what a record carries over from the previous one (expiry and
        schema pointers, GC fence, drop); True when it starts a new life."""
        prev = self.prev
        if prev is None or prev.seq != seq - 1:
            return False
        genesis = prev.dropped and not rec.dropped
        problems: list[str] = []
        if genesis:
            if rec.expiry is None or rec.expiry.below != seq or rec.expiry_seq != seq:
                problems.append("starts a new life after a drop without expiring the old one")
        else:
            want = (
                seq
                if rec.expiry is not None
                else (prev.seq if prev.expiry is not None else prev.expiry_seq)
            )
            if rec.expiry_seq != want:
                problems.append(f"points to expiry record {rec.expiry_seq}, expected {want}")
            want = (
                seq
                if rec.schema is not None
                else (prev.seq if prev.schema is not None else prev.schema_seq)
            )
            if rec.schema_seq != want:
                problems.append(f"points to schema record {rec.schema_seq}, expected {want}")
            if prev.gc_fence is not None and (rec.gc_fence is None or rec.gc_fence < prev.gc_fence):
                problems.append("lowers the garbage collection fence")
            if prev.dropped and not rec.dropped:
                problems.append("undoes a drop")
            if rec.incarnation != prev.incarnation:
                problems.append(
                    f"belongs to incarnation {safe_repr(rec.incarnation)}, not {safe_repr(prev.incarnation)}"
                )
        if rec.expiry is not None and prev.expiry_seq and not genesis:
            old = prev.expiry if prev.expiry is not None else None
            if old is not None and (
                rec.expiry.below < old.below
                or not set(old.ids)
                <= set(rec.expiry.ids)
                | {
                    i
                    for i in old.ids
                    if parse_dataset_snapshot_id(i, dataset_id="")[0] < rec.expiry.below
                }
            ):
                problems.append("un-expires snapshots")
        for problem in problems:
            self.findings.add(
                ProblemKind.INVALID_RECORD,
                f"commit record {key!r} {problem}",
                key=key,
                snap=dataset_snapshot_id(seq, 0),
            )
        return genesis

    async def _check_partitions(
        self, parts: list[tuple[str, PartitionRef, bool]], to_check: list[ObjectRef]
    ) -> dict[str, tuple[FileRef, ...]]:
        """Read the partition manifests (format v2+) the records name: their files
        are referenced, and checked when their snapshot is. Returns the files of
        each manifest that decoded."""
        f = self.findings
        out: dict[str, tuple[FileRef, ...]] = {}
        docs = await fetch_docs(self.store, [ref.key for _, ref, _ in parts])
        for (sid, ref, check), raw in zip(parts, docs, strict=True):
            pm = decode_doc(f, ref.key, raw, PartitionManifest, "partition manifest", sid)
            if pm is None:
                continue
            out[ref.key] = pm.files
            files = [fr for fr in pm.files if fr.key.startswith(self.root)]
            f.referenced.update(fr.key for fr in files)
            directory = ref.key.rsplit("_manifests/", 1)[0]
            problem = _partition_problem(pm, ref, self.dataset_id, directory)
            if problem is not None:
                f.add(
                    ProblemKind.INVALID_RECORD,
                    f"partition manifest {ref.key!r} does not match snapshot {sid}'s "
                    f"summary: it {problem}",
                    key=ref.key,
                    snap=sid,
                )
            if check:
                to_check.extend(ObjectRef(fr.key, fr.size, fr.checksum, sid) for fr in files)
        return out

    # ------------------------------------------------------------- checkpoints
    async def _check_checkpoint(self, seq: int, rec: CommitRecord | None) -> None:
        """A checkpoint is derived data that readers trust once its identity
        matches: its retained snapshots and files must be the records' own."""
        key = self.checkpoints[seq]
        f = self.findings
        (raw,) = await fetch_docs(self.store, [key])
        cp = decode_doc(f, key, raw, Checkpoint, "checkpoint", None)
        if cp is None:
            return
        problem = None
        if cp.dataset_id != self.dataset_id or cp.seq != seq:
            problem = f"says dataset {cp.dataset_id!r} record {cp.seq} (readers ignore it)"
        elif rec is not None and rec.last_snapshot_id != cp.tip:
            problem = (
                f"names {cp.tip!r} as the newest snapshot, record {seq} {rec.last_snapshot_id!r}"
                " (readers ignore it)"
            )
        elif self.fold.sound:
            problem = self._checkpoint_content(cp)
        if problem is not None:
            f.add(ProblemKind.INVALID_RECORD, f"checkpoint {key!r} {problem}", key=key)

    def _checkpoint_content(self, cp: Checkpoint) -> str | None:
        """How a checkpoint's retained snapshots and files differ from the fold
        of the records (both seen through the head's expiry state)."""

        def kept(sid: str) -> bool:
            try:
                s, _ = parse_dataset_snapshot_id(sid, dataset_id="")
            except InvalidInputError:
                return True  # a foreign id: always a difference
            return s >= self.lwm and self.live(s, sid)

        want_snaps = {s for s in self.fold.snapshots if kept(s)}
        got_snaps = {s.snapshot_id for s in cp.snapshots if kept(s.snapshot_id)}
        if want_snaps != got_snaps:
            extra = sorted(got_snaps - want_snaps)
            missing = sorted(want_snaps - got_snaps)
            return f"disagrees with the records on snapshots (extra {extra[:3]}, missing {missing[:3]})"
        want = _settled({k: v for k, v in self.fold.files.items() if kept(v[0])}, kept)
        got = _settled(
            {
                cf.file.key: (cf.snapshot_id, cf.file, cf.live)
                for cf in cp.files
                if kept(cf.snapshot_id)
            },
            kept,
        )
        if want != got:
            diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
            return f"disagrees with the records on {len(diff)} files (first: {diff[0]!r})"
        return None

    # -------------------------------------------------------------- key markers
    async def check_markers(self) -> None:
        """Idempotency markers (``<log>_keys/<hash>.json``): pointers a retrying
        writer starts its search from. A damaged one only costs that writer a
        longer search, but it is damage: reported."""
        prefix = f"{self.log_prefix}_keys/"
        keys = sorted(k for k in self.listing if k.startswith(prefix))
        self.findings.referenced.update(keys)
        for start in range(0, len(keys), 256):
            batch = keys[start : start + 256]
            for key, raw in zip(batch, await fetch_docs(self.store, batch), strict=True):
                marker = decode_doc(self.findings, key, raw, KeyMarker, "idempotency marker", None)
                if marker is None:
                    continue
                digest = hashlib.sha256(marker.key.encode("utf-8", "surrogatepass")).hexdigest()
                if marker.dataset_id != self.dataset_id or key != f"{prefix}{digest[:40]}.json":
                    self.findings.add(
                        ProblemKind.INVALID_RECORD,
                        f"idempotency marker {key!r} names dataset {marker.dataset_id!r} and a "
                        "key that does not hash to its name",
                        key=key,
                    )

    def find_checkpoints(self) -> None:
        """The checkpoints in the listing (others under ``_checkpoints/`` are orphans)."""
        prefix = f"{self.log_prefix}_checkpoints/"
        pattern = re.compile(rf"(\d{{{DATASET_SEQ_WIDTH}}})\.json")
        for key in self.listing:
            if key.startswith(prefix):
                m = pattern.fullmatch(key, len(prefix))
                if m is not None:
                    seq = int(m.group(1))
                    self.findings.referenced.add(key)
                    if seq >= self.lwm:
                        self.checkpoints[seq] = key


def _settled(
    files: dict[str, tuple[str, FileRef, bool]], kept: Callable[[str], bool]
) -> dict[str, tuple[str, FileRef, bool]]:
    """A fold's files as readers see them through the head's expiry state
    (compacted files holding expired rows give way to their sources' files)."""
    dead, revived = settle_compactions(
        {k: (v[1], v[2]) for k, v in files.items()}, lambda sid: not kept(sid)
    )
    return {k: (v[0], v[1], v[2] or k in revived) for k, v in files.items() if k not in dead}


async def _locate(
    store: Store, dataset_id: str, layout: Layout | None
) -> tuple[Layout, dict[str, int]]:
    """The layout to start from and the listing of the dataset's root.

    Without a layout: the default root, else the flat one if a descriptor sits
    there (as :class:`~aiolode.Dataset` looks for a dataset opened by name).
    """
    if layout is not None:
        return layout, await list_prefix(store, layout.root(dataset_id))
    default = DefaultLayout()
    listing = await list_prefix(store, default.root(dataset_id))
    if not listing:
        flat = FlatLayout()
        if await store.exists(_descriptor_key(flat.root(dataset_id))):
            return flat, await list_prefix(store, flat.root(dataset_id))
    return default, listing


@overload
async def verify_dataset(
    store: Store,
    dataset_id: str,
    *,
    layout: Layout | None = None,
    snapshot_id: str | None = None,
) -> VerifyReport: ...


@overload
async def verify_dataset(store: DatasetLike, *, snapshot_id: str | None = None) -> VerifyReport: ...


async def verify_dataset(
    store: Store | DatasetLike,
    dataset_id: str | None = None,
    *,
    layout: Layout | None = None,
    snapshot_id: str | None = None,
) -> VerifyReport:
    """Check a dataset's history and data files; report, never repair.

    Checks the *descriptor* (``<root>_dataset.json``, when there is one: it
    decodes, belongs to this dataset, names known codec, compressor and
    checksum, and records the layout it sits under); the *low-water mark*
    (when there is one: it decodes and names a record of the log; records
    below it were expired and are neither gaps nor checked); and, for every
    commit record of the log (format v1-v3): it decodes (schema, version,
    fields, tagged metadata), belongs to this dataset at its sequence number,
    and continues a linear chain (no gap; each snapshot's parent is the
    previous snapshot; ``created_at`` never decreases); each snapshot names a
    known codec and compressor with valid options, files and partition
    manifests inside the dataset's root, and row totals that match. A record
    that commits only maintenance operations (expiry, a GC fence, a drop)
    names the previous snapshot as its tip; what records carry over (expiry
    and schema pointers, the GC fence, a drop, the incarnation) never goes
    backwards, and a new life after a drop starts by expiring the old one.
    Every partition manifest a record names decodes and matches its summary.
    For every *retained* snapshot up to ``snapshot_id`` (default: the newest),
    every data file it references exists with the recorded size and, when a
    checksum is recorded, the recorded digest; the objects of expired or
    dropped snapshots may be gone (garbage collection) and are only
    referenced. Every checkpoint decodes, names its record and that record's
    tip, and retains exactly the snapshots and files the records fold to
    (readers trust a checkpoint whose identity matches). Every idempotency
    marker decodes and hashes to its name. Keys under the dataset's root that
    nothing references (the descriptor, the hint and the low-water mark are
    the log's own) are listed as orphans.

    A write committing while the check runs may show up as an orphan (its
    data files are stored before its record). Data files are checked as
    bytes: a file without a checksum is only stat'ed, and decoding (codec,
    compressor) is not attempted.

    Cost: one listing of the dataset root (without ``layout``, when the
    default root is empty: one more ``head``, and a listing of the flat root
    if a dataset is there); one ``get`` for the descriptor and one for the
    low-water mark when they exist; one ``get`` per commit record (records
    after ``snapshot_id`` included, since they may reference objects that are
    otherwise orphans, and at most one more for the record holding the
    expiry state), per partition manifest, per checkpoint and per
    idempotency marker; per referenced file in
    range one streamed ``get`` (checksum recorded) or one ``head`` (none); at
    most 8 in flight. Memory: the listing (key and size per object), the
    referenced key set, and at most 256 decoded records; one 1 MiB chunk per
    object in flight.

    Parameters
    ----------
    store
        The store holding the dataset. A :class:`~aiolode.Dataset` is accepted
        instead (then without ``dataset_id`` and ``layout``): its store, id and
        layout are used, a default layout meaning "as recorded".
    dataset_id
        The dataset.
    layout
        Where the dataset lives; ``None``: as its descriptor records (looked
        for under the default root, then the flat one).
    snapshot_id
        Check the history and files of snapshots up to this one (the whole
        log is still decoded, for the chain and for orphans). ``None``: all.

    Returns
    -------
    VerifyReport
        ``report.ok`` is ``True`` when no problem was found.

    Raises
    ------
    InvalidKeyError
        ``dataset_id`` is not a valid dataset id.
    InvalidInputError
        An argument has the wrong type (``snapshot_id`` not a str, ``layout``
        not a Layout, a Dataset passed with ``dataset_id`` or ``layout``).
    ConfigMismatchError
        No ``layout`` was given and the dataset records a custom one.
    SnapshotNotFoundError
        ``snapshot_id`` is not the id of a snapshot in the log
        (:class:`~aiolode.SnapshotExpiredError`: it was expired, or dropped).
    StorageError
        Listing the dataset root failed (individual failures are reported as
        :attr:`ProblemKind.STORAGE_ERROR`, not raised).
    """
    if not isinstance(store, Store):
        if dataset_id is not None or layout is not None:
            raise InvalidInputError(
                "verify_dataset(dataset) takes no dataset_id or layout; pass snapshot_id= by "
                "keyword, or call verify_dataset(store, dataset_id, ...)"
            )
        given = store.layout
        dataset_id = store.id
        # A Dataset opened by name knows its layout only once it found the dataset.
        layout = None if type(given) is DefaultLayout else given
        store = store.store
        if not isinstance(store, Store):
            raise InvalidInputError(f"store must be an aiolode Store, not {safe_repr(store)}")
    dataset_id = validate_dataset_id(dataset_id)
    if layout is not None and not isinstance(layout, Layout):
        raise InvalidInputError(
            f"layout must be None or an aiolode Layout, not {safe_repr(layout)}"
        )
    end = (
        None
        if snapshot_id is None
        else parse_dataset_snapshot_id(snapshot_id, dataset_id=dataset_id)
    )

    start, listing = await _locate(store, dataset_id, layout)
    check = _DatasetCheck(store, dataset_id, start, end=end, listing=listing)
    await check.check_descriptor(listing, layout)
    records = records_in(listing, check.log_prefix, DATASET_SEQ_WIDTH)
    last = max(records, default=0)
    check.lwm = await low_water_mark(
        store, check.findings, listing, f"{check.log_prefix}_lwm.json", dataset_id, last
    )
    check.chain.linked = check.lwm == 1
    await check.read_head_state(records, last)
    if end is not None and (
        end[0] < check.lwm or not check.live(end[0], dataset_snapshot_id(*end))
    ):
        raise SnapshotExpiredError(
            f"snapshot {snapshot_id!r} of dataset {dataset_id!r} was expired",
            dataset_id=dataset_id,
            snapshot_id=snapshot_id,
        )
    if end is not None and end[0] not in records:
        raise SnapshotNotFoundError(
            f"dataset {dataset_id!r} has no snapshot {snapshot_id!r}",
            dataset_id=dataset_id,
            snapshot_id=snapshot_id,
        )
    # The hint is a shortcut readers check before trusting: never a problem.
    check.findings.referenced.add(f"{check.log_prefix}_latest.json")
    check.findings.referenced.update(records.values())
    check.find_checkpoints()
    await check.check_markers()
    await check.check_history(records, last)
    if end is not None and check.end_count is not None and end[1] >= check.end_count:
        raise SnapshotNotFoundError(
            f"dataset {dataset_id!r} has no snapshot {snapshot_id!r} (record {end[0]} holds "
            f"{check.end_count})",
            dataset_id=dataset_id,
            snapshot_id=snapshot_id,
        )
    return check.findings.report("dataset", dataset_id, listing)
