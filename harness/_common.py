"""Shared pieces of the harness: self-describing payloads and the invariant checks.

Every snapshot the harness writes is *self-describing*: its content is a pure
function of its metadata (``tag``, ``n``) or, for volumes, of the block offset.
So a checker that has never seen the writer (a fresh process after a SIGKILL)
can still prove that every committed snapshot holds exactly the right bytes.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import attrs

import aiolode
from aiolode import verify_dataset, verify_volume

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "CONFIGS",
    "SLOT",
    "DatasetConfig",
    "block_bytes",
    "check_dataset",
    "check_volume",
    "expected_records",
    "make_dataset",
    "payload",
    "records",
]

SLOT = 64
"""Volume blocks in the harness cover whole slots of this many bytes."""


@attrs.frozen
class DatasetConfig:
    """One Dataset configuration the harness exercises (codec x compressor x checksum x layout)."""

    name: str
    codec: str | None  # None, "jsonl", "parquet", "arrow"
    compressor: str | None = None  # None, "gzip", "zstd"
    checksum: bool = True
    hive: bool = False

    @property
    def raw(self) -> bool:
        return self.codec is None


CONFIGS: tuple[DatasetConfig, ...] = (
    DatasetConfig("raw", None, checksum=True),
    DatasetConfig("raw-zstd-nock", None, "zstd", checksum=False),
    DatasetConfig("jsonl", "jsonl", checksum=True),
    DatasetConfig("jsonl-gzip-hive", "jsonl", "gzip", checksum=True, hive=True),
    DatasetConfig("jsonl-zstd-nock", "jsonl", "zstd", checksum=False),
    DatasetConfig("parquet", "parquet", checksum=True),
    DatasetConfig("parquet-hive", "parquet", checksum=True, hive=True),
    DatasetConfig("arrow", "arrow", checksum=True),
)


def make_dataset(
    store: aiolode.Store,
    cfg: DatasetConfig,
    *,
    ds_id: str = "h",
    retry: aiolode.Retry | None = None,
) -> aiolode.Dataset:
    """A Dataset of configuration ``cfg`` on ``store``."""
    codec: aiolode.Codec | None = None
    if cfg.codec == "jsonl":
        codec = aiolode.JSONL()
    elif cfg.codec == "parquet":
        codec = aiolode.Parquet()
    elif cfg.codec == "arrow":
        codec = aiolode.ArrowIPC()
    compressor: aiolode.Compressor | None = None
    if cfg.compressor == "gzip":
        compressor = aiolode.Gzip()
    elif cfg.compressor == "zstd":
        compressor = aiolode.Zstd()
    return aiolode.Dataset(
        ds_id,
        store,
        codec=codec,
        compressor=compressor,
        checksum=aiolode.SHA256() if cfg.checksum else None,
        layout=aiolode.HiveLayout("p") if cfg.hive else None,
        retry=retry,
    )


def payload(tag: str, n: int) -> bytes:
    """The raw blob of snapshot ``tag`` (``n`` bytes, content depends on the tag)."""
    seed = hashlib.sha256(tag.encode()).digest()
    return (seed * (n // len(seed) + 1))[:n]


def records(tag: str, n: int) -> list[dict[str, Any]]:
    """The records of snapshot ``tag``: ``n`` rows over two partitions."""
    return [{"p": f"v{i % 2}", "tag": tag, "i": i} for i in range(n)]


def expected_records(tag: str, n: int) -> list[tuple[str, int]]:
    """What :func:`records` reads back as, order-free."""
    return sorted((tag, i) for i in range(n))


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """``data`` as an async iterable of small chunks."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def block_bytes(offset: int, length: int) -> bytes:
    """The bytes every harness writer stores at ``[offset, offset + length)``.

    A pure function of the position, so concurrent or repeated writers agree
    and a checker can verify any committed range without a log.
    """
    out = bytearray()
    first = offset // SLOT
    last = (offset + length - 1) // SLOT
    for slot in range(first, last + 1):
        out += hashlib.sha256(slot.to_bytes(8, "big")).digest() * (SLOT // 32)
    start = offset - first * SLOT
    return bytes(out[start : start + length])


def _read_matches(cfg: DatasetConfig, content: Any, tag: str, n: int) -> bool:
    if cfg.raw:
        return bool(content == payload(tag, n))
    got = sorted((r["tag"], r["i"]) for r in content)
    return got == expected_records(tag, n)


async def all_snapshots(ds: aiolode.Dataset) -> list[aiolode.Snapshot]:
    """Every snapshot of ``ds``; ``[]`` when the dataset was never written (or
    recorded): a writer cancelled or killed before its first commit leaves none."""
    try:
        return [s async for s in ds.snapshots()]
    except aiolode.DatasetNotFoundError:
        return []


async def check_dataset(
    store: aiolode.Store,
    cfg: DatasetConfig,
    *,
    acked: dict[str, str],
    attempted: set[str] | None = None,
    ds_id: str = "h",
    allow_orphans: bool = True,
) -> list[str]:
    """Check every invariant of a dataset after a run; return the violations.

    ``acked`` maps snapshot ids the writer was told about to their tag;
    ``attempted`` (if known) holds every tag a writer tried. Invariants: the
    integrity check finds nothing; the history is one linear chain; every
    snapshot reads back with the bytes its metadata implies; no tag was
    committed twice or invented; every acknowledged snapshot exists with its tag.
    """
    bad: list[str] = []
    ds = make_dataset(store, cfg, ds_id=ds_id)
    report = await verify_dataset(
        store, ds_id, layout=aiolode.HiveLayout("p") if cfg.hive else None
    )
    bad += [f"verify: {p}" for p in report.problems]
    if not allow_orphans and report.orphans:
        bad.append(f"orphans left: {list(report.orphans)}")
    prev: str | None = None
    seen: dict[str, str] = {}
    for snap in await all_snapshots(ds):
        if snap.parent_id != prev:
            bad.append(f"chain: {snap.id} has parent {snap.parent_id}, expected {prev}")
        prev = snap.id
        tag, n = snap.metadata.get("tag"), snap.metadata.get("n")
        if not isinstance(tag, str) or not isinstance(n, int):
            bad.append(f"snapshot {snap.id}: unexpected metadata {snap.metadata!r}")
            continue
        if tag in seen:
            bad.append(f"tag {tag} committed twice ({seen[tag]} and {snap.id})")
        seen[tag] = snap.id
        if attempted is not None and tag not in attempted:
            bad.append(f"snapshot {snap.id} has tag {tag} nobody wrote")
        try:
            content = await ds.read(snap.id)
        except aiolode.AiolodeError as exc:
            bad.append(f"snapshot {snap.id} unreadable: {exc!r}")
            continue
        if not _read_matches(cfg, content, tag, n):
            bad.append(f"snapshot {snap.id} ({tag}) reads back wrong content")
    for sid, tag in acked.items():
        if seen.get(tag) != sid:
            bad.append(f"acknowledged snapshot {sid} ({tag}) is not in the log as such")
    return bad


async def check_volume(
    store: aiolode.Store,
    *,
    total: int,
    acked: list[tuple[str, list[tuple[int, int]]]],
    vol_id: str = "hv",
    checksum: bool = True,
) -> list[str]:
    """Check every invariant of a volume after a run; return the violations.

    ``acked`` lists acknowledged commits: (snapshot id, the blocks it
    committed). Invariants: the integrity check finds nothing; every snapshot
    contains its parent's ranges (blocks are never lost); every committed byte
    of the newest snapshot reads back as :func:`block_bytes` says; every
    acknowledged commit's snapshot exists and holds its blocks, and so does
    the newest snapshot.
    """
    bad: list[str] = []
    digest = aiolode.SHA256() if checksum else None
    vol = aiolode.Volume(vol_id, store, total, checksum=digest)
    report = await verify_volume(store, vol_id, total_length=total, checksum=digest)
    bad += [f"verify: {p}" for p in report.problems]
    try:
        latest = await vol.latest()
    except aiolode.NoSnapshotsError:
        if acked:
            bad.append(f"{len(acked)} acknowledged commits but no snapshot")
        return bad
    prev_cov: set[int] = set()
    async for snap in vol.snapshots():
        cov = _slots(snap.committed_ranges())
        if not prev_cov <= cov:
            bad.append(f"snapshot {snap.id} lost ranges of its parent")
        prev_cov = cov
    for off, length in latest.committed_ranges():
        try:
            got = await vol.read_at(latest.id, off, length)
        except aiolode.AiolodeError as exc:
            bad.append(f"read_at({off}, {length}) of {latest.id} failed: {exc!r}")
            continue
        if got != block_bytes(off, length):
            bad.append(f"read_at({off}, {length}) of {latest.id} returned wrong bytes")
    latest_cov = _slots(latest.committed_ranges())
    for sid, blocks in acked:
        try:
            snap = await vol.snapshot(sid)
        except aiolode.AiolodeError as exc:
            bad.append(f"acknowledged snapshot {sid} unreadable: {exc!r}")
            continue
        want = _slots(blocks)
        if not want <= _slots(snap.committed_ranges()) or not want <= latest_cov:
            bad.append(f"acknowledged snapshot {sid} does not hold its blocks")
    return bad


def _slots(ranges: list[tuple[int, int]]) -> set[int]:
    out: set[int] = set()
    for off, length in ranges:
        out.update(range(off // SLOT, (off + length + SLOT - 1) // SLOT))
    return out
