"""Lifecycle benchmarks (issue #12 §6): read cost vs history length, GC, expiry.

Run: ``.venv/bin/python benchmarks/bench_lifecycle.py [--quick]``. Prints a markdown
section; every figure sits next to its anchor measured in the same run.

1. **Reads vs history length.** Store calls (CountingStore, by operation), bytes
   read and wall time of a *cold* ``Dataset.files()``, ``latest()``,
   ``snapshot_as_of()`` (the middle of the history) and ``to_arrow_dataset()``
   at 100 / 10,000 / 100,000 commits, on the MemoryStore and the FileStore.
   Anchor: one listing of the data prefix (what a "list the bucket" reader pays).
   Then what a *writer* pays at that length: 128 real ``Dataset.write`` calls on
   top (two checkpoint boundaries), sequential and from 16 concurrent tasks.
2. **GC.** 1% of the data files garbage (expired snapshots' files and stray
   orphans): ``gc(dry_run=True)``, ``gc(grace=0)``, a second ``gc`` finding nothing,
   on the FileStore and on S3 (a moto server this script starts on 127.0.0.1).
   Anchors: one listing of the prefix + deleting the same keys directly (16
   concurrent); deltalake's ``vacuum`` on a local table of as many files, 1% of
   them tombstoned by a ``delete``, in the same run.
3. **Expiry.** ``expire(keep_last=...)`` on the longest history, then cold
   ``latest()`` / ``snapshots()`` right after, and again once ``gc`` has collected
   the expired records (the low-water mark keeps searches above them).

How the histories are built (printed with the results): real ``Dataset.write``
calls at 100,000 commits would spend hours folding checkpoints (section 1 shows
why), so the first records come from real writes in a scratch store, and the
rest are *the same records* re-issued with the manifest API (``attrs.evolve`` of
the real record: new sequence number, snapshot id, parent, token, time, and a
new data file with the same bytes), encoded by the library's own encoder. The
checkpoints a writer folds every 64 records are then folded by the library's
``maybe_checkpoint`` at the last two boundaries (the ones readers and the next
writer read; older ones are never read once a newer one exists): the first from
scratch, the second incrementally, timed, which is exactly what a writer pays
every 64 commits at that length. The FileStore copy is written byte for byte
straight to disk (no fsync); S3 is preloaded inside the moto server process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs

import aiolode
from aiolode import Dataset
from aiolode.dataset._checkpoint import CHECKPOINT_INTERVAL, checkpoint_key, maybe_checkpoint
from aiolode.manifest import encode
from aiolode.testing import CountingStore, StoreCounts

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator


ID = "h"
ROOT_PREFIX = f"datasets/{ID}/"
DATA_PREFIX = f"{ROOT_PREFIX}data/"
LOG_PREFIX = f"{ROOT_PREFIX}_log/"
ROW = {"i": 0, "v": "x"}


def med(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


def calls(counts: StoreCounts) -> str:
    """``"12 (get 11, head 1)"``: the total, then by operation."""
    parts = ", ".join(f"{op} {n:,}" for op, n in counts.nonzero().items())
    return f"{counts.total_calls:,} ({parts})" if parts else "0"


# ------------------------------------------------------------------ the histories
@attrs.define
class History:
    """A dataset ``h`` with ``n`` commits (one snapshot, one 1-row JSONL file each)
    in a MemoryStore, and what building it cost."""

    n: int
    store: aiolode.MemoryStore
    body: bytes
    first_at: datetime
    step: timedelta
    build_seconds: float = 0.0
    checkpoints: list[int] = attrs.field(factory=list)
    scratch_fold: float = 0.0
    incremental_fold: float = 0.0
    checkpoint_bytes: int = 0

    def created_at(self, seq: int) -> datetime:
        return self.first_at + self.step * (seq - 1)


async def build_history(n: int) -> History:
    """See the module docstring: real records, re-issued; checkpoints by the library."""
    # Templates: two real writes (the first records the schema, the second is
    # what every later record of a single writer looks like).
    scratch = aiolode.MemoryStore()
    seed = Dataset(ID, scratch, codec=aiolode.JSONL())
    await seed.write([ROW])
    await seed.write([ROW])
    rec1 = await seed._log.fetch(1)
    rec2 = await seed._log.fetch(2)
    assert rec1 is not None
    assert rec2 is not None
    body = await scratch.get(rec1.snapshots[0].files[0].key)
    descriptor = await scratch.get(f"{ROOT_PREFIX}_dataset.json")

    t0 = time.perf_counter()
    store = aiolode.MemoryStore()
    await store.put(f"{ROOT_PREFIX}_dataset.json", descriptor)
    # Commits 1 ms apart, ending a minute ago (time travel needs increasing times;
    # garbage collection with grace=0 needs them in the past).
    step = timedelta(milliseconds=1)
    first_at = datetime.now(UTC) - timedelta(minutes=1) - step * n
    hist = History(n=n, store=store, body=body, first_at=first_at, step=step)
    parent: str | None = None
    for seq in range(1, n + 1):
        tpl = rec1 if seq == 1 else rec2
        m = tpl.snapshots[0]
        f = m.files[0]
        sid = f"{seq:016d}-0000"
        token = uuid.uuid4().hex
        when = hist.created_at(seq)
        key = f"{DATA_PREFIX}{uuid.uuid4().hex}.jsonl"
        m = attrs.evolve(
            m,
            snapshot_id=sid,
            parent_id=parent,
            created_at=when,
            commit_token=token,
            files=(attrs.evolve(f, key=key),),
        )
        rec = attrs.evolve(tpl, seq=seq, token=token, created_at=when, snapshots=(m,))
        await store.put(key, body)
        await store.put(f"{LOG_PREFIX}{seq:016d}.json", encode(rec))
        parent = sid
    ds = Dataset(ID, store)
    log = ds._log
    await log.write_hint(n)
    last = (n // CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL
    if last >= 2 * CHECKPOINT_INTERVAL:
        t1 = time.perf_counter()
        at = await log.fetch(last - CHECKPOINT_INTERVAL)
        assert at is not None
        assert await maybe_checkpoint(store, log, at)
        hist.scratch_fold = time.perf_counter() - t1
        hist.checkpoints.append(last - CHECKPOINT_INTERVAL)
    if last:
        t1 = time.perf_counter()
        at = await log.fetch(last)
        assert at is not None
        assert await maybe_checkpoint(store, log, at)
        hist.incremental_fold = time.perf_counter() - t1
        hist.checkpoints.append(last)
        hist.checkpoint_bytes = (await store.head(checkpoint_key(log, last))).size
    hist.build_seconds = time.perf_counter() - t0
    return hist


def _write_tree(root: str, items: list[tuple[str, bytes]]) -> None:
    made: set[str] = set()
    for key, data in items:
        path = os.path.join(root, key)
        parent = os.path.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        with open(path, "wb") as fh:
            fh.write(data)


async def copy_to_disk(store: aiolode.Store, root: str, prefix: str = "") -> int:
    """Every object of ``store`` under ``prefix``, byte for byte, as files below ``root``
    (the FileStore's key-to-path mapping), without fsync: setup, not measured."""
    batch: list[tuple[str, bytes]] = []
    n = 0
    async for obj in store.list(prefix):
        batch.append((obj.key, await store.get(obj.key)))
        if len(batch) >= 2000:
            await anyio.to_thread.run_sync(_write_tree, root, batch)
            n += len(batch)
            batch = []
    await anyio.to_thread.run_sync(_write_tree, root, batch)
    return n + len(batch)


# ------------------------------------------------------------------ measuring
@attrs.define
class Cost:
    """One measured operation: its calls, bytes read, wall and CPU time, result."""

    what: str
    counts: StoreCounts | None
    seconds: float
    result: str
    cpu: float | None = None

    def time(self) -> str:
        # CPU time of this process (every thread): on a loaded machine the wall
        # time stretches with the load; the CPU time much less.
        return ms(self.seconds) + ("" if self.cpu is None else f" ({ms(self.cpu)})")

    def row(self) -> str:
        if self.counts is None:
            return f"{self.what} | (not through the store) | | {self.time()} | {self.result}"
        return (
            f"{self.what} | {calls(self.counts)} | {mib(self.counts.bytes_read)} "
            f"| {self.time()} | {self.result}"
        )


async def measure(
    store: aiolode.Store, what: str, work: Callable[[Dataset], Awaitable[str]]
) -> Cost:
    """Run ``work`` on a *cold* Dataset object (a new process opening the dataset
    by name) over a CountingStore."""
    counting = CountingStore(store)
    ds = Dataset(ID, counting)
    with counting.measure() as m:
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = await work(ds)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    return Cost(what, m.counts, seconds, result, cpu)


async def raw_listing(store: aiolode.Store, prefix: str, what: str) -> Cost:
    """The floor of any reader that trusts listings: one listing of ``prefix``."""
    counting = CountingStore(store)
    with counting.measure() as m:
        t0 = time.perf_counter()
        n = 0
        c0 = time.process_time()
        async with contextlib.aclosing(counting.list(prefix)) as listing:
            async for _ in listing:
                n += 1
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    return Cost(what, m.counts, seconds, f"{n:,} keys", cpu)


async def longest_stall(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Run ``work`` while a ticker sleeps 1 ms in a loop; return the ticker's
    longest overshoot (how long the event loop was blocked) and ``work``'s time."""
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
        await anyio.sleep(0.01)
        t0 = time.perf_counter()
        await work()
        elapsed = time.perf_counter() - t0
        stop.set()
    return worst, elapsed


# ------------------------------------------------------------- 1. reads vs length
async def cold_reads(store: aiolode.Store, hist: History) -> list[Cost]:
    n = hist.n
    mid = hist.created_at(n // 2)

    async def files(ds: Dataset) -> str:
        found = await ds.files()
        assert len(found) == n, (len(found), n)
        return f"{len(found):,} files"

    async def latest(ds: Dataset) -> str:
        s = await ds.latest()
        assert s.id == f"{n:016d}-0000"
        return s.id

    async def as_of(ds: Dataset) -> str:
        s = await ds.snapshot_as_of(mid)
        assert s.id == f"{n // 2:016d}-0000", s.id
        return s.id

    async def arrow(ds: Dataset) -> str:
        adt = await ds.to_arrow_dataset()
        return f"{len(list(adt.get_fragments())):,} fragments"

    out = [
        await measure(store, "files()", files),
        await measure(store, "latest()", latest),
        await measure(store, "snapshot_as_of(middle)", as_of),
        await measure(store, "to_arrow_dataset() (built, not scanned)", arrow),
        await raw_listing(store, DATA_PREFIX, "raw floor: one listing of the data prefix"),
    ]
    return out


@attrs.define
class WriterCost:
    n: int
    seq_rate: float
    seq_slowest: float
    seq_stall: float
    seq_bytes: int
    seq_cp_gets: int
    seq_cp_puts: int
    idle_stall: float
    conc_rate: float | None = None
    conc_stall: float | None = None
    conc_cp_gets: int | None = None
    conc_cp_puts: int | None = None
    conc_records: int | None = None


def _checkpoint_calls(counting: CountingStore[Any]) -> tuple[int, int]:
    gets = sum(1 for op, k in counting.calls if op == "get" and "/_checkpoints/" in k)
    puts = sum(1 for op, k in counting.calls if op == "put" and "/_checkpoints/" in k)
    return gets, puts


async def writer_cost(hist: History, writes: int, tasks: int | None) -> WriterCost:
    """``writes`` real writes on top of the history, sequential then (unless
    ``tasks`` is None) from ``tasks`` concurrent tasks on one Dataset object (each
    run crosses two checkpoint boundaries when ``writes`` is 128)."""
    counting = CountingStore(hist.store, record=True)
    ds = Dataset(ID, counting)
    await ds.latest()  # a warm writer: the cold start is measured above
    slowest = 0.0

    async def sequential() -> None:
        nonlocal slowest
        for _ in range(writes):
            t0 = time.perf_counter()
            await ds.write([ROW])
            slowest = max(slowest, time.perf_counter() - t0)

    with counting.measure() as m:
        stall, took = await longest_stall(sequential)
    gets, puts = _checkpoint_calls(counting)
    # Anchor: the same ticker on an idle loop (what the OS scheduler alone costs
    # on this machine at this moment).
    idle, _ = await longest_stall(lambda: anyio.sleep(min(took, 5.0)))
    out = WriterCost(
        n=hist.n,
        seq_rate=writes / took,
        seq_slowest=slowest,
        seq_stall=stall,
        seq_bytes=m.counts.bytes_written // writes,
        seq_cp_gets=gets,
        seq_cp_puts=puts,
        idle_stall=idle,
    )
    if tasks is None:
        return out
    counting.reset()

    async def concurrent() -> None:
        async def one(k: int) -> None:
            for _ in range(k, writes, tasks):
                await ds.write([ROW])

        async with anyio.create_task_group() as tg:
            for k in range(tasks):
                tg.start_soon(one, k)

    before = await ds._log.refresh()
    out.conc_stall, took = await longest_stall(concurrent)
    after = await ds._log.refresh()
    assert before is not None
    assert after is not None
    out.conc_records = after.seq - before.seq
    out.conc_rate = writes / took
    out.conc_cp_gets, out.conc_cp_puts = _checkpoint_calls(counting)
    return out


# ------------------------------------------------------------------- 3. expiry
async def expiry_costs(store: aiolode.Store, keep: int) -> list[Cost]:
    async def expire(ds: Dataset) -> str:
        r = await ds.expire(keep_last=keep)
        return f"{len(r.expired):,} snapshots expired"

    async def latest(ds: Dataset) -> str:
        return (await ds.latest()).id

    async def count(ds: Dataset) -> str:
        n = 0
        async with contextlib.aclosing(ds.snapshots()) as it:
            async for _ in it:
                n += 1
        assert n == keep, (n, keep)
        return f"{n:,} snapshots"

    async def files(ds: Dataset) -> str:
        return f"{len(await ds.files()):,} files"

    async def gc(ds: Dataset) -> str:
        r = await ds.gc(grace=timedelta(0))
        return f"{len(r.deleted):,} objects deleted"

    return [
        await measure(store, f"expire(keep_last={keep:,})", expire),
        await measure(store, "latest() right after", latest),
        await measure(store, "snapshots() right after", count),
        await measure(store, "files() right after", files),
        await measure(store, "gc(grace=0)", gc),
        await measure(store, "latest() after gc", latest),
        await measure(store, "snapshots() after gc", count),
        await measure(store, "files() after gc", files),
    ]


# ---------------------------------------------------------------------- 2. gc
async def delete_all(store: aiolode.Store, keys: list[str], limit: int = 16) -> None:
    """Delete ``keys`` with at most ``limit`` in flight (the raw floor)."""
    slots = anyio.Semaphore(limit)

    async def one(key: str) -> None:
        async with slots:
            await store.delete(key)

    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(one, key)


async def gc_costs(
    store: aiolode.Store,
    n: int,
    garbage: int,
    body: bytes,
    batch_delete: Callable[[list[str]], Awaitable[None]] | None = None,
) -> tuple[list[Cost], float, float]:
    """Make ``garbage`` data files garbage (half expired, half stray orphans), then
    measure gc against the raw floor. Returns the rows, gc's and the floor's time."""
    expired = garbage // 2

    async def expire(ds: Dataset) -> str:
        r = await ds.expire(keep_last=n - expired)
        assert len(r.expired) == expired
        return f"{len(r.expired):,} snapshots expired"

    rows = [await measure(store, "setup: expire(keep_last=n - 0.5%)", expire)]
    orphans = [f"{DATA_PREFIX}{uuid.uuid4().hex}.jsonl" for _ in range(garbage - expired)]

    async def put(key: str) -> None:
        await store.put(key, body)

    slots = anyio.Semaphore(16)

    async def put_one(key: str) -> None:
        async with slots:
            await put(key)

    async with anyio.create_task_group() as tg:
        for key in orphans:
            tg.start_soon(put_one, key)
    # Strictly older than a fence taken now, given how coarse the store's stamps
    # are (S3 listings report whole seconds, so gc spares anything younger).
    await anyio.sleep(store.stamp_resolution.total_seconds() + 0.01)

    found: dict[str, tuple[str, ...]] = {}

    def gc(dry_run: bool, label: str) -> Callable[[Dataset], Awaitable[str]]:
        async def run(ds: Dataset) -> str:
            r = await ds.gc(grace=timedelta(0), dry_run=dry_run)
            found[label] = r.deleted
            data = sum(1 for k in r.deleted if k.startswith(DATA_PREFIX))
            return f"{len(r.deleted):,} objects ({data:,} data files)"

        return run

    rows.append(await measure(store, "gc(dry_run=True)", gc(True, "dry")))
    listing = await raw_listing(store, ROOT_PREFIX, "raw: one listing of the dataset prefix")
    rows.append(listing)
    rows.append(await measure(store, "gc(grace=0)", gc(False, "gc")))
    gc_seconds = rows[-1].seconds
    assert found["gc"] == found["dry"], "the dry run must list exactly what gc deletes"
    assert set(orphans) <= set(found["gc"])
    rows.append(await measure(store, "gc again (nothing to collect)", gc(False, "again")))
    assert not [k for k in found["again"] if k.startswith(DATA_PREFIX)], found["again"]

    # The same keys again, deleted directly: what any collector must at least pay.
    doomed = list(found["gc"])
    async with anyio.create_task_group() as tg:
        for key in doomed:
            tg.start_soon(put_one, key)
    counting = CountingStore(store)
    with counting.measure() as m:
        t0 = time.perf_counter()
        await delete_all(counting, doomed)
        took = time.perf_counter() - t0
    rows.append(
        Cost("raw: delete the same keys, 16 concurrent", m.counts, took, f"{len(doomed):,} deleted")
    )
    floor = listing.seconds + took
    if batch_delete is not None:
        async with anyio.create_task_group() as tg:
            for key in doomed:
                tg.start_soon(put_one, key)
        t0 = time.perf_counter()
        await batch_delete(doomed)
        took = time.perf_counter() - t0
        rows.append(
            Cost(
                "raw: S3 DeleteObjects, 1,000 keys per request (boto3)",
                None,
                took,
                f"{len(doomed):,} deleted in {-(-len(doomed) // 1000)} requests",
            )
        )
    return rows, gc_seconds, floor


@contextlib.contextmanager
def preloaded_moto(root: str, bucket: str) -> Iterator[str]:
    """A moto server on 127.0.0.1 holding ``root``'s files in ``bucket``; its URL."""
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "_moto_preload.py"), root, bucket],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if line.startswith("AIOLODE-MOTO-READY "):
                url = line.split(" ", 1)[1].strip()
                break
        if url is None:
            raise RuntimeError(f"moto server did not start (exit code {proc.wait()})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def s3_gc(root: str, n: int, garbage: int, body: bytes) -> tuple[list[Cost], float, float]:
    import boto3

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    bucket = "bench-lifecycle"
    with preloaded_moto(root, bucket) as url:
        admin = boto3.client("s3", endpoint_url=url, region_name="us-east-1")

        def batch(keys: list[str]) -> None:
            for i in range(0, len(keys), 1000):
                chunk = keys[i : i + 1000]
                admin.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )

        async def batch_delete(keys: list[str]) -> None:
            await anyio.to_thread.run_sync(batch, keys)

        async with aiolode.S3Store(bucket, endpoint_url=url, region_name="us-east-1") as s3:
            return await gc_costs(s3, n, garbage, body, batch_delete)


def _parquet_bytes(g: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"g": pa.array([g], pa.int64()), "v": pa.array(["x"])}), sink)
    return bytes(sink.getvalue().to_pybytes())


