"""The history conformance suite over Volume (one-byte blocks, one per commit)."""

from __future__ import annotations

import secrets
from typing import Any

from aiolode import Store, Volume, VolumeSnapshot
from aiolode.testing.history_suite import HistoryConformance
from tests.history.known_bugs import with_known_bugs

#: Blocks land at random offsets of a 1 TiB space: disjoint without coordination.
SPACE = 1 << 40


@with_known_bugs
class TestVolumeHistory(HistoryConformance[Volume, VolumeSnapshot]):
    kind = "volume"
    id_pattern = r"[0-9]{20}"
    extra_malformed_ids = ("0000000000000001-0000", "000000000000000000001", "0000000000000000001")

    def open_history(self, store: Store, name: str) -> Volume:
        return Volume(name, store, total_length=SPACE, retry=self.retry)

    async def stage(self, history: Volume) -> object:
        return [await history.stage_write_at(secrets.randbelow(SPACE), b"x")]

    async def commit(self, history: Volume, staged: object, metadata: Any) -> VolumeSnapshot:
        return await history.commit(staged, metadata)  # type: ignore[arg-type]

    async def read(self, history: Volume, snapshot: object) -> object:
        await history.read_at(snapshot, 0, 0)  # type: ignore[arg-type]  # the id rules of reads
        snap = await history.snapshot(snapshot)  # type: ignore[arg-type]
        return [await history.read_at(snap, o, n) for o, n in snap.committed_ranges()]

    def record_key(self, history: Volume, seq: int) -> str:
        return f"volumes/{history.id}/_log/{seq:020d}.json"

    def hint_key(self, history: Volume) -> str:
        return f"volumes/{history.id}/_latest"

    def snapshot_id_at(self, seq: int) -> str:
        return f"{seq:020d}"
