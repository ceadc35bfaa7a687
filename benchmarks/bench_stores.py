"""Store benchmark: every store next to the raw client doing the same work.

For each store (memory, file, s3 on moto, s3 on SeaweedFS) and each workload - 1 KiB overwrite put,
1 KiB create-only put, 1 KiB compare-and-swap (IfMatch) put, 1 KiB get, each
sequential and 32-way concurrent, and a 64 MiB streamed put - the store and its
anchors run interleaved in the same process, on the same data, round after
round. Each figure is the median over the rounds with the spread (min-max).

Anchors ("raw"):

- memory: a dict under a lock with one checkpoint per operation;
- file: the same syscalls by hand in anyio worker threads (same thread limit):
  temp file + write + fsync + ``link`` (create) / ``rename`` (overwrite, and
  CAS under ``flock`` + ``stat``), shown **without and with** the directory
  fsync FileStore does, so the cost of each part is visible. Both FileStore
  temp-file strategies are measured: ``O_TMPFILE`` + ``linkat`` (the default on
  Linux) and a named temp file (the fallback);
- s3: raw aioboto3 (asyncio only: aiohttp does not run on trio) and raw boto3
  in anyio threads against the same moto server, with the same conditional
  headers, part size and concurrency;
- seaweed: the same on a SeaweedFS server (``weed mini``, a real S3
  implementation with nothing serialised in front of it), plus raw obstore
  (its async API on asyncio, its sync API in threads on trio).

Ratios are aiolode throughput / anchor throughput (1.00 = parity); "cost x" is
the inverse (aiolode time / anchor time).

Usage::

    .venv/bin/python benchmarks/bench_stores.py [--quick] [--backend trio] [--stores file,s3,seaweed]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
from _raw_s3 import mib_chunks, raw_multipart

from aiolode import FileStore, IfMatch, MemoryStore, S3Store, Store
from aiolode.store._posix import PosixTree

KiB = 1024
MiB = 1024 * KiB
PART = 8 * MiB
CONC = 8
WIDTH = 32
THREADS = 16  # FileStore's default max_threads; the raw file anchor gets the same

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
_S3_CFG = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
}

Op = Callable[[int], Awaitable[Any]]


class Contender:
    """One implementation of every workload; ``setup`` prepares a round."""

    name: str

    async def put(self, key: str, data: bytes) -> Any:  # overwrite
        raise NotImplementedError

    async def create(self, key: str, data: bytes) -> Any:
        raise NotImplementedError

    async def cas(self, key: str, data: bytes, etag: str) -> str:
        raise NotImplementedError

    async def get(self, key: str) -> bytes:
        raise NotImplementedError

    async def stream(self, key: str, total: int) -> Any:
        raise NotImplementedError

    async def etag(self, key: str) -> str:
        raise NotImplementedError


# ------------------------------------------------------------------- aiolode
class StoreContender(Contender):
    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self.store = store

    async def put(self, key: str, data: bytes) -> Any:
        return await self.store.put(key, data, mode="overwrite")

    async def create(self, key: str, data: bytes) -> Any:
        return await self.store.put(key, data)

    async def cas(self, key: str, data: bytes, etag: str) -> str:
        return (await self.store.put(key, data, mode=IfMatch(etag))).etag

    async def get(self, key: str) -> bytes:
        return await self.store.get(key)

    async def stream(self, key: str, total: int) -> Any:
        return await self.store.put(key, mib_chunks(total))

    async def etag(self, key: str) -> str:
        return (await self.store.head(key)).etag


# -------------------------------------------------------------- raw memory
class RawMemory(Contender):
    name = "raw dict + lock + checkpoint"

    def __init__(self) -> None:
        self.d: dict[str, tuple[bytes, int]] = {}
        self.lock = threading.Lock()
        self.n = 0

    async def put(self, key: str, data: bytes) -> Any:
        await anyio.lowlevel.checkpoint()
        with self.lock:
            self.n += 1
            self.d[key] = (bytes(data), self.n)

    async def create(self, key: str, data: bytes) -> Any:
        await anyio.lowlevel.checkpoint()
        with self.lock:
            if key in self.d:
                raise FileExistsError(key)
            self.n += 1
            self.d[key] = (bytes(data), self.n)

    async def cas(self, key: str, data: bytes, etag: str) -> str:
        await anyio.lowlevel.checkpoint()
        with self.lock:
            if str(self.d[key][1]) != etag:
                raise RuntimeError("etag")
            self.n += 1
            self.d[key] = (bytes(data), self.n)
            return str(self.n)

    async def get(self, key: str) -> bytes:
        await anyio.lowlevel.checkpoint()
        return self.d[key][0]

    async def stream(self, key: str, total: int) -> Any:
        parts = [c async for c in mib_chunks(total)]
        await self.put(key, b"".join(parts))

    async def etag(self, key: str) -> str:
        return str(self.d[key][1])


# ---------------------------------------------------------------- raw file
class RawFile(Contender):
    """The syscalls FileStore makes, by hand, in threads (named temp files)."""

    def __init__(self, root: str, *, dir_fsync: bool) -> None:
        self.root = root
        self.dir_fsync = dir_fsync
        self.name = "raw tmp+fsync+link/rename" + (" + dir fsync" if dir_fsync else "")
        self.limiter = anyio.CapacityLimiter(THREADS)
        self.locks = os.path.join(root, "_locks")
        os.makedirs(self.locks, exist_ok=True)

    def _path(self, key: str) -> tuple[str, str]:
        d, _, n = os.path.join(self.root, key).rpartition("/")
        return d, n

    def _write_tmp(self, d: str, data: bytes) -> str:
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, ".tmp-" + secrets.token_hex(8))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def _fsync_dir(self, d: str) -> None:
        if self.dir_fsync:
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _create(self, key: str, data: bytes) -> None:
        d, n = self._path(key)
        tmp = self._write_tmp(d, data)
        try:
            os.link(tmp, os.path.join(d, n))
        finally:
            os.unlink(tmp)
        self._fsync_dir(d)

    def _put(self, key: str, data: bytes) -> None:
        d, n = self._path(key)
        os.rename(self._write_tmp(d, data), os.path.join(d, n))
        self._fsync_dir(d)

    def _cas(self, key: str, data: bytes, etag: str) -> str:
        d, n = self._path(key)
        tmp = self._write_tmp(d, data)
        path = os.path.join(d, n)
        lock = os.open(
            os.path.join(self.locks, str(zlib.crc32(key.encode()) % 64)), os.O_RDWR | os.O_CREAT
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            st = os.stat(path)
            if f"{st.st_ino}-{st.st_mtime_ns}" != etag:
                raise RuntimeError("etag")
            os.rename(tmp, path)
            st = os.stat(path)
        finally:
            os.close(lock)
        self._fsync_dir(d)
        return f"{st.st_ino}-{st.st_mtime_ns}"

    def _get(self, key: str) -> bytes:
        with open(os.path.join(self.root, key), "rb") as f:
            return f.read()

    def _etag(self, key: str) -> str:
        st = os.stat(os.path.join(self.root, key))
        return f"{st.st_ino}-{st.st_mtime_ns}"

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def put(self, key: str, data: bytes) -> Any:
        await self._run(self._put, key, data)

    async def create(self, key: str, data: bytes) -> Any:
        await self._run(self._create, key, data)

    async def cas(self, key: str, data: bytes, etag: str) -> str:
        return str(await self._run(self._cas, key, data, etag))

    async def get(self, key: str) -> bytes:
        return bytes(await self._run(self._get, key))

    async def etag(self, key: str) -> str:
        return str(await self._run(self._etag, key))

    async def stream(self, key: str, total: int) -> Any:
        d, n = self._path(key)
        await self._run(functools.partial(os.makedirs, d, exist_ok=True))
        tmp = os.path.join(d, ".tmp-" + secrets.token_hex(8))
        fd = await self._run(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            async for chunk in mib_chunks(total):
                await self._run(os.write, fd, chunk)
            await self._run(os.fsync, fd)
        finally:
            await self._run(os.close, fd)
        try:
            await self._run(os.link, tmp, os.path.join(d, n))
        finally:
            await self._run(os.unlink, tmp)
        await self._run(self._fsync_dir, d)


# ------------------------------------------------------------------ raw s3
class RawS3(Contender):
    """aioboto3 awaited directly (asyncio), or boto3 in anyio threads (trio)."""

    def __init__(self, client: Any, bucket: str, *, threaded: bool) -> None:
        self.c = client
        self.bucket = bucket
        self.threaded = threaded
        self.name = "raw boto3 in threads" if threaded else "raw aioboto3"
        self.limiter = anyio.CapacityLimiter(max(WIDTH, 10))

    async def call(self, op: str, **kw: Any) -> Any:
        if self.threaded:
            fn = functools.partial(getattr(self.c, op), **kw)
            return await anyio.to_thread.run_sync(fn, limiter=self.limiter)
        return await getattr(self.c, op)(**kw)

    async def put(self, key: str, data: bytes) -> Any:
        return await self.call("put_object", Bucket=self.bucket, Key=key, Body=data)

    async def create(self, key: str, data: bytes) -> Any:
        return await self.call(
            "put_object", Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*"
        )

    async def cas(self, key: str, data: bytes, etag: str) -> str:
        r = await self.call("put_object", Bucket=self.bucket, Key=key, Body=data, IfMatch=etag)
        return str(r["ETag"])

    async def get(self, key: str) -> bytes:
        r = await self.call("get_object", Bucket=self.bucket, Key=key)
        body = r["Body"]
        if self.threaded:
            return bytes(await anyio.to_thread.run_sync(body.read, limiter=self.limiter))
        async with body as b:
            return bytes(await b.read())

    async def etag(self, key: str) -> str:
        r = await self.call("head_object", Bucket=self.bucket, Key=key)
        return str(r["ETag"])

    async def stream(self, key: str, total: int) -> Any:
        # Same shape as S3Store's streamed put: part_size parts, CONC in flight,
        # completed create-only (If-None-Match: *).
        await raw_multipart(
            self.call,
            self.bucket,
            key,
            mib_chunks(total),
            part_size=PART,
            concurrency=CONC,
            IfNoneMatch="*",
        )


class RawObstore(Contender):
    """obstore's Rust S3 client: async API on asyncio, its sync API in threads on trio.

    Its streamed put is a plain multipart upload: obstore cannot complete one
    create-only (with ``mode="create"`` it buffers the whole stream into one PUT).
    """

    def __init__(self, endpoint: str, bucket: str, *, threaded: bool) -> None:
        from obstore.store import S3Store as ObS3

        self.store = ObS3(
            bucket,
            endpoint=endpoint,
            access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )
        self.threaded = threaded
        self.name = "raw obstore in threads" if threaded else "raw obstore"
        self.limiter = anyio.CapacityLimiter(max(WIDTH, 10))

    async def _put(self, key: str, data: Any, **kw: Any) -> Any:
        import obstore

        if self.threaded:
            fn = functools.partial(obstore.put, self.store, key, data, **kw)
            return await anyio.to_thread.run_sync(fn, limiter=self.limiter)
        return await obstore.put_async(self.store, key, data, **kw)

    async def put(self, key: str, data: bytes) -> Any:
        return await self._put(key, data)

    async def create(self, key: str, data: bytes) -> Any:
        return await self._put(key, data, mode="create")

    async def cas(self, key: str, data: bytes, etag: str) -> str:
        return str((await self._put(key, data, mode={"e_tag": etag}))["e_tag"])

    async def get(self, key: str) -> bytes:
        import obstore

        if self.threaded:

            def get() -> bytes:
                return bytes(obstore.get(self.store, key).bytes())

            return await anyio.to_thread.run_sync(get, limiter=self.limiter)
        return bytes(await (await obstore.get_async(self.store, key)).bytes_async())

    async def etag(self, key: str) -> str:
        import obstore

        if self.threaded:
            meta = await anyio.to_thread.run_sync(obstore.head, self.store, key)
        else:
            meta = await obstore.head_async(self.store, key)
        return str(meta["e_tag"])

    async def stream(self, key: str, total: int) -> Any:
        if self.threaded:
            block = os.urandom(MiB)
            chunks: Any = (block for _ in range(total // MiB))
        else:
            chunks = mib_chunks(total)
        return await self._put(key, chunks, chunk_size=PART, max_concurrency=CONC)


# ------------------------------------------------------------------ harness
async def _drive(op: Op, ops: range, width: int) -> float:
    """Run ``op(i)`` for ``i`` in ``ops`` with ``width`` workers; return seconds."""
    t = time.perf_counter()
    if width == 1:
        for i in ops:
            await op(i)
    else:
        async with anyio.create_task_group() as tg:
            for w in range(width):

                async def worker(w: int = w) -> None:
                    for i in ops[w::width]:
                        await op(i)

                tg.start_soon(worker)
    return time.perf_counter() - t


async def prepare(c: Contender, workload: str, width: int, tag: str) -> Op:
    """Set up one round of one workload on one contender; return the operation."""
    payload = os.urandom(KiB)
    base = f"bench/{tag}/{workload}-{width}"
    if workload == "put":
        return lambda i: c.put(f"{base}/{i % width}", payload)
    if workload == "create":
        return lambda i: c.create(f"{base}/{i}", payload)
    if workload == "get":
        for w in range(width):
            await c.put(f"{base}/{w}", payload)
        return lambda i: c.get(f"{base}/{i % width}")
    if workload == "cas":
        # One key per worker: this measures the CAS path, not contention.
        etags: dict[int, str] = {}
        for w in range(width):
            await c.put(f"{base}/{w}", payload)
            etags[w] = await c.etag(f"{base}/{w}")

        async def cas(i: int) -> None:
            w = i % width
            etags[w] = await c.cas(f"{base}/{w}", payload, etags[w])

        return cas
    raise AssertionError(workload)


async def measure_round(
    contenders: list[Contender], workload: str, width: int, n: int, slices: int, tag: str
) -> dict[str, float]:
    """One round: every contender runs ``n`` operations, in alternating slices.

    Alternating small slices (rather than one contender after the other) spreads
    the noise of a shared machine evenly over the contenders.
    """
    if workload == "stream":
        out = {}
        for c in contenders:
            t = time.perf_counter()
            await c.stream(f"bench/{tag}/{id(c)}/big", n)
            out[c.name] = n / MiB / (time.perf_counter() - t)
        return out
    ops = {c.name: await prepare(c, workload, width, f"{tag}/{id(c)}") for c in contenders}
    spent = dict.fromkeys(ops, 0.0)
    step = -(-n // slices)
    for k, start in enumerate(range(0, n, step)):
        part = range(start, min(n, start + step))
        order = contenders[k % len(contenders) :] + contenders[: k % len(contenders)]
        for c in order:
            spent[c.name] += await _drive(ops[c.name], part, width)
    return {name: n / secs for name, secs in spent.items()}


WORKLOADS = [
    ("put", "1 KiB put (overwrite)"),
    ("create", "1 KiB create-only put"),
    ("cas", "1 KiB CAS put (IfMatch)"),
    ("get", "1 KiB get"),
]


def _fmt(xs: list[float]) -> str:
    med = statistics.median(xs)
    digits = 0 if med >= 100 else 1
    return f"{med:,.{digits}f} ({min(xs):,.{digits}f}-{max(xs):,.{digits}f})"


async def bench_group(
    title: str,
    contenders: list[Contender],
    rounds: int,
    n_seq: int,
    n_par: int,
    stream_size: int,
    lines: list[str],
    slices: int = 6,
) -> dict[tuple[str, str, int], float]:
    """Run every workload for the contenders, interleaved; append a markdown table."""
    cells: list[tuple[str, int]] = [(w, 1) for w, _ in WORKLOADS] + [
        (w, WIDTH) for w, _ in WORKLOADS
    ]
    cells.append(("stream", 1))
    results: dict[tuple[str, str, int], list[float]] = {}
    for r in range(rounds):
        for workload, width in cells:
            n = stream_size if workload == "stream" else (n_seq if width == 1 else n_par)
            # Rotate the order each round so no contender always runs first.
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            got = await measure_round(order, workload, width, n, slices, f"r{r}")
            for name, v in got.items():
                results.setdefault((name, workload, width), []).append(v)
    main = contenders[0]
    anchors = [c for c in contenders[1:] if not isinstance(c, StoreContender)]
    others = [c for c in contenders[1:] if isinstance(c, StoreContender)]
    labels = dict(WORKLOADS) | {"stream": f"{stream_size // MiB} MiB streamed put (MiB/s)"}
    lines.append(f"### {title}")
    lines.append("")
    head = f"| workload | {main.name} |"
    sep = "|---|---|"
    for o in others:
        head += f" {o.name} |"
        sep += "---|"
    for a in anchors:
        head += f" {a.name} | ratio | cost x |"
        sep += "---|---|---|"
    lines.append(head)
    lines.append(sep)
    medians: dict[tuple[str, str, int], float] = {}
    for workload, width in cells:
        label = labels[workload] + ("" if workload == "stream" else f", {width}-way")
        mine = results[(main.name, workload, width)]
        medians[(main.name, workload, width)] = statistics.median(mine)
        row = f"| {label} | {_fmt(mine)} |"
        for o in others:
            xs = results[(o.name, workload, width)]
            medians[(o.name, workload, width)] = statistics.median(xs)
            row += f" {_fmt(xs)} |"
        for a in anchors:
            xs = results[(a.name, workload, width)]
            medians[(a.name, workload, width)] = statistics.median(xs)
            ratio = statistics.median(mine) / statistics.median(xs)
            row += f" {_fmt(xs)} | {ratio:.2f} | {1 / ratio:.2f} |"
        lines.append(row)
    lines.append("")
    return medians


def _tree(store: FileStore) -> PosixTree:
    """The sync core of an opened FileStore."""
    assert store._tree is not None
    return store._tree


def syscall_level(root: str, n: int, rounds: int) -> list[str]:
    """FileStore's create path without the event loop or threads, next to raw.

    The same 1 KiB create-only put called directly in this thread, alternating
    small batches: what the durable protocol itself costs, with the thread-hop
    and scheduling noise of a loaded machine taken out.
    """
    data = os.urandom(KiB)
    stores = {}
    for name, tmpfile in (("FileStore (O_TMPFILE)", True), ("FileStore (named temp)", False)):
        d = os.path.join(root, f"sys-{tmpfile}")
        os.mkdir(d)
        # FileStore's sync core, called without the event loop or a thread hop.
        stores[name] = PosixTree(os.path.realpath(d), use_tmpfile=tmpfile)
    rawfiles = {
        "raw tmp+fsync+link": RawFile(os.path.join(root, "sys-raw"), dir_fsync=False),
        "raw tmp+fsync+link + dir fsync": RawFile(os.path.join(root, "sys-rawd"), dir_fsync=True),
    }
    names = [*stores, *rawfiles]
    per_round: dict[str, list[float]] = {k: [] for k in names}
    batch = 10
    for r in range(rounds):
        spent = dict.fromkeys(names, 0.0)
        for b in range(0, n, batch):
            k = b // batch
            for name in names[k % len(names) :] + names[: k % len(names)]:
                t = time.perf_counter()
                for i in range(b, min(n, b + batch)):
                    key = f"sys/r{r}/{i}"
                    if name in stores:
                        stores[name].put_bytes(key, data, "create")
                    else:
                        rawfiles[name]._create(key, data)
                spent[name] += time.perf_counter() - t
        for name in names:
            per_round[name].append(n / spent[name])
    out = [
        "### FileStore create-only, syscall level (no event loop, one thread)",
        "",
        f"{n} 1 KiB create-only puts per round, {rounds} rounds, alternating batches of {batch}; "
        "ops/s, median (min-max); cost x = anchor throughput / this row's throughput.",
        "",
        "| path | ops/s | cost x vs raw tmp+fsync+link | cost x vs raw + dir fsync |",
        "|---|---|---|---|",
    ]
    raw = statistics.median(per_round["raw tmp+fsync+link"])
    rawd = statistics.median(per_round["raw tmp+fsync+link + dir fsync"])
    for name in names:
        med = statistics.median(per_round[name])
        out.append(f"| {name} | {_fmt(per_round[name])} | {raw / med:.2f} | {rawd / med:.2f} |")
    out.append("")
    return out


@contextlib.contextmanager
def _s3_server(kind: str) -> Iterator[str]:
    if kind == "s3":
        from aiolode.testing.moto_server import run_moto_server

        with run_moto_server() as endpoint:
            yield endpoint
    else:
        from aiolode.testing.seaweed_server import run_seaweed_server

        with run_seaweed_server(bucket="bench-stores") as endpoint:
            yield endpoint


async def bench_s3_server(
    kind: str,
    backend: str,
    rounds: int,
    n_seq: int,
    n_par: int,
    stream_size: int,
    lines: list[str],
    summary: list[str],
) -> None:
    """S3Store and its raw anchors on moto (``s3``) or SeaweedFS (``seaweed``)."""
    import boto3
    from botocore.config import Config

    with _s3_server(kind) as endpoint:
        admin = boto3.client("s3", endpoint_url=endpoint, config=Config(**_S3_CFG))
        bucket = "bench-stores"
        if kind == "s3":
            admin.create_bucket(Bucket=bucket)
        async with AsyncExitStack() as stack:
            anchors: list[Contender] = []
            if backend == "asyncio":
                import aioboto3
                from aiobotocore.config import AioConfig

                client = await stack.enter_async_context(
                    aioboto3.Session().client(
                        "s3",
                        endpoint_url=endpoint,
                        config=AioConfig(max_pool_connections=max(WIDTH, 10), **_S3_CFG),
                    )
                )
                anchors.append(RawS3(client, bucket, threaded=False))
            threaded = boto3.client(
                "s3",
                endpoint_url=endpoint,
                config=Config(max_pool_connections=max(WIDTH, 10), **_S3_CFG),
            )
            anchors.append(RawS3(threaded, bucket, threaded=True))
            if kind == "seaweed":
                anchors.append(RawObstore(endpoint, bucket, threaded=backend != "asyncio"))
            s3 = await stack.enter_async_context(
                S3Store(
                    bucket, "store", endpoint_url=endpoint, part_size=PART, max_concurrency=CONC
                )
            )
            server = (
                "moto server, serialised"
                if kind == "s3"
                else "SeaweedFS `weed mini`, a real S3 server, nothing serialised"
            )
            med = await bench_group(
                f"S3Store ({server}; {PART // MiB} MiB parts, {CONC} in flight)",
                [StoreContender("S3Store", s3), *anchors],
                rounds,
                max(n_seq // 2, 20),
                max(n_par // 2, 64),
                stream_size,
                lines,
            )
        raw = anchors[0]
        where = "moto" if kind == "s3" else "SeaweedFS"
        seq = med[("S3Store", "put", 1)] / med[(raw.name, "put", 1)]
        cseq = med[("S3Store", "create", 1)] / med[(raw.name, "create", 1)]
        st = med[("S3Store", "stream", 1)] / med[(raw.name, "stream", 1)]
        summary.append(
            f"- S3Store on {where}, 1 KiB sequential put: {seq:.2f}x {raw.name} "
            f"(create-only {cseq:.2f}x); target >= 0.9"
        )
        summary.append(
            f"- S3Store on {where}, {stream_size // MiB} MiB streamed put: {st:.2f}x {raw.name} "
            "multipart (same part size and concurrency); target >= 0.9"
        )


async def main_async(args: argparse.Namespace) -> None:
    rounds = args.rounds or (3 if args.quick else 5)
    n_seq = 60 if args.quick else 200
    n_par = 256 if args.quick else 640
    stream_size = (16 if args.quick else 64) * MiB
    backend = args.backend
    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_stores.py{' --quick' if args.quick else ''}"
        f"{' --backend trio' if backend == 'trio' else ''}`. Backend **{backend}**; "
        f"{rounds} interleaved rounds, median (min-max); ops/s unless noted; "
        f"{n_seq} sequential / {n_par} {WIDTH}-way operations per round. "
        "ratio = aiolode / anchor throughput; cost x = its inverse.",
        "",
    ]
    stores = args.stores.split(",")
    summary: list[str] = []

    if "memory" in stores:
        async with MemoryStore() as m:
            await bench_group(
                "MemoryStore",
                [StoreContender("MemoryStore", m), RawMemory()],
                rounds,
                n_seq,
                n_par,
                stream_size,
                lines,
            )

    if "file" in stores:
        with tempfile.TemporaryDirectory(dir=args.dir) as root:
            for sub in ("fs", "fsnamed", "raw", "rawdir"):
                os.mkdir(os.path.join(root, sub))
            async with (
                FileStore(os.path.join(root, "fs")) as fs,
                FileStore(os.path.join(root, "fsnamed")) as fsn,
            ):
                _tree(fsn).use_tmpfile = False
                med = await bench_group(
                    f"FileStore (durable: file and directory fsync; {sys.platform}, "
                    f"O_TMPFILE {'on' if _tree(fs).use_tmpfile else 'unavailable'})",
                    [
                        StoreContender("FileStore (O_TMPFILE)", fs),
                        StoreContender("FileStore (named temp)", fsn),
                        RawFile(os.path.join(root, "raw"), dir_fsync=False),
                        RawFile(os.path.join(root, "rawdir"), dir_fsync=True),
                    ],
                    rounds,
                    n_seq,
                    n_par,
                    stream_size,
                    lines,
                )
            lines += syscall_level(root, n_seq, rounds)
            for width in (1, WIDTH):
                mine = med[("FileStore (O_TMPFILE)", "create", width)]
                named = med[("FileStore (named temp)", "create", width)]
                raw = med[("raw tmp+fsync+link/rename", "create", width)]
                rawd = med[("raw tmp+fsync+link/rename + dir fsync", "create", width)]
                summary.append(
                    f"- FileStore durable create-only, {width}-way: cost x {raw / mine:.2f} vs raw "
                    f"tmp+fsync+link, x {rawd / mine:.2f} vs raw tmp+fsync+link+dir fsync "
                    f"(named-temp fallback: x {raw / named:.2f} / x {rawd / named:.2f}); target <= 1.3"
                )

    for kind in ("s3", "seaweed"):
        if kind in stores:
            await bench_s3_server(kind, backend, rounds, n_seq, n_par, stream_size, lines, summary)

    out = ["## Stores", "", *lines]
    if summary:
        out += ["#### Done-when figures", "", *summary, ""]
    print("\n".join(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 rounds")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    ap.add_argument("--stores", default="memory,file,s3,seaweed")
    ap.add_argument("--dir", default=None, help="where the file stores live (default: $TMPDIR)")
    args = ap.parse_args()
    anyio.run(main_async, args, backend=args.backend)


if __name__ == "__main__":
    main()