def delta_vacuum(root: str, n: int, garbage: int) -> list[tuple[str, float, int, int]]:
    """deltalake on a local table of ``n`` one-row files, ``garbage`` of them
    tombstoned by a ``delete``: vacuum (dry run, full dry run, real, again), each
    on a freshly opened table. Returns (what, seconds, files reported, files that
    left the disk) rows."""
    from deltalake import DeltaTable, convert_to_deltalake

    keep, gone = _parquet_bytes(0), _parquet_bytes(1)
    os.makedirs(root)
    for i in range(n):
        with open(os.path.join(root, f"part-{i:08d}.parquet"), "wb") as fh:
            fh.write(gone if i < garbage else keep)
    convert_to_deltalake(root)
    info = DeltaTable(root).delete("g = 1")
    assert info["num_removed_files"] == garbage, info
    rows: list[tuple[str, float, int, int]] = []

    def on_disk() -> int:
        return sum(1 for name in os.listdir(root) if name.endswith(".parquet"))

    def vacuum(what: str, *, dry_run: bool, full: bool = False) -> None:
        before = on_disk()
        t0 = time.perf_counter()
        found = DeltaTable(root).vacuum(
            retention_hours=0, enforce_retention_duration=False, dry_run=dry_run, full=full
        )
        took = time.perf_counter() - t0
        rows.append((what, took, len(found), before - on_disk()))

    vacuum("vacuum(dry_run=True)", dry_run=True)
    vacuum("vacuum(dry_run=True, full=True) (lists the table directory)", dry_run=True, full=True)
    vacuum("vacuum(dry_run=False)", dry_run=False)
    vacuum("vacuum again (nothing to collect)", dry_run=False)
    return rows


