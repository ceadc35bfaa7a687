"""Fixtures for reader tests: one ``store`` over memory, filesystem and S3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import aiolode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture(params=["memory", "file", pytest.param("s3", marks=pytest.mark.s3)])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    """Which store to build (sync: the S3 server fixtures block while starting)."""
    kind = str(request.param)
    if kind == "memory":
        return (kind, None)
    if kind == "file":
        root = tmp_path / "store"
        root.mkdir()
        return (kind, root)
    return (kind, (request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")))


@pytest.fixture
async def store(store_spec: tuple[str, Any]) -> AsyncIterator[aiolode.Store]:
    """The same tests against every store kind."""
    kind, arg = store_spec
    if kind == "memory":
        s: aiolode.Store = aiolode.MemoryStore()
    elif kind == "file":
        s = aiolode.FileStore(arg)
    else:
        endpoint, bucket = arg
        s = aiolode.S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1")
    async with s:
        yield s


@pytest.fixture
async def memory() -> AsyncIterator[aiolode.MemoryStore]:
    """A plain memory store (for tests about the reader, not the backend)."""
    async with aiolode.MemoryStore() as s:
        yield s


# Combinations that take the same code path as another, faster one run only
# with the slow tests (the suite shares a time budget; moto is slow):
# memory JSONL is decoded eagerly whatever the compressor, file Arrow IPC goes
# native like Parquet, and S3 keeps one lazy (Parquet) and one eager (zstd) case.
_SLOW = {
    "memory": {"jsonl-gzip", "jsonl-zstd"},
    "file": {"arrow"},
    "s3": {"jsonl", "arrow", "jsonl-gzip"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is None or "tests/reader/" not in item.nodeid.replace("\\", "/"):
            continue
        params = spec.params
        if params.get("codec") in _SLOW.get(params.get("store_spec", ""), ()):
            item.add_marker(pytest.mark.slow)
