"""Many stagers, many committers, many processes: every disjoint block lands."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import anyio
import pytest

from aiolode import CRC32, MemoryStore, Store, Volume
from aiolode.volume import BlockRef

from .test_volume import payload

BLOCK = 64


async def test_32_stagers_4_committers(store: Store) -> None:
    """32 tasks stage 2 blocks each; 4 Volume objects (racing for sequence numbers)
    commit them in batches as they arrive."""
    n_blocks = 64
    total = n_blocks * BLOCK
    order = list(range(n_blocks))
    random.Random(7).shuffle(order)
    send, receive = anyio.create_memory_object_stream[BlockRef](n_blocks)
    committers = [Volume("big", store, total, checksum=CRC32()) for _ in range(4)]
    stager = Volume("big", store, total, checksum=CRC32())
    ids: list[str] = []

    async def stage(worker: int, sender: anyio.abc.ObjectSendStream[BlockRef]) -> None:
        async with sender:
            for i in order[worker::32]:
                await sender.send(await stager.stage_write_at(i * BLOCK, payload(i * BLOCK, BLOCK)))

    async def commit(vol: Volume, receiver: anyio.abc.ObjectReceiveStream[BlockRef]) -> None:
        async with receiver:
            batch: list[BlockRef] = []
            async for ref in receiver:
                batch.append(ref)
                if len(batch) == 3:
                    ids.append((await vol.commit(batch)).id)
                    batch = []
            if batch:
                ids.append((await vol.commit(batch)).id)

    async with anyio.create_task_group() as tg:
        for vol in committers:
            tg.start_soon(commit, vol, receive.clone())
        for w in range(32):
            tg.start_soon(stage, w, send.clone())
        send.close()
        receive.close()

    latest = await Volume("big", store, total, checksum=CRC32()).latest()
    assert latest.is_complete
    assert latest.block_count == n_blocks
    assert sorted(ids) == [f"{i:020d}" for i in range(1, len(ids) + 1)]  # linear history
    assert await committers[0].read_at(latest.id, 0, total) == payload(0, total)


async def test_one_volume_object_many_committing_tasks(store: Store) -> None:
    vol = Volume("v", store, 24 * BLOCK)
    async with anyio.create_task_group() as tg:
        for i in range(24):

            async def one(i: int = i) -> None:
                await vol.commit([await vol.stage_write_at(i * BLOCK, payload(i * BLOCK, BLOCK))])

            tg.start_soon(one)
    latest = await vol.latest()
    assert latest.is_complete
    assert latest.id == f"{24:020d}"


_CHILD = """
import sys, anyio
from aiolode import FileStore, S3Store, Volume, CRC32, Retry

kind, where, bucket, worker, blocks, size = sys.argv[1:7]
worker, blocks, size = int(worker), int(blocks), int(size)

def payload(offset, length):
    return bytes((i * 7 + 3) % 251 for i in range(offset, offset + length))

async def main():
    if kind == "file":
        store = FileStore(where)
    else:
        store = S3Store(bucket, endpoint_url=where, region_name="us-east-1")
    total = 4 * blocks * size
    async with store:
        # Short backoff cap: four writers race on every sequence number.
        retry = Retry(attempts=60, base_delay=0.002, max_delay=0.05)
        vol = Volume("shared", store, total, checksum=CRC32(), retry=retry)
        for j in range(blocks):
            i = j * 4 + worker
            ref = await vol.stage_write_at(i * size, payload(i * size, size))
            await vol.commit([ref], metadata={"worker": worker})

# Half the writers on each event loop: the format is the contract, not the runtime.
anyio.run(main, backend="trio" if worker % 2 else "asyncio")
"""


async def _run_children(kind: str, where: str, bucket: str, blocks: int) -> None:
    async with anyio.create_task_group() as tg:
        for w in range(4):
            cmd = [sys.executable, "-c", _CHILD, kind, where, bucket, str(w), str(blocks), "32"]
            tg.start_soon(lambda cmd=cmd: anyio.run_process(cmd, check=True))


async def _check_shared(store: Store, blocks: int) -> None:
    total = 4 * blocks * 32
    vol = Volume("shared", store, total, checksum=CRC32())
    latest = await vol.latest()
    assert latest.is_complete, latest.missing_ranges()
    assert latest.id == f"{4 * blocks:020d}"
    assert await vol.read_at(latest.id, 0, total) == payload(0, total)
    workers = sorted([json.dumps(s.metadata) async for s in vol.snapshots()])
    assert workers == sorted(json.dumps({"worker": w}) for w in range(4) for _ in range(blocks))


# The writers are child processes (on both event loops, see _CHILD): running the
# parent on both backends would only double the cost.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_four_processes_on_the_filesystem(tmp_path: Path) -> None:
    from aiolode import FileStore

    await _run_children("file", str(tmp_path), "", 4)
    async with FileStore(tmp_path) as store:
        await _check_shared(store, 4)


@pytest.mark.s3
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_four_processes_on_s3(s3_endpoint: str, s3_bucket: str) -> None:
    from aiolode import S3Store

    await _run_children("s3", s3_endpoint, s3_bucket, 2)
    async with S3Store(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1") as store:
        await _check_shared(store, 2)


async def test_disjoint_rival_rebases_overlapping_rival_is_an_error() -> None:
    store = MemoryStore()
    a = Volume("v", store, 100)
    b = Volume("v", store, 100)
    await a.commit([await a.stage_write_at(0, b"a" * 10)])
    await b.latest()  # b's head is now snapshot 1
    await a.commit([await a.stage_write_at(10, b"a" * 10)])
    # b is stale: it loses sequence 2, sees a's blocks, rebases.
    snap = await b.commit([await b.stage_write_at(20, b"b" * 10)])
    assert snap.id == f"{3:020d}"
    assert snap.committed_ranges() == [(0, 30)]
    await a.commit([await a.stage_write_at(30, b"a" * 10)])
    from aiolode import OverlappingBlocksError

    with pytest.raises(OverlappingBlocksError) as ei:
        await b.commit([await b.stage_write_at(35, b"b" * 10)])
    assert ei.value.ranges == [(35, 10)]
