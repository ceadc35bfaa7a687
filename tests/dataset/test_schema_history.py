"""A record dataset's schema: recorded at its first write, enforced on every append
from any process, evolved only when asked, and carried in the history."""

from __future__ import annotations

import pytest

import aiolode
from aiolode import Dataset


@pytest.mark.parametrize("codec", ["jsonl", "parquet", "arrow"])
async def test_schema_is_recorded_and_enforced(store: aiolode.Store, codec: str) -> None:
    make = {"jsonl": aiolode.JSONL, "parquet": aiolode.Parquet, "arrow": aiolode.ArrowIPC}[codec]
    ds = Dataset("s", store, codec=make())
    assert await ds.schema() is None
    first = await ds.write([{"status": 200, "url": "a"}])
    schema = await ds.schema()
    assert schema is not None
    assert [f.name for f in schema.fields] == ["status", "url"]
    # Another process, opened by name: the same schema, enforced at write time.
    other = Dataset("s", store)
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await other.write([{"status": "timeout", "url": "b"}])
    msg = str(ei.value)
    assert "status" in msg
    assert first.id in msg  # the snapshot that recorded the schema
    assert ei.value.snapshot_id == first.id
    # Nothing was committed or left behind by the refused write.
    assert [s.id async for s in other.snapshots()] == [first.id]
    report = await other.verify()
    assert report.orphans == ()


async def test_add_columns_is_explicit_and_recorded(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("e", memory, codec=aiolode.Parquet())
    s1 = await ds.write([{"id": 1}])
    with pytest.raises(aiolode.SchemaViolationError):
        await ds.write([{"id": 2, "extra": "x"}])  # strict by default
    evolving = Dataset("e", memory, schema_mode="add_columns")
    s2 = await evolving.write([{"id": 2, "extra": "x"}])
    schema = await Dataset("e", memory).schema()
    assert schema is not None
    assert [f.name for f in schema.fields] == ["id", "extra"]
    # Readers at the old snapshot still read it as written.
    assert await ds.read(s1.id) == [{"id": 1}]
    assert await ds.read(s2.id) == [{"id": 2, "extra": "x"}]
    # A strict writer now writes the evolved schema.
    await Dataset("e", memory).write([{"id": 3, "extra": None}])
    with pytest.raises(aiolode.InvalidInputError):
        Dataset("e", memory, schema_mode="anything")  # type: ignore[arg-type]


async def test_lossy_conversion_is_refused(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("p", memory, codec=aiolode.Parquet())
    await ds.write([{"id": 1}])
    with pytest.raises(aiolode.SchemaViolationError) as ei:
        await ds.write([{"id": 1.5}])
    assert "id" in str(ei.value)


async def test_concurrent_first_writes_agree_on_one_schema(memory: aiolode.MemoryStore) -> None:
    import anyio

    errors: list[BaseException] = []

    async def writer(value: object) -> None:
        try:
            await Dataset("c", memory, codec=aiolode.JSONL()).write([{"v": value}])
        except aiolode.SchemaViolationError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer, 1)
        tg.start_soon(writer, "text")
    snaps = [s async for s in Dataset("c", memory).snapshots()]
    # One schema wins; the other write is refused, never committed beside it.
    assert len(snaps) + len(errors) == 2
    assert len(snaps) >= 1
    values = [r["v"] for s in snaps for r in await Dataset("c", memory).read(s.id)]
    assert len({type(v) for v in values}) == 1
