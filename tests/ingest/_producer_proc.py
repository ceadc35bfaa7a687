"""Producer processes for the process tests: ``python -m tests.ingest._producer_proc``.

``crawl <kind> <location> <policy> <attempt> <total> <backend>``: resumes run
``crawl`` (attempt ``attempt``) of a Quarry dataset, skips the items the run
already committed (read back from the dataset), and emits the others with 32
producer tasks. Prints ``RESUME <n>`` first, ``ACK <item> <seq>`` for every
Strict emit that returned, ``PROGRESS <n> <written>`` every 100 emits, ``DONE <stats
json>`` at the end. ``kind`` is
``file`` (location: a directory) or ``s3`` (``endpoint|bucket``).

``rss <records> <record bytes> <buffer MiB>``: emits into a memory store whose
data puts stall forever, under Buffered(drop_oldest), and prints the peak RSS
before and after (``ru_maxrss``, MiB) and the stats, as JSON.
"""

from __future__ import annotations

import json
import resource
import sys
from contextlib import aclosing
from typing import Any

import anyio

import aiolode
from aiolode.ingest import run_records


def _store(kind: str, location: str) -> aiolode.Store:
    if kind == "file":
        return aiolode.FileStore(location)
    endpoint, bucket = location.split("|")
    return aiolode.S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1")


async def crawl(kind: str, location: str, policy_name: str, attempt: int, total: int) -> None:
    policy: aiolode.Strict | aiolode.Buffered = (
        aiolode.Strict()
        if policy_name == "strict"
        else aiolode.Buffered(flush_rows=50, flush_interval=0.05)
    )
    run = aiolode.Run("crawl", attempt=attempt, source="site", category="pages")
    async with _store(kind, location) as store:
        ds = aiolode.quarry_dataset("crawl", store)
        async with aiolode.Ingestor(ds, policy=policy, run=run, resume=True) as ing:
            async with aclosing(run_records(ds, "crawl")) as recs:
                done = {r["item"] async for r in recs}
            print(f"RESUME {len(done)}", flush=True)
            todo = iter([i for i in range(total) if i not in done])
            emitted = 0

            async def producer() -> None:
                nonlocal emitted
                for item in todo:
                    await anyio.sleep(0.002)  # the "fetch"
                    seq = await ing.emit({"item": item}, event_type="item")
                    emitted += 1
                    if policy_name == "strict":
                        print(f"ACK {item} {seq}", flush=True)
                    if emitted % 100 == 0:
                        print(f"PROGRESS {emitted} {ing.stats.written}", flush=True)

            async with anyio.create_task_group() as tg:
                for _ in range(32):
                    tg.start_soon(producer)
        st = ing.stats
        print("DONE " + json.dumps({"emitted": st.emitted, "written": st.written}), flush=True)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def rss(records: int, record_bytes: int, buffer_mib: int) -> None:
    from aiolode.testing import FaultInjectingStore, Hook, Rule

    puts = ("put", "put_stream")  # batches are streamed: put_stream

    never = anyio.Event()

    async def stall(call: Any) -> None:
        await never.wait()

    store = FaultInjectingStore(
        aiolode.MemoryStore(), [Rule(op=puts, key="*/data/*", action=Hook(stall))]
    )
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    cap = buffer_mib * 1024 * 1024
    policy = aiolode.Buffered(
        max_buffer_rows=10**7,
        max_buffer_bytes=cap,
        flush_rows=10**6,
        flush_bytes=cap // 4,
        flush_interval=0.05,
        on_full="drop_oldest",
    )
    pad = "x" * record_bytes
    async with aiolode.Ingestor(ds, policy=policy, run=aiolode.Run("r"), close_timeout=0.5) as ing:
        await ing.emit({"warm": pad})
        base = _peak_mib()
        worst = 0
        for i in range(records):
            # A fresh string per record, as a producer would build it.
            await ing.emit({"i": i, "pad": pad[: record_bytes - (i % 7)]})
            if i % 1000 == 0:
                worst = max(worst, ing.stats.pending_bytes)
        peak = _peak_mib()
        emitted = ing.stats.emitted
    st = ing.stats
    print(
        json.dumps(
            {
                "base": base,
                "peak": peak,
                "emitted": emitted,
                "dropped": st.dropped,
                "worst_pending_bytes": worst,
                "cap": cap,
                "balanced": st.balanced,
                "pending": st.pending,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "crawl":
        kind, location, policy_name, attempt, total, backend = args
        anyio.run(crawl, kind, location, policy_name, int(attempt), int(total), backend=backend)
    else:
        n, size, mib = args
        anyio.run(rss, int(n), int(size), int(mib))
