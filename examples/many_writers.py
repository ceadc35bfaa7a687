"""Many writers, no coordination: tasks in one process and several processes.

Run: python examples/many_writers.py

Shows the lock-free commit engine: 50 concurrent tasks on one Dataset share
commit records (group commit); 3 processes append to the same dataset on the
same directory and rebase automatically; the history stays one linear chain.
A read-modify-write with ``expected_parent`` raises SnapshotConflictError only
when someone touched the same partition in between.
"""

from __future__ import annotations

import itertools
import sys
import tempfile

import anyio

import aiolode


async def child(root: str, name: str) -> None:
    async with aiolode.FileStore(root) as store:
        ds = aiolode.Dataset("log", store, retry=aiolode.Retry(attempts=100))
        for i in range(10):
            await ds.write(f"{name}:{i}".encode(), {"writer": name, "i": i})


async def main(root: str) -> None:
    async with aiolode.FileStore(root) as store:
        ds = aiolode.Dataset("log", store)

        # 1. Tasks: 50 concurrent writes on one object.
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(ds.write, f"task:{i}".encode(), {"writer": "task", "i": i})

        # 2. Processes: 3 more writers on the same directory.
        async with anyio.create_task_group() as tg:
            for p in range(3):
                cmd = [sys.executable, __file__, "--child", root, f"proc{p}"]
                tg.start_soon(lambda c=cmd: anyio.run_process(c, stdout=None, stderr=None))

        snaps = [s async for s in aiolode.Dataset("log", store).snapshots()]
        assert len(snaps) == 80
        for prev, cur in itertools.pairwise(snaps):
            assert cur.parent_id == prev.id  # one linear chain
        records = {s.id.split("-")[0] for s in snaps}
        print(f"{len(snaps)} snapshots in {len(records)} commit records, one linear chain")

        # 3. Read-modify-write with expected_parent, on partitions.
        inv = aiolode.Dataset(
            "inventory", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("shelf")
        )
        base = await inv.write([{"shelf": "a", "qty": 1}, {"shelf": "b", "qty": 1}])
        await inv.write([{"shelf": "b", "qty": 2}])  # someone else updates shelf b
        ok = await inv.write([{"shelf": "a", "qty": 5}], expected_parent=base.id)
        print(f"shelf a updated on top of the concurrent change: {ok.parent_id}")
        try:
            await inv.write([{"shelf": "b", "qty": 9}], expected_parent=base.id)
        except aiolode.SnapshotConflictError as exc:
            print(f"shelf b conflicts with {exc.conflicting}")
        else:
            raise AssertionError("expected a conflict on shelf b")
        print("ok")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        anyio.run(child, sys.argv[2], sys.argv[3])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, tmp)
