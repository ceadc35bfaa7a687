"""Every read path checks each data file's recorded size and row count, with or
without a checksum, and every error names the file, the dataset and the snapshot.

The damages are the ones a checksum-less dataset used to return silently:
truncation at a record boundary (51 of 100 JSONL rows, 500 of 1000 blob bytes),
extra records appended, and a manifest row count that the file does not hold.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import attrs
import pytest

import aiolode
from aiolode.dataset._read import (
    components,
    iter_file_records,
    read_blob,
    read_file,
    read_records,
    read_table,
)

pa = pytest.importorskip("pyarrow")

CODECS: dict[str, Any] = {
    "jsonl": lambda: (aiolode.JSONL(), None),
    "jsonl-gzip": lambda: (aiolode.JSONL(), aiolode.Gzip()),
    "jsonl-zstd": lambda: (aiolode.JSONL(), aiolode.Zstd()),
    "parquet": lambda: (aiolode.Parquet(row_group_size=10), None),
    "arrow": lambda: (aiolode.ArrowIPC(), None),
    "arrow-zstd": lambda: (aiolode.ArrowIPC(), aiolode.Zstd()),
}

ROWS = [{"n": i, "s": f"row {i}"} for i in range(100)]


@pytest.fixture(params=list(CODECS))
def codec(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def one_file(store: aiolode.Store, codec: str) -> tuple[aiolode.Dataset, aiolode.Snapshot]:
    c, comp = CODECS[codec]()
    # One dataset per codec: a dataset's configuration is recorded at its first write.
    ds = aiolode.Dataset(f"events-{codec}", store, codec=c, compressor=comp, checksum=None)
    snap = await ds.write(ROWS)
    (f,) = snap.files
    assert f.checksum is None
    return ds, snap


def assert_context(err: aiolode.AiolodeError, snap: aiolode.Snapshot, key: str) -> None:
    assert err.key == key
    assert err.dataset_id == snap.dataset_id
    assert err.snapshot_id == snap.id


async def all_read_paths(
    store: aiolode.Store, snap: aiolode.Snapshot, f: aiolode.FileRef
) -> list[tuple[str, BaseException | None, int]]:
    """Run every read function on a manifest whose only file is ``f``: (path, error, rows)."""
    manifest = attrs.evolve(snap.manifest, files=[f]) if snap.files[0] != f else snap.manifest
    codec, comp = components(manifest)
    assert codec is not None
    out: list[tuple[str, BaseException | None, int]] = []
    ctx = {"dataset_id": snap.dataset_id, "snapshot_id": snap.id}
    for name in ("read_records", "read_table", "iter_file_records", "read_file"):
        got = 0
        try:
            if name == "read_records":
                got = len(await read_records(store, manifest))
            elif name == "read_table":
                got = (await read_table(store, manifest)).num_rows
            elif name == "read_file":
                got = len(await read_file(store, f, comp, **ctx))
            else:
                it = iter_file_records(store, f, codec, comp, 7, **ctx)
                async with aclosing(it) as batches:
                    async for batch in batches:
                        got += len(batch)
        except aiolode.AiolodeError as exc:
            out.append((name, exc, got))
        else:
            out.append((name, None, got))
    return out


async def test_intact_files_read_on_every_path(store: aiolode.Store, codec: str) -> None:
    ds, snap = await one_file(store, codec)
    for name, err, got in await all_read_paths(store, snap, snap.files[0]):
        assert err is None, (name, err)
        if name != "read_file":
            assert got == 100, name
    assert await ds.read(snap) == ROWS


@pytest.mark.parametrize("cut", ["half", "record_boundary", "one_byte"])
async def test_truncated_file_is_corrupt_on_every_path(
    store: aiolode.Store, codec: str, cut: str
) -> None:
    ds, snap = await one_file(store, codec)
    (f,) = snap.files
    data = await store.get(f.key)
    if cut == "record_boundary" and codec == "jsonl":
        # 51 whole lines: valid JSONL, which only the size (or a checksum) can tell.
        n = sum(len(line) for line in data.splitlines(keepends=True)[:51])
    elif cut == "one_byte":
        n = len(data) - 1
    else:
        n = len(data) // 2
    await store.put(f.key, data[:n], mode="overwrite")
    for name, err, got in await all_read_paths(store, snap, f):
        assert isinstance(err, aiolode.CorruptDataError), (name, err)
        assert_context(err, snap, f.key)
        assert got < 100, name  # never a complete-looking result
    with pytest.raises(aiolode.CorruptDataError) as ei:
        await ds.read(snap)
    assert_context(ei.value, snap, f.key)


async def test_appended_records_are_corrupt(store: aiolode.Store) -> None:
    _, snap = await one_file(store, "jsonl")
    (f,) = snap.files
    data = await store.get(f.key)
    await store.put(f.key, data + b'{"n":100,"s":"row 100"}\n', mode="overwrite")
    for name, err, got in await all_read_paths(store, snap, f):
        assert isinstance(err, aiolode.CorruptDataError), (name, err)
        assert "bytes" in str(err)
        assert got <= 100, name


@pytest.mark.parametrize("recorded", [99, 101, 0])
async def test_row_count_the_file_does_not_hold_is_corrupt(
    store: aiolode.Store, codec: str, recorded: int
) -> None:
    _, snap = await one_file(store, codec)
    f = attrs.evolve(snap.files[0], row_count=recorded)
    for name, err, got in await all_read_paths(store, snap, f):
        if name == "read_file":  # bytes only: size and checksum
            assert err is None
            continue
        assert isinstance(err, aiolode.CorruptDataError), (name, err)
        assert "records" in str(err)
        assert_context(err, snap, f.key)
        # A streamed read hands over at most what the manifest promised, and
        # never the last batch of a file that turns out short.
        assert got <= min(recorded, 100), name
        if recorded < 100 and name == "iter_file_records":
            assert got < recorded or recorded == 0


async def test_streamed_read_holds_the_last_batch_until_the_file_checks_out(
    memory: aiolode.MemoryStore,
) -> None:
    ds = aiolode.Dataset("big", memory, codec=aiolode.JSONL())
    # About 3 MiB: several chunks, so batches flow before the end is reached.
    snap = await ds.write([{"n": i, "pad": "x" * 30_000} for i in range(100)])
    (f,) = snap.files
    data = await memory.get(f.key)
    await memory.put(f.key, data[: len(data) - 1], mode="overwrite")  # last newline gone
    codec, comp = components(snap.manifest)
    assert codec is not None
    batches: list[int] = []

    async def drain() -> None:
        async with aclosing(iter_file_records(memory, f, codec, comp, 10)) as it:
            async for batch in it:
                batches.append(len(batch))

    with pytest.raises(aiolode.CorruptDataError):
        await drain()
    assert 0 < sum(batches) < 100  # batches flowed, but not the last one


async def test_checksum_mismatch_carries_dataset_and_snapshot(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset("sums", memory, codec=aiolode.JSONL(), checksum=aiolode.SHA256())
    snap = await ds.write(ROWS)
    (f,) = snap.files
    data = bytearray(await memory.get(f.key))
    data[10] ^= 0x01
    await memory.put(f.key, bytes(data), mode="overwrite")
    for name, err, _ in await all_read_paths(memory, snap, f):
        assert isinstance(err, aiolode.ChecksumMismatchError | aiolode.CorruptDataError), name
        assert_context(err, snap, f.key)
    with pytest.raises(aiolode.ChecksumMismatchError) as ei:
        await ds.read(snap)
    assert_context(ei.value, snap, f.key)


async def test_missing_file_is_not_found_with_context(memory: aiolode.MemoryStore) -> None:
    _, snap = await one_file(memory, "parquet")
    (f,) = snap.files
    await memory.delete(f.key)
    for name, err, _ in await all_read_paths(memory, snap, f):
        assert isinstance(err, aiolode.ObjectNotFoundError), name
        assert_context(err, snap, f.key)


@pytest.mark.parametrize("compressor", [None, "gzip"])
async def test_truncated_blob_is_corrupt(store: aiolode.Store, compressor: str | None) -> None:
    comp = aiolode.Gzip() if compressor else None
    ds = aiolode.Dataset("blobs", store, compressor=comp)
    blob = bytes(range(256)) * 4
    snap = await ds.write(blob)
    (f,) = snap.files
    data = await store.get(f.key)
    assert await read_blob(store, snap.manifest) == blob
    await store.put(f.key, data[: len(data) // 2], mode="overwrite")
    with pytest.raises(aiolode.CorruptDataError) as ei:
        await read_blob(store, snap.manifest)
    assert_context(ei.value, snap, f.key)
    with pytest.raises(aiolode.CorruptDataError):
        await ds.read(snap)


async def test_undecodable_bytes_of_the_right_size_are_corrupt(memory: aiolode.MemoryStore) -> None:
    for codec in ("parquet", "arrow", "jsonl"):
        _, snap = await one_file(memory, codec)
        (f,) = snap.files
        await memory.put(f.key, b"\xff" * f.size, mode="overwrite")
        for name, err, _ in await all_read_paths(memory, snap, f):
            if name == "read_file":
                continue
            assert isinstance(err, aiolode.CorruptDataError), (codec, name, err)
            assert_context(err, snap, f.key)
        await memory.delete(f.key)


async def test_raw_snapshot_has_no_records(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset("raw", memory)
    snap = await ds.write(b"blob")
    with pytest.raises(aiolode.UnsupportedOperationError):
        await read_records(memory, snap.manifest)
    with pytest.raises(aiolode.UnsupportedOperationError):
        await read_table(memory, snap.manifest)
