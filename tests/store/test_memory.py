from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiolode import MemoryStore
from aiolode.store import Store
from aiolode.testing.store_suite import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[MemoryStore]:
        async with MemoryStore(page_size=self.page_size) as s:
            yield s

    async def raw_get(self, store: Store, key: str) -> bytes | None:
        assert isinstance(store, MemoryStore)
        obj = store._objects.get(key)
        return None if obj is None else obj.data

    async def raw_put(self, store: Store, key: str, data: bytes) -> None:
        assert isinstance(store, MemoryStore)
        store._commit(key, data, "overwrite")

    async def raw_keys(self, store: Store) -> set[str]:
        assert isinstance(store, MemoryStore)
        return set(store._objects)
