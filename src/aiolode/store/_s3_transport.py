"""How S3Store talks to S3: one tiny interface, two implementations.

All S3 logic (put modes, multipart, paging, error mapping) lives in
:mod:`._s3` and is written once against :class:`S3Transport`:

- :class:`ThreadTransport` drives a *synchronous* botocore client in anyio worker
  threads under its own :class:`anyio.CapacityLimiter`, with the connection pool
  sized to the limiter. It runs on asyncio and trio alike, and every blocking step
  (client creation reading config files, request signing, checksums, socket I/O)
  happens off the event loop. This is the default (see ``docs/s3.md`` for the
  measurements behind that choice).
- :class:`AioTransport` drives a caller-supplied aiobotocore/aioboto3 client on
  asyncio. aiohttp does not run on trio, so it is refused there.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..errors import InvalidInputError, UnsupportedError
from ._base import ProduceJob

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["AioTransport", "S3Transport", "ThreadTransport", "is_async_client"]

# Checksums on every request are botocore's default since 1.36; they cost a CRC
# over every part and S3-compatible servers disagree on them. aiolode verifies
# its own content (aiolode.checksum), so only send them where S3 requires them.
_CLIENT_CONFIG: dict[str, Any] = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
}


_SESSION_LOCK = threading.Lock()
_SESSION: Any = None


def _shared_session() -> Any:
    """One botocore session per process, like boto3's default session.

    A new session parses the service models again (~0.4 s); clients from one
    session share them (~20 ms per client). Call with ``_SESSION_LOCK`` held:
    botocore sessions are not safe for concurrent ``create_client``.
    """
    global _SESSION
    if _SESSION is None:
        import botocore.session

        _SESSION = botocore.session.get_session()
    return _SESSION


def is_async_client(client: object) -> bool:
    """True for an aiobotocore (aioboto3) client, False for a botocore one."""
    method = getattr(client, "head_object", None)
    if method is None:
        raise InvalidInputError(f"client must be an S3 client, not {type(client).__name__}")
    # aiobotocore's generated methods are plain functions returning coroutines,
    # so look at the client itself: only the async clients are async context managers.
    return hasattr(type(client), "__aenter__") or inspect.iscoroutinefunction(method)


class S3Transport:
    """Issue S3 API calls and read response bodies, whatever the event loop."""

    async def call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        """Call the botocore operation ``op`` (snake_case) and return its response."""
        raise NotImplementedError

    async def read(self, body: Any, amt: int | None = None) -> bytes:
        """Read up to ``amt`` bytes (all if ``None``) from a streaming body."""
        raise NotImplementedError

    async def close_body(self, body: Any) -> None:
        """Release a streaming body that may not have been read to the end."""
        raise NotImplementedError

    async def fetch(self, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
        """``get_object`` and read its whole body; the body is always released.

        The default is three steps (call, read, close); transports that can do
        it in one step override it.
        """
        resp = await self.call("get_object", **kwargs)
        body = resp["Body"]
        try:
            data = await self.read(body)
        finally:
            with anyio.CancelScope(shield=True):
                await self.close_body(body)
        return resp, data

    async def aclose(self) -> None:
        """Close the client if this transport created it."""
        raise NotImplementedError


class ThreadTransport(S3Transport):
    """A synchronous botocore client driven from anyio worker threads.

    botocore clients are thread-safe; ``limiter`` bounds the threads in use and
    the client's urllib3 pool has as many connections, so no thread waits for a
    connection and none is opened and thrown away.
    """

    def __init__(self, client: Any, *, limiter: anyio.CapacityLimiter, owned: bool) -> None:
        self._client = client
        self._limiter = limiter
        self._owned = owned

    @classmethod
    async def open(
        cls,
        *,
        session: Any,
        endpoint_url: str | None,
        region_name: str | None,
        pool_size: int,
    ) -> ThreadTransport:
        """Create a botocore client in a worker thread (it reads config files)."""

        def create() -> Any:
            from botocore.config import Config

            config = Config(max_pool_connections=pool_size, **_CLIENT_CONFIG)
            if session is None:
                with _SESSION_LOCK:
                    return _shared_session().create_client(
                        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
                    )
            return session.client(
                "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
            )

        limiter = anyio.CapacityLimiter(pool_size)
        client = await anyio.to_thread.run_sync(create, limiter=limiter)
        return cls(client, limiter=limiter, owned=True)

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)

    async def call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        # docstring inherited
        # An idle anyio worker thread keeps a reference to its last job until it
        # gets the next one. Hand the job over in a box emptied by the thread, so
        # a finished upload_part does not pin its part buffer (memory bound).
        box = [functools.partial(getattr(self._client, op), **kwargs)]
        del kwargs

        def run() -> Any:
            return box.pop()()

        result: dict[str, Any] = await self._run(run)
        return result

    async def produce_then_put(
        self, produce: Callable[[], bytes], **kwargs: Any
    ) -> tuple[bytes, dict[str, Any] | None, BaseException | None]:
        """In one worker thread, ``body = produce()`` then ``put_object(Body=body, **kwargs)``.

        Returns ``(body, response, None)``, or ``(body, None, error)`` when the
        request failed (the caller maps ``error``, as :meth:`call`'s are).

        Raises
        ------
        Exception
            Whatever ``produce`` raised, unchanged (nothing was sent).
        """
        put = self._client.put_object

        def send(body: bytes) -> tuple[bytes, dict[str, Any] | None, BaseException | None]:
            try:
                return body, put(Body=body, **kwargs), None
            except Exception as exc:
                return body, None, exc

        # The job empties its box, as call() does: an idle worker thread keeps
        # its last job, which must not pin the records and their bytes.
        job = ProduceJob(produce, send)
        del produce
        return job.outcome(await self._run(job))

    async def read(self, body: Any, amt: int | None = None) -> bytes:
        # docstring inherited
        data: bytes = await self._run(functools.partial(body.read, amt))
        return data

    async def fetch(self, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
        # docstring inherited
        # One worker-thread hop instead of three: a small GET was 0.87x raw
        # aioboto3 with the call, the read and the close each crossing threads.
        client = self._client

        def run() -> tuple[dict[str, Any], bytes]:
            resp = client.get_object(**kwargs)
            body = resp["Body"]
            try:
                return resp, body.read()
            finally:
                body.close()

        result: tuple[dict[str, Any], bytes] = await self._run(run)
        return result

    async def close_body(self, body: Any) -> None:
        # docstring inherited
        await self._run(body.close)

    async def aclose(self) -> None:
        # docstring inherited
        if self._owned:
            await self._run(self._client.close)


class AioTransport(S3Transport):
    """A caller-supplied aiobotocore client, awaited directly (asyncio only)."""

    def __init__(self, client: Any) -> None:
        import sniffio

        if sniffio.current_async_library() != "asyncio":
            raise UnsupportedError(
                "an aioboto3/aiobotocore client only runs on asyncio; on trio pass a "
                "boto3 client or let S3Store create its own (it runs botocore in threads)"
            )
        self._client = client

    async def call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        # docstring inherited
        result: dict[str, Any] = await getattr(self._client, op)(**kwargs)
        return result

    async def read(self, body: Any, amt: int | None = None) -> bytes:
        # docstring inherited
        data: bytes = await body.read(amt) if amt is not None else await body.read()
        return data

    async def close_body(self, body: Any) -> None:
        # docstring inherited
        body.close()
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        # docstring inherited: the caller owns the client.
        await anyio.lowlevel.checkpoint()
