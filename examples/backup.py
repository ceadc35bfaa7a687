"""Nightly backups of a live dataset to another store, and a restore.

Run: python examples/backup.py

A writer keeps appending to ``events`` in the "live" store while a backup job
copies it, every "night", to the "backup" store (another bucket in real life:
any two stores work — file, S3, GCS, memory). Each backup copies only what is
new since the last one, and the backup is never seen half-written: it only ever
shows snapshots whose files are all there. After a disaster, restoring is
copying back.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import anyio

import aiolode


async def write_forever(ds: aiolode.Dataset, stop: anyio.Event) -> None:
    """The live application: small batches, as fast as it can."""
    n = 0
    while not stop.is_set():
        await ds.write([{"day": f"2024-01-{1 + n % 3:02d}", "n": n}], {"batch": n})
        n += 1
        await anyio.sleep(0.005)


async def nightly_backup(live: aiolode.Dataset, backup: aiolode.Store, night: int) -> None:
    def progress(p: aiolode.CopyProgress) -> None:
        if p.records == p.records_total:
            print(f"  night {night}: {p.records}/{p.records_total} records, {p.bytes} bytes")

    report = await aiolode.copy_dataset(live, backup, progress=progress)
    print(
        f"  night {night}: copied {report.snapshots} snapshots "
        f"(records {report.first_seq}..{report.last_seq}), {report.objects} objects, "
        f"backup head {report.head}"
    )
    check = await aiolode.verify_dataset(backup, live.id)
    assert check.ok, check.problems


async def main(root: Path) -> None:
    for name in ("live", "backup"):
        (root / name).mkdir()
    async with (
        aiolode.FileStore(root / "live") as live_store,
        aiolode.FileStore(root / "backup") as backup_store,
    ):
        live = aiolode.Dataset(
            "events", live_store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("day")
        )
        await live.write([{"day": "2024-01-01", "n": -1}], {"batch": -1})
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_forever, live, stop)
            for night in (1, 2, 3):
                await anyio.sleep(0.2)  # a "day" of writes
                await nightly_backup(live, backup_store, night)  # while the writer runs
            stop.set()
        await nightly_backup(live, backup_store, 4)  # the last word: everything
        latest = await live.latest()
        expected = await live.read(latest.id)

    # Disaster: the live store is lost.
    await anyio.to_thread.run_sync(shutil.rmtree, root / "live")
    (root / "live").mkdir()
    print("live store wiped; restoring from the backup")

    async with (
        aiolode.FileStore(root / "live") as live_store,
        aiolode.FileStore(root / "backup") as backup_store,
    ):
        # Restoring is copying back.
        report = await aiolode.copy_dataset(aiolode.Dataset("events", backup_store), live_store)
        print(f"  restored {report.snapshots} snapshots, {report.bytes} bytes")
        restored = aiolode.Dataset("events", live_store)
        assert (await restored.latest()).id == latest.id
        assert await restored.read(latest.id) == expected
        assert (await aiolode.verify_dataset(live_store, "events")).ok
        # ... and the application carries on where it stopped.
        snap = await restored.write([{"day": "2024-01-04", "n": 10_000}])
        assert snap.parent_id == latest.id
        print(f"restored dataset is live again: {snap.id} on top of {latest.id}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, Path(tmp))
