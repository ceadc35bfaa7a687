"""Checksum candidates for the default: raw speed, GIL release, end-to-end cost.

Run: ``.venv/bin/python benchmarks/bench_checksum.py [--quick]``. Prints a markdown
section; every figure sits next to its anchor measured in the same run.

1. Raw throughput of each algorithm as aiolode calls it (``Checksum.digest``: a
   fresh hasher, one update, the hex digest) on 1 KiB, 64 KiB, 4 MiB and 64 MiB
   buffers. Anchor: copying the same buffer into a preallocated one (memcpy),
   the floor of touching every byte once.
2. Event-loop stall while ``compute_checksum`` hashes 256 MiB in a worker thread:
   a ticker task sleeps 1 ms in a loop and records its longest overshoot. An
   algorithm that holds the GIL while it hashes stalls the loop for the whole
   hash; one that releases it stalls it about as long as an idle loop does.
3. End-to-end cost of each candidate against ``checksum=None``, the two figures
   issue 10 names: (a) the 8 M-row Parquet write through a Dataset on FileStore
   (the table and codec of bench_dataset.py's Parquet figure); (b) a 1,000-row
   JSONL commit (``Dataset(..., codec=JSONL())``, ``await ds.write(rows)``) on
   MemoryStore and on FileStore. Every candidate operation runs between two
   ``checksum=None`` operations and is divided by one of them (picked at random):
   paired, adjacent ratios cancel the machine's drift. The figure is the median
   of those ratios, with a bootstrap 95% interval and the interquartile range.
   ``none (A/A)`` is a second ``checksum=None`` dataset measured as a candidate:
   its figures are the noise floor. Also printed: the share of each write spent
   inside the candidate's hasher, timed within the same writes (the checksum's
   own cost; other load on the machine inflates it no more than the rest of the
   write) and, for Parquet, the overhead predicted from raw throughput.
4. What the default changes for ``Volume.read_at`` (not one of the issue's
   figures): small reads fetch and hash whole blocks once blocks have digests.

The default is the fastest candidate (raw 4 MiB throughput, the size of the
chunks the write paths hash) whose median wall-time overhead and time inside
the hasher are both at most 3% on all three end-to-end figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
from bench_dataset import batch_rows, random_int64

import aiolode
from aiolode import Checksum, Dataset
from aiolode.checksum import DEFAULT_CHECKSUM, compute_checksum

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiolode.checksum import Hasher

LIMIT = 0.03  # the issue's bar: at most 3% slower than checksum=None
SIZES = [("1 KiB", 1 << 10), ("64 KiB", 64 << 10), ("4 MiB", 4 << 20), ("64 MiB", 64 << 20)]


def candidates() -> list[Checksum]:
    """Every algorithm measured: the new ones, then the stdlib ones for reference."""
    return [
        aiolode.XXH3(),
        aiolode.CRC32C(),
        aiolode.Blake3(),
        aiolode.CRC32(),
        aiolode.SHA256(),
        aiolode.Blake2b(),
        aiolode.MD5(),
    ]


def end_to_end() -> list[Checksum]:
    """The candidates measured end to end (the reference SHA-256 included)."""
    return [
        c for c in candidates() if c.name in {"xxh3_128", "crc32c", "blake3", "crc32", "sha256"}
    ]


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str = ".3g") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def bootstrap_ci(values: list[float], n: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the median (seeded: reproducible)."""
    rng = random.Random(0)
    meds = sorted(med(rng.choices(values, k=len(values))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


# -------------------------------------------------------------- 1. raw throughput
def _throughput(fn: Callable[[], object], nbytes: int, reps: int, min_time: float) -> float:
    """Best MB/s of ``reps`` timings of a loop long enough to be timed: on a shared
    machine the least disturbed timing is the closest to the algorithm's own speed."""
    n = 1
    while True:  # calibrate: calls per timing
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_time / 4:
            break
        n *= 4
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append(n * nbytes / (time.perf_counter() - t0) / 1e6)
    return max(out)


def bench_raw(quick: bool) -> dict[str, dict[str, float]]:
    """Print the raw table; return each algorithm's MB/s by buffer size label."""
    reps, min_time = (3, 0.02) if quick else (7, 0.1)
    bufs = {label: os.urandom(n) for label, n in SIZES}
    print("### Raw throughput, MB/s (`Checksum.digest`: new hasher, one update, hex digest)\n")
    print(
        f"Best of {reps} timed loops per cell on random bytes, one thread; the same buffer "
        "is hashed again and again, so up to 4 MiB it sits in the CPU caches (as a chunk the "
        "encoder has just produced does) and 64 MiB streams from memory. Anchor: copying the "
        "same buffer into a preallocated one (memcpy); in brackets, the hash's time as a "
        "multiple of the copy's.\n"
    )
    print("| algorithm | " + " | ".join(label for label, _ in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    copy: dict[str, float] = {}
    for label, n in SIZES:
        src, dst = bufs[label], memoryview(bytearray(n))

        def memcpy(s: bytes = src, d: memoryview = dst) -> None:
            d[:] = s

        copy[label] = _throughput(memcpy, n, reps, min_time)
    print("| copy (anchor) | " + " | ".join(f"{copy[label]:,.0f}" for label, _ in SIZES) + " |")
    out: dict[str, dict[str, float]] = {}
    for algo in candidates():
        cells = []
        for label, n in SIZES:
            buf = bufs[label]
            mbs = _throughput(lambda a=algo, b=buf: a.digest(b), n, reps, min_time)
            cells.append(f"{mbs:,.0f} ({copy[label] / mbs:.1f}x)")
            out.setdefault(label, {})[algo.name] = mbs
        print(f"| {algo.name} | " + " | ".join(cells) + " |")
    print()
    return out


# ----------------------------------------------------------------- 2. GIL / stall
async def _stall_during(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Longest overshoot of a 1 ms ticker while ``work`` runs, and its duration."""
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
        await anyio.sleep(0.02)
        t0 = time.perf_counter()
        await work()
        elapsed = time.perf_counter() - t0
        stop.set()
    return worst, elapsed


def bench_gil(quick: bool) -> None:
    runs = 3 if quick else 7
    data = os.urandom(256 << 20)  # long enough a hash to tell a held GIL from jitter
    mutable = bytearray(data)
    print("### Event-loop stall while a worker thread hashes 256 MiB\n")
    print(
        "`await compute_checksum(algo, buf)` (a worker thread) while a ticker task sleeps "
        f"1 ms in a loop on asyncio; median of {runs} runs (spread), ms. A hash holding the GIL "
        "would stall the loop for about its whole duration (GIL column: held when the stall "
        "minus the idle anchor exceeds half the hash time). Anchor: the same ticker on an idle "
        "loop for as long.\n"
    )
    print("| algorithm | input | hash time (ms) | longest stall (ms) | idle anchor (ms) | GIL |")
    print("|---|---|---|---|---|---|")
    rows: list[tuple[Checksum, str, bytes | bytearray]] = [(a, "bytes", data) for a in candidates()]
    # CRC32C copies non-bytes input in 4 MiB pieces (google-crc32c reads only bytes).
    rows.append((aiolode.CRC32C(), "bytearray", mutable))
    for algo, kind, buf in rows:
        stalls: list[float] = []
        took: list[float] = []
        idle: list[float] = []
        for _ in range(runs):
            s, e = anyio.run(_stall_during, lambda a=algo, b=buf: compute_checksum(a, b))
            stalls.append(s * 1000)
            took.append(e * 1000)
            idle.append(anyio.run(_stall_during, lambda e=e: anyio.sleep(e))[0] * 1000)
        # Held: the loop stalled (beyond what the idle loop shows) for most of the hash.
        held = med(stalls) - med(idle) > 0.5 * med(took)
        print(
            f"| {algo.name} | {kind} | {med(took):.1f} ({spread(took, '.1f')}) "
            f"| {med(stalls):.2f} ({spread(stalls, '.1f')}) | {med(idle):.2f} "
            f"({spread(idle, '.1f')}) | {'held' if held else 'released'} |"
        )
    print()


# ------------------------------------------------------------- 3. end to end
class TimedChecksum(Checksum):
    """A candidate that also adds up the time its hashers spend in ``update``:
    the checksum's own cost inside each real write, whatever else loads the machine
    (the GIL hand-over after a large update included)."""

    def __init__(self, inner: Checksum) -> None:
        self.inner = inner
        self.name = inner.name  # recorded and verified as the real algorithm
        self.spent = 0.0

    def hasher(self) -> Hasher:
        return _TimedHasher(self, self.inner.hasher())


class _TimedHasher:
    __slots__ = ("_h", "_owner")

    def __init__(self, owner: TimedChecksum, h: Hasher) -> None:
        self._owner = owner
        self._h = h

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        t0 = time.perf_counter()
        self._h.update(data)
        self._owner.spent += time.perf_counter() - t0

    def hexdigest(self) -> str:
        return self._h.hexdigest()


if TYPE_CHECKING:
    Thunk = Callable[[], Awaitable[object]]


class Figure(NamedTuple):
    """One candidate on one end-to-end figure."""

    ratio: float  # median wall time / checksum=None wall time
    ratio_lo: float  # lower end of its bootstrap 95% interval
    share: float  # median share of the operation spent inside the hasher


class Sandwich:
    """Paired measurements: every candidate operation runs between two baseline
    (``checksum=None``) operations and is compared with one of them, picked by a
    seeded coin, so load that drifts over the seconds of a run (2 cores shared
    with other work) cancels. One neighbour, not their mean: the mean of two
    catches a scheduler stall twice as often as the candidate does, which would
    bias every ratio low (a one-to-one comparison is symmetric: A/A gives 1).
    Also kept: the share of each candidate operation spent inside its hasher."""

    def __init__(self, names: list[str]) -> None:
        self._coin = random.Random(4)
        self.ratio: dict[str, list[float]] = {n: [] for n in names}  # wall / neighbour's
        self.share: dict[str, list[float]] = {n: [] for n in names}  # in hasher / wall
        self.wall: dict[str, list[float]] = {n: [] for n in [*names, "none"]}

    async def slot(
        self, baseline: Thunk, ops: list[tuple[str, Thunk, TimedChecksum | None]]
    ) -> None:
        t0 = time.perf_counter()
        await baseline()
        prev = time.perf_counter() - t0
        self.wall["none"].append(prev)
        for name, fn, timer in ops:
            spent0 = timer.spent if timer else 0.0
            t0 = time.perf_counter()
            await fn()
            t = time.perf_counter() - t0
            if timer is not None:
                self.share[name].append((timer.spent - spent0) / t)
            t0 = time.perf_counter()
            await baseline()
            nxt = time.perf_counter() - t0
            self.wall["none"].append(nxt)
            self.wall[name].append(t)
            self.ratio[name].append(t / (prev if self._coin.random() < 0.5 else nxt))
            prev = nxt

    def table(self, unit: str, scale: float) -> dict[str, Figure]:
        """Print the rows; return each candidate's figures."""
        print(
            f"| checksum | {unit} | wall-time overhead: median (95% CI) | IQR "
            "| time inside the hasher, share of the op: median (IQR) |"
        )
        print("|---|---|---|---|---|")
        w = self.wall["none"]
        print(f"| none (anchor) | {med(w) * scale:.3f} ({spread([x * scale for x in w])}) | | | |")
        out: dict[str, Figure] = {}
        for name, r in self.ratio.items():
            lo, hi = bootstrap_ci(r)
            q = statistics.quantiles(r, n=4)
            sh = self.share[name]
            share = "-"
            if sh:
                qs = statistics.quantiles(sh, n=4)
                share = f"{med(sh) * 100:.2f}% ({qs[0] * 100:.2f}-{qs[2] * 100:.2f}%)"
            wn = self.wall[name]
            print(
                f"| {name} | {med(wn) * scale:.3f} ({spread([x * scale for x in wn])}) "
                f"| {pct(med(r))} ({pct(lo)} to {pct(hi)}) | {pct(q[0])} to {pct(q[2])} "
                f"| {share} |"
            )
            out[name] = Figure(med(r), lo, med(sh) if sh else 0.0)
        print()
        return out


def _configs(names: set[str] | None = None) -> list[tuple[str, TimedChecksum | None]]:
    """The candidates, plus a second checksum=None dataset: its figures are the noise floor."""
    return [
        ("none (A/A)", None),
        *[(c.name, TimedChecksum(c)) for c in end_to_end() if names is None or c.name in names],
    ]


def parquet_table(rows: int) -> Any:
    """The table of bench_dataset.py's Parquet figure (same recipe, same sizes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa.table(
        {
            "id": pa.array(range(rows), type=pa.int64()),
            "value": pc.multiply(pc.cast(random_int64(rows), pa.float64(), safe=False), 1e-12),
            "cat": pc.cast(pc.bit_wise_and(random_int64(rows), 1023), pa.string()),
        }
    )


async def bench_parquet(
    rows: int, slots: int, raw: dict[str, dict[str, float]], tmp: str
) -> dict[str, Figure]:
    table = parquet_table(rows)
    mib = table.nbytes / (1 << 20)
    # The three new candidates only: each Parquet write takes a second or more, and
    # crc32 and sha256 are measured end to end by the JSONL figures.
    configs = _configs({"xxh3_128", "crc32c", "blake3"})
    timers = dict(configs)
    res = Sandwich([n for n, _ in configs])
    rng = random.Random(1)
    size = 0
    for s in range(slots):
        root = Path(tmp) / f"pq{s}"
        root.mkdir()
        try:
            async with aiolode.FileStore(root) as fs:
                sets: dict[str, Dataset] = {}
                for i, (name, algo) in enumerate([("none", None), *configs]):
                    sets[name] = Dataset(
                        f"pq{i}",
                        fs,
                        codec=aiolode.Parquet(compression="zstd", row_group_size=1 << 20),
                        checksum=algo,
                    )
                    await sets[name].write(table.slice(0, 10))  # warm, as bench_dataset.py does
                order = [n for n, _ in configs]
                rng.shuffle(order)
                gc.collect()
                await res.slot(
                    lambda d=sets["none"]: d.write(table),
                    [(n, lambda d=sets[n]: d.write(table), timers[n]) for n in order],
                )
                size = (await sets["none"].latest()).files[0].size
        finally:
            await anyio.to_thread.run_sync(shutil.rmtree, root)
    print(f"### (a) {rows:,}-row Parquet write through a Dataset on FileStore\n")
    print(
        f"{rows:,} rows ({mib:.0f} MiB in Arrow, {size / (1 << 20):.0f} MiB of Parquet), zstd, "
        "row groups of 1 Mi rows: the table and codec of bench_dataset.py's Parquet figure. "
        f"{slots} slots; in each, the candidates run in shuffled order and every candidate "
        "write sits between two `checksum=None` writes (the anchor). Wall-time overhead = "
        "candidate time / one neighbour's time (picked at random) - 1: median over slots "
        "(bootstrap 95% interval) and interquartile range; `none (A/A)`, a second "
        "`checksum=None` dataset, shows the noise floor. Time inside the hasher: the "
        "candidate's `update` calls timed inside the very same writes, as a share of each "
        "write's wall time (median and IQR): the checksum's own cost, which the load on the "
        "machine inflates no more than the rest of the write. Predicted = Parquet bytes / "
        "the raw 64 MiB throughput / the anchor's wall time.\n"
    )
    out = res.table("seconds", 1.0)
    base = med(res.wall["none"])
    preds = ", ".join(
        f"{n} {size / 1e6 / raw['64 MiB'][n] / base * 100:+.2f}%" for n, t in configs if t
    )
    print(f"Predicted from raw throughput: {preds}.\n")
    return out


async def bench_jsonl(where: str, slots: int, per_store: int, tmp: str) -> dict[str, Figure]:
    rows = batch_rows(1000)
    body = len(aiolode.JSONL().encode(rows).data)
    configs = _configs()
    timers = dict(configs)
    res = Sandwich([n for n, _ in configs])
    rng = random.Random(2)
    done = 0
    while done < slots:
        # A fresh store every `per_store` slots bounds memory (MemoryStore) and disk.
        async with contextlib.AsyncExitStack() as stack:
            if where == "MemoryStore":
                store: aiolode.Store = aiolode.MemoryStore()
            else:
                root = Path(tmp) / f"j{done}"
                root.mkdir()
                stack.push_async_callback(anyio.to_thread.run_sync, shutil.rmtree, root)
                store = await stack.enter_async_context(aiolode.FileStore(root))
            sets: dict[str, Dataset] = {}
            for i, (name, algo) in enumerate([("none", None), *configs]):
                sets[name] = Dataset(f"j{i}", store, codec=aiolode.JSONL(), checksum=algo)
                await sets[name].write(rows)  # warm: the steady state of a long-lived writer
            for _ in range(min(per_store, slots - done)):
                order = [n for n, _ in configs]
                rng.shuffle(order)
                await res.slot(
                    lambda d=sets["none"]: d.write(rows),
                    [(n, lambda d=sets[n]: d.write(rows), timers[n]) for n in order],
                )
                done += 1
    print(f"### (b) 1,000-row JSONL commit on {where}\n")
    print(
        f"`await ds.write(rows)` of bench_dataset.py's 1,000-row batch ({body / 1000:.0f} KB "
        f"of JSON Lines) on warm Datasets; {slots} slots, each one commit per candidate "
        "between two `checksum=None` commits, as in (a).\n"
    )
    return res.table("ms", 1000.0)


async def bench_volume_reads(slots: int, tmp: str) -> None:
    """What the default changes for Volume range reads (not one of the issue's figures)."""
    block, nblocks, length = 4 << 20, 16, 4096
    default = DEFAULT_CHECKSUM()
    root = Path(tmp) / "vol"
    root.mkdir()
    async with aiolode.FileStore(root) as fs:
        vols: dict[str, tuple[aiolode.Volume, str]] = {}
        for i, (name, algo) in enumerate([("none", None), (default.name, default)]):
            vol = aiolode.Volume(f"v{i}", fs, nblocks * block, checksum=algo)
            refs = [await vol.stage_write_at(b * block, os.urandom(block)) for b in range(nblocks)]
            vols[name] = (vol, (await vol.commit(refs)).id)
        rng = random.Random(3)
        res = Sandwich([default.name])
        vn, sn = vols["none"]
        vd, sd = vols[default.name]
        for _ in range(slots):
            off = rng.randrange(0, nblocks * block - length)
            await res.slot(
                lambda o=off: vn.read_at(sn, o, length),
                [(default.name, lambda o=off: vd.read_at(sd, o, length), None)],
            )
    print("### Volume reads: what the default changes (not one of the issue's figures)\n")
    print(
        f"`Volume.read_at(snapshot, offset, {length})` at random offsets of a volume of "
        f"{nblocks} blocks of {block >> 20} MiB on FileStore, {slots} slots as in (a), the "
        f"anchor being `checksum=None` and the candidate the default. A digest "
        "covers a whole block, so with a checksum every read fetches and hashes the whole "
        f"touched block ({block >> 20} MiB) instead of a {length}-byte range.\n"
    )
    res.table("ms", 1000.0)


def decide(raw: dict[str, dict[str, float]], figures: dict[str, dict[str, Figure]]) -> None:
    raw_mbs = raw["4 MiB"]
    names = [n for n in figures["Parquet 8M rows, FileStore"] if n != "none (A/A)"]
    print("### Decision\n")
    print(
        "Rule: the fastest candidate (raw 4 MiB throughput) whose median wall-time overhead "
        f"and time inside the hasher are both at most {LIMIT:.0%} on every end-to-end figure. "
        "A candidate whose hasher share is within the bar but whose wall-time median is not, "
        "with a 95% interval reaching below the bar, is *inconclusive* (this run's noise); "
        "one whose hasher share or whole interval is above the bar does not qualify. Each "
        "cell: wall-time median (95% interval) / hasher share.\n"
    )
    print("| candidate | raw 4 MiB MB/s | " + " | ".join(figures) + " | qualifies |")
    print("|---|---|" + "---|" * len(figures) + "---|")
    verdicts: dict[str, str] = {}
    for name in sorted(names, key=lambda n: -raw_mbs[n]):
        cells = [f[name] for f in figures.values()]
        if any(c.share > LIMIT or c.ratio_lo - 1 > LIMIT for c in cells):
            verdicts[name] = "no"
        elif any(c.ratio - 1 > LIMIT for c in cells):
            verdicts[name] = "inconclusive"
        else:
            verdicts[name] = "yes"
        text = " | ".join(
            f"{pct(c.ratio)} ({pct(c.ratio_lo)}..) / {c.share * 100:.2f}%" for c in cells
        )
        print(f"| {name} | {raw_mbs[name]:,.0f} | {text} | {verdicts[name]} |")
    print()
    noise = max(abs(f["none (A/A)"].ratio - 1) for f in figures.values())
    if noise > LIMIT / 2:
        print(
            f"Caution: the A/A control (two `checksum=None` datasets) is off by up to "
            f"{noise:.1%} in this run: its wall-time figures resolve {LIMIT:.0%} only roughly; "
            "the hasher shares are unaffected.\n"
        )
    ranked = sorted(names, key=lambda n: -raw_mbs[n])
    first = next((n for n in ranked if verdicts[n] != "no"), None)
    if first is None:
        print("By this run's figures no candidate qualifies: the default would stay None.")
    elif verdicts[first] == "yes":
        print(f"By this run's figures the default would be: **{first}**.")
    else:
        print(
            f"By this run's figures the fastest candidate, **{first}**, is inconclusive; "
            f"the fastest that qualifies is "
            f"{next((n for n in ranked if verdicts[n] == 'yes'), 'none')}."
        )
    print(
        f"aiolode's default (`aiolode.checksum.DEFAULT_CHECKSUM`): **{DEFAULT_CHECKSUM.name}**.\n"
    )


async def main_async(args: argparse.Namespace, raw: dict[str, dict[str, float]]) -> None:
    q = args.quick
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        figures = {
            "Parquet 8M rows, FileStore": await bench_parquet(
                1_000_000 if q else 8_000_000, 3 if q else 21, raw, tmp
            ),
            "JSONL commit, MemoryStore": await bench_jsonl(
                "MemoryStore", 20 if q else 400, 100, tmp
            ),
            "JSONL commit, FileStore": await bench_jsonl("FileStore", 10 if q else 200, 100, tmp),
        }
        await bench_volume_reads(20 if q else 200, tmp)
    decide(raw, figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few runs")
    parser.add_argument("--only-raw", action="store_true", help="sections 1 and 2 only")
    args = parser.parse_args()
    print("## Checksum\n")
    load0 = os.getloadavg()[0]
    raw_mbs = bench_raw(args.quick)
    sys.stdout.flush()
    bench_gil(args.quick)
    sys.stdout.flush()
    if not args.only_raw:
        anyio.run(main_async, args, raw_mbs)
    print(
        f"Machine load (1-minute load average, {os.cpu_count()} cores): {load0:.1f} at the "
        f"start, {os.getloadavg()[0]:.1f} at the end.\n"
    )


if __name__ == "__main__":
    main()