# ------------------------------------------------------------------- reporting
def table(header: str, rows: list[str]) -> None:
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        print(r)
    print()


def print_reads(sizes: list[int], reads: dict[tuple[str, int], list[Cost]]) -> None:
    print("### Cold reads vs history length\n")
    print(
        "Each operation on a new Dataset object opened by name (a cold process), over a "
        "CountingStore; one commit = one record with one snapshot of one 1-row JSON Lines "
        "file. The raw floor is one listing of the data prefix (a reader that trusts "
        "listings), on the same store in the same run.\n"
    )
    rows = []
    for (where, n), costs in reads.items():
        for c in costs:
            rows.append(f"| {where} | {n:,} | {c.row()} |")
    table(
        "| store | commits | operation | store calls (by operation) | bytes read | wall | result |",
        rows,
    )
    if len(sizes) < 2:
        return
    lo, hi = sizes[0], sizes[-1]
    print(
        f"Growth with the history ({lo:,} to {hi:,} commits). Contract (issue #12 §6): "
        "files() at 10,000 commits costs at most 2x the store calls it costs at 100, the "
        "files returned aside; latest() a small constant.\n"
    )
    rows = []
    for where in ("memory", "file"):
        by_n = {n: reads[(where, n)] for n in sizes if (where, n) in reads}
        for i, c in enumerate(by_n[lo]):
            cs = [by_n[n][i] for n in sizes]
            counts = " / ".join(
                f"{x.counts.total_calls:,}" if x.counts is not None else "-" for x in cs
            )
            ratio = (
                f"{cs[-1].counts.total_calls / max(1, cs[0].counts.total_calls):.2f}x"
                if cs[0].counts is not None and cs[-1].counts is not None
                else "-"
            )
            bytes_ratio = (
                f"{cs[-1].counts.bytes_read / max(1, cs[0].counts.bytes_read):,.0f}x"
                if cs[0].counts is not None and cs[-1].counts is not None
                else "-"
            )
            floor = by_n[hi][-1].seconds
            rows.append(
                f"| {where} | {c.what} | {counts} | {ratio} | {bytes_ratio} "
                f"| {cs[-1].seconds / max(1e-9, cs[0].seconds):,.0f}x "
                f"| {cs[-1].seconds / floor:.1f}x |"
            )
    sizes_txt = " / ".join(f"{n:,}" for n in sizes)
    table(
        f"| store | operation | store calls at {sizes_txt} | calls {hi:,} vs {lo:,} "
        f"| bytes read {hi:,} vs {lo:,} | wall {hi:,} vs {lo:,} "
        f"| wall at {hi:,} vs the raw listing |",
        rows,
    )


