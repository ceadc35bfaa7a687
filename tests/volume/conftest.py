"""Volume tests take the shared ``store`` fixture (``tests/stores.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from aiolode import MemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def mem() -> AsyncIterator[MemoryStore]:
    """A MemoryStore, for tests about logic rather than backends."""
    async with MemoryStore() as s:
        yield s
