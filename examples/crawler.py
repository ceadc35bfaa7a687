"""An async crawler that is killed midway, resumed, and ends with every page exactly once.

50 fetch tasks crawl 300 simulated pages (no network: a fetch is a short sleep
and some deterministic bytes). Each page gives an ``item`` record (or an
``error`` record for a 404) and a screenshot, stored as an artifact the item
references. Records go through an :class:`aiolode.Ingestor` into a Quarry-style
dataset (partitions source / category / day / run_id / event_type) on the local
filesystem.

The run happens twice, in two processes:

1. attempt 1 is killed with SIGKILL once about a third of the pages are
   committed: whatever its buffer held is gone, and some screenshots were
   stored for items that never were;
2. attempt 2 of the same run opens the ingestor with ``resume=True``. It reads
   the run's committed records (``aiolode.ingest.run_records``) and skips those
   pages; records it emits are numbered after the last committed ``seq``; and
   ``emit_artifact`` returns the screenshots the run already stored (by name)
   instead of storing them again.

There is no duplicate and no loss *by design*: a page is done exactly when its
record is committed, and the second attempt starts from exactly that. The
ingestor never re-sends a batch across processes — it re-fetches pages whose
record was not committed — so it needs no ``Dataset.write(idempotency_key=...)``
(which costs a marker ``get`` and two marker ``put`` per commit); within a
process, a batch whose commit outcome the store would not tell is looked up
by its batch key in the snapshots' metadata before it is retried.

Run: ``python examples/crawler.py`` (exits 0 when every check passes).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import anyio.abc

import aiolode
from aiolode.ingest import ArtifactRef, run_progress, run_records

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PAGES = 300
FETCHERS = 50
RUN_ID = "crawl-2026-11-30"
KILL_AFTER = PAGES // 3


def url(n: int) -> str:
    return f"https://shop.example/product/{n}"


def screenshot_chunks(n: int) -> list[bytes]:
    """A page's 'screenshot': 4 chunks of 8 KiB, the same at every fetch."""
    seed = hashlib.sha256(url(n).encode()).digest()
    return [bytes(seed[i % 32] ^ (n & 0xFF) for i in range(8192)) for _ in range(4)]


async def stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


async def fetch(n: int, rng: random.Random) -> tuple[int, int]:
    """Pretend to fetch a page: (status, size)."""
    await anyio.sleep(rng.uniform(0.001, 0.01))
    return (404, 0) if n % 37 == 0 else (200, 1000 + n)


async def crawl(root: str, attempt: int) -> None:
    """One attempt of the run: resume, fetch what is not done, emit."""
    run = aiolode.Run(
        RUN_ID, job_id="shop-daily", attempt=attempt, source="shop", category="product"
    )
    async with aiolode.FileStore(root) as store:
        ds = aiolode.quarry_dataset("crawl", store)
        # Buffered: producers never wait for the store; items are batched. What a
        # kill loses from the buffer is simply fetched again by the next attempt.
        policy = aiolode.Buffered(flush_rows=50, flush_interval=0.05, on_full="block")
        async with aiolode.Ingestor(
            ds, policy=policy, run=run, resume=True, max_artifact_uploads=16
        ) as ing:
            async with aclosing(run_records(ds, RUN_ID)) as recs:
                done = {r["url"] async for r in recs}
            print(f"RESUME {len(done)}", flush=True)
            send, receive = anyio.create_memory_object_stream[int](FETCHERS)

            async def feeder() -> None:
                async with send:
                    for n in range(PAGES):
                        if url(n) not in done:
                            await send.send(n)

            async def fetcher(worker: int, inbox: anyio.abc.ObjectReceiveStream[int]) -> None:
                rng = random.Random(worker * 1000 + attempt)
                async with inbox:
                    async for n in inbox:
                        status, size = await fetch(n, rng)
                        now = datetime.now(UTC)
                        if status != 200:
                            record = {"url": url(n), "status": status}
                            await ing.emit(record, event_type="error", event_time=now)
                            continue
                        shot = await ing.emit_artifact(
                            f"{n}.png", stream(screenshot_chunks(n)), content_type="image/png"
                        )
                        item = {"url": url(n), "status": status, "size": size}
                        item["screenshot"] = shot.to_record()
                        await ing.emit(item, event_type="item", event_time=now)
                        if ing.stats.written:
                            print(f"WRITTEN {ing.stats.written}", flush=True)

            async with anyio.create_task_group() as tg, receive:
                tg.start_soon(feeder)
                for w in range(FETCHERS):
                    tg.start_soon(fetcher, w, receive.clone())
        st = ing.stats
        print(f"DONE emitted={st.emitted} written={st.written} dropped={st.dropped}", flush=True)


