"""Dataset benchmarks: commit cost and throughput, Parquet overhead, loop stalls.

Run: ``.venv/bin/python benchmarks/bench_dataset.py [--quick]``. Prints a markdown
section; every figure sits next to its anchor measured in the same run.

1. Store calls of a warm commit (CountingStore), the contract: <= 3 beyond data.
2. Single-writer commits/s of a 1,000-row batch (JSONL) on the local filesystem
   and on moto S3 (the serialising test server), vs ``deltalake.write_deltalake``
   appends of the same batch to the same place.
3. 1, 8 and 64 concurrent writers on one Dataset over a store with 60 ms
   injected latency per call (LatencyStore over memory): snapshots/s.
4. Parquet through a Dataset (FileStore, no checksum) vs raw
   ``pyarrow.parquet.write_table`` of the same table into the same directory.
5. Longest event-loop stall (a 1 ms ticker task) while writing 256 MiB through a
   Dataset with Parquet + zstd + sha256, on asyncio and trio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

import aiolode
from aiolode import Dataset
from aiolode.testing import CountingStore, LatencyStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str = ".3g") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def batch_rows(n: int = 1000) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "user": f"user{i % 97}",
            "value": i * 0.5,
            "ts": f"2024-05-01T00:{i % 60:02d}:00Z",
        }
        for i in range(n)
    ]


# ------------------------------------------------------------------ 1. warm calls
async def bench_calls() -> None:
    print("### Store calls per commit\n")
    counting = CountingStore(aiolode.MemoryStore())
    ds = Dataset("d", counting, codec=aiolode.JSONL())
    await ds.write(batch_rows(10))
    with counting.measure() as warm:
        await ds.write(batch_rows(10))
    cold_store = CountingStore(counting.inner)
    with cold_store.measure() as cold:
        await Dataset("d", cold_store, codec=aiolode.JSONL()).write(batch_rows(10))
    print(
        "Sequential round trips of a warm commit: the data put and the hint put run "
        "concurrently, then the record put.\n"
    )
    print("| commit | calls | of which data puts | beyond data (contract, warm: <= 3) |")
    print("|---|---|---|---|")
    for label, m in (("warm", warm), ("cold (new Dataset object)", cold)):
        total = m.counts.total_calls
        print(f"| {label} | {total} ({m.counts.nonzero()}) | 1 | {total - 1} |")
    print()


# ------------------------------------------------------- 2. single-writer commits
def _delta_append(uri: str, table: Any, n: int, storage: dict[str, str] | None) -> float:
    from deltalake import write_deltalake

    t0 = time.perf_counter()
    for _ in range(n):
        write_deltalake(uri, table, mode="append", storage_options=storage)
    return time.perf_counter() - t0


async def _aiolode_commits(store: aiolode.Store, name: str, rows: list[Any], n: int) -> float:
    ds = Dataset(name, store, codec=aiolode.JSONL())
    await ds.write(rows)  # warm: the steady state of a long-lived writer
    t0 = time.perf_counter()
    for _ in range(n):
        await ds.write(rows)
    return time.perf_counter() - t0


async def _raw_floor(store: aiolode.Store, rows: list[Any], n: int) -> float:
    """The floor of any commit protocol, sequential: a plain data put (its key is
    fresh) then one small create-only put (the commit point)."""
    import json

    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    t0 = time.perf_counter()
    for i in range(n):
        await store.put(f"floor/{i}.jsonl", body, mode="overwrite")
        await store.put(f"floor/{i}.json", b"{}" * 400, mode="create")
    return time.perf_counter() - t0


async def bench_single_writer(n: int, runs: int, with_s3: bool) -> None:
    import pyarrow as pa

    print("### Single-writer commits/s, 1,000-row batch\n")
    print(
        f"{n} sequential appends per run after one warm-up; median of {runs} runs (spread). "
        "aiolode writes the batch as JSON Lines; deltalake as Parquet (its format), same rows, "
        "same place.\n"
    )
    rows = batch_rows()
    table = pa.Table.from_pylist(rows)
    print(
        "| where | aiolode commits/s | raw floor: data put + 1 put, /s | deltalake commits/s "
        "| aiolode vs deltalake |"
    )
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        ours: list[float] = []
        theirs: list[float] = []
        floor: list[float] = []
        for r in range(runs):
            root = Path(tmp) / f"fs{r}"
            root.mkdir()
            async with aiolode.FileStore(root) as fs:
                ours.append(n / await _aiolode_commits(fs, "bench", rows, n))
                floor.append(n / await _raw_floor(fs, rows, n))
            delta_uri = str(root / "delta")
            await anyio.to_thread.run_sync(_delta_append, delta_uri, table, 1, None)
            theirs.append(
                n / await anyio.to_thread.run_sync(_delta_append, delta_uri, table, n, None)
            )
        print(
            f"| local filesystem (FileStore fsyncs every put) | {med(ours):.0f} "
            f"({spread(ours, '.0f')}) | {med(floor):.0f} ({spread(floor, '.0f')}) "
            f"| {med(theirs):.0f} ({spread(theirs, '.0f')}) | {med(ours) / med(theirs):.1f}x |"
        )
    if with_s3:
        await _s3_single_writer(n, runs, rows, table)
    print()


async def _s3_single_writer(n: int, runs: int, rows: list[Any], table: Any) -> None:
    import boto3

    from aiolode.testing.moto_server import run_moto_server

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(run_moto_server())
        admin = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        storage = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        }
        ours: list[float] = []
        theirs: list[float] = []
        floor: list[float] = []
        for r in range(runs):
            bucket = f"bench-{r}"
            await anyio.to_thread.run_sync(lambda b=bucket: admin.create_bucket(Bucket=b))
            async with aiolode.S3Store(bucket, endpoint_url=url, region_name="us-east-1") as s3:
                ours.append(n / await _aiolode_commits(s3, "bench", rows, n))
                floor.append(n / await _raw_floor(s3, rows, n))
            uri = f"s3://{bucket}/delta"
            await anyio.to_thread.run_sync(_delta_append, uri, table, 1, storage)
            theirs.append(n / await anyio.to_thread.run_sync(_delta_append, uri, table, n, storage))
        print(
            f"| moto S3 (serialising server) | {med(ours):.1f} ({spread(ours, '.1f')}) "
            f"| {med(floor):.1f} ({spread(floor, '.1f')}) "
            f"| {med(theirs):.1f} ({spread(theirs, '.1f')}) | {med(ours) / med(theirs):.1f}x |"
        )


# ------------------------------------------------------ 3. concurrent writers
async def _concurrent(writers: int, per_writer: int, latency: float) -> float:
    store = LatencyStore(aiolode.MemoryStore(), latency)
    ds = Dataset("d", store)
    await ds.write(b"warm")

    async def worker(w: int) -> None:
        for i in range(per_writer):
            await ds.write(b"%d-%d" % (w, i))

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(writers):
            tg.start_soon(worker, w)
    elapsed = time.perf_counter() - t0
    snaps = [s async for s in Dataset("d", store.inner).snapshots()]
    assert len(snaps) == 1 + writers * per_writer
    return writers * per_writer / elapsed


async def bench_concurrency(per_writer: int, runs: int) -> None:
    print("### Concurrent writers on one Dataset, 60 ms per store call\n")
    print(
        f"Each writer commits {per_writer} raw snapshots back to back (one data put, then the "
        "commit); LatencyStore adds 60 ms before every call. Median of "
        f"{runs} runs (spread). Anchor: one writer.\n"
    )
    print("| writers | snapshots/s | vs 1 writer |")
    print("|---|---|---|")
    base = None
    for writers in (1, 8, 64):
        vals = [await _concurrent(writers, per_writer, 0.060) for _ in range(runs)]
        base = base or med(vals)
        print(f"| {writers} | {med(vals):.1f} ({spread(vals, '.1f')}) | {med(vals) / base:.1f}x |")
    print()


# ----------------------------------------------------------------- 4. parquet
def _raw_parquet(path: str, table: Any, durable: bool = False) -> float:
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 20)
    if durable:
        # What the Dataset's FileStore also pays: the bytes on disk, not in page cache.
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return time.perf_counter() - t0


def random_int64(rows: int) -> Any:
    import pyarrow as pa

    # Incompressible values, built without numpy (not a dependency).
    return pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(os.urandom(rows * 8))])


async def bench_parquet(rows: int, runs: int) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(range(rows), type=pa.int64())
    table = pa.table(
        {
            "id": ids,
            "value": pc.multiply(pc.cast(random_int64(rows), pa.float64(), safe=False), 1e-12),
            "cat": pc.cast(pc.bit_wise_and(random_int64(rows), 1023), pa.string()),
        }
    )
    mib = table.nbytes / (1 << 20)
    print("### Parquet through a Dataset vs raw pyarrow.parquet.write_table\n")
    print(
        f"{rows:,} rows ({mib:.0f} MiB in Arrow), zstd, row groups of 1 Mi rows; both into the "
        f"same directory; median of {runs} runs (spread). The Dataset adds stats, a durable "
        "(fsync) create-only publish and the commit.\n"
    )
    ours: list[float] = []
    raw: list[float] = []
    raw_durable: list[float] = []
    mem: list[float] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        mem_ds = Dataset(
            "pq",
            aiolode.MemoryStore(),
            codec=aiolode.Parquet(compression="zstd", row_group_size=1 << 20),
        )
        await mem_ds.write(table.slice(0, 10))
        async with aiolode.FileStore(tmp) as fs:
            ds = Dataset(
                "pq", fs, codec=aiolode.Parquet(compression="zstd", row_group_size=1 << 20)
            )
            await ds.write(table.slice(0, 10))
            for r in range(runs):
                raw.append(
                    await anyio.to_thread.run_sync(_raw_parquet, f"{tmp}/raw{r}.parquet", table)
                )
                raw_durable.append(
                    await anyio.to_thread.run_sync(
                        _raw_parquet, f"{tmp}/rawd{r}.parquet", table, True
                    )
                )
                t0 = time.perf_counter()
                await ds.write(table)
                ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await mem_ds.write(table)
                mem.append(time.perf_counter() - t0)

    def paired(xs: list[float], anchor: list[float]) -> str:
        # Each run's writers ran back to back, so a per-run ratio cancels the
        # machine's slow drift; its median is the figure, its range the spread.
        r = [x / a for x, a in zip(xs, anchor, strict=True)]
        return f"{med(r):.2f}x ({spread(r, '.2f')})"

    print(
        "| writer | seconds | MiB/s | ratio of medians | paired ratio vs raw, median (spread) "
        "| paired ratio vs durable raw |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| raw write_table | {med(raw):.3f} ({spread(raw)}) | {mib / med(raw):.0f} | 1.00x "
        "| 1.00x | |"
    )
    print(
        f"| raw write_table + fsync (durable, like FileStore) | {med(raw_durable):.3f} "
        f"({spread(raw_durable)}) | {mib / med(raw_durable):.0f} "
        f"| {med(raw_durable) / med(raw):.2f}x | {paired(raw_durable, raw)} | 1.00x |"
    )
    print(
        f"| Dataset.write on FileStore | {med(ours):.3f} ({spread(ours)}) | {mib / med(ours):.0f} "
        f"| {med(ours) / med(raw):.2f}x | {paired(ours, raw)} | {paired(ours, raw_durable)} |"
    )
    print(
        f"| Dataset.write on MemoryStore (encode + commit, no disk) | {med(mem):.3f} "
        f"({spread(mem)}) | {mib / med(mem):.0f} | {med(mem) / med(raw):.2f}x "
        f"| {paired(mem, raw)} | |"
    )
    print()


# -------------------------------------------------------------------- 5. stalls
async def _longest_stall(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Run ``work`` while a ticker sleeps 1 ms in a loop; return its longest
    overshoot and how long ``work`` took."""
    worst = 0.0
    stop = anyio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not stop.is_set():
            t0 = time.perf_counter()
            await anyio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t0 - 0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.05)
        t0 = time.perf_counter()
        await work()
        elapsed = time.perf_counter() - t0
        stop.set()
    return worst, elapsed