def print_checkpoints(builds: list[History]) -> None:
    print("### What a checkpoint costs at that length\n")
    print(
        "How the histories were built: the records of two real `Dataset.write` calls, "
        "re-issued with the manifest API and encoded by the library (see the script's "
        "docstring); then `maybe_checkpoint` at the last two 64-record boundaries: the "
        "first folds from scratch, the second incrementally from the first, which is what "
        "a writer pays (alongside its data put) every 64 commits at that length. A "
        "checkpoint lists every retained snapshot and file, so its size grows with the "
        "dataset; each boundary writes a new one, and gc keeps all those at or above the "
        "expiry point. The last column is *computed* from the measured size per file, not "
        "measured: what a real writer would have stored in checkpoints over the history.\n"
    )
    rows = []
    for h in builds:
        last = h.checkpoints[-1] if h.checkpoints else 0
        per_file = h.checkpoint_bytes / last if last else 0.0
        k = h.n // CHECKPOINT_INTERVAL
        total = per_file * CHECKPOINT_INTERVAL * k * (k + 1) / 2
        rows.append(
            f"| {h.n:,} | {mib(h.checkpoint_bytes)} | {per_file:.0f} B "
            f"| {ms(h.scratch_fold) if h.scratch_fold else '-'} | {ms(h.incremental_fold)} "
            f"| {ms(h.build_seconds)} | {k:,} | {mib(int(total))} |"
        )
    table(
        "| commits | newest checkpoint | per file | fold from scratch | incremental fold "
        "(a writer, every 64 commits) | history build | checkpoints a writer leaves "
        "| their total size (computed) |",
        rows,
    )


