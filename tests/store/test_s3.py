"""S3Store against the session's serialising moto server, on asyncio and trio."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from aiolode import (
    ConflictError,
    IfMatch,
    InvalidInputError,
    ObjectExistsError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    S3Store,
    StorageError,
    TransientStorageError,
    UnsupportedError,
)
from aiolode.store import Store
from aiolode.store._s3 import map_s3_errors
from aiolode.testing.store_suite import StoreConformance
from tests.s3_server import slow_down

pytestmark = pytest.mark.s3

MiB = 1024 * 1024
PART = 5 * MiB  # S3's minimum part size: the smallest that exercises multipart


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def _blob(n: int) -> bytes:
    return os.urandom(n)


class _Boom(Exception):
    pass


async def _raw_keys(admin: Any, bucket: str) -> set[str]:
    """Every object key AND every pending multipart upload in the bucket."""

    def scan() -> set[str]:
        keys: set[str] = set()
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.update(o["Key"] for o in page.get("Contents", ()))
        uploads = admin.list_multipart_uploads(Bucket=bucket).get("Uploads", ())
        keys.update(f"<pending upload of {u['Key']}>" for u in uploads)
        return keys

    return await anyio.to_thread.run_sync(scan)


async def _pending_uploads(admin: Any, bucket: str) -> list[Any]:
    resp = await anyio.to_thread.run_sync(lambda: admin.list_multipart_uploads(Bucket=bucket))
    return list(resp.get("Uploads", ()))


class TestS3Store(StoreConformance[S3Store]):
    """The shared conformance suite; raw_keys also reports pending multipart uploads."""

    @pytest.fixture
    async def store(
        self, s3_endpoint: str, s3_bucket: str, s3_admin: Any
    ) -> AsyncIterator[S3Store]:
        self.admin = s3_admin
        async with S3Store(
            s3_bucket,
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            page_size=self.page_size,
            part_size=PART,
            max_concurrency=3,
        ) as s:
            yield s

    async def raw_get(self, store: Store, key: str) -> bytes | None:
        assert isinstance(store, S3Store)

        def get() -> bytes | None:
            try:
                body: bytes = self.admin.get_object(Bucket=store.bucket, Key=key)["Body"].read()
            except self.admin.exceptions.NoSuchKey:
                return None
            return body

        return await anyio.to_thread.run_sync(get)

    async def raw_put(self, store: Store, key: str, data: bytes) -> None:
        assert isinstance(store, S3Store)
        await anyio.to_thread.run_sync(
            lambda: self.admin.put_object(Bucket=store.bucket, Key=key, Body=data)
        )

    async def raw_keys(self, store: Store) -> set[str]:
        assert isinstance(store, S3Store)
        return await _raw_keys(self.admin, store.bucket)


# ---------------------------------------------------------------------- multipart
@pytest.fixture
async def mp_store(s3_endpoint: str, s3_bucket: str) -> AsyncIterator[S3Store]:
    """A store with the smallest part size, so 11 MiB streams take three parts."""
    async with S3Store(s3_bucket, endpoint_url=s3_endpoint, part_size=PART, max_concurrency=2) as s:
        yield s


async def test_multipart_roundtrip(mp_store: S3Store, s3_admin: Any) -> None:
    parts = [_blob(3 * MiB) for _ in range(3)] + [_blob(2 * MiB + 17)]
    seen: list[int] = []
    info = await mp_store.put("mp/obj", _chunks(parts), progress=seen.append)
    data = b"".join(parts)
    assert info.size == len(data)
    assert await mp_store.get("mp/obj") == data
    # A multipart etag ("<md5>-<n>") proves the multipart path ran, in 3 parts.
    assert info.etag.strip('"').endswith("-3")
    assert (await mp_store.head("mp/obj")).etag == info.etag
    assert seen[-1] == len(data)
    assert await mp_store.get_range("mp/obj", PART - 5, 10) == data[PART - 5 : PART + 5]
    assert await _pending_uploads(s3_admin, mp_store.bucket) == []


async def test_multipart_exact_part_multiple(mp_store: S3Store) -> None:
    data = _blob(2 * PART)
    info = await mp_store.put("mp/exact", _chunks([data[:7], data[7:]]))
    assert info.etag.strip('"').endswith("-2")
    assert await mp_store.get("mp/exact") == data


async def test_multipart_chunks_larger_than_parts(mp_store: S3Store) -> None:
    import array

    big = _blob(2 * PART + 3)
    words = array.array("I", _blob(400))  # a non-byte memoryview format
    info = await mp_store.put("mp/huge", _chunks([big, memoryview(words)]))  # type: ignore[list-item]
    data = big + words.tobytes()
    assert info.size == len(data)
    assert info.etag.strip('"').endswith("-3")
    assert await mp_store.get("mp/huge") == data


async def test_multipart_create_refuses_existing(mp_store: S3Store, s3_admin: Any) -> None:
    await mp_store.put("mp/c", b"original")
    with pytest.raises(ObjectExistsError) as ei:
        await mp_store.put("mp/c", _chunks([_blob(PART), _blob(10)]))
    assert ei.value.key == "mp/c"
    assert await mp_store.get("mp/c") == b"original"
    assert await _raw_keys(s3_admin, mp_store.bucket) == {"mp/c"}


async def test_multipart_if_match(mp_store: S3Store, s3_admin: Any) -> None:
    old = await mp_store.put("mp/m", b"v1")
    new_data = _blob(PART + 3)
    new = await mp_store.put("mp/m", _chunks([new_data]), mode=IfMatch(old.etag))
    assert await mp_store.get("mp/m") == new_data
    # A stale etag on CompleteMultipartUpload must lose (the test server enforces
    # If-Match there like S3 does; plain moto would silently accept it).
    with pytest.raises(PreconditionFailedError) as ei:
        await mp_store.put("mp/m", _chunks([_blob(PART + 1)]), mode=IfMatch(old.etag))
    assert ei.value.expected_etag == old.etag
    with pytest.raises(PreconditionFailedError):
        await mp_store.put("mp/missing", _chunks([_blob(PART + 1)]), mode=IfMatch(new.etag))
    assert await mp_store.get("mp/m") == new_data
    assert await _raw_keys(s3_admin, mp_store.bucket) == {"mp/m"}


async def test_multipart_create_race(mp_store: S3Store, s3_admin: Any) -> None:
    winners: list[int] = []

    async def racer(i: int) -> None:
        try:
            await mp_store.put("mp/race", _chunks([bytes([i]) * (PART + 1)]))
        except ObjectExistsError:
            pass
        else:
            winners.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(racer, i)
    assert len(winners) == 1
    assert await mp_store.get_range("mp/race", 0, 1) == bytes([winners[0]])
    assert await _pending_uploads(s3_admin, mp_store.bucket) == []


async def test_multipart_source_failure_aborts(mp_store: S3Store, s3_admin: Any) -> None:
    async def failing() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield _blob(3 * MiB)  # two full parts go out before the failure
        raise _Boom("source died")

    with pytest.raises(_Boom):
        await mp_store.put("mp/fail", failing())
    assert await _raw_keys(s3_admin, mp_store.bucket) == set()


async def test_multipart_cancel_aborts(mp_store: S3Store, s3_admin: Any) -> None:
    sent = anyio.Event()

    async def endless() -> AsyncIterator[bytes]:
        yield _blob(PART + 1)
        sent.set()
        while True:
            await anyio.sleep(0.01)
            yield b"more"

    async with anyio.create_task_group() as tg:
        tg.start_soon(mp_store.put, "mp/cancel", endless())
        await sent.wait()
        await anyio.sleep(0.2)
        tg.cancel_scope.cancel()
    assert await _raw_keys(s3_admin, mp_store.bucket) == set()


class _FailingPartsClient:
    """A boto3 client whose second upload_part fails like an overloaded S3."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.part_calls = 0

    def head_object(self, **kw: Any) -> Any:
        return self._client.head_object(**kw)

    def upload_part(self, **kw: Any) -> Any:
        self.part_calls += 1
        if self.part_calls == 2:
            raise slow_down("UploadPart")
        return self._client.upload_part(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


async def test_multipart_part_failure_aborts(s3_bucket: str, s3_admin: Any) -> None:
    client = _FailingPartsClient(s3_admin)
    async with S3Store(s3_bucket, client=client, part_size=PART, max_concurrency=1) as store:
        with pytest.raises(TransientStorageError) as ei:
            await store.put("mp/pf", _chunks([_blob(PART)] * 3))
    assert ei.value.key == "mp/pf"
    assert type(ei.value.__cause__).__name__ == "ClientError"
    assert client.part_calls == 2
    assert await _raw_keys(s3_admin, s3_bucket) == set()


# ------------------------------------------------------------- clients, prefixes
async def test_callers_boto3_client_not_closed(s3_bucket: str, s3_admin: Any) -> None:
    async with S3Store(s3_bucket, client=s3_admin) as store:
        await store.put("c/1", b"one")
    # The store did not close the caller's client: it still works.
    resp = await anyio.to_thread.run_sync(
        lambda: s3_admin.get_object(Bucket=s3_bucket, Key="c/1")["Body"].read()
    )
    assert resp == b"one"


async def test_callers_aioboto3_client(
    s3_endpoint: str, s3_bucket: str, anyio_backend: str
) -> None:
    import aioboto3

    if anyio_backend == "trio":
        with pytest.raises(UnsupportedError):
            await S3Store(s3_bucket, client=_AsyncClientStub()).aopen()
        return
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1") as client:
        async with S3Store(s3_bucket, client=client, part_size=PART) as store:
            await store.put("aio/1", b"hello")
            big = _blob(PART + 10)
            await store.put("aio/big", _chunks([big]))
            assert await store.get("aio/1") == b"hello"
            assert await store.get_range("aio/big", PART, 100) == big[PART:]
            assert await store.get_range("aio/big", PART + 10, 1) == b""
            got = b"".join([c async for c in store.iter_bytes("aio/big", chunk_size=MiB)])
            assert got == big
            assert [i.key async for i in store.list("aio/")] == ["aio/1", "aio/big"]
            with pytest.raises(ObjectExistsError):
                await store.put("aio/1", b"again")
        # Still open: the store never closes a caller's client.
        assert (await client.head_object(Bucket=s3_bucket, Key="aio/1"))["ContentLength"] == 5


class _AsyncClientStub:
    async def head_object(self, **kw: Any) -> Any:
        raise AssertionError("never called")


async def test_prefix(s3_endpoint: str, s3_bucket: str, s3_admin: Any) -> None:
    async with S3Store(s3_bucket, "pre/fix/", endpoint_url=s3_endpoint, page_size=2) as store:
        for k in ["a/1", "a/2", "b/c/3", "top"]:
            info = await store.put(k, k.encode())
            assert info.key == k
        await anyio.to_thread.run_sync(
            lambda: s3_admin.put_object(Bucket=s3_bucket, Key="pre/fixed/x", Body=b"")
        )
        assert [i.key async for i in store.list()] == ["a/1", "a/2", "b/c/3", "top"]
        assert [i.key async for i in store.list("a/")] == ["a/1", "a/2"]
        assert [d async for d in store.list_dirs()] == ["a/", "b/"]
        assert [d async for d in store.list_dirs("b/")] == ["b/c/"]
        assert (await store.head("b/c/3")).key == "b/c/3"
        await store.delete("top")
    assert await _raw_keys(s3_admin, s3_bucket) == {
        "pre/fix/a/1",
        "pre/fix/a/2",
        "pre/fix/b/c/3",
        "pre/fixed/x",
    }


async def test_lazy_open(s3_endpoint: str, s3_bucket: str) -> None:
    store = S3Store(s3_bucket, endpoint_url=s3_endpoint)
    try:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(store.put, f"lazy/{i}", b"x")
        assert len([i async for i in store.list("lazy/")]) == 4
        transport = store._transport
        await store.aopen()
        assert store._transport is transport
    finally:
        await store.aclose()
        await store.aclose()


# ------------------------------------------------------------------ error mapping
async def test_missing_bucket(s3_endpoint: str) -> None:
    async with S3Store("no-such-bucket-here", endpoint_url=s3_endpoint) as store:
        for call in (
            store.get("k"),
            store.put("k", b"x"),
            store.put("k", _chunks([b"x"])),
            store.get_range("k", 0, 10),
        ):
            with pytest.raises(StorageError, match="does not exist") as ei:
                await call
            assert not isinstance(ei.value, ObjectNotFoundError)
            assert ei.value.key == "k"
        with pytest.raises(StorageError, match="does not exist"):
            [i async for i in store.list()]


async def test_range_past_eof_but_missing_key(s3_store: S3Store) -> None:
    await s3_store.put("r", b"abc")
    assert await s3_store.get_range("r", 3, 10) == b""
    assert await s3_store.get_range("r", 1000, 1) == b""
    with pytest.raises(ObjectNotFoundError):
        await s3_store.get_range("r2", 1000, 1)


def _client_error(status: int, code: str, op: str = "PutObject") -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        op,
    )


