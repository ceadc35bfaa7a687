"""S3Store against a real S3 server (SeaweedFS), on asyncio and trio.

The same conformance suite as on moto, with nothing serialised in front of the
server: create-only and compare-and-swap races are decided by SeaweedFS itself.
Every test works under its own key prefix in the session's one bucket
(SeaweedFS gives every bucket its own volumes).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from aiolode import IfMatch, ObjectExistsError, PreconditionFailedError, S3Store, StorageError
from aiolode.store import Store
from aiolode.testing.store_suite import StoreConformance

pytestmark = pytest.mark.seaweed

MiB = 1024 * 1024
PART = 5 * MiB


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def _raw_keys(admin: Any, bucket: str, prefix: str) -> set[str]:
    """Every object key AND every pending multipart upload under ``prefix/``."""

    def scan() -> set[str]:
        keys: set[str] = set()
        pages = admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
        for page in pages:
            keys.update(o["Key"][len(prefix) + 1 :] for o in page.get("Contents", ()))
        uploads = admin.list_multipart_uploads(Bucket=bucket, Prefix=f"{prefix}/")
        keys.update(
            f"<pending upload of {u['Key'][len(prefix) + 1 :]}>" for u in uploads.get("Uploads", ())
        )
        return keys

    return await anyio.to_thread.run_sync(scan)


class TestSeaweedS3Store(StoreConformance):
    """The shared conformance suite on SeaweedFS; backdoors go through boto3."""

    racers = 16

    @pytest.fixture
    async def store(
        self, seaweed_endpoint: str, seaweed_bucket: str, seaweed_prefix: str, seaweed_admin: Any
    ) -> AsyncIterator[S3Store]:
        self.admin = seaweed_admin
        async with S3Store(
            seaweed_bucket,
            seaweed_prefix,
            endpoint_url=seaweed_endpoint,
            region_name="us-east-1",
            page_size=self.page_size,
            part_size=PART,
            max_concurrency=3,
        ) as s:
            yield s

    @pytest.mark.xfail(
        reason="SeaweedFS lists in directory order: the subtree 'a/...' comes before "
        "its sibling 'a-b' (S3 sorts by bytes: '-' < '/'); see docs/s3.md",
        strict=True,
    )
    async def test_list_prefix_semantics(self, store: Store) -> None:
        await super().test_list_prefix_semantics(store)

    async def raw_get(self, store: Store, key: str) -> bytes | None:
        assert isinstance(store, S3Store)

        def get() -> bytes | None:
            try:
                resp = self.admin.get_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}")
            except self.admin.exceptions.NoSuchKey:
                return None
            body: bytes = resp["Body"].read()
            return body

        return await anyio.to_thread.run_sync(get)

    async def raw_put(self, store: Store, key: str, data: bytes) -> None:
        assert isinstance(store, S3Store)
        await anyio.to_thread.run_sync(
            lambda: self.admin.put_object(
                Bucket=store.bucket, Key=f"{store.prefix}/{key}", Body=data
            )
        )

    async def raw_keys(self, store: Store) -> set[str]:
        assert isinstance(store, S3Store)
        return await _raw_keys(self.admin, store.bucket, store.prefix)


# -------------------------------------------------------------- multipart on a real server
@pytest.fixture
async def mp_store(
    seaweed_endpoint: str, seaweed_bucket: str, seaweed_prefix: str
) -> AsyncIterator[S3Store]:
    async with S3Store(
        seaweed_bucket, seaweed_prefix, endpoint_url=seaweed_endpoint, part_size=PART
    ) as s:
        yield s


async def test_multipart_conditions_decided_by_server(
    mp_store: S3Store, seaweed_admin: Any
) -> None:
    """Create-only and If-Match on CompleteMultipartUpload, no middleware involved."""
    data = os.urandom(2 * PART + 7)
    info = await mp_store.put("mp/obj", _chunks([data]))
    assert info.etag.strip('"').endswith("-3")
    assert await mp_store.get("mp/obj") == data
    with pytest.raises(ObjectExistsError):
        await mp_store.put("mp/obj", _chunks([os.urandom(PART + 1)]))
    new = os.urandom(PART + 3)
    await mp_store.put("mp/obj", _chunks([new]), mode=IfMatch(info.etag))
    with pytest.raises(PreconditionFailedError):
        await mp_store.put("mp/obj", _chunks([os.urandom(PART + 1)]), mode=IfMatch(info.etag))
    with pytest.raises(PreconditionFailedError):
        await mp_store.put("mp/none", _chunks([os.urandom(PART + 1)]), mode=IfMatch(info.etag))
    assert await mp_store.get("mp/obj") == new
    assert await _raw_keys(seaweed_admin, mp_store.bucket, mp_store.prefix) == {"mp/obj"}


async def test_multipart_create_race(mp_store: S3Store, seaweed_admin: Any) -> None:
    winners: list[int] = []

    async def racer(i: int) -> None:
        try:
            await mp_store.put("mp/race", _chunks([bytes([i]) * (PART + 1)]))
        except ObjectExistsError:
            pass
        else:
            winners.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(racer, i)
    # SeaweedFS does not serialise a conditional CompleteMultipartUpload: in
    # about a third of races several racers are told they won (pinned in
    # tests/copy/test_known_bugs.py; docs/s3.md). What holds: someone wins, the
    # object is exactly one winner's bytes, nothing is left behind. aiolode never
    # relies on a create-only multipart put: records are single-part, data keys unique.
    assert winners
    first = await mp_store.get_range("mp/race", 0, 1)
    assert first in {bytes([w]) for w in winners}
    assert await mp_store.get("mp/race") == first * (PART + 1)
    assert await _raw_keys(seaweed_admin, mp_store.bucket, mp_store.prefix) == {"mp/race"}


async def test_range_on_empty_object_is_empty(mp_store: S3Store) -> None:
    # SeaweedFS answers 416 InvalidRange for any range of an empty object.
    await mp_store.put("empty", b"")
    assert await mp_store.get_range("empty", 0, 10) == b""


async def test_missing_bucket_is_reported(seaweed_endpoint: str) -> None:
    # The server runs with -s3.autoCreateBucket=false, like S3: no bucket appears.
    async with S3Store("no-such-bucket-here", endpoint_url=seaweed_endpoint) as store:
        with pytest.raises(StorageError, match="does not exist"):
            await store.get("k")
        with pytest.raises(StorageError, match="does not exist"):
            await store.put("k", b"x")
        with pytest.raises(StorageError, match="does not exist"):
            [i async for i in store.list()]


async def test_listing_is_in_directory_order(mp_store: S3Store) -> None:
    """What SeaweedFS's order is, exactly (docs/s3.md): names sorted per directory,
    a directory sorting by its bare name, its whole subtree listed in its place."""
    keys = ["a/b", "a/bc", "a/b/c", "a-b", "a0", "ab", "b", "a/b0", "a/b/d/e", "a/b/d0"]
    for k in keys:
        await mp_store.put(k, b"")
    got = [i.key async for i in mp_store.list()]
    assert got == ["a/b", "a/b/c", "a/b/d/e", "a/b/d0", "a/b0", "a/bc", "a-b", "a0", "ab", "b"]
    assert sorted(got) != got  # S3 would put 'a-b' first
    # Each directory's subtree is contiguous, so grouping by directory still works.
    assert [d async for d in mp_store.list_dirs()] == ["a/"]
    assert [d async for d in mp_store.list_dirs("a/")] == ["a/b/"]
