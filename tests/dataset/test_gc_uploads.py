"""gc and drop abort the pending uploads that killed writes leave under a dataset's
or a volume's prefix: only once older than the fence (gc), whatever their age
(drop); never a live upload inside the grace; a dry run reports exactly what the
real run aborts.

Over every store kind. Only S3 (moto, SeaweedFS) keeps a killed stream's upload
where it can be listed; FileStore streams create-only puts into unnamed
``O_TMPFILE`` inodes that die with the process (its named temp files, left by
killed overwrites, are planted and reaped in a test of their own); memory puts
are one step; GCS sessions cannot be listed. On those, the tests check that gc
and drop find nothing and break nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

import aiolode
from aiolode import Dataset, FileStore, PendingUpload, S3Store, Volume
from aiolode.store._posix import HAS_O_TMPFILE
from aiolode.testing import FaultInjectingStore, Hook, Rule
from tests.stores import StoreSpec

MiB = 1024 * 1024
#: More than one S3 part (8 MiB by default): the put becomes a multipart upload.
BIG = 9 * MiB
LONG = timedelta(hours=1)
NOW = timedelta(0)
VOLUME_SIZE = 64 * MiB


def _keeps_uploads(store: aiolode.Store) -> bool:
    """Whether a killed stream on this store leaves an upload it can list."""
    return isinstance(store, S3Store) or (isinstance(store, FileStore) and not HAS_O_TMPFILE)


def _dataset_prefix(ds: Dataset) -> str:
    return ds.layout.root(ds.id)


def _volume_prefix(vol: Volume) -> str:
    return f"volumes/{vol.id}/"


async def _pending(store: aiolode.Store, prefix: str) -> list[PendingUpload]:
    """Every pending upload under ``prefix``, whatever its age, by key then id."""
    later = datetime.now(UTC) + timedelta(days=1)
    found = [u async for u in store.abandoned_uploads(prefix, older_than=later)]
    return sorted(found, key=lambda u: (u.key, u.upload_id))


async def _wait_for_upload(store: aiolode.Store, prefix: str) -> list[PendingUpload]:
    """The pending uploads under ``prefix`` once there is one (where the store keeps any)."""
    if not _keeps_uploads(store):
        return []
    with anyio.fail_after(60):
        while not (found := await _pending(store, prefix)):
            await anyio.sleep(0.05)
    return found


# ------------------------------------------------------------ killed writers
_WRITER = """
import json, os, sys
from typing import Any

import anyio
import aiolode

async def main():
    kind, arg = json.loads(sys.argv[1])
    what, name, size = sys.argv[2], sys.argv[3], int(sys.argv[4])
    if kind == "file":
        store = aiolode.FileStore(arg)
    elif kind == "s3":
        store = aiolode.S3Store(arg[1], endpoint_url=arg[0], region_name="us-east-1")
    elif kind == "seaweed":
        store = aiolode.S3Store(arg[1], arg[2], endpoint_url=arg[0], region_name="us-east-1")
    else:
        store = aiolode.GCSStore(arg[1], endpoint=arg[0], anonymous=True)
    async with store:
        if what == "dataset":
            async with aiolode.Dataset(name, store).stream_write({"name": "big"}) as w:
                await w.write(os.urandom(size))
                print("STREAMING", flush=True)
                await anyio.sleep(3600)
        else:
            async def chunks():
                yield os.urandom(size)
                print("STREAMING", flush=True)
                await anyio.sleep(3600)
                yield b"never"

            await aiolode.Volume(name, store, 64 * 1024 * 1024).stage_write_at(0, chunks())

