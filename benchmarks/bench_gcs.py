"""Which client should GCSStore use? Measure the candidates against fake-gcs-server.

Runs against fake-gcs-server (subprocess, in-memory backend, 127.0.0.1) and
prints a markdown section. Contenders, all doing the same work in the same run:

- ``raw httpx``: hand-written JSON API requests on one ``httpx.AsyncClient``
  (asyncio and trio);
- ``raw aiohttp``: the same requests on one ``aiohttp.ClientSession`` (asyncio
  only): the floor for "raw HTTP from Python" on asyncio;
- ``GCSStore``: aiolode's store (aiohttp underneath on asyncio, httpx on trio);
- ``google-cloud-storage threads``: the official client (requests) driven from
  ``anyio.to_thread.run_sync`` (asyncio and trio);
- ``gcloud-aio-storage``: aiohttp-based, **asyncio only**;
- ``obstore``: the Rust object_store GCS client, async API (asyncio only) if it
  can reach the emulator.

Workloads: 1 KiB create-only puts (``ifGenerationMatch=0``), sequential, with
the client CPU per put (``time.process_time`` of this process: every thread,
the server is another process); 1 KiB gets, sequential; 1 KiB puts 32-way; and a
32 MiB streamed put in MiB/s (resumable where the client has it). Median of
several interleaved rounds (min-max). Ratio: vs raw httpx on asyncio.

Usage: ``.venv/bin/python benchmarks/bench_gcs.py [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from aiolode import GCSStore
from aiolode.testing.gcs_server import create_bucket, run_fake_gcs_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

MiB = 1024 * 1024
CHUNK = 8 * MiB


class Ops:
    """One contender: put(key, data), get(key) and stream(key, total)."""

    put: Callable[[str, bytes], Awaitable[Any]]
    get: Callable[[str], Awaitable[Any]]
    stream: Callable[[str, int], Awaitable[Any]]


async def _mib_chunks(total: int) -> AsyncIterator[bytes]:
    block = os.urandom(MiB)
    for _ in range(total // MiB):
        yield block


# ----------------------------------------------------------------- contenders
def _raw_httpx(url: str, bucket: str, client: Any) -> Ops:
    ops = Ops()
    up = f"{url}/upload/storage/v1/b/{bucket}/o"

    async def put(key: str, data: bytes) -> Any:
        r = await client.post(
            up,
            params={"uploadType": "media", "name": key, "ifGenerationMatch": "0"},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        r.raise_for_status()

    async def get(key: str) -> Any:
        q = urllib.parse.quote(key, safe="")
        r = await client.get(f"{url}/storage/v1/b/{bucket}/o/{q}", params={"alt": "media"})
        r.raise_for_status()
        return r.content

    async def stream(key: str, total: int) -> Any:
        r = await client.post(
            up,
            params={"uploadType": "resumable", "name": key, "ifGenerationMatch": "0"},
            json={"name": key},
        )
        r.raise_for_status()
        session = r.headers["Location"]
        buf = bytearray()
        sent = 0
        async for chunk in _mib_chunks(total):
            buf += chunk
            if len(buf) == CHUNK:
                last = sent + len(buf) == total
                size = str(total) if last else "*"
                r = await client.put(
                    session,
                    content=bytes(buf),
                    headers={"Content-Range": f"bytes {sent}-{sent + len(buf) - 1}/{size}"},
                )
                if r.status_code not in (200, 201, 308):
                    r.raise_for_status()
                sent += len(buf)
                buf.clear()

    ops.put, ops.get, ops.stream = put, get, stream
    return ops


def _raw_aiohttp(url: str, bucket: str, session: Any) -> Ops:
    ops = Ops()
    up = f"{url}/upload/storage/v1/b/{bucket}/o"

    async def put(key: str, data: bytes) -> Any:
        params = {"uploadType": "media", "name": key, "ifGenerationMatch": "0"}
        async with session.post(up, params=params, data=data) as r:
            r.raise_for_status()
            await r.read()

    async def get(key: str) -> Any:
        import yarl

        q = urllib.parse.quote(key, safe="")
        target = yarl.URL(f"{url}/storage/v1/b/{bucket}/o/{q}", encoded=True)
        async with session.get(target, params={"alt": "media"}) as r:
            r.raise_for_status()
            return await r.read()

    async def stream(key: str, total: int) -> Any:
        params = {"uploadType": "resumable", "name": key, "ifGenerationMatch": "0"}
        async with session.post(up, params=params, json={"name": key}) as r:
            r.raise_for_status()
            session_url = r.headers["Location"]
        buf = bytearray()
        sent = 0
        async for chunk in _mib_chunks(total):
            buf += chunk
            if len(buf) == CHUNK:
                size = str(total) if sent + len(buf) == total else "*"
                crange = f"bytes {sent}-{sent + len(buf) - 1}/{size}"
                async with session.put(
                    session_url, data=bytes(buf), headers={"Content-Range": crange}
                ) as r:
                    if r.status not in (200, 201, 308):
                        r.raise_for_status()
                    await r.read()
                sent += len(buf)
                buf.clear()

    ops.put, ops.get, ops.stream = put, get, stream
    return ops


def _store(store: GCSStore) -> Ops:
    ops = Ops()

    async def put(key: str, data: bytes) -> Any:
        await store.put(key, data)

    async def stream(key: str, total: int) -> Any:
        await store.put(key, _mib_chunks(total))

    ops.put, ops.get, ops.stream = put, store.get, stream
    return ops


def _gcs_threads(bucket: Any, limiter: anyio.CapacityLimiter) -> Ops:
    ops = Ops()

    async def run(fn: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(fn, limiter=limiter)

    async def put(key: str, data: bytes) -> Any:
        await run(lambda: bucket.blob(key).upload_from_string(data, if_generation_match=0))

    async def get(key: str) -> Any:
        return await run(lambda: bucket.blob(key).download_as_bytes())

    async def stream(key: str, total: int) -> Any:
        # The library pulls from a file-like object in a thread: feed it from a
        # bounded memory stream filled by this task (the source is async).
        send, recv = anyio.create_memory_object_stream[bytes](2)
        portal_token = anyio.lowlevel.current_token()

        class Reader:
            def __init__(self) -> None:
                self.buf = b""
                self.done = False
                self.pos = 0

            def tell(self) -> int:
                return self.pos

            def read(self, n: int = -1) -> bytes:
                while not self.done and (n < 0 or len(self.buf) < n):
                    try:
                        self.buf += anyio.from_thread.run(recv.receive, token=portal_token)
                    except anyio.EndOfStream:
                        self.done = True
                out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
                self.pos += len(out)
                return out

        def upload() -> None:
            blob = bucket.blob(key, chunk_size=CHUNK)
            blob.upload_from_file(Reader(), size=total, if_generation_match=0)

        async def feed() -> None:
            async with send:
                async for chunk in _mib_chunks(total):
                    await send.send(chunk)

        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            await run(upload)

    ops.put, ops.get, ops.stream = put, get, stream
    return ops


def _gcloud_aio(storage: Any, bucket: str) -> Ops:
    ops = Ops()

    async def put(key: str, data: bytes) -> Any:
        await storage.upload(bucket, key, data, parameters={"ifGenerationMatch": "0"})

    async def get(key: str) -> Any:
        return await storage.download(bucket, key)

    async def stream(key: str, total: int) -> Any:
        # gcloud-aio-storage takes the whole object (bytes or a file): no
        # bounded-memory streaming from an async source.
        data = b"".join([c async for c in _mib_chunks(total)])
        await storage.upload(
            bucket, key, data, parameters={"ifGenerationMatch": "0"}, force_resumable_upload=True
        )

    ops.put, ops.get, ops.stream = put, get, stream
    return ops


def _obstore(store: Any) -> Ops:
    import obstore

    ops = Ops()

    async def put(key: str, data: bytes) -> Any:
        await obstore.put_async(store, key, data, mode="create")

    async def get(key: str) -> Any:
        r = await obstore.get_async(store, key)
        return await r.bytes_async()

    async def stream(key: str, total: int) -> Any:
        await obstore.put_async(store, key, _mib_chunks(total), mode="create", chunk_size=CHUNK)

    ops.put, ops.get, ops.stream = put, get, stream
    return ops


# ------------------------------------------------------------------- measuring
async def _measure(ops: Ops, n: int, stream_size: int, tag: str) -> dict[str, float]:
    payload = os.urandom(1024)
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        await ops.put(f"{tag}/seq/{i}", payload)
    put_s = n / (time.perf_counter() - t)
    put_cpu = (time.process_time() - cpu) / n * 1e6
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        await ops.get(f"{tag}/seq/{i}")
    get_s = n / (time.perf_counter() - t)
    get_cpu = (time.process_time() - cpu) / n * 1e6
    t = time.perf_counter()
    async with anyio.create_task_group() as tg:
        sem = anyio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await ops.put(f"{tag}/par/{i}", payload)

        for i in range(4 * n):
            tg.start_soon(one, i)
    par_s = 4 * n / (time.perf_counter() - t)
    t = time.perf_counter()
    await ops.stream(f"{tag}/stream", stream_size)
    mib_s = stream_size / MiB / (time.perf_counter() - t)
    return {
        "put": put_s,
        "put_cpu": put_cpu,
        "get": get_s,
        "get_cpu": get_cpu,
        "par": par_s,
        "stream": mib_s,
    }


async def _contender(
    name: str, url: str, bucket: str, n: int, size: int, tag: str
) -> dict[str, float]:
    """Build contender ``name`` (its own client), measure it, close it."""
    if name == "raw httpx":
        import httpx

        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        client = await anyio.to_thread.run_sync(lambda: httpx.AsyncClient(limits=limits))
        async with client:
            return await _measure(_raw_httpx(url, bucket, client), n, size, tag)
    if name == "raw aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await _measure(_raw_aiohttp(url, bucket, session), n, size, tag)
    if name == "GCSStore":
        async with GCSStore(bucket, endpoint=url, anonymous=True, max_connections=32) as store:
            return await _measure(_store(store), n, size, tag)
    if name == "google-cloud-storage threads":

        def make() -> Any:
            import requests.adapters
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            c = storage.Client(
                project="test",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": url},
            )
            adapter = requests.adapters.HTTPAdapter(pool_connections=32, pool_maxsize=32)
            c._http.mount("http://", adapter)
            return c.bucket(bucket)

        b = await anyio.to_thread.run_sync(make)
        return await _measure(_gcs_threads(b, anyio.CapacityLimiter(32)), n, size, tag)
    if name == "gcloud-aio-storage":
        from gcloud.aio.storage import Storage

        async with Storage(api_root=url) as storage:
            return await _measure(_gcloud_aio(storage, bucket), n, size, tag)
    if name == "obstore":
        from obstore.store import GCSStore as ObGCS

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(
                {
                    "gcs_base_url": url,
                    "disable_oauth": True,
                    "client_email": "",
                    "private_key": "",
                    "private_key_id": "",
                },
                f,
            )
        store = ObGCS(bucket, service_account=f.name, client_options={"allow_http": True})
        return await _measure(_obstore(store), n, size, tag)
    raise AssertionError(name)


CONTENDERS: list[tuple[str, str]] = [
    ("raw httpx", "asyncio"),
    ("raw httpx", "trio"),
    ("raw aiohttp", "asyncio"),
    ("GCSStore", "asyncio"),
    ("GCSStore", "trio"),
    ("google-cloud-storage threads", "asyncio"),
    ("google-cloud-storage threads", "trio"),
    ("gcloud-aio-storage", "asyncio"),
    ("obstore", "asyncio"),
]
COLUMNS = [
    ("put", "1 KiB put seq ops/s"),
    ("put_cpu", "client CPU us/put"),
    ("get", "1 KiB get seq ops/s"),
    ("get_cpu", "client CPU us/get"),
    ("par", "1 KiB put 32-way ops/s"),
    ("stream", "32 MiB stream MiB/s"),
]


def _delete(url: str, bucket: str, key: str) -> None:
    import urllib.error
    import urllib.request

    q = urllib.parse.quote(key, safe="")
    req = urllib.request.Request(f"{url}/storage/v1/b/{bucket}/o/{q}", method="DELETE")
    # A 404: not written (the contender failed first).
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(req, timeout=30).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, n, size = (2, 60, 16 * MiB) if args.quick else (5, 200, 32 * MiB)
    results: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in CONTENDERS}
    failures: dict[tuple[str, str], str] = {}
    with run_fake_gcs_server() as url:
        for r in range(rounds):
            for k, (name, backend) in enumerate(CONTENDERS):
                if (name, backend) in failures:
                    continue
                # A fresh bucket per run: the emulator's in-memory backend scans a
                # bucket's objects on every write, so a shared bucket would make
                # later contenders slower.
                bucket = f"bench-{r}-{k}"
                create_bucket(url, bucket)
                tag = f"r{r}/{name.replace(' ', '-')}-{backend}"
                try:
                    res = anyio.run(_contender, name, url, bucket, n, size, tag, backend=backend)
                except Exception as exc:  # a contender that cannot run here is reported
                    failures[(name, backend)] = f"{type(exc).__name__}: {str(exc)[:150]}"
                    continue
                finally:
                    _delete(url, bucket, f"{tag}/stream")  # the server keeps objects in memory
                results[(name, backend)].append(res)
    anchor = results[("raw httpx", "asyncio")]
    base = {k: statistics.median(r[k] for r in anchor) for k, _ in COLUMNS}
    print("## GCS client candidates (fake-gcs-server)\n")
    print(
        f"fake-gcs-server 1.54 (in-memory, subprocess) on 127.0.0.1; median of {rounds} "
        f"interleaved rounds (min-max); {n} sequential 1 KiB puts then gets, {4 * n} puts "
        f"32-way, one {size // MiB} MiB streamed put (8 MiB chunks). Ratio = vs raw httpx on "
        "asyncio in the same run (for CPU, lower is better).\n"
    )
    head = "| contender | backend | " + " | ".join(f"{t} | ratio" for _, t in COLUMNS) + " |"
    print(head)
    print("|---|---|" + "---|---|" * len(COLUMNS))
    for (name, backend), runs in results.items():
        if not runs:
            continue
        cells = []
        for k, _ in COLUMNS:
            vals = [r[k] for r in runs]
            med = statistics.median(vals)
            cells.append(f"{med:.0f} ({min(vals):.0f}-{max(vals):.0f}) | {med / base[k]:.2f}x")
        print(f"| {name} | {backend} | " + " | ".join(cells) + " |")
    print()
    for backend, raw in (("asyncio", "raw aiohttp"), ("trio", "raw httpx")):
        mine, theirs = results[("GCSStore", backend)], results[(raw, backend)]
        if not mine or not theirs:
            continue
        parts = []
        for k, title in COLUMNS:
            ratio = statistics.median(r[k] for r in mine) / statistics.median(r[k] for r in theirs)
            parts.append(f"{title} {ratio:.2f}x")
        print(f"- GCSStore on {backend} vs {raw} (its own HTTP library): " + ", ".join(parts))
    for (name, backend), why in failures.items():
        print(f"\n- {name} ({backend}) did not run against the emulator: {why}")


if __name__ == "__main__":
    main()
