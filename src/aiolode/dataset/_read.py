"""Reading snapshots back: checksums verified on every read, codec and
compressor taken from the manifest (never from the Dataset's arguments)."""

from __future__ import annotations

import tempfile
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread

from .._concurrency import bounded_map
from ..checksum import parse_recorded, verify_checksum
from ..errors import ChecksumMismatchError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterator

    from ..codecs import Codec
    from ..compression import Compressor, DecompressStream
    from ..manifest._dataset import FileRef, Manifest
    from ..store import Store

__all__ = ["components", "iter_file_records", "read_file", "read_records", "read_table"]

_READ_CONCURRENCY = 16
_SPOOL_MAX = 8 << 20


def components(manifest: Manifest) -> tuple[Codec | None, Compressor | None]:
    """The codec and compressor a manifest records (registries filled on import).

    Raises
    ------
    ManifestFormatError
        An unknown codec/compressor name or invalid options.
    """
    from .. import codecs, compression  # noqa: F401 - imported for registration
    from ..codecs import codec_from_name
    from ..compression import compressor_from_name

    return (
        codec_from_name(manifest.codec, manifest.codec_options),
        compressor_from_name(manifest.compressor, manifest.compressor_options),
    )


async def read_file(store: Store, f: FileRef, compressor: Compressor | None) -> bytes:
    """Get one data file, verify its checksum, decompress it (off the loop).

    Cost: one ``get``; memory: the file plus its decompressed copy.

    Raises
    ------
    ChecksumMismatchError
        The stored bytes do not match the manifest.
    ObjectNotFoundError
        The data file is missing.
    CorruptDataError
        Decompression failed.
    """
    data = await store.get(f.key)
    await verify_checksum(f.checksum, data, key=f.key)
    if compressor is None:
        return data
    return await anyio.to_thread.run_sync(compressor.decompress, data)


async def read_records(store: Store, manifest: Manifest) -> list[dict[str, Any]]:
    """All records of a snapshot, in file order (files fetched concurrently)."""
    codec, compressor = components(manifest)
    assert codec is not None

    async def one(f: FileRef) -> list[dict[str, Any]]:
        data = await read_file(store, f, compressor)
        return await anyio.to_thread.run_sync(codec.decode, data)

    out: list[dict[str, Any]] = []
    for part in await bounded_map(one, manifest.files, limit=_READ_CONCURRENCY):
        out.extend(part)
    return out


async def read_table(store: Store, manifest: Manifest) -> Any:
    """A ``pyarrow.Table`` of the snapshot's records."""
    codec, compressor = components(manifest)
    assert codec is not None
    import pyarrow as pa

    async def one(f: FileRef) -> Any:
        data = await read_file(store, f, compressor)
        return await anyio.to_thread.run_sync(codec.to_arrow, data)

    tables = await bounded_map(one, manifest.files, limit=_READ_CONCURRENCY)
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]
    return await anyio.to_thread.run_sync(
        lambda: pa.concat_tables(tables, promote_options="permissive")
    )


class _Verifier:
    def __init__(self, f: FileRef) -> None:
        self.f = f
        self.hasher = None
        if f.checksum is not None:
            self.algo, _ = parse_recorded(f.checksum)
            self.hasher = self.algo.hasher()

    def update(self, data: bytes) -> None:
        if self.hasher is not None:
            self.hasher.update(data)

    def check(self) -> None:
        if self.hasher is None or self.f.checksum is None:
            return
        actual = self.algo.format(self.hasher.hexdigest())
        if actual != self.f.checksum:
            raise ChecksumMismatchError(
                f"checksum mismatch for {self.f.key!r}: expected {self.f.checksum}, got {actual}",
                key=self.f.key,
                algorithm=self.algo.name,
                expected=self.f.checksum,
                actual=actual,
            )


async def _anext(it: AsyncIterator[bytes]) -> bytes:
    return await it.__anext__()


class _ThreadChunks:
    """A sync iterator, used from a worker thread, that pulls chunks from the
    event loop (``anyio.from_thread.run``), hashes and decompresses them there."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        verifier: _Verifier,
        decomp: DecompressStream | None,
    ) -> None:
        self._chunks = chunks
        self._verifier = verifier
        self._decomp = decomp
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        while not self._done:
            try:
                raw: bytes = anyio.from_thread.run(_anext, self._chunks)
            except StopAsyncIteration:
                self._done = True
                # Verify before the codec sees the end of the stream, so a
                # corrupt file never ends in a "complete" decode.
                self._verifier.check()
                if self._decomp is not None:
                    tail = self._decomp.flush()
                    if tail:
                        return tail
                break
            self._verifier.update(raw)
            out = self._decomp.decompress(raw) if self._decomp is not None else raw
            if out:
                return out
        raise StopIteration


def _close(it: object) -> None:
    # Codec iterators are generators; closing releases their buffers now.
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _spool(f: FileRef) -> Any:
    return tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)


async def iter_file_records(
    store: Store, f: FileRef, codec: Codec, compressor: Compressor | None, batch_size: int
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Decode one data file batch by batch in bounded memory.

    Forward-streamable codecs (JSONL) decode the byte stream as it arrives; the
    checksum is verified when the stream ends, so a mismatch raises after the
    earlier batches were yielded. Other codecs (Parquet) spool the file to a
    temporary file (memory up to 8 MiB, then disk) while hashing it, verify the
    checksum *before* yielding anything, then decode row group by row group.
    """
    verifier = _Verifier(f)
    if codec.supports_forward_stream:
        decomp = compressor.decompressobj() if compressor is not None else None
        async with aclosing(store.iter_bytes(f.key)) as chunks:
            src = _ThreadChunks(chunks, verifier, decomp)
            gen = codec.iter_decode(src)
            try:
                while True:
                    batch = await anyio.to_thread.run_sync(next, gen, None)
                    if batch is None:
                        return
                    yield batch
            finally:
                _close(gen)
    spool = await anyio.to_thread.run_sync(_spool, f)
    try:
        decomp = compressor.decompressobj() if compressor is not None else None

        def put(raw: bytes) -> None:
            verifier.update(raw)
            spool.write(decomp.decompress(raw) if decomp is not None else raw)

        async with aclosing(store.iter_bytes(f.key)) as chunks:
            async for raw in chunks:
                await anyio.to_thread.run_sync(put, raw)
        verifier.check()
        if decomp is not None:
            await anyio.to_thread.run_sync(lambda: spool.write(decomp.flush()))
        await anyio.to_thread.run_sync(spool.seek, 0)
        if codec.supports_random_access:
            it = codec.iter_batches(spool, batch_size)
            try:
                while True:
                    batch = await anyio.to_thread.run_sync(next, it, None)
                    if batch is None:
                        return
                    yield batch
            finally:
                _close(it)
        else:
            data = await anyio.to_thread.run_sync(spool.read)
            yield await anyio.to_thread.run_sync(codec.decode, data)
    finally:
        await anyio.to_thread.run_sync(spool.close)
