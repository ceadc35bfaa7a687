"""Concurrent writers: group commit in one process, rebase across objects and
processes, and expected_parent conflicts exactly when partitions overlap."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import aiolode
from aiolode import Dataset
from aiolode.testing import CountingStore, FaultInjectingStore, Hook, Rule

ROOT = Path(__file__).parent.parent.parent


async def _chain(ds: Dataset) -> list[aiolode.Snapshot]:
    snaps = [s async for s in ds.snapshots()]
    for prev, cur in itertools.pairwise(snaps):
        assert cur.parent_id == prev.id
        assert cur.id > prev.id
    if snaps:
        assert snaps[0].parent_id is None
        assert (await ds.latest()).id == snaps[-1].id
    return snaps


async def _tasks_on_one_object(store: aiolode.Store, tasks: int, per_task: int) -> None:
    counting = CountingStore(store, record=True)
    ds = Dataset("many", counting)
    results: list[aiolode.Snapshot] = []

    async def worker(w: int) -> None:
        for i in range(per_task):
            results.append(await ds.write(b"%d-%d" % (w, i), {"w": w, "i": i}))

    async with anyio.create_task_group() as tg:
        for w in range(tasks):
            tg.start_soon(worker, w)
    total = tasks * per_task
    snaps = await _chain(Dataset("many", store))
    assert len(snaps) == total
    assert sorted((s.metadata["w"], s.metadata["i"]) for s in snaps) == [
        (w, i) for w in range(tasks) for i in range(per_task)
    ]
    assert sorted(s.id for s in results) == [s.id for s in snaps]
    # Group commit: far fewer commit records than snapshots, and no lost races.
    records = {s.id.split("-")[0] for s in snaps}
    assert len(records) < total
    puts = [key for op, key in counting.calls if op == "put"]
    record_puts = [k for k in puts if "/_log/0" in k]
    hint_puts = [k for k in puts if k.endswith("_latest.json")]
    assert len(record_puts) == len(records)  # every record put won: no retries
    assert len(hint_puts) <= len(records)
    descriptor_puts = [k for k in puts if k.endswith("/_dataset.json")]
    assert len(descriptor_puts) == 1
    assert len(puts) == total + len(record_puts) + len(hint_puts) + 1


async def test_32_tasks_on_one_object(store: aiolode.Store, store_spec: tuple[str, Any]) -> None:
    """32 tasks x 20 writes (x 5 on S3; the full size runs in the slow suite)."""
    await _tasks_on_one_object(store, 32, 5 if store_spec[0] == "s3" else 20)


@pytest.mark.slow
@pytest.mark.s3
async def test_32_tasks_x_20_writes_s3(s3_endpoint: str, s3_bucket: str) -> None:
    async with aiolode.S3Store(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1") as s3:
        await _tasks_on_one_object(s3, 32, 20)


async def test_several_objects_rebase(memory: aiolode.MemoryStore) -> None:
    objs = [Dataset("d", memory) for _ in range(4)]

    async def worker(ds: Dataset, w: int) -> None:
        for i in range(15):
            await ds.write(b"x", {"w": w, "i": i})

    async with anyio.create_task_group() as tg:
        for w, ds in enumerate(objs):
            tg.start_soon(worker, ds, w)
    snaps = await _chain(Dataset("d", memory))
    assert len(snaps) == 60
    assert len({(s.metadata["w"], s.metadata["i"]) for s in snaps}) == 60


async def _rival_commits(store: aiolode.Store, rows: list[dict[str, Any]]) -> str:
    rival = Dataset("d", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    return (await rival.write(rows)).id


async def test_expected_parent_conflicts_only_on_overlap(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    base = await ds.write([{"p": "a", "v": 0}])
    b1 = await _rival_commits(memory, [{"p": "b", "v": 1}])
    b2 = await _rival_commits(memory, [{"p": "c", "v": 2}, {"p": "a", "v": 3}])
    b3 = await _rival_commits(memory, [{"p": "a", "v": 4}])
    # Overlap with two snapshots since base (not only the head): both reported.
    with pytest.raises(aiolode.SnapshotConflictError) as ei:
        await ds.write([{"p": "a", "v": 9}], expected_parent=base.id)
    assert ei.value.conflicting == [b2, b3]
    assert ei.value.snapshot_id == base.id
    # Disjoint partitions: rebased on top of the head.
    ok = await ds.write([{"p": "z", "v": 9}], expected_parent=base)
    assert ok.parent_id == b3
    # Overlap only with the first snapshot after base.
    with pytest.raises(aiolode.SnapshotConflictError) as e2:
        await ds.write([{"p": "b"}], expected_parent=base.id)
    assert e2.value.conflicting == [b1]
    # Nothing since the parent: fine.
    head = await ds.latest()
    assert (await ds.write([{"p": "a"}], expected_parent=head.id)).parent_id == head.id
    # The refused writes left no data files behind.
    keys = {k.key async for k in memory.list("datasets/d/data/")}
    snaps = [s async for s in ds.snapshots()]
    # Data files and (format v2) partition manifests of committed snapshots.
    referenced = {f.key for s in snaps for f in s.files}
    referenced |= {p.key for s in snaps for p in s.manifest.partition_manifests}
    assert keys == referenced


async def test_expected_parent_unpartitioned_any_commit_conflicts(
    memory: aiolode.MemoryStore,
) -> None:
    ds = Dataset("d", memory)
    base = await ds.write(b"0")
    other = await Dataset("d", memory).write(b"1")
    with pytest.raises(aiolode.SnapshotConflictError) as ei:
        await ds.write(b"2", expected_parent=base.id)
    assert ei.value.conflicting == [other.id]
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.write(b"2", expected_parent="0000000000000099-0000")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.write(b"2", expected_parent="0000000000000001-0007")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.write(b"2", expected_parent="garbage")


async def test_conflict_detected_when_rival_wins_the_slot(memory: aiolode.MemoryStore) -> None:
    """The rival commits between our head read and our record put (a lost race)."""
    fired = False

    async def rival(_: object) -> None:
        nonlocal fired
        if not fired:
            fired = True
            await _rival_commits(memory, [{"p": "a"}])

    faulty = FaultInjectingStore(
        memory, [Rule(op="put", key="*/_log/0000000000000002.json", action=Hook(rival))]
    )
    ds = Dataset("d", faulty, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    base = await ds.write([{"p": "a"}])
    with pytest.raises(aiolode.SnapshotConflictError) as ei:
        await ds.write([{"p": "a"}], expected_parent=base.id)
    assert ei.value.conflicting == ["0000000000000002-0000"]
    # Same race, disjoint partition: rebased onto the rival's commit.
    fired = False
    faulty.clear()
    faulty.add(Rule(op="put", key="*/_log/0000000000000003.json", action=Hook(rival)))
    s = await ds.write([{"p": "b"}], expected_parent=base.id)
    assert s.id == "0000000000000004-0000"
    assert s.parent_id == "0000000000000003-0000"


async def test_group_with_expected_parent_entries(memory: aiolode.MemoryStore) -> None:
    """Two concurrent expected_parent writes to one partition in one batch: one wins."""
    ds = Dataset("d", memory, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    base = await ds.write([{"p": "a", "v": -1}])
    outcomes: list[object] = []

    async def attempt(v: int) -> None:
        try:
            outcomes.append(await ds.write([{"p": "a", "v": v}], expected_parent=base.id))
        except aiolode.SnapshotConflictError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for v in range(3):
            tg.start_soon(attempt, v)
    wins = [o for o in outcomes if isinstance(o, aiolode.Snapshot)]
    losses = [o for o in outcomes if isinstance(o, aiolode.SnapshotConflictError)]
    assert len(wins) == 1
    assert len(losses) == 2
    assert all(e.conflicting == [wins[0].id] for e in losses)
    await _chain(ds)


def _spawn(kind: str, location: str, n_proc: int, count: int, mode: str) -> list[list[str]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.dataset._writer_proc",
                kind,
                location,
                f"w{p}",
                str(count),
                mode,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(n_proc)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        outs.append(out.split())
    return outs


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def shared_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    """A place several processes can share (no memory store)."""
    if request.param == "file":
        root = tmp_path / "shared"
        root.mkdir()
        return ("file", root)
    return ("s3", (request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")))


async def _verify_processes(
    spec: tuple[str, Any], mode: str, outs: list[list[str]], total: int
) -> None:
    from tests.dataset.conftest import make_store

    async with make_store(spec) as store:
        if mode == "append":
            ds = Dataset("shared", store)
        else:
            ds = Dataset("parts", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("w"))
        snaps = await _chain(ds)
        assert len(snaps) == total
        assert sorted(sid for out in outs for sid in out) == [s.id for s in snaps]
        assert len({(s.metadata["writer"], s.metadata["i"]) for s in snaps}) == total
        for s in snaps[:10]:
            m = s.metadata
            if mode == "append":
                assert await ds.read(s.id) == f"{m['writer']}:{m['i']}".encode()
            else:
                assert await ds.read(s.id) == [{"w": m["writer"], "i": m["i"]}]


# Sync tests: the work happens in 4 child processes (on asyncio); the parent
# only spawns them and then verifies the history.
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["append", "own-partition"])
def test_four_processes_x_25(shared_spec: tuple[str, Any], mode: str) -> None:
    """4 processes x 25 writes: 100 snapshots, one linear chain, no error.

    ``own-partition``: every write carries ``expected_parent`` (its writer's
    previous snapshot) on a disjoint partition, so no conflict may surface.
    """
    kind, arg = shared_spec
    location = str(arg) if kind == "file" else "|".join(arg)
    outs = _spawn(kind, location, 4, 25, mode)
    anyio.run(_verify_processes, shared_spec, mode, outs, 100)


def test_four_processes(shared_spec: tuple[str, Any]) -> None:
    """The short version: 4 processes x 6 plain appends."""
    kind, arg = shared_spec
    location = str(arg) if kind == "file" else "|".join(arg)
    outs = _spawn(kind, location, 4, 6, "append")
    anyio.run(_verify_processes, shared_spec, "append", outs, 24)


def test_four_processes_own_partition(tmp_path: Path) -> None:
    """The short expected_parent version, on the filesystem: no conflict surfaces."""
    spec = ("file", tmp_path)
    outs = _spawn("file", str(tmp_path), 4, 6, "own-partition")
    anyio.run(_verify_processes, spec, "own-partition", outs, 24)
