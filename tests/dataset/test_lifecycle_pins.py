"""Lifecycle defects found by ``benchmarks/bench_lifecycle.py``, now regression tests.

Each test states the contract it holds the code to; all were fixed (they failed on
the code the benchmark measured: strict xfails until then). The figures behind
each are in
``docs/lifecycle-bench.md``.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import Dataset
from aiolode.dataset import _checkpoint
from aiolode.dataset._checkpoint import CHECKPOINT_INTERVAL, checkpoint_key
from aiolode.manifest._converter import decode as real_decode
from aiolode.manifest._converter import encode as real_encode
from aiolode.testing import CountingStore


async def _checkpoint_keys(store: aiolode.Store, ds: Dataset) -> list[str]:
    prefix = checkpoint_key(ds._log, 0).rsplit("/", 1)[0] + "/"
    return [o.key async for o in store.list(prefix)]


async def test_gc_collects_superseded_checkpoints() -> None:
    store = aiolode.MemoryStore()
    ds = Dataset("cp", store)
    for i in range(3 * CHECKPOINT_INTERVAL + 2):
        await ds.write(b"%d" % i)
    newest = checkpoint_key(ds._log, 3 * CHECKPOINT_INTERVAL)
    written = [checkpoint_key(ds._log, k * CHECKPOINT_INTERVAL) for k in (1, 2, 3)]
    if await _checkpoint_keys(store, ds) != written:
        pytest.fail("precondition: the writer folded a checkpoint at every boundary")
    await ds.gc(grace=timedelta(0))
    left = await _checkpoint_keys(store, ds)
    assert newest in left  # what readers use is kept
    # The first one is superseded twice over: a reader probing back from the head
    # never reaches it while the newest is sound.
    assert checkpoint_key(ds._log, CHECKPOINT_INTERVAL) not in left, left


async def test_concurrent_writers_fold_a_checkpoint_once() -> None:
    counting = CountingStore(aiolode.MemoryStore(), record=True)
    ds = Dataset("fold", counting)
    for i in range(CHECKPOINT_INTERVAL - 2):
        await ds.write(b"%d" % i)
    counting.reset()

    async def writer(k: int) -> None:
        # Records hold at most one write per task here: 8 writes each is >= 8 records.
        for i in range(8):
            await ds.write(b"%d-%d" % (k, i))

    async with anyio.create_task_group() as tg:
        for k in range(16):
            tg.start_soon(writer, k)
    head = await ds._log.refresh()
    folds = [k for op, k in counting.calls if op == "put" and "/_checkpoints/" in k]
    if head is None or head.seq < CHECKPOINT_INTERVAL + 1 or not folds:
        pytest.fail("precondition: the writes crossed a checkpoint boundary and folded it")
    # One fold per boundary (a second one after a lost race is tolerable).
    assert len(folds) <= 2, folds


async def test_large_checkpoints_are_coded_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    on_loop: list[tuple[str, int]] = []

    def decode(data: bytes, *args: Any, **kwargs: Any) -> Any:
        if len(data) > 64 * 1024 and threading.get_ident() == loop_thread:
            on_loop.append(("decode", len(data)))
        return real_decode(data, *args, **kwargs)

    def encode(doc: Any) -> bytes:
        data = real_encode(doc)
        if len(data) > 64 * 1024 and threading.get_ident() == loop_thread:
            on_loop.append(("encode", len(data)))
        return data

    monkeypatch.setattr(_checkpoint, "decode", decode)
    monkeypatch.setattr(_checkpoint, "encode", encode)
    store = aiolode.MemoryStore()
    ds = Dataset("big", store)
    # Enough files for a checkpoint above 64 KiB (about 300 bytes per raw file).
    n = 5 * CHECKPOINT_INTERVAL
    for i in range(n + 1):  # the write after the boundary folds its checkpoint
        await ds.write(b"%d" % i)
    # Preconditions (not assertions: those are the expected failure).
    if (await store.head(checkpoint_key(ds._log, n))).size <= 64 * 1024:
        pytest.fail("precondition: the newest checkpoint is larger than 64 KiB")
    if len(await Dataset("big", store).files()) != n + 1:
        pytest.fail("precondition: a cold files() sees every file")
    assert not on_loop, on_loop


async def test_reads_after_expiry_do_not_pay_for_the_expired_history() -> None:
    store = aiolode.MemoryStore()
    ds = Dataset("exp", store)
    n = 3 * CHECKPOINT_INTERVAL + 2  # the checkpoint at 192 lists 192 files
    for i in range(n):
        await ds.write(b"%d" % i)
    counting = CountingStore(store)
    with counting.measure() as before:
        if len(await Dataset("exp", counting).files()) != n:
            pytest.fail("precondition: a cold files() sees every file")
    await ds.expire(keep_last=2)
    await ds.gc(grace=timedelta(0))
    with counting.measure() as after:
        if len(await Dataset("exp", counting).files()) != 2:
            pytest.fail("precondition: two snapshots are left")
    # Two files of 194 are left: reading the view must cost a fraction of what
    # the whole history cost (today it reads the same checkpoint again).
    assert after.counts.bytes_read < before.counts.bytes_read / 4, (before.counts, after.counts)
