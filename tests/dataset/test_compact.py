"""Compaction: fewer files, the same rows, safe with appends, expiry and gc around it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import Dataset
from aiolode.testing import FaultInjectingStore, Hook, Rule

NOW = timedelta(0)
BIG = 1 << 30


def _hive(store: aiolode.Store, name: str = "ev", **kw: Any) -> Dataset:
    return Dataset(name, store, codec=aiolode.Parquet(), layout=aiolode.HiveLayout("day"), **kw)


async def _rows(ds: Dataset, **kw: Any) -> list[tuple[str, int]]:
    """Every row of the view ``files(**kw)`` gives, as (day, i), in file order."""
    import io

    import pyarrow.parquet as pq

    out: list[tuple[str, int]] = []
    for df in await ds.files(**kw):
        data = await ds.store.get(df.file.key)
        out.extend((r["day"], r["i"]) for r in pq.read_table(io.BytesIO(data)).to_pylist())
    return out


async def _sound(ds: Dataset, *, orphans: int = 0) -> aiolode.VerifyReport:
    report = await aiolode.verify_dataset(ds.store, ds.id)
    assert report.ok, report.problems
    assert len(report.orphans) == orphans, report.orphans
    return report


async def _fill(ds: Dataset, n: int, *, start: int = 0) -> list[aiolode.Snapshot]:
    return [
        await ds.write([{"day": f"d{i % 2}", "i": i}, {"day": f"d{i % 2}", "i": i + 1000}])
        for i in range(start, start + n)
    ]


async def test_compact_keeps_every_row_in_fewer_files(store: aiolode.Store) -> None:
    ds = _hive(store)
    snaps = await _fill(ds, 8)
    before = await _rows(ds)
    files_before = await ds.files()
    assert len(files_before) == 8
    dry = await ds.compact(target_file_size=BIG, min_files=2, dry_run=True)
    assert dry.dry_run
    assert dry.record is None
    assert dry.written == ()
    assert sorted(dry.replaced) == sorted(f.file.key for f in files_before)
    assert len(await ds.files()) == 8  # a dry run changes nothing
    report = await ds.compact(target_file_size=BIG, min_files=2)
    assert report.replaced == dry.replaced
    assert report.groups == 2
    assert len(report.written) == 2
    assert report.rows == 16
    assert report.bytes_in == sum(f.file.size for f in files_before)
    after = await ds.files()
    assert {f.file.key for f in after} == set(report.written)
    assert all(f.file.checksum and f.file.stats for f in after)
    assert {tuple(f.file.partition.items()) for f in after} == {(("day", "d0"),), (("day", "d1"),)}
    # The same rows, in the same order within each partition.
    for day in ("d0", "d1"):
        assert [r for r in await _rows(ds) if r[0] == day] == [r for r in before if r[0] == day]
    # Not a snapshot: the history, the reads of each snapshot, the schema unchanged.
    assert [s.id async for s in ds.snapshots()] == [s.id for s in snaps]
    assert (await ds.latest()).id == snaps[-1].id
    for s in snaps:
        assert len(await ds.read(s.id)) == 2
    adt = await ds.to_arrow_dataset()
    assert (await anyio.to_thread.run_sync(adt.to_table)).num_rows == 16
    again = Dataset("ev", store)  # a cold reader sees the same view
    assert {f.file.key for f in await again.files()} == set(report.written)
    await _sound(ds)
    # Nothing left to do: a second run replaces nothing.
    assert (await ds.compact(target_file_size=BIG, min_files=2)).record is None


async def test_where_min_files_and_target(memory: aiolode.MemoryStore) -> None:
    ds = _hive(memory)
    await _fill(ds, 6)
    assert (await ds.compact(min_files=4, target_file_size=BIG)).record is None  # 3 per day
    r = await ds.compact(where={"day": "d0"}, min_files=2, target_file_size=BIG)
    assert r.groups == 1
    days = sorted(f.file.partition["day"] for f in await ds.files())
    assert days == ["d0", "d1", "d1", "d1"]
    # A tiny target: groups of at most two files (each file is larger than half).
    size = max(f.file.size for f in await ds.files())
    r = await ds.compact(where={"day": "d1"}, min_files=2, target_file_size=2 * size + 1)
    assert r.groups == 1  # 3 files: a group of two, and a single one left alone
    assert sorted(f.file.partition["day"] for f in await ds.files()) == ["d0", "d1", "d1"]
    await _sound(Dataset("ev", memory))


async def test_time_travel_since_and_watch_never_show_it(memory: aiolode.MemoryStore) -> None:
    ds = _hive(memory)
    snaps = await _fill(ds, 4)
    await ds.compact(target_file_size=BIG, min_files=2)
    later = await _fill(ds, 2, start=4)
    # since: only what the snapshots after the cursor added, never the compacted files.
    inc = await ds.files(since=snaps[1].id)
    assert [f.snapshot_id for f in inc] == [s.id for s in (*snaps[2:], *later)]
    # as of an earlier snapshot: its rows only.
    rows = await _rows(ds, as_of=snaps[1].id)
    assert sorted(i for _, i in rows) == [0, 1, 1000, 1001]
    # as of the last snapshot before the compaction: its rows, from its files.
    rows = await _rows(ds, as_of=snaps[-1].id)
    assert sorted(i for _, i in rows) == sorted(j for k in range(4) for j in (k, k + 1000))
    assert not any(f.file.sources for f in await ds.files(as_of=snaps[-1].id))
    # as of the latest: the compacted files and the later ones.
    assert sum(bool(f.file.sources) for f in await ds.files()) == 2
    seen = []
    async with aclosing_watch(ds) as it:
        async for s in it:
            seen.append(s.id)
            if len(seen) == 6:
                break
    assert seen == [s.id for s in (*snaps, *later)]


def aclosing_watch(ds: Dataset) -> Any:
    from contextlib import aclosing

    return aclosing(ds.watch(poll_interval=0.01))


async def test_expiry_after_compaction_serves_retained_rows_only(store: aiolode.Store) -> None:
    ds = _hive(store)
    snaps = await _fill(ds, 6)
    first = await ds.compact(target_file_size=BIG, min_files=2)
    report = await ds.expire(snapshots=[snaps[0].id])
    # The compacted file of d0 held snapshot 0's rows: it leaves the view, and
    # the retained rows' own file serves again. d1 is untouched.
    # (snapshot 0's own file had already left the view: the compacted one leaves.)
    d0 = [k for k in first.written if "day=d0" in k]
    assert set(report.files) == set(d0)
    rows = await _rows(ds)
    want = sorted(j for k in range(1, 6) for j in (k, k + 1000))
    assert sorted(i for _, i in rows) == want
    assert len(rows) == len(set(rows))  # no row twice
    await _sound(ds)
    # gc: the expired snapshot's file and the unusable compacted file go; the
    # retained snapshots' files stay (they serve and time travel reads them).
    await anyio.sleep(store.stamp_resolution.total_seconds())
    gc = await ds.gc(grace=NOW)
    assert set(gc.deleted) >= {f.key for f in snaps[0].files}
    assert sorted(i for _, i in await _rows(ds)) == want
    for s in snaps[1:]:
        assert len(await ds.read(s.id)) == 2
    await _sound(ds)
    # Compacting again works on what serves now; expiring again removes exactly.
    again = await ds.compact(target_file_size=BIG, min_files=2)
    assert again.record is not None
    assert sorted(i for _, i in await _rows(ds)) == want
    await ds.expire(snapshots=[snaps[1].id])
    left = sorted(j for k in range(2, 6) for j in (k, k + 1000))
    assert sorted(i for _, i in await _rows(ds)) == left
    assert len(first.written) == 2
    await _sound(ds)


async def test_order_of_compactions_and_expiry_never_duplicates(
    memory: aiolode.MemoryStore,
) -> None:
    """A compacted file that stopped serving never brings back rows a later
    compaction holds (the fold is order-independent)."""
    ds = Dataset("u", memory, codec=aiolode.JSONL())
    snaps = [await ds.write([{"i": i}]) for i in range(5)]
    await ds.compact(target_file_size=BIG, min_files=2)  # F = 0..4
    await ds.expire(snapshots=[snaps[0].id])  # F stops serving; 1..4 serve
    await ds.compact(target_file_size=BIG, min_files=2)  # G = 1..4
    more = await ds.write([{"i": 5}])
    rows = [r["i"] for f in await ds.files() for r in await _jsonl(memory, f)]
    assert rows == [1, 2, 3, 4, 5]
    cold = Dataset("u", memory)
    assert [f.file.key for f in await cold.files()] == [f.file.key for f in await ds.files()]
    await ds.expire(snapshots=[snaps[3].id])  # G stops serving: 1, 2, 4 from their files
    rows = [r["i"] for f in await ds.files() for r in await _jsonl(memory, f)]
    assert rows == [1, 2, 4, 5]
    assert more.id == (await ds.latest()).id
    await _sound(ds)


async def _jsonl(store: aiolode.Store, df: aiolode.DataFile) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in (await store.get(df.file.key)).splitlines()]


async def test_appends_during_compaction_are_kept(memory: aiolode.MemoryStore) -> None:
    ds = _hive(memory)
    await _fill(ds, 4)
    other = _hive(memory)
    added: list[aiolode.Snapshot] = []

    async def append(_: object) -> None:
        if not added:
            added.append(await other.write([{"day": "d0", "i": 99}]))

    # The rival appends while the compaction stores its first file.
    compactor = _hive(
        FaultInjectingStore(memory, [Rule(op="put", key="*/data/*", nth=1, action=Hook(append))]),
        "ev",
    )
    report = await compactor.compact(target_file_size=BIG, min_files=2)
    assert added
    assert report.record is not None
    rows = sorted(i for _, i in await _rows(ds))
    assert rows == sorted([*range(4), *range(1000, 1004), 99])
    assert added[0].id == (await ds.latest()).id
    await _sound(ds)


async def test_concurrent_expiry_of_an_input_is_a_clean_conflict(
    memory: aiolode.MemoryStore,
) -> None:
    ds = _hive(memory)
    snaps = await _fill(ds, 4)
    rival = _hive(memory)

    async def expire(_: object) -> None:
        await rival.expire(snapshots=[snaps[0].id])

    compactor = _hive(
        FaultInjectingStore(memory, [Rule(op="put", key="*/data/*", nth=1, action=Hook(expire))]),
        "ev",
    )
    with pytest.raises(aiolode.ConflictError, match="left the view"):
        await compactor.compact(target_file_size=BIG, min_files=2)
    # Nothing changed but the expiry; the compaction's files were removed.
    want = sorted(j for k in (1, 2, 3) for j in (k, k + 1000))
    assert sorted(i for _, i in await _rows(ds)) == want
    await _sound(ds)


async def test_a_compaction_older_than_a_gc_fence_is_stale(memory: aiolode.MemoryStore) -> None:
    ds = _hive(memory)
    await _fill(ds, 4)
    rival = _hive(memory)

    async def gc(_: object) -> None:
        await anyio.sleep(0.01)
        await rival.gc(grace=NOW)

    compactor = _hive(
        FaultInjectingStore(
            memory, [Rule(op="put", key="*/data/*", nth=2, action=Hook(gc, when="after"))]
        ),
        "ev",
    )
    with pytest.raises(aiolode.StaleWriteError):
        await compactor.compact(target_file_size=BIG, min_files=2)
    assert len(await ds.files()) == 4
    await _sound(ds)


async def test_bad_arguments_and_blobs(memory: aiolode.MemoryStore) -> None:
    ds = _hive(memory)
    await _fill(ds, 2)
    for kw in (
        {"target_file_size": 0},
        {"target_file_size": "1"},
        {"target_file_size": True},
        {"min_files": 1},
        {"min_files": 2.5},
        {"where": 3},
    ):
        with pytest.raises(aiolode.InvalidInputError):
            await ds.compact(**kw)
    blobs = Dataset("b", memory)
    await blobs.write(b"x")
    with pytest.raises(aiolode.UnsupportedOperationError):
        await blobs.compact()
    with pytest.raises(aiolode.DatasetNotFoundError):
        await Dataset("nothing", memory).compact()
    await ds.drop(grace=NOW)
    with pytest.raises(aiolode.DatasetNotFoundError):
        await ds.compact()


async def test_compaction_across_checkpoints(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("c", memory, codec=aiolode.JSONL())
    for i in range(70):
        await ds.write([{"i": i}])
    await ds.compact(target_file_size=BIG, min_files=2)
    for i in range(70, 140):
        await ds.write([{"i": i}])
    await ds.expire(keep_last=100)
    assert await ds.checkpoint() in (True, False)
    rows = [r["i"] for f in await ds.files() for r in await _jsonl(memory, f)]
    assert rows == list(range(40, 140))
    cold = Dataset("c", memory)
    assert [f.file.key for f in await cold.files()] == [f.file.key for f in await ds.files()]
    await _sound(ds)
