"""Serving benchmark: ``examples/upload_server.py`` next to the raw store doing the same work.

Three measurements, each against anchors measured in the same run, on the same
store (a local directory; S3 on moto with ``--stores file,s3``):

1. **Upload MiB/s** of one streamed body (1 MiB chunks), interleaved round by
   round: the raw store's streamed ``put`` (the anchor), ``Dataset.stream_write``
   directly, ``stream_write`` plus the sha256 the server computes, and a ``POST``
   through the example server (uvicorn, in its own process, driven by httpx:
   what a client of the server sees).
2. **GET of a 1 MiB range**: latency p50/p99 of ``Range:`` requests at random
   MiB-aligned offsets of a 64 MiB file through the server, next to the raw
   store's ``get_range`` and ``Dataset.read_range`` in this process.
3. **Peak RSS of the server** (the kernel's high-water mark, ``VmHWM``) while
   10 clients upload 200 MiB each at once, after a warm-up: bounded by the
   chunks in flight, not by what is uploaded. (Local directory only: moto
   keeps what it stores in memory.)

Usage::

    .venv/bin/python benchmarks/bench_serving.py [--quick] [--stores file,s3]

``--quick`` shrinks every size (a smoke run). The figures in ``docs/serving.md``
come from a full run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx

import aiolode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "upload_server.py"
BLOCK = os.urandom(MiB)

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


# ------------------------------------------------------------------ stores
def make_store(kind: str, where: str) -> aiolode.Store:
    if kind == "file":
        return aiolode.FileStore(where)
    if kind == "s3":
        endpoint, bucket = where.split("|")
        return aiolode.S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1")
    raise SystemExit(f"unknown store kind {kind!r}")


# ------------------------------------------------------------ server child
def serve_child(kind: str, where: str) -> None:
    """Run the example app under uvicorn on a free port; print the port."""
    sys.path.insert(0, str(EXAMPLE.parent))
    import socket

    import uvicorn
    from starlette.responses import Response
    from starlette.routing import Route
    from upload_server import create_app

    async def null_upload(request: Request) -> Response:
        async for _ in request.stream():
            pass
        return Response(status_code=201)

    async def memory_range(request: Request) -> Response:
        return Response(BLOCK, status_code=206, media_type="application/octet-stream")

    async def main() -> None:
        async with make_store(kind, where) as store:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(256)
            print(sock.getsockname()[1], flush=True)
            app = create_app(store)
            # The HTTP floor: the same server and client moving the same bytes,
            # with no storage behind them.
            app.router.routes.insert(0, Route("/_floor", null_upload, methods=["POST"]))
            app.router.routes.insert(0, Route("/_floor", memory_range, methods=["GET"]))
            config = uvicorn.Config(app, log_level="warning", lifespan="off")
            await uvicorn.Server(config).serve([sock])

    anyio.run(main)


class Server:
    """The example server in a child process."""

    def __init__(self, kind: str, where: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, where],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        port = self.proc.stdout.readline().strip()
        if not port.isdigit():
            self.proc.kill()
            raise SystemExit("the server did not start")
        self.url = f"http://127.0.0.1:{port}"

    def hwm_mib(self) -> float:
        """The server's peak RSS so far (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ------------------------------------------------------------------ helpers
async def chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // MiB):
        yield BLOCK


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(fn: Any) -> float:
    t = time.perf_counter()
    await fn()
    return time.perf_counter() - t


