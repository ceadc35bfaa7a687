"""Shared fixtures: both anyio backends, and a loop-blocking detector for both."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["tests.s3_server", "tests.seaweed_server", "tests.gcs_server", "tests.stores"]


@pytest.fixture(params=["asyncio", "trio"], scope="session")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    # Explicit params: the plugin default silently skips backends that are missing.
    return str(request.param)


class _LoopProbe:
    """Stands in for ``asyncio`` inside blockbuster so it also sees trio's thread.

    blockbuster only asks ``asyncio.get_running_loop()`` whether it is on an event
    loop thread; trio has no asyncio loop, so without this every trio test would
    pass even if aiolode blocked the loop.
    """

    def get_running_loop(self) -> Any:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            pass
        import trio

        try:
            return trio.lowlevel.current_task()
        except RuntimeError:
            raise RuntimeError("no running event loop") from None

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test in which aiolode makes a blocking call on the event loop thread."""
    if "no_blockbuster" in request.keywords:
        yield
        return
    import blockbuster.blockbuster as bbmod

    original = bbmod.asyncio
    bbmod.asyncio = _LoopProbe()  # type: ignore[assignment]
    try:
        with bbmod.blockbuster_ctx(["aiolode"]) as bb:
            # Importing modules lazily reads files; that is import machinery, not I/O
            # the library chose to do on the loop.
            for fn in bb.functions.values():
                fn.can_block_in(
                    "<frozen importlib._bootstrap_external>", {"get_data", "path_stats"}
                )
                fn.can_block_in("importlib/metadata/__init__.py", {"read_text", "entry_points"})
            yield
    finally:
        bbmod.asyncio = original