def _botocore_error(name: str) -> Exception:
    from botocore import exceptions as be

    if name == "connect":
        return be.EndpointConnectionError(endpoint_url="http://x")
    if name == "read-timeout":
        return be.ReadTimeoutError(endpoint_url="http://x")
    if name == "no-credentials":
        return be.NoCredentialsError()
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("make", "mode", "expected"),
    [
        (lambda: _client_error(404, "NoSuchKey"), None, ObjectNotFoundError),
        (lambda: _client_error(404, "404", "HeadObject"), None, ObjectNotFoundError),
        (lambda: _client_error(404, "NoSuchKey"), IfMatch('"e"'), PreconditionFailedError),
        (lambda: _client_error(412, "PreconditionFailed"), "create", ObjectExistsError),
        (lambda: _client_error(412, "PreconditionFailed"), IfMatch('"e"'), PreconditionFailedError),
        (lambda: _client_error(409, "ConditionalRequestConflict"), "create", ObjectExistsError),
        (
            lambda: _client_error(409, "ConditionalRequestConflict"),
            IfMatch('"e"'),
            PreconditionFailedError,
        ),
        (lambda: _client_error(409, "ConditionalRequestConflict"), "overwrite", ConflictError),
        (lambda: _client_error(403, "AccessDenied"), None, PermissionDeniedError),
        (lambda: _client_error(403, "SignatureDoesNotMatch"), None, PermissionDeniedError),
        (lambda: _client_error(503, "SlowDown"), None, TransientStorageError),
        (lambda: _client_error(500, "InternalError"), None, TransientStorageError),
        (lambda: _client_error(400, "RequestTimeout"), None, TransientStorageError),
        (lambda: _client_error(400, "InvalidArgument"), None, StorageError),
        (lambda: _botocore_error("connect"), None, TransientStorageError),
        (lambda: _botocore_error("read-timeout"), None, TransientStorageError),
        (lambda: _botocore_error("no-credentials"), None, PermissionDeniedError),
        (lambda: ConnectionResetError("reset"), None, TransientStorageError),
        (lambda: RuntimeError("odd"), None, StorageError),
    ],
)
def test_error_mapping(make: Any, mode: Any, expected: type[Exception]) -> None:
    original = make()
    with pytest.raises(expected) as ei, map_s3_errors(key="the/key", bucket="b", mode=mode):
        raise original
    assert type(ei.value) is expected
    assert ei.value.key == "the/key"  # type: ignore[attr-defined]
    assert ei.value.__cause__ is original


