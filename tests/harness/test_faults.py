"""CI version of the fault-schedule harness (``python -m harness.faults`` is the long run).

Also keeps one test per integrity bug the long run found (docs/reliability.md,
"Findings"): a strict xfail while open, a regression test once fixed. Open: a
Volume writes forward index entries it read corrupted. Fixed: the Dataset
deleted the data files of a commit that landed after a damaged read while
resolving a lost acknowledgement (3d74331); the Dataset built on a latest
hint that lied about the head (922e7b4), or on a record whose snapshot id was
damaged in transit (8f30dd0).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from harness._common import SLOT, block_bytes, check_dataset, check_volume, make_dataset

import aiolode
from aiolode.store import WrapperStore
from aiolode.testing import FaultInjectingStore, LoseAck, Rule, Truncate, seal_document
from harness import faults

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

_SEEDS = range(100, 112)


@pytest.mark.parametrize("seed", _SEEDS)
async def test_dataset_fault_schedule(seed: int) -> None:
    out = await faults.dataset_schedule(seed, read_faults=False)
    assert out.violations == []


@pytest.mark.parametrize("seed", [s for s in range(200, 224) if s % 4 == 3])
async def test_volume_fault_schedule(seed: int) -> None:
    out = await faults.volume_schedule(seed, read_faults=False)
    assert out.violations == []


async def test_schedules_inject_faults() -> None:
    # The harness must actually hurt: across a batch, faults fire and commits
    # are still acknowledged.
    res = await faults.run(16, 500, read_faults=False)
    assert res["failures"] == []
    assert res["faults_injected"] > 10
    assert res["acked_commits"] > 16


async def test_corrupt_read_while_resolving_lost_ack_keeps_committed_data() -> None:
    raw = aiolode.MemoryStore()
    store = FaultInjectingStore(
        raw,
        [
            Rule(op="put", key="*/_log/0000000000000001.json", nth=1, action=LoseAck()),
            # Get 1 is the cold probe (not found); get 2 resolves the lost ack.
            Rule(op="get", key="*/_log/0000000000000001.json", nth=2, action=Truncate()),
        ],
    )
    cfg = faults.CONFIGS[0]
    ds = make_dataset(store, cfg)
    acked = {}
    try:
        snap = await ds.write(faults.payload("t", 50), {"tag": "t", "n": 50})
        acked[snap.id] = "t"
    except aiolode.AiolodeError:
        pass
    bad = await check_dataset(raw, cfg, acked=acked, attempted={"t"})
    assert bad == [], bad


class _FlipFirstBlockName(WrapperStore):
    """Returns index segments with their first block name altered (a corrupted read)."""

    async def _get(self, key: str) -> bytes:
        data = await super()._get(key)
        if "/index/seg-" in key:
            doc = json.loads(data)
            name = doc["names"][0]
            doc["names"][0] = ("0" if name[0] != "0" else "1") + name[1:]
            data = json.dumps(doc).encode()
        return data

    def _iter_bytes(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:  # pragma: no cover
        return super()._iter_bytes(key, chunk_size)  # type: ignore[return-value]


async def test_volume_does_not_write_forward_a_corrupted_segment_read() -> None:
    raw = aiolode.MemoryStore()
    total = 8 * SLOT
    first = aiolode.Volume("hv", raw, total, checksum=aiolode.SHA256())
    s1 = await first.commit([await first.stage_write_at(0, block_bytes(0, SLOT))])
    second = aiolode.Volume("hv", _FlipFirstBlockName(raw), total, checksum=aiolode.SHA256())
    ref = await second.stage_write_at(SLOT, block_bytes(SLOT, SLOT))
    acked = [(s1.id, [(0, SLOT)])]
    try:
        s2 = await second.commit([ref])
        acked.append((s2.id, [(SLOT, SLOT)]))
    except aiolode.AiolodeError:
        pass
    bad = await check_volume(raw, total=total, acked=acked)
    assert bad == [], bad


async def test_a_lying_hint_never_creates_a_gap() -> None:
    raw = aiolode.MemoryStore()
    cfg = faults.CONFIGS[0]
    ds = make_dataset(raw, cfg)
    s1 = await ds.write(faults.payload("a", 10), {"tag": "a", "n": 10})
    # The hint format is a copy of a record: record 1, claiming to be record 5.
    doc = json.loads(await raw.get("datasets/h/_log/0000000000000001.json"))
    doc["seq"] = 5
    await raw.put("datasets/h/_log/_latest.json", seal_document(doc), mode="overwrite")
    s2 = await make_dataset(raw, cfg).write(faults.payload("b", 10), {"tag": "b", "n": 10})
    bad = await check_dataset(raw, cfg, acked={s1.id: "a", s2.id: "b"}, attempted={"a", "b"})
    assert bad == [], bad


class _DamageRecordIds(WrapperStore):
    """Returns log reads with snapshot 1's id altered (valid JSON: a silent corruption)."""

    async def _get(self, key: str) -> bytes:
        data = await super()._get(key)
        if "/_log/" in key:
            data = data.replace(b"0000000000000001-0000", b"0000000000000001-0800")
        return data


async def test_dataset_does_not_build_on_a_corrupted_record_read() -> None:
    # Fault schedules 1446 and 5848 once built the next snapshot on a damaged
    # id (a broken chain); records are now checked against their position.
    raw = aiolode.MemoryStore()
    cfg = faults.CONFIGS[0]
    s1 = await make_dataset(raw, cfg).write(faults.payload("a", 10), {"tag": "a", "n": 10})
    acked = {s1.id: "a"}
    try:
        s2 = await make_dataset(_DamageRecordIds(raw), cfg).write(
            faults.payload("b", 10), {"tag": "b", "n": 10}
        )
        acked[s2.id] = "b"
    except aiolode.AiolodeError:
        pass
    bad = await check_dataset(raw, cfg, acked=acked, attempted={"a", "b"})
    assert bad == [], bad


class _DamageRootIds(WrapperStore):
    """Returns volume root 1 with its snapshot id altered (valid JSON: a silent corruption)."""

    async def _get(self, key: str) -> bytes:
        data = await super()._get(key)
        if key.endswith("/_log/00000000000000000001.json"):
            data = data.replace(b'"00000000000000000001"', b'"00000800000000000001"')
        return data


async def test_volume_does_not_build_on_a_corrupted_root_read() -> None:
    raw = aiolode.MemoryStore()
    total = 8 * SLOT
    first = aiolode.Volume("hv", raw, total, checksum=aiolode.SHA256())
    s1 = await first.commit([await first.stage_write_at(0, block_bytes(0, SLOT))])
    second = aiolode.Volume("hv", _DamageRootIds(raw), total, checksum=aiolode.SHA256())
    acked = [(s1.id, [(0, SLOT)])]
    try:
        ref = await second.stage_write_at(SLOT, block_bytes(SLOT, SLOT))
        s2 = await second.commit([ref])
        acked.append((s2.id, [(SLOT, SLOT)]))
    except aiolode.AiolodeError:
        pass
    bad = await check_volume(raw, total=total, acked=acked)
    assert bad == [], bad
