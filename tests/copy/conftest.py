"""Copy tests: pairs of stores (every direction that matters), and the checks
every copy must pass — the same history, the same bytes, the same rows."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import pytest

import aiolode
from tests.stores import make_store, spec_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.stores import StoreSpec

_S3 = pytest.mark.s3
_SEAWEED = pytest.mark.seaweed
_GCS = pytest.mark.gcs

#: (source, destination) kinds: local backups, to and from every cloud kind, and
#: cloud to cloud.
PAIRS: list[Any] = [
    pytest.param(("memory", "memory"), id="memory-memory"),
    pytest.param(("memory", "file"), id="memory-file"),
    pytest.param(("file", "s3"), id="file-s3", marks=_S3),
    pytest.param(("s3", "file"), id="s3-file", marks=_S3),
    pytest.param(("file", "seaweed"), id="file-seaweed", marks=_SEAWEED),
    pytest.param(("seaweed", "gcs"), id="seaweed-gcs", marks=[_SEAWEED, _GCS]),
    pytest.param(("gcs", "memory"), id="gcs-memory", marks=_GCS),
    pytest.param(("s3", "gcs"), id="s3-gcs", marks=[_S3, _GCS]),
]


@pytest.fixture(params=PAIRS)
def pair_specs(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[StoreSpec, StoreSpec]:
    """The source's and the destination's store specs (sync: servers start blocking)."""
    src, dst = request.param
    return spec_of(src, request, tmp_path, "src"), spec_of(dst, request, tmp_path, "dst")


@pytest.fixture
async def pair(
    pair_specs: tuple[StoreSpec, StoreSpec],
) -> AsyncIterator[tuple[aiolode.Store, aiolode.Store]]:
    """Two opened stores: the source and the destination."""
    async with AsyncExitStack() as stack:
        src = await stack.enter_async_context(make_store(pair_specs[0]))
        dst = await stack.enter_async_context(make_store(pair_specs[1]))
        yield src, dst


# ---------------------------------------------------------------------- builders
def events(store: aiolode.Store, dataset_id: str = "events") -> aiolode.Dataset:
    """A partitioned JSON Lines dataset (format v2: partition manifests)."""
    return aiolode.Dataset(
        dataset_id, store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("day")
    )


async def write_events(ds: aiolode.Dataset, start: int, count: int) -> list[aiolode.Snapshot]:
    """``count`` snapshots of a few rows over two partitions."""
    out = []
    for i in range(start, start + count):
        rows = [{"day": f"d{(i + j) % 2}", "i": i, "j": j} for j in range(3)]
        out.append(await ds.write(rows, {"batch": i, "tags": ["copy", str(i)]}))
    return out


# ------------------------------------------------------------------------ checks
async def history(ds: aiolode.Dataset) -> list[tuple[Any, ...]]:
    """What a reader sees of every snapshot: identity, metadata, files (by name)."""
    out = []
    async for s in ds.snapshots():
        files = [
            (f.key.rsplit("/", 1)[-1], f.size, f.checksum, f.row_count, dict(f.partition))
            for f in s.files
        ]
        out.append((s.id, s.parent_id, s.created_at, dict(s.metadata), s.row_count, files))
    return out


async def rows_by_snapshot(ds: aiolode.Dataset) -> dict[str, Any]:
    """Every snapshot's content as read back through the Dataset API."""
    out: dict[str, Any] = {}
    async for s in ds.snapshots():
        data = await ds.read(s.id)
        out[s.id] = data if isinstance(data, bytes) else sorted(map(repr, data))
    return out


async def assert_same_dataset(
    src: aiolode.Dataset, dst: aiolode.Dataset, *, check_bytes: bool = True
) -> None:
    """The destination shows the source's history, rows and file bytes; verify is clean."""
    assert await history(dst) == await history(src)
    assert await rows_by_snapshot(dst) == await rows_by_snapshot(src)
    if check_bytes:
        src_root = src.layout.root(src.id)
        dst_root = src.layout.root(dst.id)
        async for s in src.snapshots():
            for f in s.files:
                copied = dst_root + f.key[len(src_root) :]
                assert await dst.store.get(copied) == await src.store.get(f.key)
    report = await aiolode.verify_dataset(dst.store, dst.id)
    assert report.ok, report.problems


class Hostile:
    """An argument whose ``repr`` raises: an error message must not need it."""

    def __repr__(self) -> str:
        raise RuntimeError("hostile __repr__")
