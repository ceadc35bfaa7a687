"""Abandoned uploads: found only once older than the cutoff, scoped, paged, aborted.

Over the real servers of the session (moto and SeaweedFS for S3) and real
files, on asyncio and trio. "Abandoned" is made the way it happens: a raw
client starts an upload and walks away, or a writer process is killed with
SIGKILL mid-put. What the store reports is checked against a raw listing that
bypasses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from aiolode import (
    FileStore,
    InvalidInputError,
    InvalidKeyError,
    PendingUpload,
    S3Store,
    StaleWriteError,
    StorageError,
    UnsupportedOperationError,
)
from aiolode.store import Store
from aiolode.store._posix import HAS_O_TMPFILE
from aiolode.testing import CountingStore

MiB = 1024 * 1024
PART = 5 * MiB
FAR = timedelta(days=3650)
S3_KINDS = [
    pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("seaweed", marks=pytest.mark.seaweed),
]


async def _found(store: Store, prefix: str = "", *, older_than: datetime) -> list[PendingUpload]:
    return [u async for u in store.abandoned_uploads(prefix, older_than=older_than)]


def _now() -> datetime:
    return datetime.now(UTC)


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def test_pending_upload_is_a_frozen_value() -> None:
    when = _now()
    upload = PendingUpload("k", "id", when)
    assert upload == PendingUpload("k", "id", when, None)
    with pytest.raises(AttributeError):
        upload.key = "other"  # type: ignore[misc]


# ============================================================================ S3
@dataclass
class S3Place:
    """Where an S3 test works: a bucket, the store's key prefix in it, a raw client."""

    kind: str
    endpoint: str
    bucket: str
    prefix: str
    admin: Any

    def full(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def store(self, **kwargs: Any) -> S3Store:
        kwargs.setdefault("endpoint_url", self.endpoint)
        kwargs.setdefault("region_name", "us-east-1")
        if "client" in kwargs:
            del kwargs["endpoint_url"], kwargs["region_name"]
        return S3Store(self.bucket, kwargs.pop("prefix", self.prefix), **kwargs)

    async def start(self, bucket_key: str, part: bytes = b"abandoned part") -> str:
        """Start a multipart upload with one part, then walk away; its upload id."""

        def run() -> str:
            upload_id: str = self.admin.create_multipart_upload(Bucket=self.bucket, Key=bucket_key)[
                "UploadId"
            ]
            self.admin.upload_part(
                Bucket=self.bucket, Key=bucket_key, UploadId=upload_id, PartNumber=1, Body=part
            )
            return upload_id

        return await anyio.to_thread.run_sync(run)

    async def uploads(self, bucket_prefix: str | None = None) -> set[tuple[str, str]]:
        """``(bucket key, upload id)`` of every pending upload under the prefix (raw)."""

        def run() -> set[tuple[str, str]]:
            prefix = f"{self.prefix}/" if bucket_prefix is None else bucket_prefix
            resp = self.admin.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
            assert not resp.get("IsTruncated")
            return {(u["Key"], u["UploadId"]) for u in resp.get("Uploads", ())}

        return await anyio.to_thread.run_sync(run)

    async def parts(self, bucket_key: str, upload_id: str) -> int:
        def run() -> int:
            resp = self.admin.list_parts(Bucket=self.bucket, Key=bucket_key, UploadId=upload_id)
            return len(resp.get("Parts", ()))

        return await anyio.to_thread.run_sync(run)

    def abort_all(self, bucket_prefix: str) -> None:
        """Abort every pending upload under the prefix (blocking: for teardown)."""
        resp = self.admin.list_multipart_uploads(Bucket=self.bucket, Prefix=bucket_prefix)
        for u in resp.get("Uploads", ()):
            self.admin.abort_multipart_upload(
                Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]
            )


@pytest.fixture(params=S3_KINDS)
def place(request: pytest.FixtureRequest) -> Iterator[S3Place]:
    """Sync: starting a server blocks, so never on the event loop."""
    kind = str(request.param)
    if kind == "s3":
        p = S3Place(
            kind,
            request.getfixturevalue("s3_endpoint"),
            request.getfixturevalue("s3_bucket"),
            "t",
            request.getfixturevalue("s3_admin"),
        )
    else:
        p = S3Place(
            kind,
            request.getfixturevalue("seaweed_endpoint"),
            request.getfixturevalue("seaweed_bucket"),
            request.getfixturevalue("seaweed_prefix"),
            request.getfixturevalue("seaweed_admin"),
        )
    try:
        yield p
    finally:
        # SeaweedFS has one bucket for the session: leave no upload behind.
        p.abort_all(f"{p.prefix}/")