# ------------------------------------------------------------------ uploads
async def bench_uploads(
    store: aiolode.Store, http: httpx.AsyncClient, size: int, rounds: int
) -> dict[str, list[float]]:
    direct = aiolode.Dataset("bench-direct", store, compressor=None)
    hashed = aiolode.Dataset("bench-hashed", store, compressor=None)
    results: dict[str, list[float]] = {
        "raw store put (stream)": [],
        "Dataset.stream_write": [],
        "stream_write + sha256": [],
        "POST via example server": [],
        "HTTP floor: POST, body discarded": [],
    }

    # What each timed operation stored, deleted after the timing (a disk or
    # moto's memory would fill up otherwise).
    garbage: list[str] = []
    await store.put("raw/keep", b"")  # the raw puts' directory stays in place

    async def raw() -> None:
        key = f"raw/{random.getrandbits(64):x}"
        await store.put(key, chunks(size))
        garbage.append(key)

    async def via_dataset(ds: aiolode.Dataset, digest: bool) -> None:
        h = hashlib.sha256()
        async with ds.stream_write() as w:
            async for c in chunks(size):
                if digest:
                    await anyio.to_thread.run_sync(h.update, c)
                await w.write(c)
            if digest:
                w.metadata["sha256"] = h.hexdigest()
        garbage.append(w.snapshot.files[0].key)

    async def via_server() -> None:
        r = await http.post("/files/bench-upload", content=chunks(size))
        assert r.status_code == 201, r.text
        garbage.append(r.json()["snapshot"])

    async def floor() -> None:
        r = await http.post("/_floor", content=chunks(size))
        assert r.status_code == 201

    ops = [
        raw,
        lambda: via_dataset(direct, False),
        lambda: via_dataset(hashed, True),
        via_server,
        floor,
    ]
    served = aiolode.Dataset("f-bench-upload", store)
    for round_no in range(rounds + 1):
        for name, op in zip(results, ops, strict=True):
            seconds = await timed(op)
            if round_no:  # round 0 warms up
                results[name].append(size / MiB / seconds)
            for key in garbage:
                if "/" not in key:  # a snapshot id of the server's uploads
                    key = (await served.snapshot(key)).files[0].key
                await store.delete(key)
            garbage.clear()
    return results


# ------------------------------------------------------------------- ranges
async def bench_ranges(
    store: aiolode.Store, http: httpx.AsyncClient, requests: int
) -> dict[str, list[float]]:
    size = 64 * MiB
    r = await http.post("/files/bench-ranged", content=chunks(size))
    assert r.status_code == 201, r.text
    ds = aiolode.Dataset("f-bench-ranged", store)
    snap = await ds.latest()
    key = snap.files[0].key
    lat: dict[str, list[float]] = {
        "raw store get_range": [],
        "Dataset.read_range": [],
        "GET Range: via example server": [],
        "HTTP floor: GET of 1 MiB from memory": [],
    }
    rng = random.Random(7)
    for i in range(requests + 5):
        off = rng.randrange(64) * MiB

        async def raw(off: int = off) -> None:
            assert len(await store.get_range(key, off, MiB)) == MiB

        async def dsr(off: int = off) -> None:
            assert len(await ds.read_range(snap, off, MiB)) == MiB

        async def srv(off: int = off) -> None:
            resp = await http.get(
                "/files/bench-ranged", headers={"Range": f"bytes={off}-{off + MiB - 1}"}
            )
            assert resp.status_code == 206
            assert len(resp.content) == MiB

        async def floor() -> None:
            resp = await http.get("/_floor")
            assert len(resp.content) == MiB

        for name, op in zip(lat, (raw, dsr, srv, floor), strict=True):
            t = await timed(op)
            if i >= 5:  # the first few warm caches and connections
                lat[name].append(t * 1000)
    return lat


# ---------------------------------------------------------------------- RSS
async def bench_rss(root: str, uploads: int, size: int) -> dict[str, float]:
    server = Server("file", root)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as http:
            # Warm-up: one upload of each file name's size class, one download.
            r = await http.post("/files/warm", content=chunks(16 * MiB))
            assert r.status_code == 201
            await http.get("/files/warm")
            base_rss, base_hwm = server.rss_mib(), server.hwm_mib()
            t = time.perf_counter()

            async def one(i: int) -> None:
                resp = await http.post(f"/files/up-{i}", content=chunks(size))
                assert resp.status_code == 201, resp.text
                assert resp.json()["size"] == size

            async with anyio.create_task_group() as tg:
                for i in range(uploads):
                    tg.start_soon(one, i)
            dt = time.perf_counter() - t
            return {
                "base_rss": base_rss,
                "base_hwm": base_hwm,
                "peak": server.hwm_mib(),
                "seconds": dt,
                "mib_s": uploads * size / MiB / dt,
            }
    finally:
        server.close()