def print_writers(writers: list[WriterCost], writes: int, tasks: int, conc_max: int) -> None:
    print("### A writer at that length (MemoryStore)\n")
    print(
        f"{writes} real `Dataset.write` calls (one 1-row JSONL file each) on top of the "
        f"history, first one after the other ({writes} records: "
        f"{writes // CHECKPOINT_INTERVAL} checkpoint boundaries), "
        f"then from {tasks} concurrent tasks on one Dataset object (group commit packs "
        "several writes per record, so fewer records and boundaries). The write "
        "that crosses a boundary folds the checkpoint alongside its data put and returns "
        "when both are done: the slowest write is that one. The longest event-loop stall "
        "is measured by a 1 ms ticker task (CPU work on the loop: checkpoint encode and "
        "decode); its anchor is the same ticker on an idle loop right after (what the OS "
        "scheduler alone costs at that moment). Checkpoint gets/puts count the folds: "
        "one get of the previous checkpoint and one put per boundary is the minimum. "
        f"The concurrent run is left out above {conc_max:,} commits: each redundant fold "
        "there decodes and re-encodes the whole checkpoint (tens of MiB), see the "
        "shorter histories for how many there are.\n"
    )
    base = writers[0]

    def conc(w: WriterCost) -> str:
        if w.conc_rate is None or base.conc_rate is None:
            return "(not run) | | | "
        return (
            f"{w.conc_rate:.0f} ({w.conc_rate / base.conc_rate:.2f}x) "
            f"| {w.conc_records} | {ms(w.conc_stall or 0.0)} "
            f"| {w.conc_cp_gets} / {w.conc_cp_puts}"
        )

    rows = [
        f"| {w.n:,} | {w.seq_rate:.0f} ({w.seq_rate / base.seq_rate:.2f}x) "
        f"| {ms(w.seq_slowest)} | {ms(w.seq_stall)} | {ms(w.idle_stall)} "
        f"| {mib(w.seq_bytes)} | {w.seq_cp_gets} / {w.seq_cp_puts} | {conc(w)} |"
        for w in writers
    ]
    table(
        "| commits before | sequential writes/s (vs shortest) | slowest write "
        "| longest loop stall | idle-loop stall (anchor) | bytes put per write "
        f"| checkpoint gets / puts | {tasks} tasks: writes/s (vs shortest) "
        "| records committed | longest loop stall | checkpoint gets / puts |",
        rows,
    )


