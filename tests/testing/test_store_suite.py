"""The conformance suite refuses a subclass that would not really run it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiolode import MemoryStore
from aiolode.testing.store_suite import StoreConformance


class _Backdoors(StoreConformance[MemoryStore]):
    """Not named Test*: a base may leave the fixture to its subclasses."""

    async def raw_get(self, store: MemoryStore, key: str) -> bytes | None:
        obj = store._objects.get(key)
        return None if obj is None else obj.data

    async def raw_put(self, store: MemoryStore, key: str, data: bytes) -> None:
        store._commit(key, data, "overwrite")

    async def raw_keys(self, store: MemoryStore) -> set[str]:
        return set(store._objects)


async def _memory() -> AsyncIterator[MemoryStore]:
    async with MemoryStore() as s:
        yield s


def test_a_complete_subclass_is_accepted() -> None:
    class TestComplete(_Backdoors):
        store = pytest.fixture(_memory)

    assert TestComplete.__abstractmethods__ == frozenset()


def test_a_forgotten_backdoor_fails_at_definition() -> None:
    with pytest.raises(TypeError, match=r"TestForgetful .* does not provide raw_keys$"):

        class TestForgetful(StoreConformance[MemoryStore]):
            store = pytest.fixture(_memory)

            async def raw_get(self, store: MemoryStore, key: str) -> bytes | None:
                return None

            async def raw_put(self, store: MemoryStore, key: str, data: bytes) -> None:
                pass


def test_every_missing_piece_is_named() -> None:
    with pytest.raises(TypeError, match=r"the store fixture, raw_get, raw_keys, raw_put$"):

        class TestEmpty(StoreConformance[MemoryStore]):
            pass


def test_a_forgotten_fixture_fails_at_definition() -> None:
    # tests/stores.py has a global `store` fixture: without this check the suite
    # would run against it and fail test by test, far from the cause.
    with pytest.raises(TypeError, match="the store fixture"):

        class TestNoFixture(_Backdoors):
            pass


def test_the_backdoors_are_abstract() -> None:
    assert StoreConformance.__abstractmethods__ == {"raw_get", "raw_put", "raw_keys"}
