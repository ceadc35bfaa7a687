"""Finding abandoned uploads: what ``Store.abandoned_uploads`` costs next to raw calls.

- **FileStore**: a tree of objects (in many directories) with a few leftover
  temp files; ``abandoned_uploads("")`` against the raw anchor, ``os.walk`` of
  the same tree with the same name test and an ``lstat`` of each temp found, in
  one anyio worker thread. This is a cold path (garbage collection), but it
  walks every directory under the prefix: the figure says what that walk costs.
- **S3Store** on moto (through ``aiolode.testing.moto_server``, which pages and
  dates uploads like S3) and on SeaweedFS: N pending multipart uploads;
  ``abandoned_uploads`` against raw boto3 paging ListMultipartUploads in a
  worker thread, both at 1,000 uploads a page. The requests each side sends
  are counted (botocore events): the contract is one LIST per 1,000 uploads.

Contenders alternate round by round in one process; figures are medians with
the spread (min-max). Ratio: aiolode time / raw time (1.00 = parity).

Usage::

    .venv/bin/python benchmarks/bench_uploads.py [--quick] [--backend trio]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from aiolode import FileStore, S3Store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
FAR = timedelta(days=3650)


def _stats(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:,.1f} ({min(xs) * 1e3:,.1f}-{max(xs) * 1e3:,.1f})"


async def _rounds(
    rounds: int, contenders: dict[str, Callable[[], Awaitable[int]]]
) -> dict[str, tuple[list[float], int]]:
    out: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            found = await fn()
            out[name][0].append(time.perf_counter() - t0)
            out[name] = (out[name][0], found)
    return out


# ------------------------------------------------------------------ FileStore
def _build_tree(root: Path, objects: int, per_dir: int, temps: int) -> None:
    for i in range(objects):
        d = root / "ds" / f"p{i // per_dir:04d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:06d}.bin").write_bytes(b"x")
    step = max(1, objects // per_dir // max(temps, 1))
    for t in range(temps):
        d = root / "ds" / f"p{(t * step) % max(objects // per_dir, 1):04d}"
        (d / f".aiolode-tmp-{t:016x}").write_bytes(b"t" * 100)


def _raw_walk(root: str) -> int:
    found = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            if name.startswith(".aiolode-tmp-"):
                os.lstat(os.path.join(dirpath, name))
                found += 1
        dirnames[:] = [d for d in dirnames if not d.startswith(".aiolode")]
    return found


async def bench_file(objects: int, per_dir: int, temps: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        await anyio.to_thread.run_sync(_build_tree, root, objects, per_dir, temps)
        async with FileStore(root) as store:
            later = datetime.now(UTC) + FAR

            async def aiolode() -> int:
                return len([u async for u in store.abandoned_uploads("", older_than=later)])

            async def raw() -> int:
                return await anyio.to_thread.run_sync(_raw_walk, str(root))

            res = await _rounds(rounds, {"aiolode": aiolode, "raw": raw})
    (a, na), (r, nr) = res["aiolode"], res["raw"]
    assert na == nr == temps, (na, nr)
    print(
        f"### FileStore: find {temps} temp files among {objects:,} objects "
        f"({objects // per_dir:,} directories)\n"
    )
    print("| contender | ms, median (min-max) | found | ratio |")
    print("|---|---|---|---|")
    print(f"| raw `os.walk` + lstat (anchor) | {_stats(r)} | {nr} | 1.00 |")
    print(
        f"| `FileStore.abandoned_uploads` | {_stats(a)} | {na} | "
        f"{statistics.median(a) / statistics.median(r):.2f} |"
    )
    print()


# ---------------------------------------------------------------------- S3
def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(
            max_pool_connections=16,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _create_uploads(client: Any, bucket: str, prefix: str, n: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> None:
        client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/up/{i:06d}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def _raw_list(client: Any, bucket: str, prefix: str, cutoff: datetime) -> int:
    found = 0
    kw: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{prefix}/", "MaxUploads": 1000}
    while True:
        page = client.list_multipart_uploads(**kw)
        found += sum(1 for u in page.get("Uploads", ()) if u["Initiated"] < cutoff)
        if not page.get("IsTruncated"):
            return found
        kw = {k: v for k, v in kw.items() if k not in ("KeyMarker", "UploadIdMarker")}
        for name in ("KeyMarker", "UploadIdMarker"):
            if page.get(f"Next{name}"):
                kw[name] = page[f"Next{name}"]


async def bench_s3(
    label: str, endpoint: str, bucket: str, prefix: str, n: int, rounds: int
) -> None:
    admin = _client(endpoint)
    await anyio.to_thread.run_sync(_create_uploads, admin, bucket, prefix, n)
    counted = _client(endpoint)
    requests = {"n": 0}
    counted.meta.events.register(
        "before-call.s3.ListMultipartUploads",
        lambda **_: requests.__setitem__("n", requests["n"] + 1),
    )
    raw_client = _client(endpoint)
    raw_requests = {"n": 0}
    raw_client.meta.events.register(
        "before-call.s3.ListMultipartUploads",
        lambda **_: raw_requests.__setitem__("n", raw_requests["n"] + 1),
    )
    later = datetime.now(UTC) + FAR
    async with S3Store(bucket, prefix, client=counted) as store:

        async def aiolode() -> int:
            return len([u async for u in store.abandoned_uploads("", older_than=later)])

        async def raw() -> int:
            return await anyio.to_thread.run_sync(_raw_list, raw_client, bucket, prefix, later)

        res = await _rounds(rounds, {"aiolode": aiolode, "raw": raw})
    (a, na), (r, nr) = res["aiolode"], res["raw"]
    assert na == nr == n, (na, nr)
    per_call = requests["n"] / rounds
    raw_per_call = raw_requests["n"] / rounds
    print(f"### S3Store on {label}: list {n:,} pending uploads\n")
    print("| contender | ms, median (min-max) | found | LIST requests per call | ratio |")
    print("|---|---|---|---|---|")
    print(f"| raw boto3 paging, thread (anchor) | {_stats(r)} | {nr:,} | {raw_per_call:g} | 1.00 |")
    print(
        f"| `S3Store.abandoned_uploads` | {_stats(a)} | {na:,} | {per_call:g} | "
        f"{statistics.median(a) / statistics.median(r):.2f} |"
    )
    print()
    print(f"Contract: ceil({n:,} / 1000) = {math.ceil(n / 1000)} LIST requests.\n")


async def main(quick: bool) -> None:
    from aiolode.testing.moto_server import run_moto_server
    from aiolode.testing.seaweed_server import run_seaweed_server

    rounds = 3 if quick else 7
    await bench_file(2_000 if quick else 50_000, 100, 5, rounds)
    n = 120 if quick else 2_500
    with run_moto_server() as endpoint:
        await anyio.to_thread.run_sync(lambda: _client(endpoint).create_bucket(Bucket="uploads"))
        await bench_s3("moto (serialised)", endpoint, "uploads", "bench", n, rounds)
    with run_seaweed_server(bucket="uploads") as endpoint:
        await bench_s3("SeaweedFS", endpoint, "uploads", "bench", n, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args()
    print("## Abandoned uploads\n")
    anyio.run(main, args.quick, backend=args.backend)
