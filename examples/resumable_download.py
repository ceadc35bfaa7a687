"""An out-of-order, resumable download into a Volume, verified byte for byte.

Many tasks fetch pieces of a "remote file" in random order and stage them as
blocks; a committer records them in small batches. The first process is
interrupted part-way (its task group is cancelled). A second process (here: a
fresh Volume object on the same directory) asks ``latest().missing_ranges()``,
fetches only what is missing, and finishes. Run it::

    python examples/resumable_download.py

It exits 0 after checking the result, using a temporary directory.
"""

from __future__ import annotations

import hashlib
import random
import tempfile

import anyio

from aiolode import SHA256, BlockRef, FileStore, NoSnapshotsError, Volume

PIECE = 16 * 1024
SIZE = 200 * PIECE + 1234  # not a multiple of the piece size: the last piece is short
REMOTE = random.Random(42).randbytes(SIZE)  # stands in for the file on a server


async def fetch(offset: int, length: int) -> bytes:
    """Pretend to download ``[offset, offset+length)`` over the network."""
    await anyio.sleep(random.random() / 1000)
    return REMOTE[offset : offset + length]


async def download(vol: Volume, ranges: list[tuple[int, int]], stop_after: int | None) -> int:
    """Fetch ``ranges`` in random order with 16 workers, committing in batches.

    ``stop_after`` simulates a crash: the whole download is cancelled once that
    many pieces have been committed. Returns the number of pieces committed.
    """
    pieces = [
        (o, min(PIECE, start + length - o))
        for start, length in ranges
        for o in range(start, start + length, PIECE)
    ]
    random.shuffle(pieces)
    send, receive = anyio.create_memory_object_stream[BlockRef](64)
    committed = 0

    async def worker(
        todo: list[tuple[int, int]], out: anyio.abc.ObjectSendStream[BlockRef]
    ) -> None:
        async with out:
            for offset, length in todo:
                await out.send(await vol.stage_write_at(offset, await fetch(offset, length)))

    async def committer(tg: anyio.abc.TaskGroup) -> None:
        nonlocal committed
        batch: list[BlockRef] = []
        async with receive:
            async for ref in receive:
                batch.append(ref)
                if len(batch) == 8:
                    await vol.commit(batch, metadata={"pieces": len(batch)})
                    committed += len(batch)
                    batch = []
                    if stop_after is not None and committed >= stop_after:
                        tg.cancel_scope.cancel()  # the "crash"
                        return
            if batch:
                await vol.commit(batch)
                committed += len(batch)

    async with anyio.create_task_group() as tg:
        tg.start_soon(committer, tg)
        async with send:
            for w in range(16):
                tg.start_soon(worker, pieces[w::16], send.clone())
    return committed


async def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        # First run: interrupted after about a third of the pieces.
        async with FileStore(root) as store:
            vol = Volume("download", store, SIZE, checksum=SHA256())
            try:
                await vol.latest()
                raise AssertionError("a fresh volume has no snapshots")
            except NoSnapshotsError:
                pass
            first = await download(vol, [(0, SIZE)], stop_after=64)

        # Second run: a new process would do exactly this.
        async with FileStore(root) as store:
            vol = Volume("download", store, SIZE, checksum=SHA256())
            before = await vol.latest()
            missing = before.missing_ranges()
            assert before.committed_bytes >= first * PIECE - PIECE, "committed pieces survived"
            assert missing, "the first run was interrupted"
            print(
                f"resuming: {before.committed_bytes:,} of {SIZE:,} bytes committed, "
                f"{len(missing)} missing ranges"
            )
            await download(vol, missing, stop_after=None)
            final = await vol.latest()
            assert final.is_complete
            assert final.missing_ranges() == []
            data = await vol.read_at(final.id, 0, SIZE)
            assert data == REMOTE
            print(
                f"done: {final.block_count} blocks in {int(final.id)} commits, "
                f"sha256 {hashlib.sha256(data).hexdigest()[:16]}… verified"
            )


if __name__ == "__main__":
    anyio.run(main)
