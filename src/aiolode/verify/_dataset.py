"""verify_dataset: a dataset's descriptor, log, partition manifests and data
files, checked straight from the stored format (``docs/spec/manifest-v*.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, overload

import attrs

from ..checksum import checksum_from_name
from ..codecs import codec_from_name
from ..compression import compressor_from_name
from ..errors import (
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
from ..manifest._dataset import CommitRecord, DatasetDescriptor, PartitionManifest
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
    from collections.abc import Mapping

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

    @property
    def root(self) -> str:
        return self.layout.root(self.dataset_id)

    @property
    def log_prefix(self) -> str:
        return self.layout.log_prefix(self.dataset_id)

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
                problems.append(f"records layout {recorded!r}, whose root is not {self.root!r}")
            else:
                self.layout = rebuilt
        for problem in problems:
            self.findings.add(ProblemKind.INVALID_RECORD, f"descriptor {key!r} {problem}", key=key)

    # ----------------------------------------------------------------- history
    async def check_history(self, records: Mapping[int, str], last: int) -> None:
        """Walk the log in windows: records, chain, partition manifests, files."""
        for seqs in windows(1, last):
            docs = await fetch_window(self.store, seqs, records)
            to_check: list[ObjectRef] = []
            # Partition manifests named by the records: (snapshot id, ref, in range).
            parts: list[tuple[str, PartitionRef, bool]] = []
            for seq in seqs:
                key = record_key(self.log_prefix, seq, DATASET_SEQ_WIDTH)
                first_id = dataset_snapshot_id(seq, 0)
                if seq < self.lwm:
                    if seq in docs:
                        self._expired(key, docs[seq])
                    continue
                if seq not in docs:
                    self.chain.gap(self.findings, "commit record", key, first_id, last)
                    continue
                self.findings.records += 1
                rec = decode_doc(
                    self.findings, key, docs[seq], CommitRecord, "commit record", first_id
                )
                if rec is None:
                    self.chain.broken()
                    continue
                self._check_record(seq, key, rec, to_check, parts)
            await self._check_partitions(parts, to_check)
            await check_objects(self.store, to_check, self.findings)

    def _expired(self, key: str, raw: object) -> None:
        """A record below the low-water mark, not yet collected: what it names is
        not an orphan, but it is no longer checked."""
        if not isinstance(raw, bytes):
            return
        try:
            rec = decode(raw, CommitRecord, key=key)
        except FormatError:
            return
        for m in rec.snapshots:
            self.findings.referenced.update(f.key for f in m.files)
            self.findings.referenced.update(p.key for p in m.partition_manifests)

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
        if not rec.snapshots:
            f.add(
                ProblemKind.INVALID_RECORD,
                f"commit record {key!r} holds no snapshot",
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
            in_range = self.end is None or (seq, idx) <= self.end
            f.referenced.update(fr.key for fr in files)
            for pref in m.partition_manifests:
                if pref.key.startswith(self.root):
                    f.referenced.add(pref.key)
                    parts.append((sid, pref, in_range))
            if in_range:
                f.snapshots += 1
                f.checked_to = sid
                to_check.extend(ObjectRef(fr.key, fr.size, fr.checksum, sid) for fr in files)
            f.head = sid

    async def _check_partitions(
        self, parts: list[tuple[str, PartitionRef, bool]], to_check: list[ObjectRef]
    ) -> None:
        """Read the partition manifests (format v2+) the records name: their files
        are referenced, and checked when their snapshot is in range."""
        f = self.findings
        docs = await fetch_docs(self.store, [ref.key for _, ref, _ in parts])
        for (sid, ref, in_range), raw in zip(parts, docs, strict=True):
            pm = decode_doc(f, ref.key, raw, PartitionManifest, "partition manifest", sid)
            if pm is None:
                continue
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
            if in_range:
                to_check.extend(ObjectRef(fr.key, fr.size, fr.checksum, sid) for fr in files)


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
    manifests inside the dataset's root, and row totals that match. Every
    partition manifest a record names decodes and matches its summary. For
    every snapshot up to ``snapshot_id`` (default: the newest), every data
    file it references exists with the recorded size and, when a checksum is
    recorded, the recorded digest. Keys under the dataset's root that nothing
    references (the descriptor, the hint and the low-water mark are the log's
    own) are listed as orphans.

    A write committing while the check runs may show up as an orphan (its
    data files are stored before its record). Data files are checked as
    bytes: a file without a checksum is only stat'ed, and decoding (codec,
    compressor) is not attempted.

    Cost: one listing of the dataset root (without ``layout``, when the
    default root is empty: one more ``head``, and a listing of the flat root
    if a dataset is there); one ``get`` for the descriptor and one for the
    low-water mark when they exist; one ``get`` per commit record (records
    after ``snapshot_id`` included, since they may reference objects that are
    otherwise orphans) and per partition manifest; per referenced file in
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
        (:class:`~aiolode.SnapshotExpiredError`: below the low-water mark).
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
            raise InvalidInputError(f"store must be an aiolode Store, not {store!r}")
    dataset_id = validate_dataset_id(dataset_id)
    if layout is not None and not isinstance(layout, Layout):
        raise InvalidInputError(f"layout must be None or an aiolode Layout, not {layout!r}")
    end = (
        None
        if snapshot_id is None
        else parse_dataset_snapshot_id(snapshot_id, dataset_id=dataset_id)
    )

    start, listing = await _locate(store, dataset_id, layout)
    check = _DatasetCheck(store, dataset_id, start, end=end)
    await check.check_descriptor(listing, layout)
    records = records_in(listing, check.log_prefix, DATASET_SEQ_WIDTH)
    last = max(records, default=0)
    check.lwm = await low_water_mark(
        store, check.findings, listing, f"{check.log_prefix}_lwm.json", dataset_id, last
    )
    check.chain.linked = check.lwm == 1
    if end is not None and end[0] < check.lwm:
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
    await check.check_history(records, last)
    if end is not None and check.end_count is not None and end[1] >= check.end_count:
        raise SnapshotNotFoundError(
            f"dataset {dataset_id!r} has no snapshot {snapshot_id!r} (record {end[0]} holds "
            f"{check.end_count})",
            dataset_id=dataset_id,
            snapshot_id=snapshot_id,
        )
    return check.findings.report("dataset", dataset_id, listing)