# --------------------------------------------------------------------- main
def fmt_row(name: str, values: list[float], anchor: list[float], unit: str = "MiB/s") -> str:
    med, lo, hi = statistics.median(values), min(values), max(values)
    ratio = med / statistics.median(anchor)
    return f"| {name} | {med:,.0f} {unit} ({lo:,.0f}-{hi:,.0f}) | {ratio:.2f} |"


async def main_async(args: argparse.Namespace) -> None:
    quick = args.quick
    size = (32 if quick else 256) * MiB
    rounds = 2 if quick else 5
    requests = 40 if quick else 300
    out = ["## Serving (`benchmarks/bench_serving.py`)", ""]
    out.append(
        f"Upload body {size // MiB} MiB in 1 MiB chunks, {rounds} interleaved rounds, median "
        "(min-max); ratio = throughput / raw store streamed put. Range: "
        f"{requests} sequential 1 MiB `Range:` requests at random offsets of a 64 MiB file; "
        "ratio = latency / raw `get_range`. The server runs in its own process "
        "(uvicorn, asyncio); the anchors and the client in this one."
    )
    with ExitStack() as sync_stack:
        for kind in args.stores.split(","):
            if kind == "file":
                where = sync_stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="bench-serving-")
                )
                kind_size = size
            else:
                from aiolode.testing.moto_server import run_moto_server

                endpoint = sync_stack.enter_context(run_moto_server())
                bucket = f"bench-serving-{os.getpid()}"
                import boto3

                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                    Bucket=bucket
                )
                where = f"{endpoint}|{bucket}"
                kind_size = min(size, 64 * MiB)  # moto keeps objects in memory
            server = Server(kind, where)
            try:
                async with AsyncExitStack() as stack:
                    store = await stack.enter_async_context(make_store(kind, where))
                    http = await stack.enter_async_context(
                        httpx.AsyncClient(base_url=server.url, timeout=600)
                    )
                    up = await bench_uploads(store, http, kind_size, rounds)
                    lat = await bench_ranges(store, http, requests)
            finally:
                server.close()
            anchor = up["raw store put (stream)"]
            out += [
                "",
                f"### {kind}: upload of {kind_size // MiB} MiB",
                "",
                "| path | throughput | ratio vs raw put |",
                "|---|---|---|",
            ]
            out += [fmt_row(name, v, anchor) for name, v in up.items()]
            raw = lat["raw store get_range"]
            out += [
                "",
                f"### {kind}: 1 MiB range read",
                "",
                "| path | p50 | p99 | p50 ratio vs raw |",
                "|---|---|---|---|",
            ]
            for name, v in lat.items():
                out.append(
                    f"| {name} | {pct(v, 0.5):.2f} ms | {pct(v, 0.99):.2f} ms | "
                    f"{pct(v, 0.5) / pct(raw, 0.5):.2f} |"
                )
        if "file" in args.stores.split(","):
            n, each = 10, (32 if quick else 200) * MiB
            with tempfile.TemporaryDirectory(prefix="bench-serving-rss-") as root:
                rss = await bench_rss(root, n, each)
            out += [
                "",
                f"### file: server peak RSS, {n} concurrent uploads of {each // MiB} MiB",
                "",
                f"- after warm-up: RSS {rss['base_rss']:.0f} MiB (high-water {rss['base_hwm']:.0f} MiB)",
                f"- peak during the uploads: {rss['peak']:.0f} MiB "
                f"(+{rss['peak'] - rss['base_rss']:.0f} MiB for {n * each // MiB} MiB uploaded, "
                f"{(rss['peak'] - rss['base_rss']) / n:.1f} MiB per upload in flight)",
                f"- aggregate throughput {rss['mib_s']:.0f} MiB/s ({rss['seconds']:.1f} s)",
                "- bound, per upload in flight and whatever the body size: the 1 MiB being "
                "regrouped and its copy, 2 chunks queued to the hashing task and 1 in its "
                "hands, 4 queued by `stream_write` to the store and 1 being written: about "
                "10 MiB",
            ]
    print("\n".join(out))


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve":
        serve_child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--stores", default="file")
    args = ap.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
