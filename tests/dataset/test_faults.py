"""Fault injection at every store call of the write path: failing before the
call, and after it took effect (lost acknowledgement). Never a torn state,
never a duplicate, never an orphaned data file."""

from __future__ import annotations

import itertools

import anyio
import pytest

import aiolode
from aiolode import Dataset
from aiolode.testing import (
    CountingStore,
    Fail,
    FaultInjectingStore,
    Hook,
    LoseAck,
    Rule,
    seal_document,
)

FAST = aiolode.Retry(attempts=6, base_delay=0.0, max_delay=0.0)


async def _verify(mem: aiolode.MemoryStore, dataset: str = "d") -> list[aiolode.Snapshot]:
    """The history is a linear chain; every referenced file exists; no orphans."""
    ds = Dataset(dataset, mem)
    try:
        snaps = [s async for s in ds.snapshots()]
    except aiolode.DatasetNotFoundError:
        snaps = []  # nothing was ever committed (or recorded)
    for prev, cur in itertools.pairwise(snaps):
        assert cur.parent_id == prev.id
    # Data files and (format v2) partition manifests of committed snapshots.
    referenced = {f.key for s in snaps for f in s.files}
    referenced |= {p.key for s in snaps for p in s.manifest.partition_manifests}
    stored = {o.key async for o in mem.list(ds.layout.data_prefix(dataset))}
    assert stored == referenced
    for s in snaps:
        await ds.read(s.id)  # checksums verify, files exist
    return snaps


async def _setup(
    path: str, kwargs: dict[str, object], data: object, store: aiolode.Store
) -> tuple[aiolode.MemoryStore, Dataset]:
    """Two committed snapshots; a Dataset object on ``store`` (cold or warm)."""
    mem = store.inner if isinstance(store, FaultInjectingStore | CountingStore) else store
    assert isinstance(mem, aiolode.MemoryStore)
    ds = Dataset("d", store, retry=FAST, **kwargs)  # type: ignore[arg-type]
    writer = ds if path == "warm" else Dataset("d", mem, **kwargs)  # type: ignore[arg-type]
    await writer.write(data, {"tag": "old"})
    await writer.write(data, {"tag": "old"})
    return mem, ds


