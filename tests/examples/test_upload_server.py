"""``examples/upload_server.py`` under real servers (uvicorn on asyncio, hypercorn on
trio) on 127.0.0.1, driven over HTTP with httpx, on memory, file and S3 stores."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import psutil
import pytest

import aiolode
from aiolode.testing import CountingStore

from .conftest import Served, over_stores, upload_server

MiB = 1 << 20


async def _keys(store: aiolode.Store) -> list[str]:
    """Every key but the commit logs' (whose ``latest`` hint moves on its own)."""
    return sorted([o.key async for o in store.list("") if "/_log/" not in o.key])


async def _upload(served: Served, name: str, data: bytes, **kw: Any) -> dict[str, Any]:
    r = await served.http.post(f"/files/{name}", content=data, **kw)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _pattern(i: int) -> bytes:
    """A MiB that differs from its neighbours (a misplaced chunk shows)."""
    return i.to_bytes(4, "big") * (MiB // 4)


# --------------------------------------------------------------- basics
@over_stores
@pytest.mark.parametrize("size", [0, 1, 3 * MiB + 17])
async def test_upload_download_head(served: Served, size: int) -> None:
    data = (b"\x00" + os.urandom(size))[:size]  # binary: no magic number, not text
    up = await _upload(served, "blob.bin", data)
    assert up["size"] == size
    assert up["sha256"] == hashlib.sha256(data).hexdigest()
    assert up["content_type"] == "application/octet-stream"
    r = await served.http.get("/files/blob.bin")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-length"] == str(size)
    assert r.headers["etag"] == f'"{up["sha256"]}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == up["content_type"]
    assert r.headers["x-snapshot-id"] == up["snapshot"]
    assert r.headers["cache-control"] == "no-cache"
    head = await served.http.head("/files/blob.bin")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["etag"] == r.headers["etag"]
    # What the server committed: the digest, size and type decided at commit.
    snap = await served.dataset("blob.bin").latest()
    assert snap.id == up["snapshot"]
    assert snap.metadata["sha256"] == up["sha256"]
    assert snap.metadata["size"] == size
    assert snap.metadata["name"] == "blob.bin"
    assert snap.metadata["uploaded_at"].tzinfo is not None
    assert await served.dataset("blob.bin").read(snap) == data


@pytest.mark.parametrize(
    ("head", "declared", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "text/plain", "image/png"),  # magic wins
        (b"%PDF-1.7\n", None, "application/pdf"),
        (b"\x00\x01\x02", "application/x-custom; v=1", "application/x-custom; v=1"),
        (b"\x00\x01\x02", "application/octet-stream", "application/octet-stream"),
        (b"hello \xc3", None, "text/plain; charset=utf-8"),  # cut inside a character
        (b"\xff\xfe\x00", None, "application/octet-stream"),
    ],
)
async def test_sniffed_content_type(
    memory: aiolode.MemoryStore, head: bytes, declared: str | None, expected: str
) -> None:
    assert upload_server.sniff(head, declared) == expected
    app = upload_server.create_app(memory)
    async with (
        upload_server.open_server(app) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        headers = {"Content-Type": declared} if declared else {}
        r = await http.post("/files/f", content=head, headers=headers)
        assert r.json()["content_type"] == expected
        r = await http.get("/files/f")
        assert r.headers["content-type"] == expected
        assert r.headers["x-content-type-options"] == "nosniff"
        # A declared type that is no media type is not recorded (nor sent back).
        r = await http.post("/files/g", content=b"\x00", headers={"Content-Type": "bad type"})
        assert r.json()["content_type"] == "application/octet-stream"


# --------------------------------------------------------------- ranges
RANGE_SIZE = 10_000


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-0", (0, 0)),  # first byte
        (f"bytes={RANGE_SIZE - 1}-{RANGE_SIZE - 1}", (RANGE_SIZE - 1, RANGE_SIZE - 1)),  # last
        (f"bytes={RANGE_SIZE - 1}-", (RANGE_SIZE - 1, RANGE_SIZE - 1)),
        ("bytes=-1", (RANGE_SIZE - 1, RANGE_SIZE - 1)),  # suffix: last byte
        ("bytes=-100", (RANGE_SIZE - 100, RANGE_SIZE - 1)),
        (f"bytes=-{RANGE_SIZE + 5}", (0, RANGE_SIZE - 1)),  # suffix longer than the file
        ("bytes=0-", (0, RANGE_SIZE - 1)),
        (f"bytes=100-{RANGE_SIZE * 3}", (100, RANGE_SIZE - 1)),  # end past the end: clipped
        ("bytes=1000-1999", (1000, 1999)),
        (f"bytes={RANGE_SIZE}-", "416"),  # starts at the end
        (f"bytes={RANGE_SIZE + 10}-{RANGE_SIZE + 20}", "416"),
        ("bytes=-0", "416"),
        ("bytes=5-2", None),  # invalid: ignored, 200
        ("items=0-1", None),  # another unit: ignored
        ("bytes=0-1,5-6", None),  # several ranges: answered whole
        ("bytes=x-1", None),
    ],
)
async def test_ranges_at_every_edge(
    memory: aiolode.MemoryStore, header: str, span: tuple[int, int] | str | None
) -> None:
    counting = CountingStore(memory)
    data = os.urandom(RANGE_SIZE)
    app = upload_server.create_app(counting)
    async with (
        upload_server.open_server(app) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        assert (await http.post("/files/r", content=data)).status_code == 201
        with counting.measure() as m:
            r = await http.get("/files/r", headers={"Range": header})
        if span == "416":
            assert r.status_code == 416
            assert r.headers["content-range"] == f"bytes */{RANGE_SIZE}"
            assert m.counts["get_range"] == m.counts["iter_bytes"] == 0
        elif span is None:
            assert r.status_code == 200
            assert r.content == data
        else:
            assert isinstance(span, tuple)
            first, last = span
            assert r.status_code == 206
            assert r.content == data[first : last + 1]
            assert r.headers["content-range"] == f"bytes {first}-{last}/{RANGE_SIZE}"
            assert r.headers["content-length"] == str(last + 1 - first)
            # A true range read: one request, the range's bytes, never the file.
            assert m.counts["get_range"] == 1
            assert m.counts["iter_bytes"] == 0
            # (+ the probe for a newer record that latest() makes: no data)
            assert m.counts.bytes_read - (last + 1 - first) < 4096


@over_stores
async def test_ranges_on_each_store_and_if_range(served: Served) -> None:
    data = b"".join(_pattern(i) for i in range(6)) + b"end"  # > one range piece (4 MiB)
    up = await _upload(served, "big", data)
    n = len(data)
    for header, (first, last) in {
        "bytes=0-0": (0, 0),
        "bytes=-1": (n - 1, n - 1),
        f"bytes={n - 1}-": (n - 1, n - 1),
        "bytes=1-": (1, n - 1),  # streamed in range pieces
        f"bytes={MiB - 1}-{4 * MiB + 1}": (MiB - 1, 4 * MiB + 1),
    }.items():
        r = await served.http.get("/files/big", headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == data[first : last + 1], header
    r = await served.http.get("/files/big", headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416
    tag = f'"{up["sha256"]}"'
    r = await served.http.get("/files/big", headers={"Range": "bytes=0-1", "If-Range": tag})
    assert r.status_code == 206
    r = await served.http.get("/files/big", headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert r.status_code == 200
    assert r.content == data


async def test_empty_file_has_no_satisfiable_range(memory: aiolode.MemoryStore) -> None:
    app = upload_server.create_app(memory)
    async with (
        upload_server.open_server(app) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        assert (await http.post("/files/e", content=b"")).status_code == 201
        for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
            r = await http.get("/files/e", headers={"Range": header})
            assert r.status_code == 416
            assert r.headers["content-range"] == "bytes */0"


# ---------------------------------------------------- conditional, history
async def test_if_none_match(memory: aiolode.MemoryStore) -> None:
    app = upload_server.create_app(memory)
    async with (
        upload_server.open_server(app) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        await http.post("/files/c", content=b"one")
        tag = (await http.get("/files/c")).headers["etag"]
        for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
            r = await http.get("/files/c", headers={"If-None-Match": header})
            assert r.status_code == 304, header
            assert r.content == b""
            assert r.headers["etag"] == tag
        r = await http.get("/files/c", headers={"If-None-Match": '"other"'})
        assert r.status_code == 200
        await http.post("/files/c", content=b"two")
        r = await http.get("/files/c", headers={"If-None-Match": tag})
        assert r.status_code == 200
        assert r.content == b"two"
        assert r.headers["etag"] != tag
        # The same content again: the same representation, the same tag.
        await http.post("/files/c", content=b"one")
        assert (await http.get("/files/c", headers={"If-None-Match": tag})).status_code == 304


@over_stores
async def test_time_travel_listing_and_delete(served: Served) -> None:
    http = served.http
    v1 = await _upload(served, "doc.txt", b"version one")
    v2 = await _upload(served, "doc.txt", b"version two")
    v3 = await _upload(served, "doc.txt", b"version three")
    await _upload(served, "other", b"x")
    r = await http.get("/files/doc.txt", params={"snapshot": v1["snapshot"]})
    assert r.content == b"version one"
    assert "immutable" in r.headers["cache-control"]
    r = await http.get(
        "/files/doc.txt", params={"snapshot": v2["snapshot"]}, headers={"Range": "bytes=-3"}
    )
    assert r.status_code == 206
    assert r.content == b"two"
    assert (await http.get("/files/doc.txt")).content == b"version three"
    listing = (await http.get("/files")).json()["files"]
    assert {f["name"]: f["snapshot"] for f in listing} == {
        "doc.txt": v3["snapshot"],
        "other": (await served.dataset("other").latest()).id,
    }
    hist = (await http.get("/files/doc.txt/snapshots")).json()["snapshots"]
    assert [s["snapshot"] for s in hist] == [v3["snapshot"], v2["snapshot"], v1["snapshot"]]
    # Unknown, malformed, expired.
    assert (await http.get("/files/nothing")).status_code == 404
    assert (await http.get("/files/nothing/snapshots")).status_code == 404
    r = await http.get("/files/doc.txt", params={"snapshot": "0000000000000099-0000"})
    assert r.status_code == 404
    assert (await http.get("/files/doc.txt", params={"snapshot": "nope"})).status_code == 404
    assert (
        await http.delete("/files/doc.txt", params={"snapshot": v1["snapshot"]})
    ).status_code == 204
    assert (
        await http.get("/files/doc.txt", params={"snapshot": v1["snapshot"]})
    ).status_code == 410
    r = await http.delete("/files/doc.txt", params={"snapshot": v3["snapshot"]})
    assert r.status_code == 409  # the latest upload is never expired alone
    hist = (await http.get("/files/doc.txt/snapshots")).json()["snapshots"]
    assert [s["snapshot"] for s in hist] == [v3["snapshot"], v2["snapshot"]]
    # The whole file: dropped, its objects gone, the name free again.
    assert (await http.delete("/files/doc.txt")).status_code == 204
    assert (await http.get("/files/doc.txt")).status_code == 404
    assert (await http.delete("/files/doc.txt")).status_code == 404
    assert [f["name"] for f in (await http.get("/files")).json()["files"]] == ["other"]
    root = f"datasets/{upload_server.dataset_id('doc.txt')}/"
    assert [k for k in await _keys(served.store) if k.startswith(root)] == []
    again = await _upload(served, "doc.txt", b"a new life")
    assert (await http.get("/files/doc.txt")).content == b"a new life"
    assert again["snapshot"] != v1["snapshot"]


async def test_names_are_mapped_safely(memory: aiolode.MemoryStore) -> None:
    assert upload_server.dataset_id("a.txt") == "f-a.txt"
    for name in ("ünï cødé.txt", "a..b", "-dash", ".hidden", "x" * 150, "日本", "a/b"):
        ds_id = upload_server.dataset_id(name)
        aiolode.Dataset(ds_id, memory)  # a valid id
        assert upload_server.file_name(ds_id) == name
    with pytest.raises(ValueError):
        upload_server.dataset_id("")
    for bad in ("é" * 60, "x" * 151):
        with pytest.raises(ValueError):
            upload_server.dataset_id(bad)
    assert upload_server.file_name("f-x") == "x"
    assert upload_server.file_name("events") is None
    assert upload_server.file_name("x-zz") is None
    app = upload_server.create_app(memory)
    async with (
        upload_server.open_server(app) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        r = await http.post("/files/ünï cødé.txt", content=b"u")
        assert r.status_code == 201
        assert (await http.get("/files/ünï cødé.txt")).content == b"u"
        assert [f["name"] for f in (await http.get("/files")).json()["files"]] == ["ünï cødé.txt"]
        assert (await http.post("/files/" + "é" * 60, content=b"u")).status_code == 400
        # A name whose dataset holds records (made by another program): refused.
        await aiolode.Dataset("f-records", memory, codec=aiolode.JSONL()).write([{"a": 1}])
        assert (await http.get("/files/records")).status_code == 409
        assert (await http.post("/files/records", content=b"x")).status_code == 409


# -------------------------------------------------------------- concurrency
@over_stores
async def test_concurrent_uploads_of_one_name(served: Served) -> None:
    bodies = {i: f"upload {i} ".encode() * (1000 + i) for i in range(8)}
    results: dict[int, dict[str, Any]] = {}

    async def one(i: int) -> None:
        results[i] = await _upload(served, "shared", bodies[i])

    async with anyio.create_task_group() as tg:
        for i in bodies:
            tg.start_soon(one, i)
    ids = [results[i]["snapshot"] for i in bodies]
    assert len(set(ids)) == len(bodies)  # every upload is its own snapshot
    for i, sid in enumerate(ids):
        r = await served.http.get("/files/shared", params={"snapshot": sid})
        assert r.content == bodies[i]
    hist = (await served.http.get("/files/shared/snapshots")).json()["snapshots"]
    assert sorted(s["snapshot"] for s in hist) == sorted(ids)
    latest = (await served.http.get("/files/shared")).content
    assert latest == bodies[ids.index(max(ids))]
    assert served.stats.committed == len(bodies)
    assert (await served.dataset("shared").verify()).ok


# --------------------------------------------------------------- failures
async def _disconnect_midway(served: Served, name: str, sent: int, declared: int) -> None:
    """POST ``sent`` bytes of a ``declared``-byte body, then hang up."""
    host, port = served.url.removeprefix("http://").split(":")
    aborted = served.stats.aborted
    async with await anyio.connect_tcp(host, int(port)) as conn:
        await conn.send(
            f"POST /files/{name} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
        )
        for i in range(sent // MiB):
            await conn.send(_pattern(i))
        # The server has streamed most of it into the store before we hang up.
        with anyio.fail_after(60):
            while served.stats.bytes_received < sent - MiB:
                await anyio.sleep(0.01)
    with anyio.fail_after(60):
        while served.stats.aborted == aborted:
            await anyio.sleep(0.01)


@over_stores
async def test_disconnect_midway_leaves_nothing(
    served: Served, store_spec: tuple[str, Any], request: pytest.FixtureRequest
) -> None:
    # A new name: no dataset at all afterwards.
    await _disconnect_midway(served, "gone", 20 * MiB, 100 * MiB)
    assert await _keys(served.store) == []
    with pytest.raises(aiolode.DatasetNotFoundError):
        await served.dataset("gone").latest()
    assert (await served.http.get("/files/gone")).status_code == 404
    # An existing file: its latest snapshot stays, nothing is left over.
    kept = await _upload(served, "kept", b"v1")
    before = await _keys(served.store)
    await _disconnect_midway(served, "kept", 20 * MiB, 100 * MiB)
    assert await _keys(served.store) == before
    assert (await served.dataset("kept").latest()).id == kept["snapshot"]
    report = await served.dataset("kept").verify()
    assert report.ok
    assert report.orphans == ()
    if store_spec[0] == "s3":  # and no multipart upload was left open
        admin, bucket = request.getfixturevalue("s3_admin"), store_spec[1][1]
        listing = await anyio.to_thread.run_sync(
            lambda: admin.list_multipart_uploads(Bucket=bucket)
        )
        assert listing.get("Uploads", []) == []
    assert served.stats.committed == 1


async def _download(http: httpx.AsyncClient, path: str, into: bytearray) -> None:
    async with http.stream("GET", path) as r:
        assert r.status_code == 200  # sent before any damage can be found
        async for chunk in r.aiter_bytes():
            into += chunk


async def test_damaged_blob_is_cut_short(memory: aiolode.MemoryStore) -> None:
    app = upload_server.create_app(memory)
    data = b"".join(_pattern(i) for i in range(3))
    async with (
        upload_server.open_server(app) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        await http.post("/files/d", content=data)
        snap = await aiolode.Dataset("f-d", memory).latest()
        damaged = bytearray(data)
        damaged[-1] ^= 1  # same size: only the checksum tells
        await memory.put(snap.files[0].key, bytes(damaged), mode="overwrite")
        got = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            await _download(http, "/files/d", got)
        assert len(got) < len(data)  # never the whole (damaged) body
        # A range is not checksummed (no checksum covers part of an object).
        r = await http.get("/files/d", headers={"Range": "bytes=0-9"})
        assert r.content == data[:10]


# ------------------------------------------------------------------- large
async def _body(n_mib: int, digest: Any) -> AsyncIterator[bytes]:
    for i in range(n_mib):
        chunk = _pattern(i)
        digest.update(chunk)
        yield chunk


@pytest.mark.parametrize(
    "store_spec", ["file", pytest.param("s3", marks=pytest.mark.s3)], indirect=True
)
async def test_200_mb_upload_in_bounded_memory(served: Served) -> None:
    # Warm up first (lazy imports, connection pools, the store client's first
    # requests), so that what is measured is what a 200 MiB body costs.
    await _upload(served, "warm", _body(20, hashlib.sha256()))  # type: ignore[arg-type]
    await served.http.get("/files/warm")
    # The store's own stated buffers (S3: part_size x max_concurrency for a
    # streamed put), plus a margin for the server, the client and the allocator.
    store_buffers = getattr(served.store, "part_size", 0) * getattr(
        served.store, "max_concurrency", 0
    )
    bound = store_buffers / MiB + 40
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = anyio.Event()

    async def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            await anyio.sleep(0.02)

    digest = hashlib.sha256()
    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)
        up = await _upload(served, "huge", _body(200, digest))  # type: ignore[arg-type]
        # The download streams too (verified as it ends).
        down = hashlib.sha256()
        size = 0
        async with served.http.stream("GET", "/files/huge") as r:
            assert r.headers["content-length"] == str(200 * MiB)
            async for chunk in r.aiter_bytes():
                down.update(chunk)
                size += len(chunk)
        done.set()
    assert up["size"] == size == 200 * MiB
    assert up["sha256"] == digest.hexdigest() == down.hexdigest()
    # Server and client in this process: both stream, neither holds the body.
    grew = (peak[0] - base) / MiB
    print(f"RSS grew by {grew:.1f} MiB (bound {bound:.0f} MiB)")
    assert grew < bound, f"RSS grew by {grew:.0f} MiB for a 200 MiB upload and download"
    r = await served.http.get("/files/huge", headers={"Range": "bytes=-4"})
    assert r.content == _pattern(199)[-4:]