def run_attempt(root: str, attempt: int, kill_after: int | None) -> str:
    """Run one attempt in its own process; SIGKILL it after ``kill_after`` records."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--attempt", str(attempt), root],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        written = int(line.split()[1]) if line.startswith("WRITTEN") else 0
        if kill_after is not None and written >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    if kill_after is not None:
        assert proc.returncode == -signal.SIGKILL, f"attempt {attempt} was not killed:\n{err}"
    else:
        assert proc.returncode == 0, f"attempt {attempt} failed:\n{err}"
    return "".join(lines)


async def verify(root: str) -> None:
    async with aiolode.FileStore(root) as store:
        ds = aiolode.Dataset("crawl", store)  # opens by name: layout and codec as recorded
        records = [r async for r in run_records(ds, RUN_ID)]
        urls = Counter(r["url"] for r in records)
        assert not [u for u, c in urls.items() if c > 1], "a page was committed twice"
        assert set(urls) == {url(n) for n in range(PAGES)}, "a page was lost"
        seqs = [r["seq"] for r in records]
        assert len(set(seqs)) == len(seqs)
        by_type = Counter(r["event_type"] for r in records)
        assert by_type["error"] == len(range(0, PAGES, 37))

        # Every item's screenshot is there, with the right bytes.
        shots = aiolode.Dataset("crawl.artifacts", store)
        for r in records:
            if r["event_type"] == "item":
                ref = ArtifactRef.from_record(r["screenshot"])
                n = int(r["url"].rsplit("/", 1)[1])
                assert await shots.read(ref.snapshot_id) == b"".join(screenshot_chunks(n))
        names = Counter([s.metadata["artifact"]["name"] async for s in shots.snapshots()])
        assert max(names.values()) == 1, "a screenshot was stored twice"

        progress = await run_progress(ds, RUN_ID)
        assert progress.attempts == (1, 2)
        files = await ds.files(where={"run_id": RUN_ID})  # only this run's partitions
        parts = sorted({f.partition["event_type"] for f in files})
        print(
            f"{len(records)} records ({dict(by_type)}), {len(names)} screenshots, "
            f"{progress.snapshots} snapshots over attempts {progress.attempts}; "
            f"partitions of the run: event_type in {parts}; last seq {progress.last_seq}"
        )


def main() -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        out1 = run_attempt(root, 1, kill_after=KILL_AFTER)
        written1 = max(int(x.split()[1]) for x in out1.splitlines() if x.startswith("WRITTEN"))
        print(f"attempt 1: killed (SIGKILL) after {written1} records were committed")
        out2 = run_attempt(root, 2, kill_after=None)
        resumed = next(x for x in out2.splitlines() if x.startswith("RESUME"))
        print(f"attempt 2: {resumed.split()[1]} pages already done; {out2.splitlines()[-1]}")
        t1 = time.perf_counter()
        anyio.run(verify, root)
        print(
            f"no duplicate, no loss (crawl {t1 - t0:.1f} s, checks {time.perf_counter() - t1:.1f} s)"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--attempt":
        backend = "trio" if int(sys.argv[2]) % 2 == 0 else "asyncio"
        anyio.run(crawl, sys.argv[3], int(sys.argv[2]), backend=backend)
    else:
        main()
