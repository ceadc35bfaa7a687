"""Real processes: kill -9 in the middle of a run, then resume it; peak RSS with a
store that stalls. The producer processes alternate asyncio and trio, so these
tests run once, not once per backend of the test process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiolode
from aiolode.ingest import run_progress

from ._helpers import written

pytestmark = pytest.mark.no_blockbuster  # the test process only waits on children

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 3000


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ingest._producer_proc", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _location(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "file":
        return str(tmp_path)
    return f"{request.getfixturevalue('s3_endpoint')}|{request.getfixturevalue('s3_bucket')}"


def _store(kind: str, location: str) -> aiolode.Store:
    if kind == "file":
        return aiolode.FileStore(location)
    endpoint, bucket = location.split("|")
    return aiolode.S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1")


async def _committed(kind: str, location: str) -> tuple[list[dict[str, Any]], Any]:
    async with _store(kind, location) as store:
        ds = aiolode.Dataset("crawl", store)
        return await written(ds, "crawl"), await run_progress(ds, "crawl")


def _kill_after(proc: subprocess.Popen[str], policy: str, lines: list[str]) -> None:
    """Read the child's output; SIGKILL it once it acknowledged 200 emits
    (Strict), or emitted 1,000 of which some are committed (Buffered: batches
    committed, more held; on a slow store the first commit may come later)."""
    assert proc.stdout is not None
    acks = 0
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith("ACK"):
            acks += 1
        if policy == "strict" and acks >= 200:
            break
        if policy != "strict" and line.startswith("PROGRESS "):
            emitted, written = map(int, line.split()[1:3])
            if emitted >= 1000 and written > 0:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the child finished before it could be killed"


@pytest.mark.parametrize("kind", ["file", pytest.param("s3", marks=pytest.mark.s3)])
@pytest.mark.parametrize("policy", ["strict", "buffered"])
def test_kill_9_midway_then_resume(
    kind: str, policy: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    location = _location(kind, tmp_path, request)
    total = TOTAL if kind == "file" else TOTAL // 2  # moto serialises every request
    lines: list[str] = []
    first = _spawn("crawl", kind, location, policy, "1", str(total), "asyncio")
    _kill_after(first, policy, lines)
    acked = {int(line.split()[1]): int(line.split()[2]) for line in lines if line.startswith("ACK")}

    recs, progress = anyio.run(_committed, kind, location)
    items = [r["item"] for r in recs]
    seqs = [r["seq"] for r in recs]
    assert len(items) == len(set(items)), "an item was committed twice"
    assert len(seqs) == len(set(seqs))
    assert seqs == sorted(seqs)
    assert 0 < len(items) < total, "the kill did not land midway"
    # Durable part: every acknowledged (Strict) emit survived the kill, under its seq.
    committed = {r["item"]: r["seq"] for r in recs}
    assert all(committed.get(item) == seq for item, seq in acked.items())
    assert progress.last_seq == max(seqs)
    assert progress.attempts == (1,)

    second = _spawn("crawl", kind, location, policy, "2", str(total), "trio")
    out, err = second.communicate(timeout=240)
    assert second.returncode == 0, err
    assert f"RESUME {len(items)}" in out

    recs, progress = anyio.run(_committed, kind, location)
    items = [r["item"] for r in recs]
    assert sorted(items) == list(range(total)), "lost or duplicated items after the resume"
    seqs = [r["seq"] for r in recs]
    assert len(seqs) == len(set(seqs))
    assert seqs == sorted(seqs)
    assert progress.attempts == (1, 2)
    done = json.loads(out.split("DONE ", 1)[1])
    assert done["emitted"] == done["written"] == total - len(committed)


def test_peak_rss_stays_bounded_with_a_stalled_store() -> None:
    """200k records of ~2 KB (about 400 MB emitted) into a store that never
    answers: memory stays near the 16 MiB buffer, and every record is accounted for."""
    proc = _spawn("rss", "200000", "2000", "16")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    r = json.loads(out.strip().splitlines()[-1])
    assert r["emitted"] == 200_001
    assert r["worst_pending_bytes"] <= r["cap"]
    assert r["balanced"]
    assert r["pending"] == 0
    assert r["dropped"] == 200_001  # the store never took a record
    # Unbounded, the buffer alone would hold > 400 MiB.
    assert r["peak"] - r["base"] < 96, r