def print_gc(
    results: list[tuple[str, int, list[Cost], float, float]],
    delta: list[tuple[str, float, int, int]],
    delta_files: int,
) -> None:
    print("### Garbage collection, 1% of the data files garbage\n")
    print(
        "Half the garbage is the files of expired snapshots (`expire(keep_last=n - 0.5%)`, "
        "which also makes their log records collectable), half stray orphans (data files "
        "of writes that never committed). Each gc runs on a new Dataset object. Raw floor: "
        "one listing of the dataset prefix plus deleting the same keys directly, 16 "
        "concurrent, on the same store in the same run. S3 is moto's server (serialising, "
        "on 127.0.0.1, started by this script).\n"
    )
    rows = []
    for where, n, costs, _, _ in results:
        for c in costs:
            rows.append(f"| {where} | {n:,} | {c.row()} |")
    table(
        "| store | data files | operation | store calls (by operation) | bytes read | wall "
        "| result |",
        rows,
    )
    print(
        f"Peer: deltalake on a local table of {delta_files:,} one-row Parquet files, 1% "
        "of them tombstoned by `DeltaTable.delete`; each call on a freshly opened table "
        "(`vacuum(retention_hours=0, enforce_retention_duration=False, ...)`).\n"
    )
    table(
        "| deltalake operation | wall | files reported | files removed from disk |",
        [f"| {what} | {ms(s)} | {k:,} | {gone:,} |" for what, s, k, gone in delta],
    )
    vac = next(s for what, s, _, _ in delta if what == "vacuum(dry_run=False)")
    rows = []
    for where, n, _, gc_s, floor in results:
        peer = f"{gc_s / vac:.1f}x" if n == delta_files else "-"
        rows.append(
            f"| {where} | {n:,} | {ms(gc_s)} | {ms(floor)} | {gc_s / floor:.1f}x | {peer} |"
        )
    table(
        "| store | data files | gc(grace=0) | raw floor (listing + deletes) | gc vs floor "
        "| gc vs deltalake vacuum |",
        rows,
    )


