"""Shared checks for the ingest tests."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import anyio

import aiolode
from aiolode.ingest import Drop, IngestStats, run_records


async def written(ds: aiolode.Dataset, run_id: str) -> list[dict[str, Any]]:
    """The run's records as committed, in commit order (read back from the store)."""
    async with aclosing(run_records(ds, run_id)) as recs:
        return [r async for r in recs]


def check_accounting(stats: IngestStats, records: list[dict[str, Any]], drops: list[Drop]) -> None:
    """The invariant, exactly: every emitted seq is written once or dropped once."""
    assert stats.pending == 0
    assert stats.in_doubt == 0
    assert stats.balanced
    assert stats.emitted == stats.written + stats.dropped
    seqs = [r["seq"] for r in records]
    assert len(seqs) == len(set(seqs)), "a record was written twice"
    assert seqs == sorted(seqs), "records of a run are not in seq order"
    assert len(seqs) == stats.written
    dropped = [d.seq for d in drops]
    assert len(dropped) == len(set(dropped)) == stats.dropped
    assert set(seqs).isdisjoint(dropped)
    assert set(seqs) | set(dropped) == set(range(1, stats.emitted + 1))
    assert sum(stats.dropped_by_reason.values()) == stats.dropped
    assert (
        sum(n for per in stats.dropped_by_event_type.values() for n in per.values())
        == stats.dropped
    )


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until true (fails the test after ``timeout`` seconds)."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
