"""How should S3Store reach S3 on asyncio and trio? Measure the candidates.

Runs against the serialising moto server and against SeaweedFS (``weed mini``, a
real S3 server), each in a subprocess on 127.0.0.1, and prints a markdown
section per server. Contenders, all doing the same work in the same run:

- ``raw aioboto3 (asyncio)``: aioboto3 client awaited directly, the anchor;
- ``raw boto3 threads (asyncio)`` / ``(trio)``: a botocore client driven through
  ``anyio.to_thread.run_sync`` with a CapacityLimiter;
- ``S3Store threads (asyncio)`` / ``(trio)``: the store's default transport;
- ``S3Store + aioboto3 client (asyncio)``: the store with a caller's aioboto3 client.

Workloads: 1 KiB put ops/s, sequential and 32-way; a streamed 64 MiB put (8 MiB
parts, 8 in flight) in MiB/s. Median of several interleaved rounds, with spread.

Usage: ``.venv/bin/python benchmarks/bench_s3_transport.py [--quick] [--paired]
[--server moto,seaweed]``
(``--paired``: only alternating bursts of sequential puts, S3Store vs raw aioboto3,
which is robust to machine load drifting during the run).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from _raw_s3 import mib_chunks, raw_multipart

from aiolode import S3Store
from aiolode.testing.moto_server import run_moto_server
from aiolode.testing.seaweed_server import run_seaweed_server

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

MiB = 1024 * 1024
PART = 8 * MiB
CONC = 8
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
_CFG = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
}


class Ops:
    """One contender: put(key, data) and multipart(key, total)."""

    put: Callable[[str, bytes], Awaitable[Any]]
    stream: Callable[[str, int], Awaitable[Any]]


def _boto3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, config=Config(max_pool_connections=32, **_CFG))


async def _raw_multipart(
    call: Callable[..., Awaitable[Any]], bucket: str, key: str, total: int
) -> None:
    await raw_multipart(call, bucket, key, mib_chunks(total), part_size=PART, concurrency=CONC)


async def _measure(ops: Ops, ops_n: int, stream_size: int, tag: str) -> dict[str, float]:
    payload = os.urandom(1024)
    t = time.perf_counter()
    cpu = time.process_time()  # every thread of this process: client-side cost
    for i in range(ops_n):
        await ops.put(f"{tag}/seq/{i}", payload)
    seq = ops_n / (time.perf_counter() - t)
    cpu_us = (time.process_time() - cpu) / ops_n * 1e6

    t = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(32):

            async def worker(w: int = w) -> None:
                for i in range(ops_n // 8):
                    await ops.put(f"{tag}/par/{w}/{i}", payload)

            tg.start_soon(worker)
    par = 32 * (ops_n // 8) / (time.perf_counter() - t)

    t = time.perf_counter()
    await ops.stream(f"{tag}/big", stream_size)
    mibs = stream_size / MiB / (time.perf_counter() - t)
    return {"seq": seq, "cpu": cpu_us, "par": par, "stream": mibs}


async def run_contender(
    name: str, endpoint: str, bucket: str, ops_n: int, size: int, tag: str
) -> dict[str, float]:
    ops = Ops()
    if name == "raw aioboto3":
        import aioboto3
        from aiobotocore.config import AioConfig

        async with aioboto3.Session().client(
            "s3", endpoint_url=endpoint, config=AioConfig(max_pool_connections=32, **_CFG)
        ) as c:

            async def call(op: str, **kw: Any) -> Any:
                return await getattr(c, op)(**kw)

            ops.put = lambda k, d: c.put_object(Bucket=bucket, Key=k, Body=d)
            ops.stream = lambda k, n: _raw_multipart(call, bucket, k, n)
            return await _measure(ops, ops_n, size, tag)
    if name == "raw boto3 threads":
        c = await anyio.to_thread.run_sync(_boto3_client, endpoint)
        lim = anyio.CapacityLimiter(32)

        async def tcall(op: str, **kw: Any) -> Any:
            return await anyio.to_thread.run_sync(
                functools.partial(getattr(c, op), **kw), limiter=lim
            )

        ops.put = lambda k, d: tcall("put_object", Bucket=bucket, Key=k, Body=d)
        ops.stream = lambda k, n: _raw_multipart(tcall, bucket, k, n)
        return await _measure(ops, ops_n, size, tag)
    if name == "S3Store threads":
        async with S3Store(
            bucket, endpoint_url=endpoint, part_size=PART, max_concurrency=CONC
        ) as s:
            ops.put = lambda k, d: s.put(k, d, mode="overwrite")
            ops.stream = lambda k, n: s.put(k, mib_chunks(n), mode="overwrite")
            return await _measure(ops, ops_n, size, tag)
    if name == "S3Store + aioboto3 client":
        import aioboto3
        from aiobotocore.config import AioConfig

        async with (
            aioboto3.Session().client(
                "s3", endpoint_url=endpoint, config=AioConfig(max_pool_connections=32, **_CFG)
            ) as c,
            S3Store(bucket, client=c, part_size=PART, max_concurrency=CONC) as s,
        ):
            ops.put = lambda k, d: s.put(k, d, mode="overwrite")
            ops.stream = lambda k, n: s.put(k, mib_chunks(n), mode="overwrite")
            return await _measure(ops, ops_n, size, tag)
    raise AssertionError(name)


CONTENDERS = [
    ("raw aioboto3", "asyncio"),
    ("raw boto3 threads", "asyncio"),
    ("S3Store threads", "asyncio"),
    ("S3Store + aioboto3 client", "asyncio"),
    ("raw boto3 threads", "trio"),
    ("S3Store threads", "trio"),
]


async def _paired(endpoint: str, bucket: str, rounds: int, n: int) -> list[tuple[float, float]]:
    """Alternate short bursts of sequential 1 KiB puts: raw aioboto3, then S3Store."""
    import aioboto3
    from aiobotocore.config import AioConfig

    payload = os.urandom(1024)
    out: list[tuple[float, float]] = []
    async with (
        aioboto3.Session().client("s3", endpoint_url=endpoint, config=AioConfig(**_CFG)) as c,
        S3Store(bucket, endpoint_url=endpoint) as s,
    ):
        for r in range(rounds):
            t = time.perf_counter()
            for i in range(n):
                await c.put_object(Bucket=bucket, Key=f"a/{r}/{i}", Body=payload)
            raw = n / (time.perf_counter() - t)
            t = time.perf_counter()
            for i in range(n):
                await s.put(f"s/{r}/{i}", payload, mode="overwrite")
            out.append((raw, n / (time.perf_counter() - t)))
    return out


def paired(rounds: int) -> None:
    """Paired sequential-put comparison: robust to load that drifts during the run."""
    with run_moto_server() as endpoint:
        _boto3_client(endpoint).create_bucket(Bucket="paired")
        pairs = anyio.run(_paired, endpoint, "paired", rounds, 40, backend="asyncio")
    ratios = sorted(b / a for a, b in pairs)
    print("### S3Store (threads) vs raw aioboto3: paired sequential 1 KiB puts (asyncio)\n")
    print(f"{rounds} alternating bursts of 40 puts; ratio = S3Store ops/s / raw aioboto3 ops/s.\n")
    print("| raw aioboto3 ops/s | S3Store ops/s | median paired ratio | min-max ratio |")
    print("|---|---|---|---|")
    print(
        f"| {statistics.median(a for a, _ in pairs):.0f} "
        f"| {statistics.median(b for _, b in pairs):.0f} "
        f"| {statistics.median(ratios):.2f}x | {ratios[0]:.2f}-{ratios[-1]:.2f}x |\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--paired", action="store_true", help="only the paired sequential test")
    ap.add_argument(
        "--server", default="moto,seaweed", help="comma-separated: moto, seaweed (default both)"
    )
    args = ap.parse_args()
    if args.paired:
        paired(args.rounds or (5 if args.quick else 15))
        return
    rounds = args.rounds or (2 if args.quick else 5)
    ops_n = 64 if args.quick else 256
    size = (16 if args.quick else 64) * MiB

    for server in args.server.split(","):
        transports(server, rounds, ops_n, size)


@contextlib.contextmanager
def _server(kind: str) -> Iterator[str]:
    if kind == "moto":
        with run_moto_server() as endpoint:
            yield endpoint
    elif kind == "seaweed":
        with run_seaweed_server(bucket="bench-transport") as endpoint:
            yield endpoint
    else:
        raise SystemExit(f"unknown server {kind!r} (moto, seaweed)")


def transports(server: str, rounds: int, ops_n: int, size: int) -> None:
    """Every contender on one server, interleaved rounds; print a markdown table."""
    results: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in CONTENDERS}
    with _server(server) as endpoint:
        admin = _boto3_client(endpoint)
        for r in range(rounds):
            for name, backend in CONTENDERS:
                if server == "moto":
                    bucket = f"bench-{r}-{len(results[(name, backend)])}-{abs(hash((name, backend))) % 10000}"
                    admin.create_bucket(Bucket=bucket)
                else:
                    # SeaweedFS gives each bucket its own volumes: one bucket, a prefix per run.
                    bucket = "bench-transport"
                tag = f"r{r}-{name.replace(' ', '-')}-{backend}"
                res = anyio.run(
                    run_contender, name, endpoint, bucket, ops_n, size, tag, backend=backend
                )
                results[(name, backend)].append(res)
                if server == "moto":
                    # Free the server's memory between contenders.
                    urllib.request.urlopen(
                        urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
                    ).close()

    def med(name: str, backend: str, metric: str) -> tuple[float, float, float]:
        vals = [x[metric] for x in results[(name, backend)]]
        return statistics.median(vals), min(vals), max(vals)

    where = (
        "moto server (serialising, subprocess)"
        if server == "moto"
        else "SeaweedFS `weed mini` (a real S3 server, subprocess)"
    )
    print(f"### S3 transports on {server}: aioboto3 vs botocore-in-threads, asyncio vs trio\n")
    print(
        f"{where} on 127.0.0.1; median of {rounds} interleaved "
        f"rounds (min-max); 1 KiB puts: {ops_n} sequential, {32 * (ops_n // 8)} over 32 tasks; "
        f"streamed put of {size // MiB} MiB, {PART // MiB} MiB parts, {CONC} in flight "
        "(S3Store: default pool = max(max_concurrency, 10) threads and connections; raw clients: pool 32). Ratio = vs raw aioboto3 on asyncio in the same run.\n"
    )
    print(
        "| contender | backend | 1 KiB put seq ops/s | ratio | client CPU us/put | ratio "
        "| 1 KiB put 32-way ops/s | ratio | stream MiB/s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    metrics = ("seq", "cpu", "par", "stream")
    anchor = {m: med("raw aioboto3", "asyncio", m)[0] for m in metrics}
    for name, backend in CONTENDERS:
        cells = []
        for m in metrics:
            v, lo, hi = med(name, backend, m)
            cells.append(f"{v:.0f} ({lo:.0f}-{hi:.0f}) | {v / anchor[m]:.2f}x")
        print(f"| {name} | {backend} | " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    main()