async def _idle_stall(seconds: float) -> float:
    """Anchor: the ticker alone, on an otherwise idle loop."""
    return (await _longest_stall(lambda: anyio.sleep(seconds)))[0]


async def _raw_stall(table: Any) -> float:
    """Anchor: the stall while pyarrow alone writes the same table in a worker thread."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write() -> None:
        pq.write_table(table, pa.BufferOutputStream(), compression="zstd")

    return (await _longest_stall(lambda: anyio.to_thread.run_sync(write)))[0]


async def _stall(table: Any, root: str) -> tuple[float, float]:
    async with aiolode.FileStore(root) as fs:
        ds = Dataset(
            "stall", fs, codec=aiolode.Parquet(compression="zstd"), checksum=aiolode.SHA256()
        )
        return await _longest_stall(lambda: ds.write(table))


def bench_stall(mib: int, runs: int) -> None:
    import pyarrow as pa

    rows = mib * (1 << 20) // 16
    table = pa.table({"a": random_int64(rows), "b": random_int64(rows)})
    print(f"### Longest event-loop stall while writing {mib} MiB (Parquet + zstd + sha256)\n")
    print(
        "A ticker task sleeps 1 ms in a loop and records the longest overshoot while "
        "Dataset.write() encodes, compresses, hashes and stores the table (FileStore). "
        "Target: < 10 ms.\n"
    )
    print(
        "Anchors: the same ticker on an idle loop for as long as the write took (what the "
        "OS scheduler alone costs on this machine), and while pyarrow alone writes the same "
        "table in a worker thread (its own CPU pool competes with the loop for the cores).\n"
    )
    print(
        f"Median of {runs} runs per backend (spread min-max); the anchors are measured "
        "right after each run, so a spike from the machine shows in them too.\n"
    )
    print(
        "| backend | longest stall during Dataset.write (ms) | idle anchor (ms) "
        "| raw pq.write_table in a worker thread (ms) | write time (s) |"
    )
    print("|---|---|---|---|---|")
    for backend in ("asyncio", "trio"):
        worst: list[float] = []
        idle: list[float] = []
        raw: list[float] = []
        elapsed: list[float] = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
                w, e = anyio.run(_stall, table, tmp, backend=backend)
            worst.append(w * 1000)
            elapsed.append(e)
            idle.append(anyio.run(_idle_stall, e, backend=backend) * 1000)
            raw.append(anyio.run(_raw_stall, table, backend=backend) * 1000)
        print(
            f"| {backend} | {med(worst):.2f} ({spread(worst, '.1f')}) "
            f"| {med(idle):.2f} ({spread(idle, '.1f')}) | {med(raw):.2f} ({spread(raw, '.1f')}) "
            f"| {med(elapsed):.2f} |"
        )
    print()


async def main_async(args: argparse.Namespace) -> None:
    q = args.quick
    await bench_calls()
    await bench_single_writer(n=20 if q else 100, runs=1 if q else 3, with_s3=True)
    await bench_concurrency(per_writer=3 if q else 10, runs=1 if q else 3)
    await bench_parquet(rows=1_000_000 if q else 8_000_000, runs=1 if q else 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    args = parser.parse_args()
    print("## Dataset\n")
    anyio.run(main_async, args)
    bench_stall(32 if args.quick else 256, runs=1 if args.quick else 5)


if __name__ == "__main__":
    main()
