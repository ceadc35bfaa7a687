"""Peak RSS of a 1 GiB streamed S3Store upload: memory stays bounded by the parts in flight.

Starts the moto server in a subprocess (so the 1 GiB it keeps counts against the
server, not us), then streams 1 GiB of 1 MiB chunks through ``S3Store.put`` with
the default part size (8 MiB) and concurrency (8), on asyncio and on trio, each
in a fresh child process. Peak RSS is the kernel's high-water mark
(``ru_maxrss``) of the uploading process; the budget is 128 MiB.

Usage: ``.venv/bin/python benchmarks/bench_s3_rss.py [--quick]`` (quick: 256 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

MiB = 1024 * 1024
BUDGET_MIB = 128


def _rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(endpoint: str, bucket: str, total: int, backend: str) -> None:
    import anyio

    from aiolode import S3Store

    async def source() -> AsyncIterator[bytes]:
        block = os.urandom(MiB)
        for _ in range(total // MiB):
            yield block

    async def main() -> dict[str, float]:
        async with S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1") as store:
            await store.put("warmup", b"x")  # imports, client and pool are in place
            base = _rss_peak_mib()
            t = time.perf_counter()
            info = await store.put("big", source())
            dt = time.perf_counter() - t
            assert info.size == total, info
            assert (await store.head("big")).size == total
            return {
                "baseline": base,
                "peak": _rss_peak_mib(),
                "seconds": dt,
                "part_size": store.part_size / MiB,
                "max_concurrency": store.max_concurrency,
            }

    print(json.dumps(anyio.run(main, backend=backend)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("ENDPOINT", "BUCKET", "BYTES", "BACKEND"))
    args = ap.parse_args()
    if args.child:
        endpoint, bucket, total, backend = args.child
        child(endpoint, bucket, int(total), backend)
        return 0

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    from aiolode.testing.moto_server import run_moto_server

    total = (256 if args.quick else 1024) * MiB
    rows = []
    with run_moto_server() as endpoint:
        admin = boto3.client("s3", endpoint_url=endpoint)
        for backend in ("asyncio", "trio"):
            bucket = f"rss-{backend}"
            admin.create_bucket(Bucket=bucket)
            out = subprocess.run(
                [sys.executable, __file__, "--child", endpoint, bucket, str(total), backend],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows.append((backend, json.loads(out.strip().splitlines()[-1])))
            urllib.request.urlopen(
                urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
            ).close()

    print("### S3Store streamed upload: peak RSS\n")
    print(
        f"{total // MiB} MiB streamed as 1 MiB chunks through `S3Store.put` (defaults: "
        "8 MiB parts, 8 in flight) to the moto server in another process; peak RSS is "
        "`ru_maxrss` of the uploading process, baseline is the peak before the upload "
        "(interpreter, botocore, client). Budget: 128 MiB.\n"
    )
    print("| backend | baseline MiB | peak RSS MiB | upload delta MiB | peak / budget | MiB/s |")
    print("|---|---|---|---|---|---|")
    ok = True
    for backend, r in rows:
        ok &= r["peak"] < BUDGET_MIB
        print(
            f"| {backend} | {r['baseline']:.0f} | {r['peak']:.0f} | "
            f"{r['peak'] - r['baseline']:.0f} | {r['peak'] / BUDGET_MIB:.2f}x | "
            f"{total / MiB / r['seconds']:.0f} |"
        )
    print()
    print(f"Peak RSS under {BUDGET_MIB} MiB on every backend: {'yes' if ok else 'NO'}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
