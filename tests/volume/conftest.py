"""Fixtures for the Volume tests: one ``store`` over memory, filesystem and S3."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiolode import MemoryStore, Store


@pytest.fixture(params=["memory", "file", pytest.param("s3", marks=pytest.mark.s3)])
def store_kind(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """Which store, resolved synchronously (starting moto blocks: never on the loop)."""
    if request.param == "s3":
        return ("s3", request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket"))
    return (request.param, "", "")


@pytest.fixture
async def store(store_kind: tuple[str, str, str], tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store of each kind."""
    kind, endpoint, bucket = store_kind
    if kind == "memory":
        async with MemoryStore(page_size=7) as s:
            yield s
    elif kind == "file":
        from aiolode import FileStore

        async with FileStore(tmp_path) as fs:
            yield fs
    else:
        from aiolode import S3Store

        async with S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1") as s3:
            yield s3


@pytest.fixture
async def mem() -> AsyncIterator[MemoryStore]:
    """A MemoryStore, for tests about logic rather than backends."""
    async with MemoryStore() as s:
        yield s
