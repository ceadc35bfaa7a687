"""Fixtures for Dataset tests: one ``store`` over memory, filesystem and S3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import aiolode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture(
    params=[
        "memory",
        "file",
        pytest.param("s3", marks=pytest.mark.s3),
    ]
)
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


def make_store(spec: tuple[str, Any]) -> aiolode.Store:
    """A new (unopened) store object on the same place as ``spec``."""
    kind, arg = spec
    if kind == "memory":
        return aiolode.MemoryStore()
    if kind == "file":
        return aiolode.FileStore(arg)
    endpoint, bucket = arg
    return aiolode.S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
async def store(store_spec: tuple[str, Any]) -> AsyncIterator[aiolode.Store]:
    """The same tests against every store kind."""
    async with make_store(store_spec) as s:
        yield s


@pytest.fixture
async def memory() -> AsyncIterator[aiolode.MemoryStore]:
    """A plain memory store (for tests about the engine, not the backend)."""
    async with aiolode.MemoryStore() as s:
        yield s
