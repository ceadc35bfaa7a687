"""Ingest tests take the shared ``store`` fixture (``tests/stores.py``), or —
for the heavy fault matrices — ``core_store``: memory, file and S3 (moto) only,
the kinds the ingestion contract names; the shared suites cover the adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.stores import make_store as make_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import aiolode

__all__ = ["make_store"]


@pytest.fixture(params=["memory", "file", pytest.param("s3", marks=pytest.mark.s3)])
def core_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, object]:
    """Memory, file or S3, as ``store_spec`` would give them."""
    kind = str(request.param)
    if kind == "memory":
        return (kind, None)
    if kind == "file":
        root = tmp_path / "store"
        root.mkdir(exist_ok=True)
        return (kind, root)
    return (kind, (request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")))


@pytest.fixture
async def core_store(core_spec: tuple[str, object]) -> AsyncIterator[aiolode.Store]:
    """An opened, empty memory, file or S3 store."""
    async with make_store(core_spec) as s:
        yield s
