"""A copying process for the kill -9 test: ``python -m tests.copy._copy_proc``.

Arguments: ``<kind> <source dir> <destination dir>`` where kind is ``dataset``
or ``volume``. Copies slowly (its progress callback sleeps) and prints one line
per progress report, ``records=<n>``, so the test can kill it mid-copy.
"""

from __future__ import annotations

import sys

import anyio

import aiolode


async def main(kind: str, src_dir: str, dst_dir: str) -> None:
    async def progress(p: aiolode.CopyProgress) -> None:
        print(f"records={p.records} objects={p.objects}", flush=True)
        await anyio.sleep(0.01)

    async with aiolode.FileStore(src_dir) as src, aiolode.FileStore(dst_dir) as dst:
        if kind == "dataset":
            await aiolode.copy_dataset(aiolode.Dataset("events", src), dst, progress=progress)
        else:
            vol = aiolode.Volume("disk", src, 1 << 20, checksum=aiolode.SHA256())
            await aiolode.copy_volume(vol, dst, progress=progress)
    print("done", flush=True)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:4])
