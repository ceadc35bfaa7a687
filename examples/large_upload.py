"""A large streamed upload with a progress bar, in bounded memory.

Run: python examples/large_upload.py

Shows ``Dataset.stream_write``: chunks are compressed and hashed off the event
loop and streamed to the store; a clean exit commits, an exception aborts
(no snapshot, no leftover object).
"""

from __future__ import annotations

import sys
import tempfile

import anyio

import aiolode

TOTAL = 64 << 20  # 64 MiB
CHUNK = 1 << 20


def bar(done: int) -> None:
    width = 40
    filled = width * done // TOTAL
    sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done >> 20:3d} MiB")
    sys.stdout.flush()


async def main(root: str) -> None:
    async with aiolode.FileStore(root) as store:
        ds = aiolode.Dataset("videos", store, compressor=aiolode.Zstd(), checksum=aiolode.SHA256())
        chunk = bytes(range(256)) * (CHUNK // 256)
        async with ds.stream_write({"name": "big.bin"}, progress=bar) as w:
            for _ in range(TOTAL // CHUNK):
                await w.write(chunk)
        print()
        snap = w.snapshot
        [f] = snap.files
        print(f"committed {snap.id}: {w.bytes_written >> 20} MiB -> {f.size} bytes stored")
        assert w.bytes_written == TOTAL

        # An aborted upload leaves nothing behind.
        try:
            async with ds.stream_write({"name": "broken.bin"}) as w2:
                await w2.write(chunk)
                raise RuntimeError("source went away")
        except RuntimeError:
            pass
        assert [s.id async for s in ds.snapshots()] == [snap.id]

        # Read it back (checksum verified) and compare.
        data = await ds.read(snap.id)
        assert len(data) == TOTAL
        assert data[:CHUNK] == chunk
        print("ok")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, tmp)