anyio.run(main)
"""


async def _kill_mid_stream(
    spec: StoreSpec, store: aiolode.Store, what: str, name: str, prefix: str
) -> list[PendingUpload]:
    """Run a writer process streaming BIG bytes into ``name``, SIGKILL it
    mid-stream; return the pending uploads it left under ``prefix``."""
    kind, arg = spec
    if kind == "memory":
        # No other process can reach a memory store, and its put is one step:
        # a write cut short mid-stream (cancelled here) leaves nothing.
        with anyio.move_on_after(0.5):
            if what == "dataset":
                async with Dataset(name, store).stream_write({"name": "big"}) as w:
                    await w.write(os.urandom(BIG))
                    await anyio.sleep_forever()
            else:

                async def chunks() -> AsyncIterator[bytes]:
                    yield os.urandom(BIG)
                    await anyio.sleep_forever()

                await Volume(name, store, VOLUME_SIZE).stage_write_at(0, chunks())
        return await _pending(store, prefix)
    encoded = json.dumps([kind, str(arg) if kind == "file" else list(arg)])
    proc = await anyio.open_process(
        [sys.executable, "-c", _WRITER, encoded, what, name, str(BIG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        out = b""
        with anyio.fail_after(60):
            while b"STREAMING" not in out:
                try:
                    out += await proc.stdout.receive()
                except anyio.EndOfStream:
                    assert proc.stderr is not None
                    err = b"".join([c async for c in proc.stderr])
                    raise AssertionError(f"writer exited early: {err.decode()[-2000:]}") from None
        if _keeps_uploads(store):
            await _wait_for_upload(store, prefix)
        else:
            await anyio.sleep(0.5)  # let bytes flow, as they would have
    finally:
        proc.send_signal(signal.SIGKILL)
        with anyio.fail_after(30):
            assert await proc.wait() == -signal.SIGKILL
        await proc.aclose()
    return await _pending(store, prefix)


async def _gc_reaps_only_old_uploads(
    store: aiolode.Store,
    target: Dataset | Volume,
    prefix: str,
    left: list[PendingUpload],
) -> None:
    assert len(left) == (1 if _keeps_uploads(store) else 0)
    assert all(u.key.startswith(prefix) for u in left)
    # A long grace keeps it (it may be a live write), dry run or not.
    for dry_run in (True, False):
        kept = await target.gc(grace=LONG, dry_run=dry_run)
        assert kept.aborted_uploads == ()
    assert await _pending(store, prefix) == left
    # Old enough (allowing for the store's stamps): a dry run says what goes...
    await anyio.sleep(store.stamp_resolution.total_seconds())
    dry = await target.gc(grace=NOW, dry_run=True)
    assert dry.dry_run
    assert dry.aborted_uploads == tuple(left)
    assert await _pending(store, prefix) == left
    # ... and the real run aborts exactly that.
    real = await target.gc(grace=NOW)
    assert real.aborted_uploads == dry.aborted_uploads
    assert (real.deleted, real.bytes) == (dry.deleted, dry.bytes)
    assert await _pending(store, prefix) == []
    again = await target.gc(grace=NOW)
    assert again.aborted_uploads == ()


async def test_dataset_gc_aborts_a_killed_stream_write_once_old(
    store: aiolode.Store, store_spec: StoreSpec
) -> None:
    ds = Dataset("killed", store)
    before = await ds.write(b"committed before")
    left = await _kill_mid_stream(store_spec, store, "dataset", ds.id, _dataset_prefix(ds))
    await _gc_reaps_only_old_uploads(store, ds, _dataset_prefix(ds), left)
    assert [s.id async for s in ds.snapshots()] == [before.id]
    assert await ds.read(before.id) == b"committed before"


async def test_volume_gc_aborts_a_killed_staged_stream_once_old(
    store: aiolode.Store, store_spec: StoreSpec
) -> None:
    vol = Volume("killed", store, VOLUME_SIZE)
    ref = await vol.stage_write_at(0, b"committed before")
    snap = await vol.commit([ref])
    left = await _kill_mid_stream(store_spec, store, "volume", vol.id, _volume_prefix(vol))
    await _gc_reaps_only_old_uploads(store, vol, _volume_prefix(vol), left)
    assert await vol.read_at(snap, 0, 16) == b"committed before"


# ------------------------------------------------------------- live writers
async def test_dataset_live_upload_inside_grace_is_never_aborted(store: aiolode.Store) -> None:
    ds = Dataset("live", store)
    await ds.write(b"first")
    body = os.urandom(BIG)
    streaming, release = anyio.Event(), anyio.Event()
    done: list[aiolode.Snapshot] = []

    async def writer() -> None:
        async with ds.stream_write({"name": "big"}) as w:
            await w.write(body)
            streaming.set()
            await release.wait()
            await w.write(b"tail")
        done.append(w.snapshot)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await streaming.wait()
        live = await _wait_for_upload(store, _dataset_prefix(ds))
        await anyio.sleep(store.stamp_resolution.total_seconds())
        for dry_run in (True, False):
            report = await ds.gc(grace=LONG, dry_run=dry_run)
            assert report.aborted_uploads == ()
        assert await _pending(store, _dataset_prefix(ds)) == live
        release.set()
    [snap] = done
    assert await ds.read(snap.id) == body + b"tail"
    assert await _pending(store, _dataset_prefix(ds)) == []


async def test_volume_live_upload_inside_grace_is_never_aborted(store: aiolode.Store) -> None:
    vol = Volume("live", store, VOLUME_SIZE)
    body = os.urandom(BIG)
    streaming, release = anyio.Event(), anyio.Event()
    refs: list[aiolode.BlockRef] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield body
        streaming.set()
        await release.wait()
        yield b"tail"

    async def writer() -> None:
        refs.append(await vol.stage_write_at(0, chunks()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await streaming.wait()
        live = await _wait_for_upload(store, _volume_prefix(vol))
        await anyio.sleep(store.stamp_resolution.total_seconds())
        for dry_run in (True, False):
            report = await vol.gc(grace=LONG, dry_run=dry_run)
            assert report.aborted_uploads == ()
        assert await _pending(store, _volume_prefix(vol)) == live
        release.set()
    snap = await vol.commit(refs)
    assert await vol.read_at(snap, 0, BIG + 4) == body + b"tail"


# ------------------------------------------------------------------- drop
async def test_dataset_drop_aborts_pending_uploads_of_any_age(store: aiolode.Store) -> None:
    ds = Dataset("dropped", store)
    await ds.write(b"first")
    streaming, release = anyio.Event(), anyio.Event()
    failed: list[BaseException] = []

    async def writer() -> None:
        # Another object of the name: the one that drops may write it again.
        try:
            async with Dataset("dropped", store).stream_write({"name": "big"}) as w:
                await w.write(os.urandom(BIG))
                streaming.set()
                await release.wait()
                await w.write(b"tail")
        except aiolode.AiolodeError as exc:
            failed.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await streaming.wait()
        live = await _wait_for_upload(store, _dataset_prefix(ds))
        # Young (a long grace), but its name is gone: it goes with the drop.
        await anyio.sleep(store.stamp_resolution.total_seconds())
        dry = await ds.drop(grace=LONG, dry_run=True)
        assert dry.aborted_uploads == tuple(live)
        report = await ds.drop(grace=LONG)
        assert report.aborted_uploads == tuple(live)
        assert await _pending(store, _dataset_prefix(ds)) == []
        release.set()
    if live:
        # Its put found the upload aborted: refused, nothing published.
        [exc] = failed
        assert isinstance(exc, aiolode.StaleWriteError), exc
    assert await _pending(store, _dataset_prefix(ds)) == []


async def test_volume_drop_aborts_pending_uploads_of_any_age(store: aiolode.Store) -> None:
    vol = Volume("dropped", store, VOLUME_SIZE)
    await vol.commit([await vol.stage_write_at(0, b"first")])
    streaming, release = anyio.Event(), anyio.Event()
    failed: list[BaseException] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield os.urandom(BIG)
        streaming.set()
        await release.wait()
        yield b"tail"

    async def writer() -> None:
        try:
            await vol.stage_write_at(0, chunks())
        except aiolode.AiolodeError as exc:
            failed.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await streaming.wait()
        live = await _wait_for_upload(store, _volume_prefix(vol))
        dry = await vol.drop(grace=LONG, dry_run=True)
        assert dry.aborted_uploads == tuple(live)
        report = await vol.drop(grace=LONG)
        assert report.aborted_uploads == tuple(live)
        assert await _pending(store, _volume_prefix(vol)) == []
        release.set()
    if live:
        [exc] = failed
        assert isinstance(exc, aiolode.StaleWriteError), exc


# -------------------------------------------------- FileStore's named temps
def _plant_temp(root: Path, rel_dir: str) -> str:
    """What a killed overwrite (or a create-only put without O_TMPFILE) leaves."""
    directory = root / rel_dir
    directory.mkdir(parents=True, exist_ok=True)
    name = ".aiolode-tmp-" + os.urandom(8).hex()
    (directory / name).write_bytes(b"t" * 1000)
    return f"{rel_dir}/{name}"


async def test_file_gc_and_drop_reap_named_temps(tmp_path: Path) -> None:
    async with FileStore(tmp_path) as store:
        ds = Dataset("temps", store)
        snap = await ds.write(b"data")
        data_dir = snap.files[0].key.rpartition("/")[0]
        temp = await anyio.to_thread.run_sync(_plant_temp, tmp_path, data_dir)
        outside = await anyio.to_thread.run_sync(_plant_temp, tmp_path, "elsewhere")
        [found] = await _pending(store, _dataset_prefix(ds))
        assert (found.key, found.size) == (temp, 1000)
        assert (await ds.gc(grace=LONG)).aborted_uploads == ()
        dry = await ds.gc(grace=NOW, dry_run=True)
        real = await ds.gc(grace=NOW)
        assert dry.aborted_uploads == real.aborted_uploads == (found,)
        assert not (tmp_path / temp).exists()
        assert await ds.read(snap.id) == b"data"

        again = await anyio.to_thread.run_sync(_plant_temp, tmp_path, data_dir)
        report = await ds.drop(grace=LONG)  # young, but the name is gone
        assert [u.key for u in report.aborted_uploads] == [again]
        assert not (tmp_path / again).exists()
        assert (tmp_path / outside).exists()  # another prefix: never touched

        vol = Volume("temps", store, VOLUME_SIZE)
        await vol.commit([await vol.stage_write_at(0, b"block")])
        vtemp = await anyio.to_thread.run_sync(_plant_temp, tmp_path, "volumes/temps/blocks")
        assert (await vol.gc(grace=LONG)).aborted_uploads == ()
        [vfound] = (await vol.gc(grace=NOW)).aborted_uploads
        assert vfound.key == vtemp
        assert not (tmp_path / vtemp).exists()


# ------------------------------------------------ a bug met on the way (fixed)
@pytest.mark.parametrize("path", ["write", "write_records", "stream_write", "stream_records"])
async def test_gc_between_a_writes_data_put_and_its_commit_refuses_it(
    memory: aiolode.MemoryStore, path: str
) -> None:
    """Every write path takes its start before storing anything: a gc fence that
    collects its files in between refuses its commit (never a dangling snapshot)."""
    codec = None if path in ("write", "stream_write") else aiolode.JSONL()
    await Dataset("s", memory, codec=codec).write(b"base" if codec is None else [{"a": 0}])
    stored, release = anyio.Event(), anyio.Event()

    async def pause(_: object) -> None:
        stored.set()
        await release.wait()

    faulty = FaultInjectingStore(
        memory,
        [
            Rule(
                op=("put", "put_stream"),
                key="datasets/s/data/*",
                nth=1,
                action=Hook(pause, when="after"),
            )
        ],
    )
    slow = Dataset("s", faulty)
    await slow.latest()
    outcome: list[object] = []

    async def records() -> Any:
        yield {"a": 1}

    async def slow_write() -> None:
        try:
            if path == "write":
                outcome.append(await slow.write(b"slow"))
            elif path == "write_records":
                outcome.append(await slow.write([{"a": 1}]))
            elif path == "stream_write":
                async with slow.stream_write() as w:
                    await w.write(b"slow")
                outcome.append(w.snapshot)
            else:
                outcome.append(await slow.stream_write_records(records()))
        except aiolode.AiolodeError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_write)
        await stored.wait()
        report = await Dataset("s", memory).gc(grace=NOW)  # the data file is unreferenced
        assert any("/data/" in k for k in report.deleted)
        release.set()
    [result] = outcome
    if isinstance(result, aiolode.Snapshot):
        await Dataset("s", memory).read(result.id)  # its file would be gone
    assert isinstance(result, aiolode.StaleWriteError), result
