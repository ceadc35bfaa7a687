"""The history conformance suite over Dataset (raw blobs, default layout)."""

from __future__ import annotations

import uuid
from typing import Any

from aiolode import Dataset, DatasetNotFoundError, Snapshot, Store
from aiolode.testing.history_suite import HistoryConformance
from tests.history.known_bugs import with_known_bugs


@with_known_bugs
class TestDatasetHistory(HistoryConformance[Dataset, Snapshot]):
    kind = "dataset"
    id_pattern = r"[0-9]{16}-[0-9]{4}"
    never_written_error = DatasetNotFoundError
    extra_malformed_ids = (
        "00000000000000000001",
        "0000000000000001-00000",
        "0000000000000001_0000",
    )

    def open_history(self, store: Store, name: str) -> Dataset:
        return Dataset(name, store, retry=self.retry)

    async def stage(self, history: Dataset) -> object:
        return uuid.uuid4().bytes

    async def commit(self, history: Dataset, staged: object, metadata: Any) -> Snapshot:
        return await history.write(staged, metadata)

    async def read(self, history: Dataset, snapshot: object) -> object:
        return await history.read(snapshot)  # type: ignore[arg-type]

    def record_key(self, history: Dataset, seq: int) -> str:
        return f"{history.layout.log_prefix(history.id)}{seq:016d}.json"

    def hint_key(self, history: Dataset) -> str:
        return f"{history.layout.log_prefix(history.id)}_latest.json"

    def snapshot_id_at(self, seq: int) -> str:
        return f"{seq:016d}-0000"

    def unknown_ids(self, committed: Any) -> list[str]:
        # Record 1 holds one snapshot: its second index names nothing.
        return [*super().unknown_ids(committed), "0000000000000001-0001", "0000000000000001-9999"]
