"""CI version of the lifecycle harness (``python -m harness.lifecycle --minutes N`` is
the long run; docs/lifecycle-proof.md records its figures).

Race and crash run real processes (asyncio and trio alternate among them, so
they run once, not once per backend of the test process); the fault schedules
run in-process on both backends. Also pins, as strict xfails, the library bugs
the harness found (minimal reproductions).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import anyio
import pytest

import aiolode
from aiolode.testing import FaultInjectingStore, Hook, Rule
from harness import lifecycle, lifecycle_faults

if TYPE_CHECKING:
    from pathlib import Path

    from aiolode.testing import Call

NOW = timedelta(0)
KINDS = ["file", pytest.param("s3", marks=pytest.mark.s3)]


def _location(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "file":
        return str(tmp_path)
    return f"{request.getfixturevalue('s3_endpoint')}|{request.getfixturevalue('s3_bucket')}"


@pytest.mark.no_blockbuster  # the test process only waits on children
@pytest.mark.parametrize("kind", KINDS)
def test_appenders_racing_expire_and_gc(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    res = lifecycle.race(
        kind,
        _location(kind, tmp_path, request),
        seconds=6.0,
        appenders=2,
        vol_writers=1,
        grace=2.0,
        prefix=f"ci{kind}",
    )
    assert res["violations"] == [], res
    assert res["acked"] > 0, res
    assert res["maintenance_ops"] > 0
    assert res["checked_reads_checked"] > 0


@pytest.mark.no_blockbuster
@pytest.mark.parametrize("kind", KINDS)
def test_maintainer_killed_then_rerun(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    res = lifecycle.crash(
        kind, _location(kind, tmp_path, request), kills=2, seed=11, max_delay=0.4, drop=0.5
    )
    assert res["violations"] == [], res
    assert res["runs"] == 2
    assert res["acked"] > 0
    assert res.get("checked_reads_checked", 0) + res.get("checked_drops_finished", 0) > 0


async def test_fault_schedules(memory: aiolode.MemoryStore) -> None:
    res = await lifecycle_faults.run(memory, range(0, 24))
    assert res["violations"] == []
    assert res["faults"] > 0
    assert res["deletes"] > 0
    assert res.get("drops_finished", 0) > 0


async def test_fault_schedules_on_files(tmp_path: Path) -> None:
    async with aiolode.FileStore(str(tmp_path)) as store:
        res = await lifecycle_faults.run(store, range(100, 109))
    assert res["violations"] == []


# ------------------------------------------- library bugs the harness found (fixed)
def _hive(store: aiolode.Store) -> aiolode.Dataset:
    return aiolode.Dataset("d", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))


async def test_partitioned_dataset_survives_expiring_one_upload_then_gc(
    memory: aiolode.MemoryStore,
) -> None:
    ds = _hive(memory)
    snaps = [await ds.write([{"p": "a", "i": i}]) for i in range(4)]
    await ds.expire(snapshots=[snaps[1].id])
    await ds.gc(grace=NOW)
    assert len(await _hive(memory).files()) == 3
    await ds.gc(grace=NOW)


async def test_partitioned_dataset_can_be_dropped_after_expire_and_gc(
    memory: aiolode.MemoryStore,
) -> None:
    ds = _hive(memory)
    for i in range(2):
        await ds.write([{"p": "a", "i": i}, {"p": "b", "i": i}])
    await ds.expire(older_than=NOW)
    await ds.gc(grace=NOW)
    # A maintenance job's fresh object (the one that collected has the records
    # cached) could not drop it (ManifestFormatError).
    report = await _hive(memory).drop(grace=NOW)
    assert not await ds.exists()
    assert all("/_log/" in k for k in report.remaining)


async def test_a_write_whose_files_predate_the_fence_is_refused(
    memory: aiolode.MemoryStore,
) -> None:
    await aiolode.Dataset("d", memory).write(b"zero")

    async def collect(_: Call) -> None:
        await aiolode.Dataset("d", memory).gc(grace=NOW)

    slow = aiolode.Dataset(
        "d",
        FaultInjectingStore(
            memory, [Rule(op="put", key="*/data/*", nth=1, action=Hook(collect, when="after"))]
        ),
    )
    try:
        snap = await slow.write(b"one")
    except aiolode.StaleWriteError:
        return  # the contract: refused, never acknowledged pointing at deleted data
    await anyio.sleep(0)
    assert await aiolode.Dataset("d", memory).read(snap.id) == b"one"  # ObjectNotFoundError today
