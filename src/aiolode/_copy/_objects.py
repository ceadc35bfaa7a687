"""Copying one immutable object between two stores: verified, create-only, resumable.

Every object a history references (a data file, a partition manifest, a
checkpoint, an index segment or segment list, a block) is immutable and lives
at a key only its writer uses, so a copy is a create-only put at the
destination. What the source holds is checked on the way (the recorded size
and digest, as every read checks them); what the destination already holds —
left by an interrupted run or a concurrent copy — is checked against the
source before it is kept, and copied again when it fails the check (no record
of the destination references it yet: objects are copied before the records
that name them).

Small objects go in one ``get`` and one ``put``; larger ones are streamed
store to store in bounded memory (S3 and GCS: multipart / resumable uploads
that stay create-only at completion), with the digest computed as the bytes
flow, so a damaged source fails the put before anything becomes visible.
"""

from __future__ import annotations

import hashlib
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import attrs

from .._history import retrying
from ..checksum import OFFLOAD_THRESHOLD, StreamVerifier, verify_object
from ..errors import FormatError, ObjectExistsError, ObjectNotFoundError, TransientStorageError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from .._retry import Retry
    from ..store import Store
    from ..types import ObjectInfo, PutMode
    from ._report import Tally

__all__ = ("CHUNK_SIZE", "SMALL_OBJECT", "ObjectJob", "Transfer")

#: Objects up to this size (as recorded) are copied with one ``get`` and one
#: ``put``; larger ones are streamed in :data:`CHUNK_SIZE` chunks.
SMALL_OBJECT = 8 << 20
#: Chunk size of streamed copies and checks.
CHUNK_SIZE = 1 << 20


@attrs.frozen
class ObjectJob:
    """One object to bring to the destination.

    Attributes
    ----------
    src_key, dst_key
        Where it is and where it goes (they differ when the copy renames).
    size, checksum
        What the source's records say of it (``None``: not recorded).
    payload
        The destination's bytes when the caller already read (and perhaps
        rewrote) the object: a document. ``None`` for data, which is copied.
    optional
        The object may be missing at the source (a file of an expired
        snapshot, collected): skipped then instead of failing.
    snapshot_id
        The snapshot that references it (carried by errors).
    overwrite
        For a document that is not immutable (an idempotency-key marker, a
        pointer): put unconditionally instead of create-only.
    """

    src_key: str
    dst_key: str
    size: int | None = None
    checksum: str | None = None
    payload: bytes | None = attrs.field(default=None, repr=False)
    optional: bool = False
    snapshot_id: str | None = None
    overwrite: bool = False


