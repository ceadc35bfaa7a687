"""``Store._put_produced``: bytes made off the loop, then put (one hand-off where it can).

The dataset writes a one-file batch through it (``dataset._write.encode_and_put``):
S3 (botocore in worker threads) and FileStore encode and put in one worker
thread, every other store (wrappers included) runs the default, a thread hop
then an ordinary ``put``. Every kind must behave like ``put(key, produce())``.
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import TYPE_CHECKING, Any

import pytest

import aiolode
from aiolode import (
    InvalidKeyError,
    ObjectExistsError,
    SchemaViolationError,
    TransientStorageError,
)
from aiolode.store._s3_transport import ThreadTransport
from tests.s3_server import slow_down

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.anyio


def _producer(data: bytes, seen: list[str] | None = None) -> Callable[[], bytes]:
    def produce() -> bytes:
        if seen is not None:
            seen.append(threading.current_thread().name)
        return data

    return produce


async def test_writes_what_produce_made(store: aiolode.Store) -> None:
    seen: list[str] = []
    info = await store._put_produced("p/a.bin", _producer(b"x" * 1000, seen), "overwrite")
    assert info.key == "p/a.bin"
    assert info.size == 1000
    assert await store.get("p/a.bin") == b"x" * 1000
    assert (await store.head("p/a.bin")).etag == info.etag
    # Made off the event loop, whatever the store.
    assert seen
    assert seen[0] != threading.main_thread().name


async def test_honours_the_mode(store: aiolode.Store) -> None:
    await store.put("p/a", b"1")
    with pytest.raises(ObjectExistsError) as ei:
        await store._put_produced("p/a", _producer(b"2"), "create")
    assert ei.value.key == "p/a"
    assert await store.get("p/a") == b"1"
    await store._put_produced("p/a", _producer(b"3"), "overwrite")
    assert await store.get("p/a") == b"3"


@pytest.mark.parametrize(
    "error",
    [
        SchemaViolationError("record 3 does not fit"),
        ValueError("a bug in the encoder"),
        OSError(28, "not a storage error: raised by produce"),
    ],
    ids=["aiolode", "value", "oserror"],
)
async def test_produce_errors_propagate_unchanged(
    store: aiolode.Store, error: BaseException
) -> None:
    def produce() -> bytes:
        raise error

    with pytest.raises(type(error)) as ei:
        await store._put_produced("p/bad", produce, "overwrite")
    assert ei.value is error  # not mapped to a StorageError
    assert not await store.exists("p/bad")


async def test_bad_key_refused_before_produce(store: aiolode.Store) -> None:
    called: list[bool] = []

    def produce() -> bytes:
        called.append(True)
        return b""

    with pytest.raises(InvalidKeyError):
        await store._put_produced("../up", produce, "overwrite")
    assert called == []


async def test_thread_does_not_pin_the_job(store: aiolode.Store) -> None:
    """An idle worker thread keeps its last job: it must not keep produce's
    closure (the records and their bytes) alive."""

    class Payload:
        pass

    def make() -> tuple[Callable[[], bytes], weakref.ref[Payload]]:
        payload = Payload()

        def produce() -> bytes:
            assert payload is not None
            return b"y" * 10

        return produce, weakref.ref(payload)

    produce, ref = make()
    await store._put_produced("p/pin", produce, "overwrite")
    del produce
    gc.collect()
    assert ref() is None


class _FailingPuts:
    """A boto3 client whose first ``fail`` put_object calls fail like an overloaded S3."""

    def __init__(self, client: Any, fail: int) -> None:
        self._client = client
        self.fail = fail
        self.puts = 0

    def put_object(self, **kw: Any) -> Any:
        self.puts += 1
        if self.puts <= self.fail:
            raise slow_down("PutObject")
        return self._client.put_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.s3
async def test_s3_one_thread_and_mapped_errors(s3_bucket: str, s3_admin: Any) -> None:
    client = _FailingPuts(s3_admin, fail=1)
    async with aiolode.S3Store(s3_bucket, client=client) as store:
        await store.exists("warm")
        assert isinstance(store._transport, ThreadTransport)
        with pytest.raises(TransientStorageError) as ei:
            await store._put_produced("p/t", _producer(b"z"), "overwrite")
        assert ei.value.key == "p/t"
        assert type(ei.value.__cause__).__name__ == "ClientError"
        info = await store._put_produced("p/t", _producer(b"z"), "overwrite")
        assert info.size == 1
        assert await store.get("p/t") == b"z"
        assert client.puts == 2


@pytest.mark.s3
@pytest.mark.parametrize("attempts", [1, 3])
async def test_dataset_write_retries_a_failed_data_put(
    s3_bucket: str, s3_admin: Any, attempts: int
) -> None:
    """The data put that ran with the encoding failed transiently: the write
    retries it as an ordinary put (the bytes are kept), or fails having left
    nothing behind when the retry budget is one attempt."""
    client = _FailingPuts(s3_admin, fail=0)
    retry = aiolode.Retry(attempts=attempts, base_delay=0.001, max_delay=0.001)
    async with aiolode.S3Store(s3_bucket, client=client) as store:
        ds = aiolode.Dataset("d", store, codec=aiolode.JSONL(), retry=retry)
        first = await ds.write([{"i": -1, "s": "warm"}])  # descriptor, hint: a warm writer
        before = {k async for k in store.list("")}
        client.fail = client.puts + 1  # the next put: the data file's
        rows = [{"i": i, "s": f"v{i}"} for i in range(50)]
        if attempts == 1:
            with pytest.raises(TransientStorageError):
                await ds.write(rows)
            assert {k async for k in store.list("")} == before  # no orphan
            assert (await ds.latest()).id == first.id
            return
        puts = client.puts
        snap = await ds.write(rows)
        assert await ds.read(snap) == rows
        assert client.puts - puts == 3  # the failed data put, its retry, the record


async def test_which_stores_put_in_threads(store: aiolode.Store) -> None:
    """Only stores whose writes run in worker threads say so (the commit record
    is then encoded in the thread that sends it); wrappers never do, so their
    own put (faults, counts, latency) sees every write."""
    await store.exists("warm")  # S3 opens its transport lazily
    expected = isinstance(store, aiolode.FileStore) or (
        isinstance(store, aiolode.S3Store) and isinstance(store._transport, ThreadTransport)
    )
    assert store._puts_in_threads() is expected
    wrapped = aiolode.testing.CountingStore(store)
    assert wrapped._puts_in_threads() is False
