"""Ingestion benchmarks: sustained events/s, emit latency, memory under a stall, commit floor.

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--quick]``. Prints a markdown
section; every figure sits next to its anchors measured in the same run.

1. Sustained events/s with 64 producer tasks into a Quarry-style dataset
   (JSON Lines, hive partitions source/category/day/run_id/event_type), on
   FileStore and on S3 (moto server), for ``Strict`` and ``Buffered`` against
   two hand-written loops over the same dataset: one ``write()`` per event (64
   tasks, so the Dataset's group commit is on their side too) and one
   ``write()`` per 1,000 events (one task: the ceiling of batching). Rate =
   events committed / time until the last one is committed.
2. ``emit`` latency per policy (p50, p99, max) in the same runs.
3. Peak RSS of a producer process while the store stalls for 10 s (every data
   put waits until the stall ends), 64 producers emitting 300,000 events:
   Strict, Buffered (block, drop_newest, 16 MiB buffer) and a hand-written
   unbounded list buffer.
4. A 1,000-row JSON Lines commit vs the raw floor of any commit protocol (a
   plain put of the data, then one small create-only put), sequential, on S3
   (and FileStore).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import anyio

import aiolode
from aiolode import Buffered, Ingestor, Run, Strict

#: Every way a data file is stored (batches are streamed: put_stream).
PUTS = ("put", "put_stream")

PRODUCERS = 64
DAY = datetime(2026, 11, 30, 12, tzinfo=UTC)


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str = ".3g") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def event(p: int, i: int) -> dict[str, Any]:
    """A crawler event of about 200 bytes in JSON."""
    return {
        "url": f"https://shop.example/p/{p}/{i}",
        "status": 200,
        "bytes": 1000 + i,
        "ts": "2026-11-30T12:00:00+00:00",
        "title": f"product {p}-{i}",
    }


def _filled(rec: dict[str, Any], run_id: str, seq: int) -> dict[str, Any]:
    # What the ingestor adds, done by hand for the hand-written loops.
    return {
        **rec,
        "run_id": run_id,
        "seq": seq,
        "event_type": "item",
        "source": "shop",
        "category": "product",
        "day": "2026-11-30",
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# ------------------------------------------------------------- 1-2. throughput
async def run_ingest(
    store: aiolode.Store, name: str, policy: Strict | Buffered, seconds: float
) -> dict[str, float]:
    ds = aiolode.quarry_dataset(name, store)
    await ds.write([_filled(event(0, 0), "warm", 0)])  # warm: the descriptor exists
    run = Run("bench", source="shop", category="product")
    lat: list[float] = []
    async with Ingestor(ds, policy=policy, run=run) as ing:
        t0 = time.perf_counter()
        end = t0 + seconds

        async def producer(p: int) -> None:
            i = 0
            while time.perf_counter() < end:
                t = time.perf_counter()
                await ing.emit(event(p, i), event_type="item", event_time=DAY)
                lat.append(time.perf_counter() - t)
                i += 1

        async with anyio.create_task_group() as tg:
            for p in range(PRODUCERS):
                tg.start_soon(producer, p)
        st = await ing.aclose()
    elapsed = time.perf_counter() - t0
    assert st.written == st.emitted, st
    assert st.dropped == 0, st
    return {
        "rate": st.written / elapsed,
        "p50": pct(lat, 0.5),
        "p99": pct(lat, 0.99),
        "max": max(lat),
        "batches": st.batches,
        "events": st.written,
    }


async def run_loop_each(store: aiolode.Store, name: str, seconds: float) -> dict[str, float]:
    """64 tasks, one write() per event (group commit shares their commit records)."""
    ds = aiolode.quarry_dataset(name, store)
    await ds.write([_filled(event(0, 0), "warm", 0)])
    count = 0
    lat: list[float] = []
    t0 = time.perf_counter()
    end = t0 + seconds

    async def producer(p: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < end:
            t = time.perf_counter()
            await ds.write([_filled(event(p, i), "loop", p * 10**6 + i)])
            lat.append(time.perf_counter() - t)
            count += 1
            i += 1

    async with anyio.create_task_group() as tg:
        for p in range(PRODUCERS):
            tg.start_soon(producer, p)
    elapsed = time.perf_counter() - t0
    return {"rate": count / elapsed, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "max": max(lat)}


async def run_loop_1000(store: aiolode.Store, name: str, seconds: float) -> dict[str, float]:
    """One task, one write() per 1,000 events (prepared in advance): the ceiling."""
    ds = aiolode.quarry_dataset(name, store)
    await ds.write([_filled(event(0, 0), "warm", 0)])
    batch = [_filled(event(0, i), "loop1000", i) for i in range(1000)]
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        await ds.write(batch)
        count += 1000
    return {"rate": count / (time.perf_counter() - t0)}


async def throughput_on(
    label: str, make: Any, seconds: float, runs: int
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, float]]]]:
    rates: dict[str, list[float]] = {k: [] for k in ("strict", "buffered", "each", "ceiling")}
    details: dict[str, list[dict[str, float]]] = {"strict": [], "buffered": [], "each": []}
    for r in range(runs):
        async with make(f"{label}-{r}") as store:
            s = await run_ingest(store, "strict", Strict(), seconds)
            b = await run_ingest(store, "buffered", Buffered(), seconds)
            e = await run_loop_each(store, "each", seconds)
            c = await run_loop_1000(store, "ceiling", seconds)
        for k, v in (("strict", s), ("buffered", b), ("each", e)):
            rates[k].append(v["rate"])
            details[k].append(v)
        rates["ceiling"].append(c["rate"])
    return rates, details


async def bench_throughput(seconds: float, runs: int) -> None:
    import boto3

    from aiolode.testing.moto_server import run_moto_server

    print("### Sustained events/s, 64 producer tasks\n")
    print(
        f"Each producer emits ~200-byte crawler events as fast as it can for {seconds:g} s into "
        "a Quarry-style dataset (JSON Lines, one partition); rate = events committed / time "
        f"until the last is committed (aclose included). Median of {runs} runs (spread). "
        "Anchors, same dataset shape, same run: 64 tasks calling `write()` once per event "
        "(group commit on their side too), and one task calling `write()` per 1,000 events "
        "(the ceiling).\n"
    )
    results: list[tuple[str, dict[str, list[float]], dict[str, list[dict[str, float]]]]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:

        def fs(sub: str) -> aiolode.FileStore:
            os.makedirs(f"{tmp}/{sub}")
            return aiolode.FileStore(f"{tmp}/{sub}")

        results.append(("FileStore", *await throughput_on("fs", fs, seconds, runs)))
    with run_moto_server() as url:
        admin = boto3.client("s3", endpoint_url=url, region_name="us-east-1")

        def s3(bucket: str) -> aiolode.S3Store:
            admin.create_bucket(Bucket=bucket)
            return aiolode.S3Store(bucket, endpoint_url=url, region_name="us-east-1")

        results.append(("moto S3", *await throughput_on("s3", s3, seconds, runs)))

    print(
        "| store | Strict ev/s | Buffered ev/s | loop: 1 write/event ev/s | "
        "loop: 1 write/1,000 events ev/s (ceiling) | Strict / 1-per-event | "
        "Buffered / ceiling |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, rates, _ in results:
        s, b, e, c = (med(rates[k]) for k in ("strict", "buffered", "each", "ceiling"))
        print(
            f"| {label} | {s:,.0f} ({spread(rates['strict'], ',.0f')}) "
            f"| {b:,.0f} ({spread(rates['buffered'], ',.0f')}) "
            f"| {e:,.0f} ({spread(rates['each'], ',.0f')}) "
            f"| {c:,.0f} ({spread(rates['ceiling'], ',.0f')}) | {s / e:.1f}x | {b / c:.2f}x |"
        )
    print()
    print("### `emit` latency per policy (same runs)\n")
    print(
        "| store | policy | p50 ms | p99 ms | max ms | events per commit |\n"
        "|---|---|---|---|---|---|"
    )
    for label, _, details in results:
        for k, name in (
            ("strict", "Strict"),
            ("buffered", "Buffered"),
            ("each", "loop: 1 write/event"),
        ):
            ds_ = details[k]
            per = (
                f"{med([d['events'] / d['batches'] for d in ds_]):.0f}"
                if "batches" in ds_[0]
                else "1"
            )
            print(
                f"| {label} | {name} | {med([d['p50'] for d in ds_]) * 1e3:.3f} "
                f"| {med([d['p99'] for d in ds_]) * 1e3:.2f} "
                f"| {med([d['max'] for d in ds_]) * 1e3:.1f} | {per} |"
            )
    print()


# ------------------------------------------------------------------- 3. stall
def _rss_mib() -> float:
    """Resident set size now (``ru_maxrss`` is the peak since start: an earlier
    peak, e.g. the warm-up write, would hide the buffer's growth)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def stall_child(mode: str, stall: float, events: int, root: str) -> dict[str, Any]:
    from aiolode.testing import FaultInjectingStore, Hook, Rule

    end = [0.0]  # no stall until the producers start

    async def hold(call: Any) -> None:
        await anyio.sleep(max(0.0, end[0] - time.monotonic()))

    async with aiolode.FileStore(root) as fs:
        store = FaultInjectingStore(fs, [Rule(op=PUTS, key="*/data/*", action=Hook(hold))])
        ds = aiolode.quarry_dataset("d", store)
        await ds.write([_filled(event(0, 0), "warm", 0)])
        base = _rss_mib()
        per = events // PRODUCERS
        out: dict[str, Any] = {"mode": mode, "base": base, "peak_in_stall": base}
        end[0] = time.monotonic() + stall
        # Producers stop shortly after the stall (Strict would take minutes to
        # emit them all at its commit rate; the stall is what is measured).
        stop = end[0] + 0.5

        async def sample() -> None:
            # RSS every 50 ms while the store stalls: its maximum.
            while time.monotonic() < end[0] - 0.05:
                out["peak_in_stall"] = max(out["peak_in_stall"], _rss_mib())
                await anyio.sleep(0.05)
            out["emitted_in_stall"] = emitted()

        if mode == "naive":
            buf: list[dict[str, Any]] = []
            done = anyio.Event()
            sent = 0

            def emitted() -> int:
                return sent

            async def flusher() -> None:
                while not (done.is_set() and not buf):
                    if buf:
                        batch = buf[:]
                        buf.clear()
                        await ds.write(batch)
                    else:
                        await anyio.sleep(0.01)

            async def naive_producer(p: int) -> None:
                nonlocal sent
                for i in range(per):
                    if time.monotonic() > stop:
                        break
                    buf.append(_filled(event(p, i), "naive", p * per + i))
                    sent += 1
                    if i % 64 == 0:
                        await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as outer:
                outer.start_soon(flusher)
                outer.start_soon(sample)
                async with anyio.create_task_group() as tg:
                    for p in range(PRODUCERS):
                        tg.start_soon(naive_producer, p)
                done.set()
            out.update(written=sent, dropped=0)
        else:
            # Defaults but a 16 MiB buffer: batches of flush_rows=10,000 (~2.5 MB).
            policy: Strict | Buffered = (
                Strict() if mode == "strict" else Buffered(max_buffer_bytes=16 << 20, on_full=mode)  # type: ignore[arg-type]
            )
            run = Run("stall", source="shop", category="product")
            async with Ingestor(ds, policy=policy, run=run) as ing:

                def emitted() -> int:
                    return ing.stats.emitted

                async def producer(p: int) -> None:
                    for i in range(per):
                        if time.monotonic() > stop:
                            break
                        await ing.emit(event(p, i), event_type="item", event_time=DAY)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(sample)
                    for p in range(PRODUCERS):
                        tg.start_soon(producer, p)
            st = ing.stats
            out.update(written=st.written, dropped=st.dropped, balanced=st.balanced)
        out["after"] = _rss_mib()
        return out


def bench_stall(stall: float, events: int) -> None:
    print(f"### Peak RSS of a producer process, store stalled for {stall:g} s\n")
    print(
        f"64 producers emit up to {events:,} events (~200 B each in JSON) as fast as they can "
        f"into FileStore whose data puts all wait until the stall ends ({stall:g} s after the "
        "start), and stop 0.5 s after it; then everything held is flushed. RSS above the "
        "process's baseline (interpreter, dataset open, warm-up write), sampled every 50 ms "
        "during the stall (its maximum), and after the flush. Buffered: default policy "
        "with `max_buffer_bytes=16 MiB`. Anchor: a hand-written unbounded list that a "
        "flusher task writes out (one `write()` of everything it holds).\n"
    )
    print(
        "| producer side | events emitted during the stall | peak RSS growth during the stall "
        "MiB | RSS growth after the flush MiB | written | dropped |"
    )
    print("|---|---|---|---|---|---|")
    for mode in ("strict", "block", "drop_newest", "naive"):
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            proc = subprocess.run(
                [sys.executable, __file__, "--stall-child", mode, str(stall), str(events), tmp],
                check=True,
                capture_output=True,
                text=True,
            )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        label = {
            "strict": "Strict",
            "block": "Buffered, on_full=block",
            "drop_newest": "Buffered, on_full=drop_newest",
            "naive": "hand-written unbounded list",
        }[mode]
        print(
            f"| {label} | {r['emitted_in_stall']:,} | {r['peak_in_stall'] - r['base']:.0f} "
            f"| {r['after'] - r['base']:.0f} | {r['written']:,} | {r['dropped']:,} |"
        )
    print()


# ------------------------------------------------------------ 4. commit floor
def rows_1000() -> list[dict[str, Any]]:
    return [_filled(event(i % 64, i), "floor", i) for i in range(1000)]


async def _paired(store: aiolode.Store, rows: list[Any], n: int) -> tuple[float, float, float]:
    """Commit / floor, interleaved one by one so the machine's drift hits both:
    (median seconds per commit, per floor pair, per commit with an idempotency key)."""
    ds = aiolode.Dataset("c", store, codec=aiolode.JSONL())
    await ds.write(rows)  # warm: the steady state of a long-lived writer
    body = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    commit: list[float] = []
    floor: list[float] = []
    keyed: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        await ds.write(rows)
        t1 = time.perf_counter()
        # A plain put of the data (a fresh key) and a create-only commit point.
        await store.put(f"floor/{i}.jsonl", body, mode="overwrite")
        await store.put(f"floor/{i}.json", b"{}" * 400, mode="create")
        t2 = time.perf_counter()
        await ds.write(rows, idempotency_key=f"bench/{i}")
        t3 = time.perf_counter()
        commit.append(t1 - t0)
        floor.append(t2 - t1)
        keyed.append(t3 - t2)
    return med(commit), med(floor), med(keyed)


async def bench_floor(n: int, runs: int) -> None:
    import boto3

    from aiolode.testing.moto_server import run_moto_server

    print("### 1,000-row JSON Lines commit vs the raw floor\n")
    print(
        f"{n} sequential commits of the same 1,000 rows (~250 KB of JSON Lines, "
        "unpartitioned, the default XXH3 checksum) after one warm-up, each followed by the "
        "floor of any commit protocol on the same store: a plain put of the data, then one "
        "small create-only put "
        f"(interleaved, so load drift hits both), then the same commit with an "
        "`idempotency_key` (what the ingestor would pay per batch to use dataset keys). "
        f"Median per run; median of {runs} runs (spread of the per-run ratios).\n"
    )
    rows = rows_1000()
    print(
        "| store | commits/s | raw floor /s | commit / floor | commits/s with "
        "`idempotency_key` | keyed / floor |"
    )
    print("|---|---|---|---|---|---|")

    def line(label: str, pairs: list[tuple[float, float, float]]) -> None:
        c, f, k = (med([p[i] for p in pairs]) for i in range(3))
        ratios = [p[1] / p[0] for p in pairs]
        kratios = [p[1] / p[2] for p in pairs]
        print(
            f"| {label} | {1 / c:.1f} | {1 / f:.1f} | {med(ratios):.2f}x "
            f"({spread(ratios, '.2f')}) | {1 / k:.1f} | {med(kratios):.2f}x "
            f"({spread(kratios, '.2f')}) |"
        )

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        pairs = []
        for r in range(runs):
            os.makedirs(f"{tmp}/{r}")
            async with aiolode.FileStore(f"{tmp}/{r}") as fs:
                pairs.append(await _paired(fs, rows, n))
        line("FileStore", pairs)
    with run_moto_server() as url:
        admin = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        pairs = []
        for r in range(runs):
            admin.create_bucket(Bucket=f"floor-{r}")
            async with aiolode.S3Store(
                f"floor-{r}", endpoint_url=url, region_name="us-east-1"
            ) as s3:
                pairs.append(await _paired(s3, rows, n))
        line("moto S3", pairs)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, one each")
    parser.add_argument("--stall-child", nargs=4, metavar=("MODE", "SECONDS", "EVENTS", "DIR"))
    args = parser.parse_args()
    if args.stall_child:
        mode, seconds, events, root = args.stall_child
        print(json.dumps(anyio.run(stall_child, mode, float(seconds), int(events), root)))
        return
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    q = args.quick
    print("## Ingestion\n")
    anyio.run(bench_throughput, 1.0 if q else 4.0, 1 if q else 3)
    bench_stall(2.0 if q else 10.0, 60_000 if q else 300_000)
    anyio.run(bench_floor, 10 if q else 50, 1 if q else 5)


if __name__ == "__main__":
    main()