def test_error_mapping_passes_aiolode_errors() -> None:
    err = ObjectExistsError("x", key="k")
    with pytest.raises(ObjectExistsError) as ei, map_s3_errors(key="other", bucket="b"):
        raise err
    assert ei.value is err


@pytest.mark.parametrize(
    "kwargs",
    [
        {"part_size": 5 * MiB - 1},
        {"max_concurrency": 0},
        {"page_size": 0},
        {"page_size": 1001},
        {"client": object()},
    ],
)
def test_bad_parameters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        S3Store("bucket", **kwargs)


def test_aioboto3_session_refused() -> None:
    import aioboto3

    with pytest.raises(InvalidInputError, match=r"boto3\.Session"):
        S3Store("bucket", session=aioboto3.Session())


async def test_boto3_session(s3_endpoint: str, s3_bucket: str) -> None:
    import boto3

    session = await anyio.to_thread.run_sync(boto3.Session)
    async with S3Store(s3_bucket, session=session, endpoint_url=s3_endpoint) as store:
        await store.put("via/session", b"s")
        assert await store.get("via/session") == b"s"


@pytest.mark.parametrize("bucket", ["", "a/b", None])
def test_bad_bucket(bucket: Any) -> None:
    with pytest.raises(InvalidInputError):
        S3Store(bucket)


