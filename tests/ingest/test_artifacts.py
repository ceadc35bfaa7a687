"""Artifacts: large payloads streamed into a raw companion dataset, referenced by items."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import ArtifactRef, Buffered, Ingestor, Run
from aiolode.testing import FaultInjectingStore, Hook, Rule

from ._helpers import wait_until, written

MiB = 1024 * 1024


async def _chunks(n: int, size: int = MiB) -> AsyncIterator[bytes]:
    for i in range(n):
        yield bytes([i % 251]) * size


async def test_items_reference_streamed_artifacts(store: aiolode.Store) -> None:
    ds = aiolode.quarry_dataset("crawl", store)
    run = Run("r", source="s", category="c")
    async with Ingestor(ds, policy=Buffered(flush_interval=0.01), run=run) as ing:
        shot = await ing.emit_artifact("page-1.png", _chunks(5), content_type="image/png")
        body = await ing.emit_artifact("page-1.html", b"<html>hi</html>", content_type="text/html")
        await ing.emit(
            {"url": "https://x/1", "screenshot": shot.to_record(), "body": body.to_record()},
            event_type="item",
        )
    assert shot.size == 5 * MiB
    assert (shot.name, shot.content_type, shot.dataset_id) == (
        "page-1.png",
        "image/png",
        "crawl.artifacts",
    )
    st = ing.stats
    assert (st.artifacts, st.artifact_bytes) == (2, 5 * MiB + 15)
    [item] = await written(aiolode.Dataset("crawl", store), "r")
    ref = ArtifactRef.from_record(item["screenshot"])
    assert ref == shot
    art = aiolode.Dataset(ref.dataset_id, store)
    data = await art.read(ref.snapshot_id)
    assert data == b"".join([c async for c in _chunks(5)])
    assert await art.read(ArtifactRef.from_record(item["body"]).snapshot_id) == b"<html>hi</html>"
    meta = (await art.snapshot(ref.snapshot_id)).metadata
    assert meta["artifact"] == {"name": "page-1.png", "content_type": "image/png"}
    assert meta["ingest"]["run"]["run_id"] == "r"


async def test_resumed_run_reuses_stored_artifacts(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    run = Run("r")
    async with Ingestor(ds, run=run) as ing:
        first = await ing.emit_artifact("a.bin", b"first")
        await ing.emit_artifact("b.bin", b"other")
    async with Ingestor(ds, run=Run("someone-else")) as ing:
        await ing.emit_artifact("a.bin", b"not mine")

    async def must_not_be_read() -> AsyncIterator[bytes]:
        raise AssertionError("a stored artifact was uploaded again")
        yield b""  # pragma: no cover

    async with Ingestor(ds, run=run.next_attempt(), resume=True) as ing:
        again = await ing.emit_artifact("a.bin", must_not_be_read())
        new = await ing.emit_artifact("c.bin", b"new")
        assert await ing.emit_artifact("c.bin", b"ignored") == new
    assert again == first
    assert ing.stats.artifacts == 1
    art = aiolode.Dataset("d.artifacts", memory)
    assert len([s async for s in art.snapshots()]) == 4


async def test_artifact_uploads_are_bounded(memory: aiolode.MemoryStore) -> None:
    release = anyio.Event()
    inside = 0
    peak = 0

    async def hold(call: Any) -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await release.wait()
        inside -= 1

    faulty = FaultInjectingStore(
        memory, [Rule(op="put", key="*artifacts/data/*", action=Hook(hold))]
    )
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL())
    async with (
        Ingestor(ds, run=Run("r"), max_artifact_uploads=2) as ing,
        anyio.create_task_group() as tg,
    ):
        for i in range(6):
            tg.start_soon(ing.emit_artifact, f"{i}.bin", b"x" * 100)
        await wait_until(lambda: inside == 2)
        await anyio.sleep(0.05)
        assert peak == 2
        release.set()
    assert ing.stats.artifacts == 6


async def test_artifact_arguments_are_checked(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    ing = Ingestor(ds, run=Run("r"))
    with pytest.raises(aiolode.UnsupportedOperationError):
        await ing.emit_artifact("a", b"x")
    async with ing:
        bad: list[tuple[Any, Any, Any]] = [
            ("", b"x", "a/b"),
            ("a\n", b"x", "a/b"),
            ("a", b"x", ""),
            ("a", 42, "a/b"),
            ("a", "text is not bytes", "a/b"),
        ]
        for name, data, ctype in bad:
            with pytest.raises(aiolode.InvalidInputError):
                await ing.emit_artifact(name, data, content_type=ctype)
    with pytest.raises(aiolode.InvalidInputError):
        ArtifactRef.from_record({"name": "x"})
    good = ArtifactRef("d.artifacts", "0000000000000001-0000", "a", "image/png", 3)
    assert ArtifactRef.from_record(good.to_record()) == good
    # Found by the hostile sweep: only the ids and the name were checked, so a
    # mapping with a str size or no content type came back as a reference.
    for bad_field in (
        {"size": "3"},
        {"size": -1},
        {"size": True},
        {"size": 3.0},
        {"content_type": None},
        {"content_type": b"image/png"},
    ):
        with pytest.raises(aiolode.InvalidInputError):
            ArtifactRef.from_record({**good.to_record(), **bad_field})
    with_codec = aiolode.Dataset("coded", memory, codec=aiolode.JSONL())
    async with Ingestor(ds, run=Run("r2"), artifacts=with_codec) as ing2:
        with pytest.raises(aiolode.InvalidInputError, match="raw"):
            await ing2.emit_artifact("a", b"x")


async def test_a_failed_stream_stores_nothing(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise OSError("the source died")

    async with Ingestor(ds, run=Run("r")) as ing:
        with pytest.raises(OSError, match="source died"):
            await ing.emit_artifact("a", broken())
    assert ing.stats.artifacts == 0
    assert [k async for k in memory.list("datasets/d.artifacts/data/")] == []
