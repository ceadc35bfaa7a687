"""A copy killed at any point — a simulated crash at every kind of store call, or
a real ``kill -9`` of the copying process — shows a valid prefix of the source's
history at the destination, and finishes when run again: nothing duplicated,
nothing left over, verify clean."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiolode
from aiolode.testing import Crash, FaultInjectingStore, Rule, SimulatedCrash

from .conftest import assert_same_dataset, events, rows_by_snapshot, write_events

ROOT = Path(__file__).resolve().parents[2]
N = 20


@pytest.fixture(autouse=True)
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of 8 records: the crash points fall while the objects of one
    window are copied and the records of the previous one are put."""
    monkeypatch.setattr("aiolode._copy._engine.WINDOW", 8)


async def _prefix_is_valid(src: aiolode.Dataset, dst: aiolode.Dataset) -> int:
    """What the destination shows is the start of the source's history, readable."""
    expected = await rows_by_snapshot(src)
    try:
        got = await rows_by_snapshot(dst)
    except aiolode.DatasetNotFoundError:
        return 0  # not even the descriptor yet: nothing to see
    assert list(got) == list(expected)[: len(got)]
    assert got == {k: expected[k] for k in got}
    return len(got)


async def _orphans(store: aiolode.Store, dataset_id: str) -> tuple[str, ...]:
    return (await aiolode.verify_dataset(store, dataset_id)).orphans


# Crash points: the first object, objects of the first window, the descriptor's
# neighbourhood, the first and a middle record, the second window, the hint.
@pytest.mark.parametrize(
    ("nth", "when"),
    [
        (1, "before"),
        (40, "after"),
        (65, "before"),
        (66, "after"),
        (72, "before"),
        (85, "after"),
        (99, "after"),
        (102, "before"),
    ],
)
async def test_crash_then_resume_dataset(memory: aiolode.MemoryStore, nth: int, when: Any) -> None:
    src = events(memory)
    await write_events(src, 0, N)
    async with aiolode.MemoryStore() as inner:
        dst = FaultInjectingStore(
            inner, [Rule(op=("put", "put_stream"), nth=nth, action=Crash(when=when))]
        )
        with pytest.raises(SimulatedCrash):
            await aiolode.copy_dataset(src, dst)
        assert dst.crashed
        seen = await _prefix_is_valid(src, aiolode.Dataset("events", inner))
        report = await aiolode.copy_dataset(src, inner)
        assert report.records == N - seen
        assert (report.first_seq or N + 1) == seen + 1
        await assert_same_dataset(src, aiolode.Dataset("events", inner))
        assert await _orphans(inner, "events") == ()


@pytest.mark.parametrize("nth", [1, 3, 6, 9, 12])
async def test_crash_then_resume_volume(memory: aiolode.MemoryStore, nth: int) -> None:
    src = aiolode.Volume("disk", memory, 4096, checksum=aiolode.SHA256())
    for i in range(5):
        ref = await src.stage_write_at(i * 100, bytes([i + 1]) * 100)
        await src.commit([ref])
    async with aiolode.MemoryStore() as inner:
        dst = FaultInjectingStore(inner, [Rule(op="put", nth=nth, action=Crash(when="after"))])
        with pytest.raises(SimulatedCrash):
            await aiolode.copy_volume(src, dst)
        vol = aiolode.Volume("disk", inner, 4096, checksum=aiolode.SHA256())
        seen = [s.id async for s in vol.snapshots()]
        assert seen == [s.id async for s in src.snapshots()][: len(seen)]
        for s in seen:
            assert await vol.read_at(s, 0, 100) == await src.read_at(s, 0, 100)
        await aiolode.copy_volume(src, inner)
        report = await aiolode.verify_volume(vol)
        assert report.ok, report.problems
        assert report.orphans == ()
        assert [s.id async for s in vol.snapshots()] == [s.id async for s in src.snapshots()]


async def _run_until_killed(kind: str, src_dir: Path, dst_dir: Path, after: int) -> None:
    """Start a copying process, SIGKILL it once it reported ``after`` records."""
    cmd = [sys.executable, "-m", "tests.copy._copy_proc", kind, str(src_dir), str(dst_dir)]
    async with await anyio.open_process(cmd, cwd=ROOT) as proc:
        assert proc.stdout is not None
        buf = b""
        with anyio.fail_after(120):
            while f"records={after} ".encode() not in buf:
                buf += await proc.stdout.receive()
                assert b"done" not in buf, "the copy finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL


async def test_kill_9_then_resume_dataset(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    async with aiolode.FileStore(tmp_path / "src") as src_store:
        src = events(src_store)
        await write_events(src, 0, N)
        await _run_until_killed("dataset", tmp_path / "src", tmp_path / "dst", after=5)
        async with aiolode.FileStore(tmp_path / "dst") as dst_store:
            dst = aiolode.Dataset("events", dst_store)
            seen = await _prefix_is_valid(src, dst)
            assert 5 <= seen < N
            report = await aiolode.copy_dataset(src, dst_store)
            assert report.records == N - seen
            await assert_same_dataset(src, dst)
            assert await _orphans(dst_store, "events") == ()


async def test_kill_9_then_resume_volume(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    async with aiolode.FileStore(tmp_path / "src") as src_store:
        src = aiolode.Volume("disk", src_store, 1 << 20, checksum=aiolode.SHA256())
        for i in range(24):
            ref = await src.stage_write_at(i * 1000, bytes([i]) * 1000)
            await src.commit([ref])
        await _run_until_killed("volume", tmp_path / "src", tmp_path / "dst", after=3)
        async with aiolode.FileStore(tmp_path / "dst") as dst_store:
            vol = aiolode.Volume("disk", dst_store, 1 << 20, checksum=aiolode.SHA256())
            seen = [s.id async for s in vol.snapshots()]
            assert 3 <= len(seen) < 24
            await aiolode.copy_volume(src, dst_store)
            report = await aiolode.verify_volume(vol)
            assert report.ok, report.problems
            assert report.orphans == ()
            latest = await vol.latest()
            assert await vol.read_at(latest.id, 0, 24_000) == await src.read_at(
                latest.id, 0, 24_000
            )
