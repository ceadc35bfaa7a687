"""The warm JSON Lines commit against the raw floor, by batch size and store.

Run: ``.venv/bin/python benchmarks/bench_commit_path.py [--quick] [--profile]``.
Prints a markdown section; every ratio compares figures measured in the same
run, interleaved one by one so load drift hits both sides.

For 1, 1,000 and 10,000 rows (the crawler events of ``bench_ingest.py``,
unpartitioned, ``codec=JSONL()``, the default XXH3 checksum), a warm Dataset
commits the same rows ``n`` times; after each commit the **floor** runs on the
same store: one plain put of the very bytes the codec writes for those rows,
then one create-only put of 800 bytes, sequential — the least any commit
protocol does (a data file's key is fresh, so its put needs no condition; the
commit point must be create-only, or two writers could both win it). Stores:

- memory behind a ``LatencyStore`` adding 5 ms to every call (S3-like latency,
  no server CPU in the process);
- ``FileStore`` on a temporary directory;
- S3 on the moto server (``aiolode.testing.moto_server``, one request at a time).

Alongside each run a 1 ms ticker task measures the longest event-loop stall
during the commits and, as the machine's own noise, during the floor's puts;
the longest garbage collection of the interpreter (``gc.callbacks``, either
phase) is printed next to them, since a full collection stalls whatever runs.

``BENCH_SIZES=1000`` limits the batch sizes. ``--without-hint`` is a diagnosis,
not a configuration: it stops writers from moving the log's ``latest`` hint
(its put runs alongside one warm write's data put in 8) to show what that costs.

``--profile`` prints a cProfile summary (cumulative, top 40) of 200 warm
1,000-row commits on a ``MemoryStore`` (no latency) instead.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import os
import pstats
import statistics
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import anyio

import aiolode
from aiolode.testing import LatencyStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

SMALL = b"{}" * 400


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def rows(n: int) -> list[dict[str, Any]]:
    """Crawler events as the ingestor fills them (about 230 bytes of JSON each)."""
    return [
        {
            "url": f"https://shop.example/p/{i % 64}/{i}",
            "status": 200,
            "bytes": 1000 + i,
            "ts": "2026-11-30T12:00:00+00:00",
            "title": f"product {i % 64}-{i}",
            "run_id": "floor",
            "seq": i,
            "event_type": "item",
            "source": "shop",
            "category": "product",
            "day": "2026-11-30",
        }
        for i in range(n)
    ]


class Ticker:
    """The longest gap between the wake-ups of a 1 ms sleeper (event-loop stalls),
    by phase: during commits and during the floor's puts (the machine's own noise)."""

    def __init__(self) -> None:
        self.worst = {"commit": 0.0, "floor": 0.0}
        #: The longest garbage collection of the interpreter, whatever the phase.
        self.gc_worst = 0.0
        self._gc_start = 0.0
        self.phase = "floor"
        self._stop = False
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_worst = max(self.gc_worst, time.perf_counter() - self._gc_start)

    async def run(self) -> None:
        last = time.perf_counter()
        while not self._stop:
            phase = self.phase
            await anyio.sleep(0.001)
            now = time.perf_counter()
            if phase == self.phase:  # a gap across a phase change counts for neither
                self.worst[phase] = max(self.worst[phase], now - last - 0.001)
            last = now

    def stop(self) -> None:
        self._stop = True
        gc.callbacks.remove(self._gc)


async def paired(store: aiolode.Store, batch: list[dict[str, Any]], n: int) -> dict[str, float]:
    """Median seconds per commit and per floor pair, and the worst loop stall."""
    ds = aiolode.Dataset("c", store, codec=aiolode.JSONL())
    await ds.write(batch)  # warm: the steady state of a long-lived writer
    await ds.write(batch)
    body = aiolode.JSONL().encode(batch).data
    commit: list[float] = []
    floor: list[float] = []
    ticker = Ticker()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run)
        for i in range(n):
            ticker.phase = "commit"
            t0 = time.perf_counter()
            await ds.write(batch)
            t1 = time.perf_counter()
            ticker.phase = "floor"
            # The least any commit protocol does: a plain put of the data (its key
            # is fresh) and a create-only put of the commit point.
            await store.put(f"floor/{i}.jsonl", body, mode="overwrite")
            await store.put(f"floor/{i}.json", SMALL, mode="create")
            t2 = time.perf_counter()
            commit.append(t1 - t0)
            floor.append(t2 - t1)
        ticker.stop()
    return {
        "commit": med(commit),
        "floor": med(floor),
        "stall": ticker.worst["commit"],
        "floor_stall": ticker.worst["floor"],
        "gc": ticker.gc_worst,
    }


async def _memory(tag: str) -> AsyncIterator[aiolode.Store]:
    yield LatencyStore(aiolode.MemoryStore(), 0.005)


async def _files(tag: str) -> AsyncIterator[aiolode.Store]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        async with aiolode.FileStore(tmp) as fs:
            yield fs


def _s3(url: str) -> Callable[[str], AsyncIterator[aiolode.Store]]:
    import boto3

    admin = boto3.client("s3", endpoint_url=url, region_name="us-east-1")

    async def make(tag: str) -> AsyncIterator[aiolode.Store]:
        bucket = f"commit-{tag}"
        admin.create_bucket(Bucket=bucket)
        async with aiolode.S3Store(bucket, endpoint_url=url, region_name="us-east-1") as s3:
            yield s3

    return make


def _seaweed(url: str) -> Callable[[str], AsyncIterator[aiolode.Store]]:
    async def make(tag: str) -> AsyncIterator[aiolode.Store]:
        async with aiolode.S3Store(
            "commit", prefix=f"{tag}/", endpoint_url=url, region_name="us-east-1"
        ) as s3:
            yield s3

    return make


async def table(
    stores: list[tuple[str, Callable[[str], AsyncIterator[aiolode.Store]]]],
    sizes: list[int],
    n: int,
    runs: int,
) -> None:
    print(
        "| store | rows | commit ms | floor ms | floor / commit | "
        "longest loop stall ms: commit / floor | longest gc pause ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, make in stores:
        for size in sizes:
            batch = rows(size)
            results = []
            for r in range(runs):
                gen = make(f"{size}-{r}")
                store = await gen.__anext__()
                try:
                    results.append(await paired(store, batch, n))
                finally:
                    await gen.aclose()
            ratios = [x["floor"] / x["commit"] for x in results]
            print(
                f"| {label} | {size:,} | {med([x['commit'] for x in results]) * 1e3:.2f} "
                f"| {med([x['floor'] for x in results]) * 1e3:.2f} "
                f"| {med(ratios):.2f}x ({spread(ratios)}) "
                f"| {max(x['stall'] for x in results) * 1e3:.1f} "
                f"/ {max(x['floor_stall'] for x in results) * 1e3:.1f} "
                f"| {max(x['gc'] for x in results) * 1e3:.1f} |"
            )
            sys.stdout.flush()


async def profile() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("c", store, codec=aiolode.JSONL())
    batch = rows(1000)
    for _ in range(3):
        await ds.write(batch)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(200):
        await ds.write(batch)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer commits, one run each")
    parser.add_argument("--profile", action="store_true", help="cProfile 200 commits instead")
    parser.add_argument(
        "--only", choices=("memory", "file", "s3", "seaweed"), help="one store only"
    )
    parser.add_argument(
        "--without-hint",
        action="store_true",
        help="diagnosis only: never move the log's latest hint (what its put costs a commit)",
    )
    args = parser.parse_args()
    if args.without_hint:
        from aiolode._history._log import SequenceLog

        SequenceLog.hint_due = lambda self: None  # type: ignore[method-assign]
        SequenceLog.hint_stale = lambda self, committed: False  # type: ignore[method-assign]
    if args.profile:
        anyio.run(profile)
        return
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    n, runs = (10, 1) if args.quick else (40, 3)
    sizes = [int(x) for x in os.environ.get("BENCH_SIZES", "1,1000,10000").split(",")]
    print("### Warm JSON Lines commit vs the raw floor\n")
    print(
        f"{n} sequential commits per run after two warm-up commits, each followed by the "
        "floor (a plain put of the same encoded bytes, then a create-only 800-byte put); "
        "median per run, "
        f"median of {runs} runs (spread of the per-run ratios).\n"
    )
    stores: list[tuple[str, Callable[[str], AsyncIterator[aiolode.Store]]]] = []
    if args.only in (None, "memory"):
        stores.append(("memory + 5 ms latency", _memory))
    if args.only in (None, "file"):
        stores.append(("FileStore", _files))
    with contextlib.ExitStack() as servers:
        if args.only in (None, "s3"):
            from aiolode.testing.moto_server import run_moto_server

            url = servers.enter_context(run_moto_server())
            stores.append(("moto S3", _s3(url)))
        if args.only in (None, "seaweed"):
            from aiolode.testing.seaweed_server import run_seaweed_server

            weed = servers.enter_context(run_seaweed_server(bucket="commit"))
            stores.append(("SeaweedFS (a real S3 server)", _seaweed(weed)))
        anyio.run(table, stores, sizes, n, runs)
    print()


if __name__ == "__main__":
    main()
