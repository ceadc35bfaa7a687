"""Volume benchmarks: staging throughput, commit cost vs history, read_at lookup.

Run: ``.venv/bin/python benchmarks/bench_volume.py [--quick]``. Prints a markdown
section; every figure sits next to its anchor measured in the same run.

1. Staging N x 256 KiB blocks at concurrency 32 vs N raw concurrent puts of the
   same bytes on the same store (memory, and memory behind a 5 ms LatencyStore).
2. Committing one new block into a volume that already holds 10, 10^3, 10^5 and
   10^6 blocks: latency (median, p99, max) and bytes written per commit, on a
   MemoryStore (CPU cost) and a 2 ms LatencyStore (round trips). The big volumes
   are built fast by committing many (unwritten) block references per commit:
   commits never read block objects.
3. ``read_at`` of 16 bytes inside one block at 10^3 vs 10^6 committed blocks, and
   the index lookup alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from aiolode import BlockRef, MemoryStore, Store, Volume
from aiolode.testing import CountingStore, LatencyStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

KIB = 1024


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}"


async def bounded(n: int, limit: int, fn: Callable[[int], Awaitable[Any]]) -> None:
    lim = anyio.CapacityLimiter(limit)

    async def one(i: int) -> None:
        async with lim:
            await fn(i)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)


# ----------------------------------------------------------------------- staging
async def time_raw_puts(store: Store, n_blocks: int, block: bytes) -> float:
    t0 = time.perf_counter()
    await bounded(n_blocks, 32, lambda i: store.put(f"raw/{i}", block))
    return time.perf_counter() - t0


async def time_staging(store: Store, n_blocks: int, block: bytes) -> float:
    vol = Volume("stage", store, n_blocks * len(block))
    t0 = time.perf_counter()
    await bounded(n_blocks, 32, lambda i: vol.stage_write_at(i * len(block), block))
    return time.perf_counter() - t0


async def bench_staging(n_blocks: int, runs: int) -> None:
    print("### Staging 256 KiB blocks at concurrency 32 vs raw concurrent puts\n")
    print(f"{n_blocks} blocks x 256 KiB per run; median of {runs} runs (spread min-max).\n")
    print("| store | raw puts (MiB/s) | stage_write_at (MiB/s) | paired ratio |")
    print("|---|---|---|---|")
    block = bytes(range(256)) * KIB  # 256 KiB
    total_mib = n_blocks * len(block) / (1 << 20)
    for label, make in [
        ("memory", lambda: MemoryStore()),
        ("memory + 5 ms latency", lambda: LatencyStore(MemoryStore(), 0.005)),
    ]:
        raw_t: list[float] = []
        vol_t: list[float] = []
        for r in range(runs):
            # Alternate the order and pair the runs: on a shared machine the
            # background load drifts, and a paired ratio cancels most of it.
            if r % 2 == 0:
                raw_t.append(await time_raw_puts(make(), n_blocks, block))
                vol_t.append(await time_staging(make(), n_blocks, block))
            else:
                vol_t.append(await time_staging(make(), n_blocks, block))
                raw_t.append(await time_raw_puts(make(), n_blocks, block))
        raw = [total_mib / t for t in raw_t]
        staged = [total_mib / t for t in vol_t]
        ratios = [rt / vt for rt, vt in zip(raw_t, vol_t, strict=True)]
        print(
            f"| {label} | {statistics.median(raw):.0f} ({spread(raw)}) "
            f"| {statistics.median(staged):.0f} ({spread(staged)}) "
            f"| {statistics.median(ratios):.2f}x ({spread(ratios)}) |"
        )
    print()


# ------------------------------------------------------------------------ commit
BLOCK_LEN = 64


def fake_refs(vol: Volume, start: int, count: int) -> list[BlockRef]:
    """Block references as ``stage_write_at`` seals them, for blocks never written
    (commits never read block objects)."""
    prefix = f"volumes/{vol.id}/blocks/"
    checksum = None if vol._checksum is None else "xxh3_128:" + "0" * 32
    now = datetime.now(UTC)
    return [
        vol._sealed(i * BLOCK_LEN, BLOCK_LEN, f"{prefix}{i:032x}", checksum, now)
        for i in range(start, start + count)
    ]


async def build(vol: Volume, n: int) -> None:
    batch = 50_000
    done = 0
    while done < n:
        k = min(batch, n - done)
        await vol.commit(fake_refs(vol, done, k))
        done += k


async def measure_commits(
    vol: Volume, counting: CountingStore, start: int, commits: int
) -> tuple[list[float], list[float], list[int], list[int]]:
    lat: list[float] = []
    cpu: list[float] = []
    written: list[int] = []
    calls: list[int] = []
    for j in range(commits):
        refs = fake_refs(vol, start + j, 1)
        with counting.measure() as m:
            c0 = time.process_time()
            t0 = time.perf_counter()
            await vol.commit(refs)
            lat.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        written.append(m.counts.bytes_written)
        calls.append(m.counts.total_calls)
    return lat, cpu, written, calls


async def bench_commit(sizes: list[int], commits: int, latency_sizes: list[int]) -> dict[int, Any]:
    print("### Commit one block vs blocks already committed\n")
    print(
        f"{commits} consecutive one-block commits per size; wall latency in ms, process CPU "
        "ms (excludes time preempted by other processes on a shared machine), bytes written "
        "per commit (segment + root + hint, plus amortised merges).\n"
    )
    print(
        "| committed blocks | store | median ms | p99 ms | max ms | CPU median ms | CPU p99 ms "
        "| median bytes | p99 bytes | max bytes | calls/commit | ratio vs 10: median, p99 CPU, "
        "median bytes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    vols: dict[int, Any] = {}
    base: dict[str, tuple[float, float, float]] = {}
    for label, lat_s, size_list in [
        ("memory", 0.0, sizes),
        ("memory + 2 ms latency", 0.002, latency_sizes),
    ]:
        for n in size_list:
            mem = MemoryStore()
            inner: Store = LatencyStore(mem, lat_s) if lat_s else mem
            counting = CountingStore(inner)
            total = (n + commits + 10) * BLOCK_LEN
            vol = Volume(f"c{n}", counting, total)
            await build(Volume(f"c{n}", mem, total), n)
            await vol.latest()  # load the index once, as a long-lived writer has it
            lat, cpu, written, calls = await measure_commits(vol, counting, n, commits)
            med = statistics.median(lat) * 1e3
            cpu99 = pct(cpu, 0.99) * 1e3
            mbytes = statistics.median(written)
            b = base.setdefault(label, (med, cpu99, mbytes))
            print(
                f"| {n:,} | {label} | {med:.2f} | {pct(lat, 0.99) * 1e3:.2f} "
                f"| {max(lat) * 1e3:.2f} | {statistics.median(cpu) * 1e3:.2f} | {cpu99:.2f} "
                f"| {mbytes:.0f} | {pct([float(w) for w in written], 0.99):.0f} | {max(written)} "
                f"| {statistics.median(calls):.0f} "
                f"| {med / b[0]:.2f}x, {cpu99 / b[1]:.2f}x, {mbytes / b[2]:.2f}x |"
            )
            if not lat_s:
                vols[n] = (mem, total)
    print()
    return vols


# -------------------------------------------------------------------------- read
async def bench_read(vols: dict[int, Any], sizes: list[int], reads: int, runs: int) -> None:
    print("### read_at lookup: 16 bytes inside one block\n")
    print(
        f"{reads} reads at random committed blocks per run, median of {runs} runs (µs per "
        "read, spread min-max). `lookup` is the index search alone (no store call). Wall "
        "time and process CPU time (CPU excludes time preempted by other processes on a "
        "shared machine).\n"
    )
    print(
        "| committed blocks | read_at wall µs | read_at CPU µs | lookup CPU µs "
        "| segments searched | ratio vs first: read wall, read CPU, lookup CPU |"
    )
    print("|---|---|---|---|---|---|")
    import random

    first: tuple[float, float, float] | None = None
    for n in sizes:
        mem, total = vols[n]
        vol = Volume(f"c{n}", mem, total)
        snap = await vol.latest()
        rng = random.Random(n)
        picks = [rng.randrange(n) for _ in range(reads)]
        prefix = f"volumes/{vol.id}/blocks/"
        for i in set(picks):  # only the blocks we read need objects
            await mem.put(f"{prefix}{i:032x}", bytes(BLOCK_LEN), mode="overwrite")
        await vol.read_at(snap.id, picks[0] * BLOCK_LEN, 1)  # merges frozen segments once
        state = await vol._state(snap)
        wall: list[float] = []
        cpu: list[float] = []
        lookup_cpu: list[float] = []
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            for i in picks:
                await vol.read_at(snap.id, i * BLOCK_LEN + 8, 16)
            wall.append((time.perf_counter() - t0) / reads * 1e6)
            cpu.append((time.process_time() - c0) / reads * 1e6)
            c0 = time.process_time()
            for i in picks:
                vol._index.pieces(state, i * BLOCK_LEN + 8, 16)
            lookup_cpu.append((time.process_time() - c0) / reads * 1e6)
        med = (statistics.median(wall), statistics.median(cpu), statistics.median(lookup_cpu))
        if first is None:
            first = med
        print(
            f"| {n:,} | {med[0]:.1f} ({spread(wall)}) | {med[1]:.1f} ({spread(cpu)}) "
            f"| {med[2]:.2f} ({spread(lookup_cpu)}) | {len(vol._index.search_runs(state))} "
            f"| {med[0] / first[0]:.2f}x, {med[1] / first[1]:.2f}x, {med[2] / first[2]:.2f}x |"
        )
    print()


async def main(quick: bool) -> None:
    print("## Volume\n")
    print(f"Python {sys.version.split()[0]}, asyncio backend; `--quick`: {quick}.\n")
    await bench_staging(512 if quick else 4096, 3 if quick else 7)
    sizes = [10, 1_000, 100_000] if quick else [10, 1_000, 100_000, 1_000_000]
    vols = await bench_commit(sizes, 100 if quick else 500, [10, sizes[-1]])
    await bench_read(vols, [1_000, sizes[-1]], 500 if quick else 3000, 3 if quick else 7)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for CI and iteration")
    anyio.run(main, ap.parse_args().quick)