class Transfer:
    """Copies :class:`ObjectJob` s from ``src`` to ``dst`` and counts them in ``tally``.

    ``ctx`` is the error context (``dataset_id`` or ``volume_id``) of the source.
    """

    def __init__(
        self, src: Store, dst: Store, retry: Retry, tally: Tally, ctx: dict[str, Any]
    ) -> None:
        self.src = src
        self.dst = dst
        self.retry = retry
        self.tally = tally
        self.ctx = ctx

    async def run(self, job: ObjectJob) -> None:
        """Bring one object to the destination (see the module docstring).

        Raises
        ------
        ObjectNotFoundError
            The source lacks an object that is not optional.
        CorruptDataError, ChecksumMismatchError
            The source's bytes are not what its records say.
        StorageError
            Either store kept failing.
        """
        if job.payload is not None:
            await self._document(job)
        elif job.size is not None and job.size > SMALL_OBJECT:
            await self._large(job)
        else:
            await self._small(job)

    # ------------------------------------------------------------------ kinds
    async def _document(self, job: ObjectJob) -> None:
        assert job.payload is not None
        data = job.payload
        if job.overwrite:
            await retrying(self.retry, lambda: self.dst.put(job.dst_key, data, mode="overwrite"))
            await self._copied(len(data))
            return
        if await self._create(job.dst_key, data):
            await self._copied(len(data))
            return
        existing = await self._dst_get(job.dst_key)
        if existing == data:
            self.tally.verified += 1
            return
        await self._repair(job.dst_key, data)

    async def _small(self, job: ObjectJob) -> None:
        data = await self._src_get(job)
        if data is None:
            self.tally.skipped += 1
            return
        await verify_object(
            data,
            key=job.src_key,
            size=job.size,
            checksum=job.checksum,
            snapshot_id=job.snapshot_id,
            **self.ctx,
        )
        if await self._create(job.dst_key, data):
            await self._copied(len(data))
            return
        # There already (an interrupted run, a concurrent copy): trusted only if
        # it is exactly the source's bytes.
        existing = await self._dst_get(job.dst_key)
        if existing == data:
            self.tally.verified += 1
            return
        await self._repair(job.dst_key, data)

    async def _large(self, job: ObjectJob) -> None:
        # A head first: a resumed copy must not send gigabytes to learn that the
        # object is there, and a missing source is found before any upload.
        try:
            await retrying(self.retry, lambda: self.src.head(job.src_key))
        except ObjectNotFoundError as exc:
            if job.optional:
                self.tally.skipped += 1
                return
            raise self._missing(job) from exc
        info = await self._dst_head(job.dst_key)
        mode: PutMode = "create"
        if info is not None:
            if await self._dst_matches(job, info):
                self.tally.verified += 1
                return
            mode = "overwrite"
        try:
            await self._stream(job, mode)
        except ObjectExistsError:
            # Created meanwhile by a concurrent copy: check it like any other.
            info = await self._dst_head(job.dst_key)
            if info is not None and await self._dst_matches(job, info):
                self.tally.verified += 1
                return
            await self._stream(job, "overwrite")
            mode = "overwrite"
        if mode == "overwrite":
            self.tally.repaired += 1
        else:
            self.tally.objects += 1
        await self.tally.report()

    # ------------------------------------------------------------ store calls
    async def _copied(self, n: int) -> None:
        self.tally.objects += 1
        await self.tally.add_bytes(n)

    async def _repair(self, key: str, data: bytes) -> None:
        await retrying(self.retry, lambda: self.dst.put(key, data, mode="overwrite"))
        self.tally.repaired += 1
        await self.tally.add_bytes(len(data))

    def _missing(self, job: ObjectJob) -> ObjectNotFoundError:
        what = f"snapshot {job.snapshot_id} references" if job.snapshot_id else "expected"
        return ObjectNotFoundError(
            f"the source is damaged: {what} {job.src_key!r}, which does not exist",
            key=job.src_key,
            snapshot_id=job.snapshot_id,
            **self.ctx,
        )

    async def _src_get(self, job: ObjectJob) -> bytes | None:
        try:
            return await retrying(self.retry, lambda: self.src.get(job.src_key))
        except ObjectNotFoundError as exc:
            if job.optional:
                return None
            raise self._missing(job) from exc

    async def _dst_get(self, key: str) -> bytes | None:
        try:
            return await retrying(self.retry, lambda: self.dst.get(key))
        except ObjectNotFoundError:
            return None

    async def _dst_head(self, key: str) -> ObjectInfo | None:
        try:
            return await retrying(self.retry, lambda: self.dst.head(key))
        except ObjectNotFoundError:
            return None

    async def _create(self, key: str, data: bytes) -> bool:
        """Create-only put, transient failures retried; ``False`` if the key exists
        (on a retry that may be our own earlier put: the caller checks it)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.dst.put(key, data, mode="create")
                return True
            except ObjectExistsError:
                return False
            except TransientStorageError:
                if attempt >= self.retry.attempts:
                    raise
                await anyio.sleep(self.retry.delay(attempt))

    # -------------------------------------------------------------- streaming
    async def _stream(self, job: ObjectJob, mode: PutMode) -> None:
        """Stream the source into the destination, checked as it flows; a transient
        failure starts the object again (nothing of a failed streamed put stays)."""
        counted = 0  # bytes of this object already counted: a retry re-sends them

        async def advance(n: int) -> None:
            nonlocal counted
            if n > counted:
                delta, counted = n - counted, n
                await self.tally.add_bytes(delta)

        attempt = 0
        while True:
            attempt += 1
            try:
                async with aclosing(self._verified_chunks(job)) as body:
                    await self.dst.put(job.dst_key, body, mode=mode, progress=advance)
                return
            except TransientStorageError:
                if attempt >= self.retry.attempts:
                    raise
                await anyio.sleep(self.retry.delay(attempt))

    async def _verified_chunks(self, job: ObjectJob) -> AsyncGenerator[bytes, None]:
        verifier = StreamVerifier(
            key=job.src_key,
            size=job.size,
            checksum=job.checksum,
            snapshot_id=job.snapshot_id,
            **self.ctx,
        )
        async with aclosing(self.src.iter_bytes(job.src_key, chunk_size=CHUNK_SIZE)) as chunks:
            async for chunk in chunks:
                await verifier.aupdate(chunk)
                yield chunk
        # Raised before the stream ends, so the put fails and nothing is visible.
        verifier.check()

    async def _dst_matches(self, job: ObjectJob, info: ObjectInfo) -> bool:
        """Whether the destination's object is the source's: the recorded size, then
        the recorded digest (or, with none recorded, the same bytes as the source)."""
        if job.size is not None and info.size != job.size:
            return False
        if job.checksum is not None:
            verifier = StreamVerifier(key=job.dst_key, size=job.size, checksum=job.checksum)
            try:
                async with aclosing(
                    self.dst.iter_bytes(job.dst_key, chunk_size=CHUNK_SIZE)
                ) as chunks:
                    async for chunk in chunks:
                        await verifier.aupdate(chunk)
                verifier.check()
            except (ObjectNotFoundError, FormatError):
                return False
            return True
        ours, theirs = await _digest(self.dst, job.dst_key), await _digest(self.src, job.src_key)
        return ours is not None and ours == theirs


async def _digest(store: Store, key: str) -> str | None:
    """A BLAKE2b digest of an object, streamed (``None``: missing)."""
    h = hashlib.blake2b()
    try:
        async with aclosing(store.iter_bytes(key, chunk_size=CHUNK_SIZE)) as chunks:
            async for chunk in chunks:
                if len(chunk) >= OFFLOAD_THRESHOLD:
                    await anyio.to_thread.run_sync(h.update, chunk)
                else:
                    h.update(chunk)
    except ObjectNotFoundError:
        return None
    return h.hexdigest()
