"""Library bugs outside the copy module that writing it found, each pinned by a
test that asserts the correct behaviour and is expected to fail (strict: a fix
makes it pass, which fails the run until the mark is removed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import aiolode


async def _written(store: aiolode.Store, n: int) -> tuple[aiolode.Dataset, list[aiolode.Snapshot]]:
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    return ds, [await ds.write([{"i": i}]) for i in range(n)]


@pytest.mark.xfail(
    strict=True,
    raises=aiolode.HistoryGapError,
    reason="_history/_log.py SequenceLog._confirm: a hint naming a record that gc() "
    "collected (below the low-water mark) is taken for a hole in the history; a cold "
    "latest() raises HistoryGapError instead of searching from the low-water mark",
)
async def test_cold_latest_after_gc_collected_the_hinted_record(
    memory: aiolode.MemoryStore,
) -> None:
    ds, snaps = await _written(memory, 6)
    await ds.expire(keep_last=2)
    await ds.expire(snapshots=[snaps[4]])
    await ds.gc(grace=timedelta(0))  # the hint still names record 5; the mark is 6
    assert (await aiolode.Dataset("d", memory).latest()).id == snaps[5].id


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="verify/_dataset.py _check_record: a record committing only maintenance "
    "operations (expire, gc fence, drop) is reported as INVALID_RECORD 'holds no "
    "snapshot'; dataset/_log.py accepts it (snapshots or ops)",
)
async def test_verify_accepts_maintenance_records(memory: aiolode.MemoryStore) -> None:
    ds, _ = await _written(memory, 3)
    await ds.expire(keep_last=2)
    report = await aiolode.verify_dataset(memory, "d")
    assert report.ok, report.problems


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="verify/_dataset.py ignores the expiry state: files of a snapshot that was "
    "expired (above the low-water mark) and collected by gc() are reported MISSING_OBJECT",
)
async def test_verify_skips_files_of_expired_snapshots(memory: aiolode.MemoryStore) -> None:
    ds, snaps = await _written(memory, 3)
    await ds.expire(snapshots=[snaps[1]])
    await ds.gc(grace=timedelta(0))
    report = await aiolode.verify_dataset(memory, "d")
    assert not report.by_kind(aiolode.ProblemKind.MISSING_OBJECT), report.problems


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="verify/_dataset.py: checkpoints (<root>_log/_checkpoints/, derived data the "
    "log owns and gc() keeps) are listed as orphans of aborted writes",
)
async def test_verify_does_not_call_checkpoints_orphans(memory: aiolode.MemoryStore) -> None:
    await _written(memory, 65)
    assert await memory.exists("datasets/d/_log/_checkpoints/0000000000000064.json")
    report = await aiolode.verify_dataset(memory, "d")
    assert report.orphans == (), report.orphans
