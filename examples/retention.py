"""A crawler's retention job: keep 30 days, look before you delete, compact, collect.

Run: python examples/retention.py   (temporary directory; exits 0 on success)
     python examples/retention.py ROOT --days 30 --apply   (a real dataset "pages")

Shows: ``expire(older_than=...)`` as the data TTL of an append log, with a dry
run first (the plan is what the real run does); ``compact()`` folding the many
small appends of a crawl into a few files per partition; ``gc()`` deleting only
what no retained snapshot references, once older than its grace; and the
reports of each step. The demo compresses "days" into seconds so it finishes
at once; the job itself (:func:`retention_job`) is what runs nightly.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta

import anyio

import aiolode


async def retention_job(
    ds: aiolode.Dataset, *, keep: timedelta, grace: timedelta, apply: bool
) -> None:
    """Expire what is older than ``keep``, compact the rest, collect garbage."""
    plan = await ds.expire(older_than=keep, dry_run=True)
    print(f"dry run: would expire {len(plan.expired)} snapshots, {plan.bytes} bytes of data")
    if not apply:
        return
    done = await ds.expire(older_than=keep)
    # A snapshot committed between the dry run and the real run may now be old
    # enough too: the real run can only expire more, never something else.
    assert set(plan.expired) <= set(done.expired)
    print(f"expired {len(done.expired)} snapshots")
    compacted = await ds.compact(target_file_size=64 * 2**20, min_files=4)
    print(
        f"compacted {len(compacted.replaced)} files into {len(compacted.written)} "
        f"({compacted.rows} rows)"
    )
    collected = await ds.gc(grace=grace)
    print(f"gc deleted {len(collected.deleted)} objects ({collected.bytes} bytes)")


async def demo(root: str) -> None:
    async with aiolode.FileStore(root) as store:
        pages = aiolode.Dataset(
            "pages",
            store,
            codec=aiolode.Parquet(),
            layout=aiolode.HiveLayout("site"),
        )
        # "Old" crawl batches, then a pause standing in for a month, then new ones.
        old = [
            await pages.write(
                [{"site": s, "url": f"https://{s}/old/{i}", "status": 200} for s in ("a", "b")]
            )
            for i in range(8)
        ]
        await anyio.sleep(1.2)
        new = [
            await pages.write(
                [{"site": s, "url": f"https://{s}/new/{i}", "status": 200} for s in ("a", "b")]
            )
            for i in range(8)
        ]
        assert len(await pages.files()) == 32
        await retention_job(pages, keep=timedelta(seconds=1), grace=timedelta(0), apply=True)
        # Only the new crawl is left, in one file per site; the old one is gone.
        assert [s.id async for s in pages.snapshots()] == [s.id for s in new]
        files = await pages.files()
        assert len(files) == 2
        table = await anyio.to_thread.run_sync((await pages.to_arrow_dataset()).to_table)
        assert sorted(table.column("url").to_pylist()) == sorted(
            f"https://{s}/new/{i}" for s in ("a", "b") for i in range(8)
        )
        for s in old:
            try:
                await pages.read(s.id)
            except aiolode.SnapshotExpiredError:
                continue
            raise AssertionError("an expired snapshot was read")
        report = await aiolode.verify_dataset(store, "pages")
        assert report.ok, report.problems
        print(f"{table.num_rows} rows kept in {len(files)} files; verify: ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", help="a FileStore root holding dataset 'pages'")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--apply", action="store_true", help="expire, compact and gc for real")
    args = parser.parse_args()
    if args.root is None:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(demo, tmp)
        return

    async def run() -> None:
        async with aiolode.FileStore(args.root) as store:
            ds = aiolode.Dataset("pages", store)
            await retention_job(
                ds, keep=timedelta(days=args.days), grace=timedelta(hours=1), apply=args.apply
            )

    anyio.run(run)


if __name__ == "__main__":
    main()