async def test_s3_upload_is_found_once_older_than_the_cutoff_then_aborted(
    place: S3Place,
) -> None:
    grace = timedelta(seconds=1.5)
    async with place.store() as store:
        upload_id = await place.start(place.full("ds/a/obj"))
        # Young: a live writer could still be sending parts.
        assert await _found(store, "ds/", older_than=_now() - grace) == []
        await anyio.sleep(2.6)  # SeaweedFS reports Initiated to the second
        [found] = await _found(store, "ds/", older_than=_now() - grace)
        assert found.key == "ds/a/obj"
        assert found.upload_id == upload_id
        assert found.size is None
        assert found.initiated.utcoffset() == timedelta(0)
        assert _now() - timedelta(seconds=10) < found.initiated < _now() - grace

        await store.abort_upload(found)
        assert await place.uploads() == set()
        assert await _found(store, older_than=_now() + FAR) == []
        await store.abort_upload(found)  # idempotent: already gone


async def test_s3_cutoff_is_strict(place: S3Place) -> None:
    async with place.store() as store:
        await place.start(place.full("k"))
        [found] = await _found(store, older_than=_now() + FAR)
        assert await _found(store, older_than=found.initiated) == []
        assert await _found(store, older_than=found.initiated + timedelta(milliseconds=1)) == [
            found
        ]


async def test_s3_prefix_scoping(place: S3Place) -> None:
    inside = ["ds/a/1", "ds/a/2/deep", "ds/ab/3", "ds/a", "other/4"]
    for key in inside:
        await place.start(place.full(key))
    # Outside the store's prefix, although the bucket keys share its first characters.
    outside = f"{place.prefix}x/ds/a/5"
    await place.start(outside)
    try:
        async with place.store() as store:
            later = _now() + FAR

            async def keys(prefix: str) -> list[str]:
                return sorted(u.key for u in await _found(store, prefix, older_than=later))

            assert await keys("ds/a/") == ["ds/a/1", "ds/a/2/deep"]
            assert await keys("ds/a") == ["ds/a", "ds/a/1", "ds/a/2/deep", "ds/ab/3"]
            assert await keys("") == sorted(inside)
            assert await keys("nothing/") == []
            for upload in await _found(store, "ds/a/", older_than=later):
                await store.abort_upload(upload)
            assert {k for k, _ in await place.uploads()} == {
                place.full(k) for k in ("ds/a", "ds/ab/3", "other/4")
            }
            assert {k for k, _ in await place.uploads(outside)} == {outside}
    finally:
        await anyio.to_thread.run_sync(place.abort_all, outside)


async def test_s3_pages_through_many_uploads(place: S3Place) -> None:
    import boto3
    from botocore.config import Config

    keys = [f"pg/{i}" for i in range(6)] + ["pg/0"]  # two uploads of one key
    ids = {await place.start(place.full(k)) for k in keys}
    client = boto3.client(
        "s3",
        endpoint_url=place.endpoint,
        region_name="us-east-1",
        config=Config(request_checksum_calculation="when_required"),
    )
    requests: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-call.s3.ListMultipartUploads",
        lambda params, **_: requests.append(dict(params["query_string"])),
    )
    async with place.store(client=client, page_size=2) as store:
        found = await _found(store, "pg/", older_than=_now() + FAR)
    assert sorted(u.key for u in found) == sorted(keys)
    assert {u.upload_id for u in found} == ids
    assert len(found) == len(ids) == 7
    assert len(requests) == 4  # ceil(7 / 2) ListMultipartUploads
    if place.kind == "s3":
        # S3 pages by key and upload id (moto, made to answer like S3).
        assert all("key-marker" in r and "upload-id-marker" in r for r in requests[1:])
    else:
        # SeaweedFS pages by upload id alone, and reads a key marker as "this key only".
        assert all("key-marker" not in r and "upload-id-marker" in r for r in requests[1:])


_S3_WRITER = """
import os, sys
import anyio
from aiolode import S3Store

async def main():
    endpoint, bucket, prefix, key = sys.argv[1:5]

    async def chunks():
        yield os.urandom(6 * 1024 * 1024)  # more than one 5 MiB part
        print("STREAMING", flush=True)
        await anyio.sleep(3600)
        yield b""

    async with S3Store(bucket, prefix, endpoint_url=endpoint, region_name="us-east-1",
                       part_size=5 * 1024 * 1024) as store:
        await store.put(key, chunks())

anyio.run(main)
"""


