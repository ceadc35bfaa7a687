"""The serving path: ``open_blob`` (streamed, verified), ``read_range`` (true range
reads), metadata decided at commit, and the content type of a blob."""

from __future__ import annotations

import decimal
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import Dataset
from aiolode.testing import CountingStore

DATA = bytes(range(256)) * 1000 + b"tail"  # 256,004 bytes: not a multiple of any chunk


async def _blob(ds: Dataset, data: bytes = DATA, **kw: Any) -> aiolode.Snapshot:
    async with ds.stream_write(**kw) as w:
        for i in range(0, len(data), 50_000):
            await w.write(data[i : i + 50_000])
    return w.snapshot


async def _drain(blob: aiolode.Blob, into: list[bytes]) -> None:
    async for chunk in blob:
        into.append(chunk)


async def _upload(ds: Dataset, data: bytes, late: dict[str, Any]) -> None:
    """A streamed upload whose metadata is changed after the data streamed."""
    async with ds.stream_write({"ok": True}) as w:
        await w.write(data)
        w.metadata.update(late)


async def _keys(store: aiolode.Store) -> list[str]:
    """Every key but the log's (whose ``latest`` hint moves alongside writes)."""
    return sorted([o.key async for o in store.list("") if "/_log/" not in o.key])


# ---------------------------------------------------------------- open_blob
async def test_open_blob_streams_verified_chunks(store: aiolode.Store) -> None:
    ds = Dataset("media", store)  # the default checksum (XXH3) is recorded
    snap = await _blob(ds, content_type="application/x-test")
    for ref in (snap.id, snap, await Dataset("media", store).snapshot(snap.id)):
        async with ds.open_blob(ref, chunk_size=7777) as blob:
            assert blob.snapshot.id == snap.id
            assert blob.size == blob.stored_size == len(DATA)
            assert blob.checksum == snap.files[0].checksum
            assert blob.checksum is not None
            assert blob.checksum.startswith("xxh3")
            assert blob.content_type == "application/x-test"
            assert blob.compressor is None
            chunks = [c async for c in blob]
        assert b"".join(chunks) == DATA
        assert all(0 < len(c) <= 7777 for c in chunks)
    # A cold object on the same store opens it by id alone.
    async with Dataset("media", store).open_blob(snap.id) as blob:
        assert b"".join([c async for c in blob]) == DATA


async def test_open_blob_reads_nothing_until_iterated(memory: aiolode.MemoryStore) -> None:
    counting = CountingStore(memory)
    ds = Dataset("d", counting)
    snap = await ds.write(b"x" * 1000)
    with counting.measure() as m:
        async with ds.open_blob(snap) as blob:
            assert blob.size == 1000
    # A HEAD or a 304 costs no data request: only snapshot resolution.
    assert m.counts["iter_bytes"] == 0
    assert m.counts["get_range"] == 0
    assert m.counts.bytes_read < 1000
    with counting.measure() as m:
        async with ds.open_blob(snap) as blob:
            assert b"".join([c async for c in blob]) == b"x" * 1000
    assert m.counts["iter_bytes"] == 1
    assert m.counts["get"] == 0


async def test_open_blob_empty_and_one_byte(store: aiolode.Store) -> None:
    ds = Dataset("tiny", store)
    empty = await ds.write(b"")
    one = await _blob(ds, b"!")
    async with ds.open_blob(empty) as blob:
        assert blob.size == 0
        assert [c async for c in blob] == []
    async with ds.open_blob(one) as blob:
        assert blob.size == 1
        assert [c async for c in blob] == [b"!"]


