"""Raw S3 anchors the benchmark scripts share (imported from their directory)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

MiB = 1024 * 1024


async def mib_chunks(total: int) -> AsyncIterator[bytes]:
    """``total`` bytes (a multiple of 1 MiB) as 1 MiB chunks of random data."""
    block = os.urandom(MiB)
    for _ in range(total // MiB):
        yield block


async def raw_multipart(
    call: Callable[..., Awaitable[Any]],
    bucket: str,
    key: str,
    chunks: AsyncIterator[bytes],
    *,
    part_size: int,
    concurrency: int,
    **complete: Any,
) -> None:
    """A hand-written multipart upload: ``part_size`` parts, ``concurrency`` in
    flight, the same shape as S3Store's streamed put. ``call(op, **kw)`` runs one
    client operation; ``complete`` goes to CompleteMultipartUpload (e.g.
    ``IfNoneMatch="*"``)."""
    up = await call("create_multipart_upload", Bucket=bucket, Key=key)
    uid = up["UploadId"]
    parts: list[dict[str, Any]] = []
    slots = anyio.Semaphore(concurrency)

    async def one(n: int, data: bytes) -> None:
        try:
            r = await call(
                "upload_part", Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data
            )
            parts.append({"ETag": r["ETag"], "PartNumber": n})
        finally:
            slots.release()

    async with anyio.create_task_group() as tg:
        buf = bytearray()
        n = 0
        async for chunk in chunks:
            buf += chunk
            if len(buf) >= part_size:
                n += 1
                await slots.acquire()
                tg.start_soon(one, n, bytes(buf[:part_size]))
                del buf[:part_size]
        if buf:
            n += 1
            await slots.acquire()
            tg.start_soon(one, n, bytes(buf))
    parts.sort(key=lambda p: p["PartNumber"])
    await call(
        "complete_multipart_upload",
        Bucket=bucket,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": parts},
        **complete,
    )