CASES = {
    "raw": ({"checksum": aiolode.SHA256()}, b"payload"),
    "hive": (
        {"codec": aiolode.JSONL(), "layout": aiolode.HiveLayout("p")},
        [{"p": "a", "v": 1}, {"p": "b", "v": 2}],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("path", ["cold", "warm"])
@pytest.mark.parametrize("action", ["fail", "lose-ack"])
async def test_single_fault_at_every_call(case: str, path: str, action: str) -> None:
    kwargs, data = CASES[case]
    counting = CountingStore(aiolode.MemoryStore(), record=True)
    _, dry = await _setup(path, kwargs, data, counting)
    counting.reset()
    await dry.write(data)
    ops = [op for op, _ in counting.calls]
    # Data put(s), plus (format v2, partitioned) one partition manifest each.
    n_data = 1 if case == "raw" else 2 + 2
    if path == "cold":
        # descriptor get ‖ hint get (seq 1); records 1 and 2 and the stride after
        # them (8 heads); data put(s), partition manifests, record put
        assert sorted(ops) == sorted(["put"] * (n_data + 1) + ["get"] * 4 + ["head"] * 8)
    else:
        # data put(s), partition manifests, record put (the hint is one record
        # behind: it moves once per stride)
        assert ops == ["put"] * (n_data + 1)
    for n in range(1, len(ops) + 1):
        faulty = FaultInjectingStore(aiolode.MemoryStore())
        mem, ds = await _setup(path, kwargs, data, faulty)
        act = Fail() if action == "fail" else LoseAck()
        faulty.add(Rule(op="*", nth=n, action=act))
        snap = await ds.write(data, {"tag": "new"})
        assert [c.injected for c in faulty.log].count(True) == 1
        snaps = await _verify(mem)
        assert [s.metadata["tag"] for s in snaps] == ["old", "old", "new"], (n, action)
        assert snaps[-1].id == snap.id
        assert snaps[-1].manifest == snap.manifest


async def test_persistent_commit_failure_commits_nothing() -> None:
    """Every record put fails: nothing is committed, and the error says the outcome
    is unknown (a put that timed out may still land later), so the data file is
    kept for that case: an orphan for gc(), never a snapshot without its data."""
    mem = aiolode.MemoryStore()
    await Dataset("d", mem).write(b"old")
    faulty = FaultInjectingStore(mem, [Rule(op="put", key="*/_log/0*", action=Fail())])
    ds = Dataset("d", faulty, retry=FAST)
    with pytest.raises(aiolode.TransientStorageError, match="outcome is unknown"):
        await ds.write(b"new")
    snaps = [s async for s in Dataset("d", mem).snapshots()]
    assert len(snaps) == 1
    stored = {o.key async for o in mem.list("datasets/d/data/")}
    assert len(stored - {f.key for s in snaps for f in s.files}) == 1


async def test_unknown_outcome_keeps_data() -> None:
    """Put lands, but every read to confirm it fails: the outcome is unknown, so
    the data files stay (the commit may reference them), and latest() tells."""
    mem = aiolode.MemoryStore()
    await Dataset("d", mem).write(b"old")
    faulty = FaultInjectingStore(mem)
    ds = Dataset("d", faulty, retry=FAST)
    await ds.latest()
    faulty.add(
        Rule(op="put", key="*/_log/0*", nth=1, action=LoseAck()),
        Rule(op="get", key="*/_log/0*", action=Fail()),
    )
    with pytest.raises(aiolode.TransientStorageError, match="unknown outcome"):
        await ds.write(b"new")
    snaps = await _verify(mem)
    assert len(snaps) == 2  # it did land, and its data file is intact


async def test_lost_ack_then_rival_is_not_a_conflict() -> None:
    """Our put lands but reports failure; a rival then commits after it. Our
    retry must recognise our record by its token: success, not a conflict."""
    mem = aiolode.MemoryStore()
    ds0 = Dataset("d", mem, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    base = await ds0.write([{"p": "a", "mine": False}])

    async def rival(_: object) -> None:
        await Dataset("d", mem, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p")).write(
            [{"p": "a"}]
        )

    faulty = FaultInjectingStore(
        mem,
        [
            Rule(op="put", key="*/_log/0000000000000002.json", nth=1, action=LoseAck()),
            Rule(
                op="put",
                key="*/_log/0000000000000002.json",
                nth=1,
                action=Hook(rival, when="after"),
            ),
        ],
    )
    ds = Dataset("d", faulty, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"), retry=FAST)
    await ds.latest()
    snap = await ds.write([{"p": "a", "mine": True}], expected_parent=base.id)
    assert snap.id == "0000000000000002-0000"
    snaps = await _verify(mem)
    assert len(snaps) == 3
    assert sum(1 for s in snaps if s.id == snap.id) == 1


async def test_random_faults_soak() -> None:
    """Many writers, 10% of calls failing either way: history stays exact."""
    mem = aiolode.MemoryStore()
    faulty = FaultInjectingStore(
        mem,
        [
            Rule(op="*", probability=0.05, action=Fail()),
            Rule(op="*", probability=0.05, action=LoseAck()),
        ],
        seed=7,
    )
    retry = aiolode.Retry(attempts=30, base_delay=0.0, max_delay=0.0)
    objs = [Dataset("d", faulty, retry=retry) for _ in range(3)]
    done: list[aiolode.Snapshot] = []
    failed = 0

    async def worker(ds: Dataset, w: int) -> None:
        nonlocal failed
        for i in range(15):
            try:
                done.append(await ds.write(b"%d" % i, {"w": w, "i": i}))
            except aiolode.TransientStorageError:
                failed += 1

    async with anyio.create_task_group() as tg:
        for w, ds in enumerate(objs):
            for k in range(2):
                tg.start_soon(worker, ds, w * 10 + k)
    faulty.clear()
    ds = Dataset("d", mem)
    snaps = [s async for s in ds.snapshots()]
    for prev, cur in itertools.pairwise(snaps):
        assert cur.parent_id == prev.id
    tags = [(s.metadata["w"], s.metadata["i"]) for s in snaps]
    assert len(tags) == len(set(tags))  # never committed twice
    assert {s.id for s in done} <= {s.id for s in snaps}  # every success is real
    assert len(snaps) >= len(done)
    for s in snaps:
        assert await ds.read(s.id) == b"%d" % s.metadata["i"]


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "fail"])
async def test_unreadable_record_while_resolving_a_lost_ack(damage: str) -> None:
    """The put lands, its reply is lost, and the read meant to resolve it comes
    back damaged: the engine must read again, never assume "not committed" (and
    delete the data of a commit that landed)."""
    from aiolode.testing import Corrupt, Truncate

    mem = aiolode.MemoryStore()
    action = {"truncate": Truncate(), "corrupt": Corrupt(bits=8), "fail": Fail()}[damage]
    faulty = FaultInjectingStore(
        mem,
        [
            Rule(op="put", key="*/_log/0000000000000001.json", nth=1, action=LoseAck()),
            # get 1 is the cold probe (missing); get 2 is the first resolving read.
            Rule(op="get", key="*/_log/0000000000000001.json", nth=2, action=action),
        ],
    )
    ds = Dataset("d", faulty, retry=FAST, checksum=aiolode.SHA256())
    snap = await ds.write(b"payload", {"tag": "new"})
    snaps = await _verify(mem)
    assert [s.id for s in snaps] == [snap.id]


async def test_persistently_unreadable_record_is_an_unknown_outcome() -> None:
    from aiolode.testing import Truncate

    mem = aiolode.MemoryStore()
    faulty = FaultInjectingStore(mem)
    ds = Dataset("d", faulty, retry=FAST)
    faulty.add(
        Rule(op="put", key="*/_log/0000000000000001.json", nth=1, action=LoseAck()),
        Rule(op="get", key="*/_log/0000000000000001.json", action=Truncate()),
    )
    with pytest.raises(aiolode.TransientStorageError, match="unknown outcome"):
        await ds.write(b"payload")
    faulty.clear()
    snaps = await _verify(mem)  # the commit landed and its data was kept
    assert len(snaps) == 1


@pytest.mark.parametrize("claimed", [0, 5])
async def test_a_lying_hint_never_creates_a_gap(claimed: int) -> None:
    """The hint is a pointer, never the truth: a hint naming a record that does
    not exist (damaged at rest or in transit) is ignored, never built upon."""
    import json

    mem = aiolode.MemoryStore()
    s1 = await Dataset("d", mem).write(b"a")
    doc = json.loads(await mem.get("datasets/d/_log/0000000000000001.json"))
    doc["seq"] = claimed
    await mem.put("datasets/d/_log/_latest.json", seal_document(doc), mode="overwrite")
    assert (await Dataset("d", mem).latest()).id == s1.id
    s2 = await Dataset("d", mem).write(b"b")
    assert s2.id == "0000000000000002-0000"
    snaps = await _verify(mem)
    assert [s.id for s in snaps] == [s1.id, s2.id]
