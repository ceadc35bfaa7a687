"""Crawl -> query: many crawler tasks append hive-partitioned events into one
dataset on the local filesystem, then DuckDB answers a grouped query over them,
now and as of an earlier snapshot.

Run: ``python examples/crawl_query.py`` (exits 0 when every check passes).
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from typing import Any

import anyio
import anyio.to_thread

import aiolode
from aiolode.reader import DatasetReader

SOURCES = ["news", "blogs", "forums", "shops"]
DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]
CRAWLERS = 12
PAGES_PER_CRAWLER = 6


async def crawler(ds: aiolode.Dataset, worker: int, snapshots: list[aiolode.Snapshot]) -> None:
    """One crawler task: each 'page' it fetches yields a batch of events."""
    rng = random.Random(worker)
    for page in range(PAGES_PER_CRAWLER):
        await anyio.sleep(rng.random() / 100)  # the network, roughly
        batch = [
            {
                "source": rng.choice(SOURCES),
                "day": rng.choice(DAYS),
                "url": f"https://example.org/{worker}/{page}/{i}",
                "bytes": rng.randrange(1_000, 50_000),
            }
            for i in range(rng.randrange(5, 40))
        ]
        # Concurrent writes on one Dataset share commits; each still gets its
        # own snapshot, and the history stays one linear chain.
        snapshots.append(await ds.write(batch, metadata={"crawler": worker, "page": page}))


def grouped(adset: Any) -> dict[tuple[str, str], tuple[int, int]]:
    """DuckDB: events and bytes per (source, day). Blocking: run in a thread."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("events", adset)
        result = con.sql(
            "select source, day, count(*) as pages, sum(bytes) as total "
            "from events group by source, day order by source, day"
        ).fetchall()
    finally:
        con.close()
    return {(s, d): (int(n), int(t)) for s, d, n, t in result}


async def expected(
    ds: aiolode.Dataset, upto: aiolode.Snapshot
) -> dict[tuple[str, str], tuple[int, int]]:
    """The same aggregate computed from the Dataset API, for the self-check."""
    pages: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    async for snap in ds.snapshots():
        if snap.id > upto.id:
            break
        for rec in await ds.read(snap):
            key = (rec["source"], rec["day"])
            pages[key] += 1
            total[key] += rec["bytes"]
    return {k: (pages[k], total[k]) for k in sorted(pages)}


async def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        async with aiolode.FileStore(root) as store:
            ds = aiolode.Dataset(
                "crawl",
                store,
                codec=aiolode.JSONL(),
                compressor=aiolode.Gzip(),
                checksum=aiolode.SHA256(),
                layout=aiolode.HiveLayout("source", "day"),
            )
            snapshots: list[aiolode.Snapshot] = []
            async with anyio.create_task_group() as tg:
                for worker in range(CRAWLERS):
                    tg.start_soon(crawler, ds, worker, snapshots)
            assert len(snapshots) == CRAWLERS * PAGES_PER_CRAWLER

            latest = await ds.latest()
            now = await anyio.to_thread.run_sync(grouped, await ds.to_arrow_dataset())
            assert now == await expected(ds, latest), "DuckDB disagrees with the Dataset API"
            print(f"{len(snapshots)} snapshots; events per (source, day) now:")
            for (source, day), (n, total) in now.items():
                print(f"  {source:7} {day}  {n:4} pages  {total:9,} bytes")

            # Time travel: the same query as of a snapshot halfway through the crawl.
            ordered = sorted(snapshots, key=lambda s: s.id)
            halfway = ordered[len(ordered) // 2]
            then = await anyio.to_thread.run_sync(
                grouped, await ds.to_arrow_dataset(as_of=halfway.id)
            )
            assert then == await expected(ds, halfway)
            assert sum(n for n, _ in then.values()) < sum(n for n, _ in now.values())
            print(f"as of {halfway.id}: {sum(n for n, _ in then.values())} pages")

            # Pruning: only the 'news' files are handed to DuckDB.
            news = await ds.to_arrow_dataset(where={"source": "news"})
            news_now = await anyio.to_thread.run_sync(grouped, news)
            assert news_now == {k: v for k, v in now.items() if k[0] == "news"}

            reader = DatasetReader(store)
            assert [d async for d in reader.list_datasets()] == ["crawl"]
            partitions = [p async for p in reader.dataset("crawl").partitions()]
            assert {(p["source"], p["day"]) for p in partitions} == set(now)
            print("ok")


if __name__ == "__main__":
    anyio.run(main)
