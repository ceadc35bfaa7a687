"""Bad-input fuzzing (issue 6): keys, ids, partition values, metadata, manifest and data bytes.

Whatever goes in, only typed aiolode errors come out; nothing lands outside
the store root; every corruption of a checksummed data file or block is
detected, on read and by ``verify``. ``AIOLODE_FUZZ_EXAMPLES`` sets the number
of examples per property (``nox -s harness_fuzz`` runs the long version).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiolode
from aiolode import ProblemKind, verify_dataset, verify_volume
from aiolode.layout import stringify_partition_value
from aiolode.manifest._metadata import freeze
from aiolode.testing import seal_document
from aiolode.testing import strategies as lst

from .conftest import FUZZ_EXAMPLES

fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)


class Sandbox:
    """A FileStore root nested in a directory that must stay empty besides it."""

    def __init__(self) -> None:
        self.outer = tempfile.mkdtemp(prefix="aiolode-fuzz-")
        self.root = os.path.join(self.outer, "root")
        os.mkdir(self.root)

    def escaped(self) -> list[str]:
        """Paths created outside the root (must be none)."""
        out = []
        for dirpath, dirnames, filenames in os.walk(self.outer):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.commonpath([path, self.root]) != self.root:
                    out.append(path)
        return out

    def close(self) -> None:
        shutil.rmtree(self.outer, ignore_errors=True)


async def _sandbox() -> Sandbox:
    return await anyio.to_thread.run_sync(Sandbox)


def _typed(exc: BaseException, *allowed: type[aiolode.AiolodeError]) -> None:
    """Fail unless ``exc`` is an aiolode error (of one of ``allowed``, if given)."""
    assert isinstance(exc, aiolode.AiolodeError), f"untyped error reached the caller: {exc!r}"
    if allowed:
        assert isinstance(exc, allowed), f"unexpected error type: {exc!r}"


any_key = st.one_of(lst.keys(), lst.bad_keys(), st.text(max_size=40))
any_id = st.one_of(lst.dataset_ids(), lst.bad_ids(), st.text(max_size=30))


@fuzz
@given(key=any_key)
async def test_keys_only_typed_errors_and_never_escape(key: Any) -> None:
    box = await _sandbox()
    try:
        for store in (aiolode.MemoryStore(), aiolode.FileStore(box.root)):
            async with store:
                try:
                    await store.put(key, b"x")
                except Exception as exc:
                    _typed(exc, aiolode.InvalidKeyError, aiolode.ConflictError)
                    continue
                assert await store.get(key) == b"x"
                assert [i.key async for i in store.list()] == [key]
        assert await anyio.to_thread.run_sync(box.escaped) == []
    finally:
        await anyio.to_thread.run_sync(box.close)


@fuzz
@given(ident=any_id)
async def test_dataset_and_volume_ids(ident: Any) -> None:
    box = await _sandbox()
    try:
        async with aiolode.FileStore(box.root) as store:
            try:
                ds = aiolode.Dataset(ident, store)
            except Exception as exc:
                _typed(exc, aiolode.InvalidKeyError)
            else:
                await ds.write(b"payload")
                keys = [i.key async for i in store.list()]
                assert all(k.startswith(f"datasets/{ident}/") for k in keys)
            try:
                vol = aiolode.Volume(ident, store, 16)
            except Exception as exc:
                _typed(exc, aiolode.InvalidInputError)
            else:
                await vol.commit([await vol.stage_write_at(0, b"abcd")])
                keys = [i.key async for i in store.list("volumes/")]
                assert keys
                assert all(k.startswith(f"volumes/{ident}/") for k in keys)
        assert await anyio.to_thread.run_sync(box.escaped) == []
    finally:
        await anyio.to_thread.run_sync(box.close)


partition_input = st.one_of(
    lst.partition_values(),
    lst.partition_text(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=4),
)


@fuzz
@given(value=partition_input)
async def test_partition_values(value: Any) -> None:
    box = await _sandbox()
    try:
        async with aiolode.FileStore(box.root) as store:
            ds = aiolode.Dataset("p", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("k"))
            try:
                snap = await ds.write([{"k": value, "x": 1}])
            except Exception as exc:
                _typed(exc, aiolode.InvalidInputError)
                return
            expected = stringify_partition_value("k", value)
            (f,) = snap.files
            assert f.partition == {"k": expected}
            assert f.key.startswith("datasets/p/data/")
            assert f.key.count("/") == 4
            fresh = aiolode.Dataset(
                "p", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("k")
            )
            assert (await fresh.latest()).files[0].partition == {"k": expected}
            assert (await verify_dataset(fresh)).ok
        assert await anyio.to_thread.run_sync(box.escaped) == []
    finally:
        await anyio.to_thread.run_sync(box.close)


@fuzz
@given(meta=st.one_of(lst.json_metadata(), lst.bad_metadata()), good=st.just(None))
async def test_metadata(meta: Any, good: None) -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("m", store)
    try:
        json.dumps(meta, allow_nan=False)
        valid = isinstance(meta, dict) and all(isinstance(k, str) for k in meta)
    except (TypeError, ValueError):
        valid = False
    try:
        snap = await ds.write(b"x", meta)
    except Exception as exc:
        _typed(exc, aiolode.InvalidInputError)
        assert not valid, f"valid metadata refused: {meta!r}"
        return
    fresh = aiolode.Dataset("m", store)
    back = (await fresh.snapshot(snap.id)).metadata
    assert back == snap.metadata  # the write path and the read path agree
    if valid:
        assert back == freeze(json.loads(json.dumps(meta)))  # frozen: lists as tuples


async def _exercise_dataset(store: aiolode.Store, ids: list[str]) -> list[BaseException]:
    """Every read path of a fresh Dataset object; the aiolode errors they raised."""
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL(), checksum=aiolode.SHA256())
    errors: list[BaseException] = []
    calls: list[Any] = [ds.latest, *[lambda i=i: ds.snapshot(i) for i in ids]]
    calls += [lambda i=i: ds.read(i) for i in ids]

    async def listing() -> Any:
        return [s async for s in ds.snapshots()]

    calls.append(listing)
    for call in calls:
        try:
            await call()
        except Exception as exc:
            _typed(exc)
            errors.append(exc)
    return errors


def _damaged(doc_bytes: bytes) -> st.SearchStrategy[bytes]:
    doc = json.loads(doc_bytes)
    return st.one_of(
        lst.corruptions(doc_bytes),
        lst.mutated_documents(doc).map(lambda d: json.dumps(d).encode()),
        st.integers(-3, 1000).map(lambda v: json.dumps({**doc, "format_version": v}).encode()),
        st.text(max_size=12).map(lambda v: json.dumps({**doc, "schema_name": v}).encode()),
        st.binary(max_size=64),
    ).filter(lambda b: b != doc_bytes)


async def _damaged_strategy(doc_bytes: bytes) -> st.SearchStrategy[bytes]:
    # Building it describes lambdas (Hypothesis reads their source files):
    # test tooling, not library I/O, so keep it off the event loop thread.
    return await anyio.to_thread.run_sync(_damaged, doc_bytes)


async def _two_snapshots() -> tuple[aiolode.MemoryStore, list[str], str]:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL(), checksum=aiolode.SHA256())
    ids = [(await ds.write([{"a": i, "b": "x" * i}], {"i": i})).id for i in range(2)]
    return store, ids, "datasets/d/_log/0000000000000002.json"


@fuzz
@given(data=st.data())
async def test_damaged_commit_records(data: st.DataObject) -> None:
    store, ids, key = await _two_snapshots()
    damaged = data.draw(await _damaged_strategy(await store.get(key)))
    await store.put(key, damaged, mode="overwrite")
    await store.delete("datasets/d/_log/_latest.json")  # force the readers onto the record
    errors = await _exercise_dataset(store, ids)
    report = await verify_dataset(
        aiolode.Dataset("d", store, codec=aiolode.JSONL(), checksum=aiolode.SHA256())
    )
    if any(isinstance(e, aiolode.FormatError) for e in errors):
        assert not report.ok, "a reader saw a format error that verify missed"


async def _volume(checksum: aiolode.Checksum | None) -> tuple[aiolode.MemoryStore, aiolode.Volume]:
    store = aiolode.MemoryStore()
    vol = aiolode.Volume("v", store, 256, checksum=checksum)
    for off in (0, 64, 128):
        await vol.commit([await vol.stage_write_at(off, bytes(range(off, off + 50)))])
    return store, vol


@fuzz
@given(data=st.data(), which=st.sampled_from(["root", "segment"]))
async def test_damaged_volume_documents(data: st.DataObject, which: str) -> None:
    store, _ = await _volume(aiolode.SHA256())
    if which == "root":
        key = "volumes/v/_log/00000000000000000003.json"
    else:
        # The largest segment: a choice (and a length) that does not depend on
        # uuids, so Hypothesis can replay its draws.
        infos = [i async for i in store.list("volumes/v/index/")]
        key = max(infos, key=lambda i: i.size).key
    damaged = data.draw(await _damaged_strategy(await store.get(key)))
    await store.put(key, damaged, mode="overwrite")
    fresh = aiolode.Volume("v", store, 256, checksum=aiolode.SHA256())
    errors: list[BaseException] = []
    for call in (
        fresh.latest,
        lambda: fresh.snapshot("00000000000000000003"),
        lambda: fresh.read_at("00000000000000000003", 0, 50),
    ):
        try:
            await call()
        except Exception as exc:
            _typed(exc)
            errors.append(exc)
    report = await verify_volume(fresh)
    if any(isinstance(e, aiolode.FormatError) for e in errors):
        assert not report.ok, "a reader saw a format error that verify missed"


checksums = st.sampled_from([aiolode.SHA256(), aiolode.MD5(), aiolode.CRC32(), aiolode.Blake2b()])


@fuzz
@given(data=st.data(), checksum=checksums, codec=st.sampled_from([None, "jsonl", "parquet"]))
async def test_every_data_corruption_detected(
    data: st.DataObject, checksum: aiolode.Checksum, codec: str | None
) -> None:
    store = aiolode.MemoryStore()
    c = {None: None, "jsonl": aiolode.JSONL(), "parquet": aiolode.Parquet()}[codec]
    ds = aiolode.Dataset("d", store, codec=c, checksum=checksum)
    snap = await ds.write(b"0123456789abcdef" * 4 if c is None else [{"a": i} for i in range(20)])
    key = snap.files[0].key
    damaged = data.draw(lst.corruptions(await store.get(key)))
    await store.put(key, damaged, mode="overwrite")
    # A size that differs is caught before the digest (CorruptDataError), as verify does.
    resized = len(damaged) != snap.files[0].size
    with pytest.raises(aiolode.CorruptDataError if resized else aiolode.ChecksumMismatchError):
        await aiolode.Dataset("d", store, codec=c, checksum=checksum).read(snap.id)
    report = await verify_dataset(ds)
    kinds = {p.kind for p in report.problems}
    expected = (
        ProblemKind.SIZE_MISMATCH
        if len(damaged) != snap.files[0].size
        else ProblemKind.CHECKSUM_MISMATCH
    )
    assert kinds == {expected}


@fuzz
@given(data=st.data(), checksum=checksums)
async def test_every_block_corruption_detected(
    data: st.DataObject, checksum: aiolode.Checksum
) -> None:
    store, vol = await _volume(checksum)
    snap = await vol.latest()
    block = snap.blocks()[1]
    damaged = data.draw(lst.corruptions(await store.get(block.key)))
    await store.put(block.key, damaged, mode="overwrite")
    fresh = aiolode.Volume("v", store, 256, checksum=checksum)
    with pytest.raises(aiolode.FormatError):
        await fresh.read_at(snap.id, block.offset, block.length)
    report = await verify_volume(fresh)
    expected = (
        ProblemKind.SIZE_MISMATCH if len(damaged) != block.length else ProblemKind.CHECKSUM_MISMATCH
    )
    assert {p.kind for p in report.problems} == {expected}


async def test_an_empty_commit_record_is_a_typed_error() -> None:
    store, ids, key = await _two_snapshots()
    doc = json.loads(await store.get(key))
    doc["snapshots"] = []
    await store.put(key, seal_document(doc), mode="overwrite")
    await store.delete("datasets/d/_log/_latest.json")
    errors = await _exercise_dataset(store, ids)
    assert errors  # the damage is visible to readers, as typed errors only
    report = await verify_dataset(
        aiolode.Dataset("d", store, codec=aiolode.JSONL(), checksum=aiolode.SHA256())
    )
    assert ProblemKind.INVALID_RECORD in {p.kind for p in report.problems}