def test_reopen_on_another_backend(s3_endpoint: str, s3_bucket: str) -> None:
    store = S3Store(s3_bucket, endpoint_url=s3_endpoint)

    async def use(n: int) -> list[str]:
        async with store:
            await store.put(f"re/{n}", b"x")
            return [i.key async for i in store.list("re/")]

    assert anyio.run(use, 1, backend="asyncio") == ["re/1"]
    assert anyio.run(use, 2, backend="trio") == ["re/1", "re/2"]


def test_range_past_end_is_decided_by_the_mapping() -> None:
    from aiolode.store._s3 import PastEnd

    original = _client_error(416, "InvalidRange", "GetObject")
    with pytest.raises(PastEnd), map_s3_errors(key="k", bucket="b", ranged=True):
        raise original
    # Without a Range header a 416 is no "empty" answer, just a failure.
    with pytest.raises(StorageError), map_s3_errors(key="k", bucket="b"):
        raise original
    # A missing key stays missing, ranged or not.
    with pytest.raises(ObjectNotFoundError), map_s3_errors(key="k", bucket="b", ranged=True):
        raise _client_error(404, "NoSuchKey", "GetObject")


# --------------------------------------------------------------- arrow filesystem
async def test_arrow_filesystem_reads_the_objects(
    s3_endpoint: str, s3_bucket: str, s3_admin: Any
) -> None:
    async with S3Store(s3_bucket, "pre/fix", endpoint_url=s3_endpoint) as store:
        await store.put("a/b.bin", b"through pyarrow")
        found = await store.arrow_filesystem()
        assert found is not None
        assert found.filesystem.type_name == "s3"
        assert found.path("a/b.bin") == f"{s3_bucket}/pre/fix/a/b.bin"

        def read() -> bytes:
            with found.filesystem.open_input_file(found.path("a/b.bin")) as f:
                data: bytes = f.read()
                return data

        assert await anyio.to_thread.run_sync(read) == b"through pyarrow"
    async with S3Store(s3_bucket, client=s3_admin) as theirs:
        # A caller's client: its credentials are not the store's to hand out.
        assert await theirs.arrow_filesystem() is None