async def test_open_blob_iterates_once_and_closes(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    snap = await ds.write(DATA)
    async with ds.open_blob(snap, chunk_size=1000) as blob:
        async for _ in blob:
            break  # stopping early is fine: the block closes the stream
        with pytest.raises(aiolode.InvalidInputError, match="once"):
            blob.__aiter__()
        assert await blob.read_range(1, 3) == DATA[1:4]  # ranges any number of times
    with pytest.raises(aiolode.InvalidInputError, match="closed"):
        blob.__aiter__()
    with pytest.raises(aiolode.InvalidInputError, match="closed"):
        await blob.read_range(0, 1)


async def test_damaged_blob_raises_instead_of_ending(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory, checksum=aiolode.SHA256())
    snap = await ds.write(DATA)
    key = snap.files[0].key
    flipped = bytearray(DATA)
    flipped[-1] ^= 0xFF  # same length: only the checksum can tell
    cases: list[tuple[bytes, type[Exception]]] = [
        (bytes(flipped), aiolode.ChecksumMismatchError),
        (DATA[:-10], aiolode.CorruptDataError),  # truncated
        (DATA + b"more", aiolode.CorruptDataError),  # grew
    ]
    for damaged, error in cases:
        await memory.put(key, damaged, mode="overwrite")
        got: list[bytes] = []
        async with ds.open_blob(snap, chunk_size=10_000) as blob:
            with pytest.raises(error) as ei:
                await _drain(blob, got)
        assert ei.value.key == key
        assert ei.value.snapshot_id == snap.id
        # The last chunk was held back: what was handed out is never the whole blob.
        assert sum(map(len, got)) < len(DATA)
        assert sum(map(len, got)) <= len(damaged)


async def test_missing_data_file_raises_on_iteration(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    snap = await ds.write(DATA)
    await memory.delete(snap.files[0].key)
    async with ds.open_blob(snap) as blob:
        with pytest.raises(aiolode.ObjectNotFoundError):
            async for _ in blob:
                pass
    with pytest.raises(aiolode.ObjectNotFoundError):
        await ds.read_range(snap, 0, 10)


async def test_compressed_blob_streams_decompressed_but_refuses_ranges(
    store: aiolode.Store,
) -> None:
    ds = Dataset("z", store, compressor=aiolode.Gzip())
    data = b"abcdefgh" * 200_000  # compresses to a few KiB
    snap = await _blob(ds, data)
    async with ds.open_blob(snap.id, chunk_size=100_000) as blob:
        assert blob.size is None
        assert blob.stored_size == snap.files[0].size < len(data)
        assert blob.compressor == "gzip"
        chunks = [c async for c in blob]
        with pytest.raises(aiolode.UnsupportedOperationError, match="compressed"):
            await blob.read_range(0, 10)
    assert b"".join(chunks) == data
    assert max(map(len, chunks)) <= 100_000
    with pytest.raises(aiolode.UnsupportedOperationError) as ei:
        await ds.read_range(snap, 0, 10)
    assert ei.value.snapshot_id == snap.id


# ---------------------------------------------------------------- read_range
async def test_read_range_every_edge(store: aiolode.Store) -> None:
    ds = Dataset("r", store)
    snap = await _blob(ds)
    n = len(DATA)
    cases = [
        (0, 1),  # first byte
        (n - 1, 1),  # last byte
        (n - 1, 10),  # runs past the end: short
        (n, 5),  # at the end: empty
        (n + 1000, 1),  # past the end: empty
        (0, 0),
        (123, 0),
        (0, n),  # everything
        (0, n + 1),
        (n - 100, 100),  # a suffix
        (1 << 16, 1 << 16),  # the middle
    ]
    for offset, length in cases:
        assert await ds.read_range(snap.id, offset, length) == DATA[offset : offset + length], (
            offset,
            length,
        )
    for bad in [(-1, 1), (0, -1), (1.5, 1), (0, True), ("0", 1)]:
        with pytest.raises(aiolode.InvalidRangeError):
            await ds.read_range(snap, *bad)  # type: ignore[arg-type]


async def test_read_range_is_one_true_range_request(memory: aiolode.MemoryStore) -> None:
    counting = CountingStore(memory)
    ds = Dataset("d", counting)
    snap = await ds.write(DATA)
    await ds.read_range(snap, 0, 1)  # warm the snapshot cache
    with counting.measure() as m:
        assert await ds.read_range(snap, 1000, 4096) == DATA[1000:5096]
    assert m.counts["get_range"] == 1
    assert m.counts.total_calls == 1
    assert m.counts.bytes_read == 4096
    with counting.measure() as m:
        assert await ds.read_range(snap, len(DATA), 10) == b""
    assert m.counts.total_calls == 0


async def test_read_range_of_a_shortened_object(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    snap = await ds.write(DATA)
    await memory.put(snap.files[0].key, DATA[:100], mode="overwrite")
    assert await ds.read_range(snap, 0, 50) == DATA[:50]
    with pytest.raises(aiolode.CorruptDataError) as ei:
        await ds.read_range(snap, 50, 100)
    assert ei.value.key == snap.files[0].key


# ------------------------------------------------------------------- errors
async def test_typed_errors_by_id_and_snapshot(store: aiolode.Store) -> None:
    blobs = Dataset("blobs", store)
    records = Dataset("recs", store, codec=aiolode.JSONL())
    rec = await records.write([{"a": 1}])
    old, _new = await blobs.write(b"old"), await blobs.write(b"new")
    await blobs.expire(snapshots=[old.id])

    for ref in (rec.id, rec):
        with pytest.raises(aiolode.UnsupportedOperationError, match="records") as ei:
            async with records.open_blob(ref):
                pass
        assert ei.value.snapshot_id == rec.id
        with pytest.raises(aiolode.UnsupportedOperationError):
            await records.read_range(ref, 0, 1)
    for ref in (old.id, old):
        with pytest.raises(aiolode.SnapshotExpiredError):
            async with blobs.open_blob(ref):
                pass
        with pytest.raises(aiolode.SnapshotExpiredError):
            await blobs.read_range(ref, 0, 1)
    missing = "0000000000000099-0000"
    with pytest.raises(aiolode.SnapshotNotFoundError) as nf:
        async with blobs.open_blob(missing):
            pass
    assert not isinstance(nf.value, aiolode.SnapshotExpiredError)
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await blobs.read_range(missing, 0, 1)
    with pytest.raises(aiolode.DatasetNotFoundError):
        await Dataset("nobody", store).read_range("0000000000000001-0000", 0, 1)
    with pytest.raises(aiolode.InvalidInputError):  # a snapshot of another dataset
        await blobs.read_range(rec, 0, 1)
    for bad in (0, -1, 1.5, None):
        with pytest.raises(aiolode.InvalidInputError, match="chunk_size"):
            async with blobs.open_blob(_new, chunk_size=bad):  # type: ignore[arg-type]
                pass


# ----------------------------------------------------- metadata at commit
async def test_stream_write_metadata_decided_at_commit(store: aiolode.Store) -> None:
    ds = Dataset("up", store)
    upload_id = uuid.uuid4()
    started = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    async with ds.stream_write({"name": "a.bin", "status": "partial"}) as w:
        assert w.metadata == {"name": "a.bin", "status": "partial"}
        digest = hashlib.sha256()
        for i in range(0, len(DATA), 65536):
            await w.write(DATA[i : i + 65536])
            digest.update(DATA[i : i + 65536])
        w.metadata["sha256"] = digest.hexdigest()
        w.metadata["size"] = w.bytes_written
        w.metadata["status"] = "complete"  # changed, not only added
        w.metadata.update(
            upload_id=upload_id,
            started=started,
            day=started.date(),
            price=decimal.Decimal("1.10"),
            raw=digest.digest(),
        )
        w.content_type = "application/octet-stream"
    want = {
        "name": "a.bin",
        "status": "complete",
        "sha256": hashlib.sha256(DATA).hexdigest(),
        "size": len(DATA),
        "upload_id": upload_id,
        "started": started,
        "day": date(2026, 1, 2),
        "price": decimal.Decimal("1.10"),
        "raw": hashlib.sha256(DATA).digest(),
        "content_type": "application/octet-stream",
    }
    assert w.snapshot.metadata == want
    # After the commit the writer shows what was committed, read-only.
    assert w.metadata == want
    with pytest.raises(TypeError):
        w.metadata["late"] = 1
    with pytest.raises(aiolode.InvalidInputError):
        w.set_metadata({"late": 1})
    with pytest.raises(aiolode.InvalidInputError):
        w.content_type = "text/plain"
    # Read back by another object: the same values, of the same types.
    back = await Dataset("up", store).latest()
    assert back.metadata == want
    assert isinstance(back.metadata["upload_id"], uuid.UUID)
    assert isinstance(back.metadata["price"], decimal.Decimal)
    assert isinstance(back.metadata["raw"], bytes)
    async with ds.open_blob(back) as blob:
        assert blob.content_type == "application/octet-stream"


async def test_set_metadata_replaces(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    async with ds.stream_write({"a": 1}, content_type="text/plain") as w:
        await w.write(b"hi")
        w.set_metadata({"b": 2})
        assert w.content_type is None  # replaced, content type included
        w.content_type = "text/plain; charset=utf-8"
        with pytest.raises(aiolode.InvalidInputError):
            w.set_metadata({"when": datetime(2026, 1, 1)})  # naive: refused at once
        with pytest.raises(aiolode.InvalidInputError):
            w.content_type = "not a type"
    assert w.snapshot.metadata == {"b": 2, "content_type": "text/plain; charset=utf-8"}


@pytest.mark.parametrize(
    "late",
    [
        {"when": datetime(2026, 1, 1)},  # naive datetime
        {"big": "x" * 70_000},  # over the 64 KiB default limit
        {"s": {1, 2}},  # no JSON form
        {"content_type": "text\r\nX-Injected: 1"},  # header injection
        {"content_type": 7},
    ],
    ids=["naive", "too-large", "set", "crlf", "not-str"],
)
async def test_invalid_metadata_at_commit_aborts(
    store: aiolode.Store, late: dict[str, Any]
) -> None:
    ds = Dataset("up", store)
    first = await ds.write(b"kept")
    before = await _keys(store)
    with pytest.raises(aiolode.InvalidInputError):
        await _upload(ds, DATA, late)
    # No snapshot, and the uploaded object is gone.
    assert (await ds.latest()).id == first.id
    assert await _keys(store) == before
    report = await ds.verify()
    assert report.ok
    assert report.orphans == ()


async def test_metadata_limit_is_the_datasets(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory, max_metadata_bytes=200)
    async with ds.stream_write() as w:
        await w.write(b"x")
        w.metadata["note"] = "y" * 100
    assert w.snapshot.metadata["note"] == "y" * 100
    with pytest.raises(aiolode.InvalidInputError, match="limit is 200"):
        await _upload(ds, b"x", {"note": "y" * 300})
    with pytest.raises(aiolode.InvalidInputError, match="limit is 200"):
        async with ds.stream_write() as w:
            w.set_metadata({"note": "y" * 300})


async def _rows(n: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield {"i": i}


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_stream_write_records_metadata_callable(store: aiolode.Store, kind: str) -> None:
    ds = Dataset("ev", store, codec=aiolode.JSONL())
    seen: list[int] = []

    async def source() -> AsyncIterator[dict[str, Any]]:
        async for r in _rows(50):
            seen.append(r["i"])
            yield r

    def sync_meta() -> dict[str, Any]:
        return {"last": seen[-1], "count": len(seen), "at": datetime(2026, 1, 1, tzinfo=UTC)}

    async def async_meta() -> dict[str, Any]:
        return sync_meta()

    snap = await ds.stream_write_records(
        source(), metadata=sync_meta if kind == "sync" else async_meta
    )
    assert snap.metadata == {"last": 49, "count": 50, "at": datetime(2026, 1, 1, tzinfo=UTC)}
    assert (await ds.latest()).metadata == snap.metadata


async def test_stream_write_records_metadata_callable_failures(store: aiolode.Store) -> None:
    ds = Dataset("ev", store, codec=aiolode.JSONL())
    first = await ds.write([{"i": -1}])
    before = await _keys(store)

    class Boom(Exception):
        pass

    def boom() -> dict[str, Any]:
        raise Boom("the caller's own error")

    with pytest.raises(Boom):  # propagates unchanged
        await ds.stream_write_records(_rows(10), metadata=boom)
    with pytest.raises(aiolode.InvalidInputError, match="mapping or None"):
        await ds.stream_write_records(_rows(10), metadata=lambda: ["not", "a", "mapping"])
    with pytest.raises(aiolode.InvalidInputError, match="naive"):
        await ds.stream_write_records(_rows(10), metadata=lambda: {"t": datetime(2026, 1, 1)})
    assert (await ds.latest()).id == first.id
    assert await _keys(store) == before
    # None from the callable is {}; a plain mapping is still checked before any I/O.
    snap = await ds.stream_write_records(_rows(3), metadata=lambda: None)
    assert snap.metadata == {}
    with pytest.raises(aiolode.InvalidInputError):
        await ds.stream_write_records(_rows(3), metadata={"t": datetime(2026, 1, 1)})


# --------------------------------------------------------------- content type
async def test_write_content_type(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    snap = await ds.write(b"<p>", content_type="text/html; charset=utf-8")
    assert snap.metadata == {"content_type": "text/html; charset=utf-8"}
    same = await ds.write(b"x", {"content_type": "image/png"}, content_type="image/png")
    assert same.metadata["content_type"] == "image/png"
    via_meta = await ds.write(b"x", {"content_type": "image/gif"})
    async with ds.open_blob(via_meta) as blob:
        assert blob.content_type == "image/gif"
    async with ds.open_blob(await ds.write(b"x")) as blob:
        assert blob.content_type is None
    bad: list[dict[str, Any]] = [
        {"content_type": "image/png", "metadata": {"content_type": "image/gif"}},  # contradicts
        {"content_type": "png"},
        {"content_type": "a/b\n"},
        {"content_type": "x/" + "y" * 300},
        {"content_type": b"image/png"},
        {"metadata": {"content_type": "nope"}},
    ]
    n = len([s async for s in ds.snapshots()])
    for kw in bad:
        with pytest.raises(aiolode.InvalidInputError):
            await ds.write(b"x", **kw)
        with pytest.raises(aiolode.InvalidInputError):
            async with ds.stream_write(**kw):
                pass
    assert len([s async for s in ds.snapshots()]) == n
    records = Dataset("r", memory, codec=aiolode.JSONL())
    with pytest.raises(aiolode.InvalidInputError, match="raw blobs"):
        await records.write([{"a": 1}], content_type="application/json")


# ------------------------------------------------ found outside this area
async def test_the_object_that_dropped_can_write_again(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    await ds.write(b"first life")
    await ds.drop()
    snap = await ds.write(b"second life")
    assert await ds.read(snap) == b"second life"


async def test_an_empty_blob_stores_no_object(store: aiolode.Store) -> None:
    """An empty blob is a snapshot without files: SeaweedFS, once it holds an empty
    object, refuses every create-only put for about a minute (docs/s3.md), so the
    next commit would stall; no store needs the object anyway."""
    ds = Dataset("void", store)
    empty = await ds.write(b"")
    async with ds.stream_write() as w:
        pass
    assert empty.files == ()
    assert w.snapshot.files == ()
    with anyio.fail_after(20):
        nxt = await ds.write(b"after")  # not stalled
    for s in (empty, w.snapshot):
        assert await ds.read(s.id) == b""
        async with ds.open_blob(s) as blob:
            assert blob.size == 0
    assert await ds.read(nxt.id) == b"after"
    assert (await ds.verify()).ok
