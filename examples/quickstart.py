"""Quick start: blobs and records in a dataset on the local filesystem.

Run: python examples/quickstart.py   (uses a temporary directory; exits 0 on success)

Shows: a raw-blob dataset with metadata, a JSON Lines dataset, snapshots as an
immutable linear history, time travel by snapshot id, and verified reads.
"""

from __future__ import annotations

import tempfile

import anyio

import aiolode


async def main(root: str) -> None:
    async with aiolode.FileStore(root) as store:
        # 1. Raw blobs: one bytes object per snapshot, with metadata.
        uploads = aiolode.Dataset("uploads", store, checksum=aiolode.SHA256())
        first = await uploads.write(b"%PDF-1.7 ...", metadata={"filename": "report.pdf"})
        second = await uploads.write(b"\x89PNG ...", metadata={"filename": "chart.png"})
        print(f"uploads: {first.id} -> {second.id}")
        assert second.parent_id == first.id
        assert await uploads.read(first.id) == b"%PDF-1.7 ..."
        assert (await uploads.latest()).metadata == {"filename": "chart.png"}

        # 2. Records: JSON Lines, with min/max timestamps in the manifest.
        events = aiolode.Dataset(
            "events", store, codec=aiolode.JSONL(), checksum=aiolode.SHA256(), timestamp_field="ts"
        )
        batch1 = [
            {"user": "ada", "action": "login", "ts": "2024-05-01T09:00:00Z"},
            {"user": "bob", "action": "view", "ts": "2024-05-01T09:05:00Z"},
        ]
        s1 = await events.write(batch1, metadata={"source": "web"})
        s2 = await events.write([{"user": "ada", "action": "logout", "ts": "2024-05-01T17:00:00Z"}])
        print(
            f"events: {s1.row_count} rows, then {s2.row_count}; range {s1.manifest.min_timestamp}"
        )

        # 3. History: every snapshot, oldest first; each one is immutable.
        history = [s.id async for s in events.snapshots()]
        assert history == [s1.id, s2.id]
        assert await events.read(s1.id) == batch1  # time travel: the old snapshot
        table = await events.read_table(s2.id)
        assert table.num_rows == 1

        # 4. A fresh Dataset object (another process, later) sees the same.
        again = aiolode.Dataset("events", store)
        assert (await again.latest()).id == s2.id
        assert [r["user"] async for r in again.iter_records(s1.id)] == ["ada", "bob"]
        print("ok")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, tmp)
