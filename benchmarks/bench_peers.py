"""aiolode's S3Store next to the peer clients people would otherwise use, same run.

Against one moto S3 server (started here, in a subprocess, serialising requests
so every contender sees the same server), on asyncio:

- **raw obstore** (Rust ``object_store`` behind Python; asyncio only),
- **raw aioboto3** (``put_object``/``get_object`` on one client),
- **aiolode S3Store** (create-only puts, i.e. with ``If-None-Match: *``).

Figures: 1 KiB create-only put and get, sequential and 32-way (ops/s), and a
64 MiB upload (MiB/s; multipart with 8 MiB parts and 8 in flight for everyone).
Contenders alternate inside each round so background drift hits all of them;
each figure is the median over the rounds with the min–max spread.

Run: ``.venv/bin/python benchmarks/bench_peers.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

MiB = 1024 * 1024
REGION = "us-east-1"


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.1f} ({min(xs):,.1f}–{max(xs):,.1f})"


async def _timed(n: int, conc: int, op: Callable[[int], Awaitable[Any]]) -> float:
    """Run ``op(i)`` for i < n with ``conc`` in flight; return ops/s."""
    limiter = anyio.CapacityLimiter(conc)

    async def one(i: int) -> None:
        async with limiter:
            await op(i)

    t = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return n / (time.perf_counter() - t)


async def run(endpoint: str, quick: bool) -> None:
    import aioboto3
    import obstore
    from obstore.store import S3Store as ObS3Store

    from aiolode import S3Store

    rounds = 3 if quick else 5
    n_seq = 60 if quick else 200
    n_par = 128 if quick else 640
    big = (16 if quick else 64) * MiB
    payload = os.urandom(1024)
    big_payload = os.urandom(big)

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    async with session.client("s3", endpoint_url=endpoint) as raw:
        await raw.create_bucket(Bucket=bucket)
        ob = ObS3Store(
            bucket,
            endpoint=endpoint,
            access_key_id="testing",
            secret_access_key="testing",
            region=REGION,
            client_options={"allow_http": True},
        )
        async with S3Store(
            bucket, endpoint_url=endpoint, region_name=REGION, part_size=8 * MiB, max_concurrency=8
        ) as ours:
            await raw.put_object(Bucket=bucket, Key="get/obj", Body=payload)

            def puts_raw(tag: str) -> Callable[[int], Awaitable[Any]]:
                return lambda i: raw.put_object(
                    Bucket=bucket, Key=f"{tag}/{i}", Body=payload, IfNoneMatch="*"
                )

            def puts_ob(tag: str) -> Callable[[int], Awaitable[Any]]:
                return lambda i: obstore.put_async(ob, f"{tag}/{i}", payload, mode="create")

            def puts_ours(tag: str) -> Callable[[int], Awaitable[Any]]:
                return lambda i: ours.put(f"{tag}/{i}", payload)

            async def get_raw(_: int) -> bytes:
                r = await raw.get_object(Bucket=bucket, Key="get/obj")
                async with r["Body"] as body:
                    return bytes(await body.read())

            async def get_ob(_: int) -> bytes:
                r = await obstore.get_async(ob, "get/obj")
                return bytes(await r.bytes_async())

            async def get_ours(_: int) -> bytes:
                return await ours.get("get/obj")

            async def big_raw(i: int) -> None:
                key = f"big-raw/{i}"
                up = await raw.create_multipart_upload(Bucket=bucket, Key=key)
                uid = up["UploadId"]
                parts: list[dict[str, Any]] = []
                limiter = anyio.CapacityLimiter(8)

                async def part(n: int, off: int) -> None:
                    async with limiter:
                        r = await raw.upload_part(
                            Bucket=bucket,
                            Key=key,
                            UploadId=uid,
                            PartNumber=n,
                            Body=big_payload[off : off + 8 * MiB],
                        )
                        parts.append({"PartNumber": n, "ETag": r["ETag"]})

                async with anyio.create_task_group() as tg:
                    for n, off in enumerate(range(0, big, 8 * MiB), start=1):
                        tg.start_soon(part, n, off)
                parts.sort(key=lambda p: p["PartNumber"])
                await raw.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=uid,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )

            async def big_ob(i: int) -> None:
                await obstore.put_async(
                    ob,
                    f"big-ob/{i}",
                    big_payload,
                    use_multipart=True,
                    chunk_size=8 * MiB,
                    max_concurrency=8,
                )

            async def chunks() -> AsyncIterator[bytes]:
                view = memoryview(big_payload)
                for off in range(0, big, MiB):
                    yield bytes(view[off : off + MiB])

            async def big_ours(i: int) -> None:
                await ours.put(f"big-ours/{i}", chunks())

            results: dict[str, dict[str, list[float]]] = {}

            def rec(fig: str, who: str, v: float) -> None:
                results.setdefault(fig, {}).setdefault(who, []).append(v)

            for r in range(rounds):
                for who, mk in (
                    ("aioboto3", puts_raw),
                    ("obstore", puts_ob),
                    ("aiolode", puts_ours),
                ):
                    rec(
                        "1 KiB create-only put, sequential (ops/s)",
                        who,
                        await _timed(n_seq, 1, mk(f"s{r}{who}")),
                    )
                for who, mk in (
                    ("aioboto3", puts_raw),
                    ("obstore", puts_ob),
                    ("aiolode", puts_ours),
                ):
                    rec(
                        "1 KiB create-only put, 32-way (ops/s)",
                        who,
                        await _timed(n_par, 32, mk(f"p{r}{who}")),
                    )
                for who, g in (("aioboto3", get_raw), ("obstore", get_ob), ("aiolode", get_ours)):
                    rec("1 KiB get, sequential (ops/s)", who, await _timed(n_seq, 1, g))
                for who, g in (("aioboto3", get_raw), ("obstore", get_ob), ("aiolode", get_ours)):
                    rec("1 KiB get, 32-way (ops/s)", who, await _timed(n_par, 32, g))
                for who, b in (("aioboto3", big_raw), ("obstore", big_ob), ("aiolode", big_ours)):
                    t = time.perf_counter()
                    await b(r)
                    rec(
                        f"{big // MiB} MiB upload, 8 MiB parts x 8 (MiB/s)",
                        who,
                        (big / MiB) / (time.perf_counter() - t),
                    )

    print("### aiolode S3Store vs peer S3 clients (moto server, asyncio)\n")
    print(
        f"{rounds} rounds; {n_seq} sequential / {n_par} concurrent ops per round; "
        "ratio = aiolode median / peer median (> 1 means aiolode is faster).\n"
    )
    print("| figure | raw aioboto3 | raw obstore | aiolode S3Store | vs aioboto3 | vs obstore |")
    print("|---|---|---|---|---|---|")
    for fig, by in results.items():
        a, o, us = by["aioboto3"], by["obstore"], by["aiolode"]
        ra = statistics.median(us) / statistics.median(a)
        ro = statistics.median(us) / statistics.median(o)
        print(f"| {fig} | {_fmt(a)} | {_fmt(o)} | {_fmt(us)} | {ra:.2f}x | {ro:.2f}x |")
    print(
        "\nThe server (moto, one request at a time, in Python) dominates absolute figures; "
        "the ratios compare client overheads on identical work."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from aiolode.testing.moto_server import run_moto_server

    with run_moto_server() as endpoint:
        anyio.run(run, endpoint, args.quick)


if __name__ == "__main__":
    main()
