"""Watch benchmark: how soon ``Dataset.watch`` sees a commit, and what it costs.

On each store (a local directory; S3 on the serialising moto server, started
here in a subprocess), in one run:

1. **Cross-process latency**: a writer in another process commits snapshots at
   random intervals (uniform in 0.3-1.7 x ``poll_interval``, so commits land at
   any phase of the watcher's polls) and prints when each ``write()`` returned;
   a watcher in this process notes when it receives each. p50 and p99 of the
   difference, for ``poll_interval`` 0.05, 0.2 and 1.0 s, as a ratio to the
   interval (expected: about half an interval plus the requests, never above
   one interval plus the requests).
2. **Same-process wake-up**: a watcher with ``poll_interval=60`` and a writer on
   the same store object: latency from ``write()`` returning (a poll cannot
   explain anything under 60 s), next to the duration of the ``write()``.
3. **Idle cost**: 10 caught-up watchers on a ``CountingStore`` for a while;
   store requests per watcher per minute, against the bound ``60/poll_interval``.
4. **Fan-out**: 100 watchers (each its own ``Dataset`` object, one store
   object) on one dataset while one writer in another process commits 200
   snapshots: every watcher must receive every snapshot exactly once, in commit
   order (violations = missing + repeated + out of order, over all watchers);
   total store requests, per watcher per snapshot.

Usage::

    .venv/bin/python benchmarks/bench_watch.py [--quick] [--stores file,s3]

``--quick`` shrinks every count (a smoke run). The figures in ``docs/watch.md``
come from a full run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack, aclosing
from typing import Any

import anyio

import aiolode
from aiolode.testing import CountingStore

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def make_store(kind: str, where: str) -> aiolode.Store:
    if kind == "file":
        return aiolode.FileStore(where)
    if kind == "s3":
        endpoint, bucket = where.split("|")
        return aiolode.S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1")
    raise SystemExit(f"unknown store kind {kind!r}")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]


# ------------------------------------------------------------ writer child
def writer_child(kind: str, where: str, name: str, count: int, lo: float, hi: float) -> None:
    """Commit ``count`` snapshots to ``name``, sleeping uniform(lo, hi) between;
    print ``<snapshot id> <monotonic time write() returned>`` for each."""

    async def main() -> None:
        rng = random.Random(os.getpid())
        async with make_store(kind, where) as store:
            ds = aiolode.Dataset(name, store)
            for i in range(count):
                snap = await ds.write(b"%d" % i)
                print(snap.id, time.monotonic(), flush=True)
                if hi > 0:
                    await anyio.sleep(rng.uniform(lo, hi))

    anyio.run(main)


async def run_writer(
    kind: str, where: str, name: str, count: int, lo: float, hi: float
) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--write", kind, where, name, str(count), str(lo), str(hi)]
    proc = await anyio.run_process(cmd)
    acks: dict[str, float] = {}
    for line in proc.stdout.decode().splitlines():
        sid, t = line.split()
        acks[sid] = float(t)
    return acks


async def seed(store: aiolode.Store, name: str) -> None:
    """The dataset exists (watchers then start on its descriptor and first record)."""
    await aiolode.Dataset(name, store).write(b"seed")


# --------------------------------------------------------------- measures
async def cross_process(
    store: aiolode.Store, kind: str, where: str, poll: float, count: int
) -> list[float]:
    """Latencies (s) from a commit in another process to this watcher."""
    name = f"xproc-{str(poll).replace('.', '_')}"
    await seed(store, name)
    seen: dict[str, float] = {}
    acks: dict[str, float] = {}
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            async with aclosing(aiolode.Dataset(name, store).watch(poll_interval=poll)) as it:
                first = True
                async for snap in it:
                    if first:  # the seed
                        first = False
                        continue
                    seen[snap.id] = time.monotonic()
                    if len(seen) == count:
                        return

        tg.start_soon(watch)
        acks.update(await run_writer(kind, where, name, count, 0.3 * poll, 1.7 * poll))
    assert seen.keys() == acks.keys(), "the watcher saw other snapshots than the writer made"
    return [seen[s] - acks[s] for s in acks]


async def same_process(store: aiolode.Store, count: int) -> tuple[list[float], list[float]]:
    """Wake-up latencies (s) from ``write()`` returning, and the ``write()`` durations."""
    name = "local"
    await seed(store, name)
    ds = aiolode.Dataset(name, store)
    await ds.latest()  # warm
    got: dict[str, float] = {}
    acks: dict[str, float] = {}
    durations: list[float] = []
    arrived = anyio.Event()

    async def watch() -> None:
        async with aclosing(aiolode.Dataset(name, store).watch(poll_interval=60)) as it:
            async for snap in it:
                got[snap.id] = time.monotonic()
                arrived.set()
                if len(got) == count + 1:
                    return

    with anyio.fail_after(50):  # a poll would take 60 s
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await arrived.wait()  # the seed: the watcher is waiting now
            for i in range(count):
                arrived = anyio.Event()
                t0 = time.monotonic()
                snap = await ds.write(b"%d" % i)
                acks[snap.id] = time.monotonic()
                durations.append(acks[snap.id] - t0)
                await arrived.wait()
    return [got[s] - acks[s] for s in acks], durations


async def idle(inner: aiolode.Store, poll: float, watchers: int, seconds: float) -> float:
    """Store requests per watcher per minute of caught-up, idle watchers."""
    name = f"idle-{str(poll).replace('.', '_')}"
    await seed(inner, name)
    counting = CountingStore(inner)
    caught_up = 0
    ready = anyio.Event()

    async def watch() -> None:
        nonlocal caught_up
        async with aclosing(aiolode.Dataset(name, counting).watch(poll_interval=poll)) as it:
            async for _ in it:
                caught_up += 1
                if caught_up == watchers:
                    ready.set()

    async with anyio.create_task_group() as tg:
        for _ in range(watchers):
            tg.start_soon(watch)
        await ready.wait()
        with counting.measure() as m:
            await anyio.sleep(seconds)
        tg.cancel_scope.cancel()
    assert m.counts["list"] == 0, m.counts
    return m.counts.total_calls / watchers / (seconds / 60)


async def fan_out(
    inner: aiolode.Store, kind: str, where: str, watchers: int, count: int, poll: float
) -> dict[str, Any]:
    """``watchers`` watchers, one writer in another process committing ``count``."""
    name = "fanout"
    await seed(inner, name)
    counting = CountingStore(inner)
    got: list[list[str]] = [[] for _ in range(watchers)]
    started = 0
    all_started = anyio.Event()
    t0 = 0.0

    async def watch(mine: list[str]) -> None:
        nonlocal started
        ds = aiolode.Dataset(name, counting)
        async with aclosing(ds.watch(poll_interval=poll)) as it:
            first = True
            async for snap in it:
                if first:  # the seed
                    first = False
                    started += 1
                    if started == watchers:
                        all_started.set()
                    continue
                mine.append(snap.id)
                if len(mine) >= count:
                    return

    with counting.measure() as m:
        async with anyio.create_task_group() as tg:
            for mine in got:
                tg.start_soon(watch, mine)
            await all_started.wait()
            t0 = time.monotonic()
            acks = await run_writer(kind, where, name, count, 0.0, 0.0)
            with anyio.move_on_after(120):
                while any(len(g) < count for g in got):
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    took = time.monotonic() - t0
    history = list(acks)  # in commit order
    rank = {sid: i for i, sid in enumerate(history)}
    violations = 0
    for g in got:
        violations += len(set(history) - set(g))  # missing
        violations += len(g) - len(set(g))  # repeated
        pos = [rank[h] for h in g if h in rank]
        violations += sum(1 for a, b in itertools.pairwise(pos) if a >= b)  # out of order
    c = m.counts
    return {
        "violations": violations,
        "complete": sum(1 for g in got if g == history),
        "requests": c.total_calls,
        "per": c.total_calls / watchers / count,
        "ops": c.nonzero(),
        "seconds": took,
    }


# --------------------------------------------------------------------- main
async def bench_store(kind: str, where: str, quick: bool) -> list[str]:
    polls = [(0.05, 8 if quick else 60), (0.2, 5 if quick else 40), (1.0, 3 if quick else 25)]
    out: list[str] = []
    async with make_store(kind, where) as store:
        out += [
            "",
            f"### {kind}: commit in another process → watcher",
            "",
            "| poll_interval | commits | p50 | p99 | p50 / poll | p99 / poll |",
            "|---|---|---|---|---|---|",
        ]
        for poll, n in polls:
            lat = await cross_process(store, kind, where, poll, n)
            p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
            out.append(
                f"| {poll:g} s | {n} | {p50 * 1e3:.0f} ms | {p99 * 1e3:.0f} ms | "
                f"{p50 / poll:.2f} | {p99 / poll:.2f} |"
            )

        wake, writes = await same_process(store, 5 if quick else 30)
        out += [
            "",
            f"### {kind}: commit in this process (same store object) → watcher, poll_interval 60 s",
            "",
            f"- wake-up after `write()` returned: p50 {pct(wake, 0.5) * 1e3:.2f} ms, "
            f"p99 {pct(wake, 0.99) * 1e3:.2f} ms ({len(wake)} commits)",
            f"- anchor, the `write()` itself: p50 {pct(writes, 0.5) * 1e3:.2f} ms; "
            f"wake-up p50 / write p50 = {pct(wake, 0.5) / pct(writes, 0.5):.2f}",
        ]

        watchers, seconds = 10, (2.0 if quick else 30.0)
        out += [
            "",
            f"### {kind}: idle cost, {watchers} caught-up watchers for {seconds:g} s",
            "",
            "| poll_interval | requests / watcher / minute | bound 60 / poll | ratio |",
            "|---|---|---|---|",
        ]
        for poll in (0.2, 1.0):
            rate = await idle(store, poll, watchers, seconds)
            bound = 60 / poll
            out.append(f"| {poll:g} s | {rate:.1f} | {bound:.0f} | {rate / bound:.2f} |")

        n_watchers, n_snaps, poll = (10, 20, 0.2) if quick else (100, 200, 0.2)
        fan = await fan_out(store, kind, where, n_watchers, n_snaps, poll)
        ops = ", ".join(f"{op} {n}" for op, n in sorted(fan["ops"].items()))
        out += [
            "",
            f"### {kind}: {n_watchers} watchers, one writer (another process) committing "
            f"{n_snaps} snapshots, poll_interval {poll:g} s",
            "",
            f"- violations (missing + repeated + out of order, all watchers): "
            f"**{fan['violations']}**; watchers that saw exactly the history: "
            f"{fan['complete']} / {n_watchers}",
            f"- store requests: {fan['requests']} ({ops}); "
            f"{fan['per']:.2f} per watcher per snapshot",
            f"- until the last watcher had everything: {fan['seconds']:.1f} s",
        ]
        if fan["violations"]:
            raise SystemExit("\n".join(out) + "\nwatch violated exactly-once delivery")
    return out


async def main_async(args: argparse.Namespace) -> None:
    out = ["## Watch (`benchmarks/bench_watch.py`)", ""]
    out.append(
        "Latency = when the watcher received a snapshot − when the writer's `write()` "
        "returned (time.monotonic, one machine); p99 of few samples is their maximum. "
        "Each new record costs a watcher its `get` plus the partition manifests of its "
        "snapshots; an idle watcher makes one `get` per poll of the next record; every "
        "16th poll also checks the record after it (every 256th: the `latest` hint) in "
        "the same round trip, and polls are spaced 17/16 x poll_interval to pay for it."
    )
    with ExitStack() as stack:
        for kind in args.stores.split(","):
            if kind == "file":
                where = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-watch-"))
            elif kind == "s3":
                import boto3

                from aiolode.testing.moto_server import run_moto_server

                endpoint = stack.enter_context(run_moto_server())
                bucket = f"bench-watch-{os.getpid()}"
                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                    Bucket=bucket
                )
                where = f"{endpoint}|{bucket}"
            else:
                raise SystemExit(f"unknown store kind {kind!r}")
            out += await bench_store(kind, where, args.quick)
    print("\n".join(out))


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "--write":
        kind, where, name, count, lo, hi = sys.argv[2:8]
        writer_child(kind, where, name, int(count), float(lo), float(hi))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--stores", default="file,s3")
    args = ap.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
