"""Fixtures: ``examples/upload_server.py`` served on 127.0.0.1 (uvicorn on asyncio,
hypercorn on trio) over a store, and an httpx client on it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

import aiolode
from tests.stores import make_store as make_store

__all__ = ["Served", "make_store", "upload_server"]


def _load() -> ModuleType:
    path = Path(__file__).parent.parent.parent / "examples" / "upload_server.py"
    spec = importlib.util.spec_from_file_location("upload_server", path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["upload_server"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


upload_server = _load()

#: The stores the server is tested on (SeaweedFS and GCS run the same code as S3
#: for what the server adds; the store suites cover them).
SERVER_STORES: list[Any] = ["memory", "file", pytest.param("s3", marks=pytest.mark.s3)]
over_stores = pytest.mark.parametrize("store_spec", SERVER_STORES, indirect=True)


@dataclass
class Served:
    """A running server: its URL, the app, the store under it and a client."""

    url: str
    app: Any
    store: aiolode.Store
    http: httpx.AsyncClient

    @property
    def stats(self) -> Any:
        return self.app.state.stats

    def dataset(self, name: str) -> aiolode.Dataset:
        """A Dataset object of the server's file ``name`` (a second view of it)."""
        return aiolode.Dataset(upload_server.dataset_id(name), self.store)


@pytest.fixture
async def served(store: aiolode.Store) -> AsyncIterator[Served]:
    app = upload_server.create_app(store)
    async with (
        upload_server.open_server(app) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        yield Served(url, app, store, http)
