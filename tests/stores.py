"""pytest plugin: one ``store`` fixture over every store kind, for every suite.

``store_spec`` names the kind and where it lives (resolved synchronously: starting
a server blocks, so never on the event loop); :func:`make_store` builds a new,
unopened store object on the same place (e.g. a second "process" view of it);
``store`` is an opened store of each kind. Suites that take ``store`` run over
every kind listed in :data:`STORE_KINDS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import aiolode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

StoreSpec = tuple[str, Any]

#: Every kind the shared suites run over; server-backed kinds carry their marker.
STORE_KINDS: list[Any] = [
    "memory",
    "file",
    pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("seaweed", marks=pytest.mark.seaweed),
    pytest.param("gcs", marks=pytest.mark.gcs),
]


def spec_of(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, name: str = "store"
) -> StoreSpec:
    """Where a store of ``kind`` lives for this test (``name`` tells two file stores
    apart; sync: server fixtures block while starting)."""
    if kind == "memory":
        return (kind, None)
    if kind == "file":
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        return (kind, root)
    if kind == "s3":
        return (
            kind,
            (request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")),
        )
    if kind == "seaweed":
        # One bucket for the session (SeaweedFS has per-bucket volumes), a prefix per test.
        return (
            kind,
            (
                request.getfixturevalue("seaweed_endpoint"),
                request.getfixturevalue("seaweed_bucket"),
                request.getfixturevalue("seaweed_prefix"),
            ),
        )
    if kind == "gcs":
        return (
            kind,
            (request.getfixturevalue("gcs_endpoint"), request.getfixturevalue("gcs_bucket")),
        )
    raise AssertionError(f"unknown store kind {kind!r}")


@pytest.fixture(params=STORE_KINDS)
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    """Which store to build and where."""
    return spec_of(str(request.param), request, tmp_path)


def make_store(spec: StoreSpec) -> aiolode.Store:
    """A new (unopened) store object on the place ``spec`` names.

    Memory stores cannot be shared between objects: each call makes a new one,
    with a tiny listing page so pagination is exercised everywhere.
    """
    kind, arg = spec
    if kind == "memory":
        return aiolode.MemoryStore(page_size=7)
    if kind == "file":
        return aiolode.FileStore(arg)
    if kind == "s3":
        endpoint, bucket = arg
        return aiolode.S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1")
    if kind == "seaweed":
        endpoint, bucket, prefix = arg
        return aiolode.S3Store(bucket, prefix, endpoint_url=endpoint, region_name="us-east-1")
    if kind == "gcs":
        endpoint, bucket = arg
        return aiolode.GCSStore(bucket, endpoint=endpoint, anonymous=True)
    raise AssertionError(f"unknown store kind {kind!r}")


@pytest.fixture
async def store(store_spec: StoreSpec) -> AsyncIterator[aiolode.Store]:
    """An opened, empty store of each kind."""
    async with make_store(store_spec) as s:
        yield s


@pytest.fixture
async def memory() -> AsyncIterator[aiolode.MemoryStore]:
    """A plain memory store (for tests about the engine, not the backend)."""
    async with aiolode.MemoryStore() as s:
        yield s