def print_expiry(expiry: dict[int, list[Cost]]) -> None:
    print("### Expiry on the history, then gc (MemoryStore)\n")
    print(
        "On each history after the writers above: `expire(keep_last=...)` (at most 1,000 "
        "kept), then cold reads right after, `gc(grace=0)` (which deletes the expired "
        "files and the log records below the expiry point, after raising the low-water "
        "mark), and cold reads again.\n"
    )
    rows = []
    for n, costs in expiry.items():
        for c in costs:
            rows.append(f"| {n:,} | {c.row()} |")
    table("| commits | operation | store calls (by operation) | bytes read | wall | result |", rows)


# ------------------------------------------------------------------------ main
async def main_async(args: argparse.Namespace) -> None:
    q = args.quick
    # --quick keeps the smoke test (tests/test_benchmarks_smoke.py) well under
    # 30 s on a loaded 2-core machine: every section runs, on small histories.
    sizes = sorted(args.sizes or ([100, 200] if q else [100, 10_000, 100_000]))
    s3_n = args.s3_files or (200 if q else 10_000)
    gc_n = sizes[-1]
    writes, tasks, conc_max = (64 if q else 128), 16, 10_000
    print(
        f"_Load average at start: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} "
        f"on {os.cpu_count()} cores (wall times stretch with it; store calls do not)._\n"
    )
    tmp = tempfile.mkdtemp(prefix="aiolode-lifecycle-", dir=os.environ.get("BENCH_TMP"))
    try:
        reads: dict[tuple[str, int], list[Cost]] = {}
        builds: list[History] = []
        writers: list[WriterCost] = []
        expiry: dict[int, list[Cost]] = {}
        dirs: dict[int, str] = {}
        body = b""
        for n in sorted({*sizes, s3_n}):
            print(f"building {n:,} commits", file=sys.stderr, flush=True)
            hist = await build_history(n)
            body = hist.body
            root = dirs[n] = os.path.join(tmp, f"fs-{n}")
            os.makedirs(root)
            await copy_to_disk(hist.store, root)
            if n not in sizes or args.gc_only:
                continue
            print(f"measuring {n:,} commits", file=sys.stderr, flush=True)
            reads[("memory", n)] = await cold_reads(hist.store, hist)
            async with aiolode.FileStore(root) as fs:
                reads[("file", n)] = await cold_reads(fs, hist)
            writers.append(await writer_cost(hist, writes, tasks if n <= conc_max else None))
            expiry[n] = await expiry_costs(hist.store, max(1, min(1_000, n // 10)))
            builds.append(attrs.evolve(hist, store=aiolode.MemoryStore()))  # free the objects
            del hist
        print("## Lifecycle\n")
        if not args.gc_only:
            print_reads(sizes, {k: reads[k] for k in sorted(reads)})
            print_checkpoints(builds)
            print_writers(writers, writes, tasks, conc_max)

        print("gc on S3 (moto)", file=sys.stderr, flush=True)
        gc_results = [("S3 (moto)", s3_n, *await s3_gc(dirs[s3_n], s3_n, s3_n // 100, body))]
        print("gc on the filesystem", file=sys.stderr, flush=True)
        async with aiolode.FileStore(dirs[gc_n]) as fs:
            gc_results.insert(0, ("file", gc_n, *await gc_costs(fs, gc_n, gc_n // 100, body)))
        print("deltalake vacuum", file=sys.stderr, flush=True)
        delta = await anyio.to_thread.run_sync(
            delta_vacuum, os.path.join(tmp, "delta"), gc_n, gc_n // 100
        )
        print_gc(gc_results, delta, gc_n)
        if not args.gc_only:
            print_expiry(expiry)
        # HOOK(compaction): when Dataset.compact lands (issue #12 §6), measure it here
        # on the longest history: compact() wall time and store calls by operation,
        # files before/after, bytes rewritten vs bytes of the small files (raw floor:
        # reading them once and writing one file of the same rows), then a cold
        # files()/to_arrow_dataset() after it and a gc(grace=0) collecting the
        # replaced files. Peer anchor: deltalake's DeltaTable.optimize.compact() on
        # the delta table built by delta_vacuum(), in the same run.
        print(f"_Load average at end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}._\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--sizes", type=int, nargs="+", help="history lengths (commits) to measure")
    parser.add_argument(
        "--s3-files",
        type=int,
        help="data files of the S3 gc run (default 10,000; moto lists in O(n) per page)",
    )
    parser.add_argument(
        "--gc-only",
        action="store_true",
        help="only the gc section (histories of the longest size and --s3-files are built)",
    )
    args = parser.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