async def _run_until(args: list[str], line: str) -> anyio.abc.Process:
    """Start a writer process and wait until it prints ``line``."""
    proc = await anyio.open_process(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    out = b""
    with anyio.fail_after(60):
        while line.encode() not in out:
            try:
                out += await proc.stdout.receive()
            except anyio.EndOfStream:
                assert proc.stderr is not None
                err = b"".join([c async for c in proc.stderr])
                raise AssertionError(f"writer exited early: {err.decode()[-2000:]}") from None
    return proc


async def _kill(proc: anyio.abc.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    with anyio.fail_after(30):
        assert await proc.wait() == -signal.SIGKILL
    await proc.aclose()


async def test_s3_upload_of_a_killed_writer_is_found_and_aborted(place: S3Place) -> None:
    proc = await _run_until(
        [sys.executable, "-c", _S3_WRITER, place.endpoint, place.bucket, place.prefix, "big/obj"],
        "STREAMING",
    )
    try:
        # Kill it once its first part is stored: the upload then holds real bytes.
        with anyio.fail_after(60):
            while True:
                pending = await place.uploads()
                if pending and await place.parts(*next(iter(pending))) >= 1:
                    break
                await anyio.sleep(0.05)
    finally:
        await _kill(proc)
    [(bucket_key, upload_id)] = await place.uploads()
    assert bucket_key == place.full("big/obj")
    async with place.store() as store:
        [found] = await _found(store, "big/", older_than=_now() + timedelta(seconds=1))
        assert (found.key, found.upload_id) == ("big/obj", upload_id)
        assert not await store.exists("big/obj")
        await store.abort_upload(found)
    assert await place.uploads() == set()


async def test_s3_upload_reaped_under_a_live_writer_fails_it_as_stale(place: S3Place) -> None:
    """A grace too short aborts a live upload: its put fails, nothing is published."""
    async with place.store(part_size=PART, max_concurrency=2) as store:

        async def chunks() -> AsyncIterator[bytes]:
            yield os.urandom(PART + 1)  # part 1, and the upload has begun
            for upload in await _found(store, older_than=_now() + FAR):
                await store.abort_upload(upload)
            yield os.urandom(PART)

        with pytest.raises(StaleWriteError) as ei:
            await store.put("stale/obj", chunks())
        assert ei.value.key == "stale/obj"
        assert not await store.exists("stale/obj")
    assert await place.uploads() == set()


async def test_s3_wrappers_forward_and_count(place: S3Place) -> None:
    await place.start(place.full("w/1"))
    async with CountingStore(place.store()) as store:
        [found] = await _found(store, older_than=_now() + FAR)
        await store.abort_upload(found)
        assert store.snapshot().nonzero() == {"list_uploads": 1, "abort_upload": 1}
        assert store.listed == 1
    assert await place.uploads() == set()


# ---------------------------------------------------------- S3 without a server
def _stubbed() -> tuple[Any, Any]:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client, Stubber(client)


async def test_s3_server_without_the_listing_is_unsupported() -> None:
    client, stub = _stubbed()
    stub.add_client_error(
        "list_multipart_uploads", service_error_code="NotImplemented", http_status_code=501
    )
    with stub:
        async with S3Store("b", client=client) as store:
            it = store.abandoned_uploads(older_than=_now())
            with pytest.raises(UnsupportedOperationError):
                await anext(it)
    stub.assert_no_pending_responses()


async def test_s3_upload_without_initiated_time_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, stub = _stubbed()
    stub.add_response(
        "list_multipart_uploads",
        {"Uploads": [{"Key": "p/a", "UploadId": "u1"}], "IsTruncated": False},
        {"Bucket": "b", "Prefix": "p/", "MaxUploads": 1000},
    )
    with stub, caplog.at_level(logging.WARNING, logger="aiolode.store._s3"):
        async with S3Store("b", "p", client=client) as store:
            assert await _found(store, older_than=_now() + FAR) == []
    assert "without an Initiated time" in caplog.text


async def test_s3_truncated_listing_without_a_marker_fails() -> None:
    client, stub = _stubbed()
    stub.add_response(
        "list_multipart_uploads",
        {"Uploads": [], "IsTruncated": True},
        {"Bucket": "b", "Prefix": "", "MaxUploads": 1000},
    )
    with stub:
        async with S3Store("b", client=client) as store:
            with pytest.raises(StorageError, match="truncated"):
                await _found(store, older_than=_now())


async def test_s3_markers_are_sent_back_only_as_given() -> None:
    then = datetime(2020, 1, 1, tzinfo=UTC)
    client, stub = _stubbed()
    base = {"Bucket": "b", "Prefix": "p/x", "MaxUploads": 1}
    stub.add_response(
        "list_multipart_uploads",
        {
            "Uploads": [{"Key": "p/x1", "UploadId": "u1", "Initiated": then}],
            "IsTruncated": True,
            "NextUploadIdMarker": "u1",
        },
        base,
    )
    stub.add_response(
        "list_multipart_uploads",
        {
            "Uploads": [{"Key": "p/x2", "UploadId": "u2", "Initiated": then}],
            "IsTruncated": True,
            "NextKeyMarker": "p/x2",
            "NextUploadIdMarker": "u2",
        },
        {**base, "UploadIdMarker": "u1"},
    )
    stub.add_response(
        "list_multipart_uploads",
        {"Uploads": [], "IsTruncated": False},
        {**base, "KeyMarker": "p/x2", "UploadIdMarker": "u2"},
    )
    with stub:
        async with S3Store("b", "p", client=client, page_size=1) as store:
            found = await _found(store, "x", older_than=then + timedelta(seconds=1))
    assert [(u.key, u.upload_id, u.initiated) for u in found] == [
        ("x1", "u1", then),
        ("x2", "u2", then),
    ]
    stub.assert_no_pending_responses()


# ====================================================================== FileStore
def _temps(root: Path) -> dict[str, os.stat_result]:
    """Every ``.aiolode-tmp-*`` entry under ``root`` (raw), by relative path."""
    out: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            if name.startswith(".aiolode-tmp-"):
                path = Path(dirpath, name)
                out[path.relative_to(root).as_posix()] = path.lstat()
    return out


_FILE_WRITER = """
import os, sys
import anyio
from aiolode import FileStore

async def main():
    root, key, mode = sys.argv[1:4]

    async def chunks():
        for _ in range(8):
            yield os.urandom(1024 * 1024)
        print("WRITTEN", flush=True)
        await anyio.sleep(3600)
        yield b""

    async with FileStore(root) as store:
        await store.put(key, chunks(), mode=mode)

anyio.run(main)
"""


async def test_file_temp_of_a_killed_writer_is_found_once_old_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    async with FileStore(root) as store:
        await store.put("keep/x", b"neighbour")
        # An overwrite streams into a named temp file (create-only puts use O_TMPFILE).
        proc = await _run_until(
            [sys.executable, "-c", _FILE_WRITER, str(root), "ds/new/obj", "overwrite"], "WRITTEN"
        )
        await _kill(proc)
        [(path, st)] = (await anyio.to_thread.run_sync(_temps, root)).items()
        assert path.startswith("ds/new/.aiolode-tmp-")
        assert st.st_size == 8 * MiB

        [found] = await _found(store, "ds/", older_than=_now() + timedelta(seconds=1))
        assert (found.key, found.upload_id, found.size) == (path, path.rsplit("/")[-1], 8 * MiB)
        # Young: changed at (not before) the cutoff, or after it.
        assert await _found(store, "ds/", older_than=found.initiated) == []
        assert await _found(store, "ds/", older_than=_now() - timedelta(hours=1)) == []
        assert await _found(store, "keep/", older_than=_now() + FAR) == []

        await store.abort_upload(found)
        assert await anyio.to_thread.run_sync(_temps, root) == {}
        # The directories the killed write created are pruned; others stay.
        assert not (root / "ds").exists()
        assert await store.get("keep/x") == b"neighbour"
        assert [i.key async for i in store.list()] == ["keep/x"]
        await store.abort_upload(found)  # idempotent


@pytest.mark.skipif(not HAS_O_TMPFILE, reason="no O_TMPFILE on this platform")
async def test_file_create_only_write_killed_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    proc = await _run_until(
        [sys.executable, "-c", _FILE_WRITER, str(root), "ds/obj", "create"], "WRITTEN"
    )
    await _kill(proc)
    # The unnamed O_TMPFILE inode vanished with its process.
    assert await anyio.to_thread.run_sync(_temps, root) == {}
    async with FileStore(root) as store:
        assert await _found(store, older_than=_now() + FAR) == []
        assert [i async for i in store.list()] == []


async def test_file_live_write_is_young_and_fails_as_stale_if_reaped(tmp_path: Path) -> None:
    async with FileStore(tmp_path) as store:
        await store.put("live/obj", b"old version")
        streaming = anyio.Event()
        reaped = anyio.Event()

        async def chunks() -> AsyncIterator[bytes]:
            yield os.urandom(2 * MiB)
            streaming.set()
            await reaped.wait()
            yield b"tail"

        async def writer() -> None:
            with pytest.raises(StaleWriteError) as ei:
                await store.put("live/obj", chunks(), mode="overwrite")
            assert ei.value.key == "live/obj"

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await streaming.wait()
            # With a sane grace the live write is not a candidate...
            assert await _found(store, older_than=_now() - timedelta(minutes=5)) == []
            # ... with none, it looks exactly like an abandoned one.
            [live] = await _found(store, older_than=_now() + timedelta(seconds=1))
            assert live.key.startswith("live/.aiolode-tmp-")
            await store.abort_upload(live)
            reaped.set()
        assert await store.get("live/obj") == b"old version"
        assert await anyio.to_thread.run_sync(_temps, tmp_path) == {}


def _plant(root: Path, rel: str, size: int = 10) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"t" * size)


async def test_file_prefix_scoping_and_paging(tmp_path: Path) -> None:
    root = tmp_path / "store"
    outside = tmp_path / "outside"
    root.mkdir()
    hexes = iter(f"{i:016x}" for i in range(100))
    planted = {
        "ds/a": [f"ds/a/.aiolode-tmp-{next(hexes)}" for _ in range(3)],
        "ds/a/deep": [f"ds/a/deep/.aiolode-tmp-{next(hexes)}"],
        "ds/ab": [f"ds/ab/.aiolode-tmp-{next(hexes)}"],
        "top": [f".aiolode-tmp-{next(hexes)}"],
    }
    for paths in planted.values():
        for rel in paths:
            await anyio.to_thread.run_sync(_plant, root, rel)
    # Never found: names that are not temp names, and anything behind a symlink.
    await anyio.to_thread.run_sync(_plant, root, "ds/a/.aiolode-tmp-notatemp")
    await anyio.to_thread.run_sync(_plant, outside, f"ds/.aiolode-tmp-{next(hexes)}")
    (root / "ds" / "link").symlink_to(outside / "ds", target_is_directory=True)

    async with FileStore(root, page_size=2) as store:
        later = _now() + timedelta(seconds=1)

        async def keys(prefix: str) -> list[str]:
            return sorted(u.key for u in await _found(store, prefix, older_than=later))

        in_a = sorted(planted["ds/a"] + planted["ds/a/deep"])
        assert await keys("ds/a/") == in_a
        assert await keys("ds/a") == sorted(in_a + planted["ds/ab"])
        assert await keys("") == sorted(p for ps in planted.values() for p in ps)
        assert await keys("nothing/") == []
        assert await keys("ds/link/") == []
        for upload in await _found(store, "ds/a/", older_than=later):
            await store.abort_upload(upload)
        assert sorted(await anyio.to_thread.run_sync(_temps, root)) == sorted(
            ["ds/a/.aiolode-tmp-notatemp", *planted["ds/ab"], *planted["top"]]
        )
    assert len(await anyio.to_thread.run_sync(_temps, outside)) == 1


async def test_file_leftover_migration_directory_is_removed_safely(tmp_path: Path) -> None:
    """A migration killed before its swap leaves a temp dir holding a hard link."""
    async with FileStore(tmp_path) as store:
        await store.put("m/obj", b"object bytes")
        tmpdir = tmp_path / "m" / ".aiolode-tmp-00000000000000ff"

        def plant() -> None:
            tmpdir.mkdir()
            os.link(tmp_path / "m" / "obj", tmpdir / ".aiolode-self")

        await anyio.to_thread.run_sync(plant)
        [found] = await _found(store, "m/", older_than=_now() + timedelta(seconds=1))
        assert found.key == "m/.aiolode-tmp-00000000000000ff"
        assert found.size is None
        await store.abort_upload(found)
        assert not tmpdir.exists()
        assert await store.get("m/obj") == b"object bytes"
        st = await anyio.to_thread.run_sync((tmp_path / "m" / "obj").lstat)
        assert stat.S_ISREG(st.st_mode)
        assert st.st_nlink == 1


@pytest.mark.parametrize(
    ("key", "upload_id", "error"),
    [
        ("a/b/notatemp", "notatemp", InvalidInputError),
        ("a/.aiolode-tmp-00000000000000ff", "other", InvalidInputError),
        ("a/.aiolode-tmp-0000", ".aiolode-tmp-0000", InvalidInputError),
        ("../x/.aiolode-tmp-00000000000000ff", ".aiolode-tmp-00000000000000ff", InvalidKeyError),
        (
            ".aiolode/locks/.aiolode-tmp-00000000000000ff",
            ".aiolode-tmp-00000000000000ff",
            InvalidKeyError,
        ),
    ],
)
async def test_file_abort_refuses_what_is_not_a_temp(
    tmp_path: Path, key: str, upload_id: str, error: type[Exception]
) -> None:
    async with FileStore(tmp_path) as store:
        await store.put("a/b/notatemp", b"an object, not a temp")
        with pytest.raises(error):
            await store.abort_upload(PendingUpload(key, upload_id, _now()))
        assert await store.get("a/b/notatemp") == b"an object, not a temp"


async def test_file_abort_of_a_missing_temp_is_done(tmp_path: Path) -> None:
    async with FileStore(tmp_path) as store:
        gone = ".aiolode-tmp-00000000000000ff"
        await store.abort_upload(PendingUpload(f"no/such/dir/{gone}", gone, _now()))
        await store.abort_upload(PendingUpload(gone, gone, _now()))


# ============================================================ arguments, every kind
class _Hostile:
    """An argument whose ``repr`` raises: an error message must not need it."""

    def __repr__(self) -> str:
        raise RuntimeError("hostile __repr__")


_EAST = timezone(timedelta(hours=5))
_WEST = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    "older_than",
    [
        _Hostile(),
        [_Hostile()],
        datetime(2026, 1, 1),  # naive
        datetime(1, 1, 1, tzinfo=_EAST),  # before year 1 in UTC
        datetime(9999, 12, 31, 23, tzinfo=_WEST),  # after year 9999 in UTC
    ],
    ids=["bad-repr", "list-of-bad-repr", "naive", "before-year-1", "after-year-9999"],
)
async def test_a_bad_cutoff_is_refused_typed(store: Store, older_than: object) -> None:
    # Found by the hostile sweep: the refusal called repr() on the argument, and
    # a cutoff out of range once in UTC raised a bare OverflowError.
    with pytest.raises(InvalidInputError, match="older_than"):
        store.abandoned_uploads(older_than=older_than)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "upload_id", "error"),
    [
        (None, None, InvalidKeyError),
        (_Hostile(), ".aiolode-tmp-00000000000000ff", InvalidKeyError),
        ("", "", InvalidKeyError),
        ("../.aiolode-tmp-00000000000000ff", ".aiolode-tmp-00000000000000ff", InvalidKeyError),
        ("/.aiolode-tmp-00000000000000ff", ".aiolode-tmp-00000000000000ff", InvalidKeyError),
        ("a/.aiolode-tmp-00000000000000ff", None, InvalidInputError),
        ("a/.aiolode-tmp-00000000000000ff", _Hostile(), InvalidInputError),
        ("a/.aiolode-tmp-00000000000000ff", "", InvalidInputError),
    ],
)
async def test_a_malformed_pending_upload_is_refused_typed(
    store: Store, key: object, upload_id: object, error: type[Exception]
) -> None:
    # Found by the hostile sweep: PendingUpload is a plain value anyone can
    # build; FileStore called str methods on its key (AttributeError) and S3
    # sent it on. Every store now checks the key and the upload id first.
    with pytest.raises(error):
        await store.abort_upload(PendingUpload(key, upload_id, _now()))  # type: ignore[arg-type]


async def test_a_malformed_pending_upload_touches_nothing_beside_the_root(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    bait = tmp_path / ".aiolode-tmp-00000000000000ff"
    bait.write_bytes(b"beside the root")
    async with FileStore(root) as store:
        for key in (bait.name, f"../{bait.name}", f"a/../../{bait.name}", str(bait)):
            with contextlib.suppress(InvalidInputError):
                await store.abort_upload(PendingUpload(key, bait.name, _now()))
    assert bait.read_bytes() == b"beside the root"
