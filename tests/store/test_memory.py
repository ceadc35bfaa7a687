from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiolode import InvalidInputError, MemoryStore
from aiolode.testing.store_suite import StoreConformance


class TestMemoryStore(StoreConformance[MemoryStore]):
    @pytest.fixture
    async def store(self) -> AsyncIterator[MemoryStore]:
        async with MemoryStore(page_size=self.page_size) as s:
            yield s

    async def raw_get(self, store: MemoryStore, key: str) -> bytes | None:
        obj = store._objects.get(key)
        return None if obj is None else obj.data

    async def raw_put(self, store: MemoryStore, key: str, data: bytes) -> None:
        store._commit(key, data, "overwrite")

    async def raw_keys(self, store: MemoryStore) -> set[str]:
        return set(store._objects)


@pytest.mark.parametrize("page_size", [0, -1, True, 2.0, "3"])
def test_bad_page_size(page_size: object) -> None:
    with pytest.raises(InvalidInputError):
        MemoryStore(page_size=page_size)  # type: ignore[arg-type]
