"""GCSStore: Google Cloud Storage through its JSON API, on asyncio and trio.

Requests go through one HTTP client per open store: an ``aiohttp`` session on
asyncio (about 4x less client CPU per request than httpx, measured in
``benchmarks/bench_gcs.py``), an ``httpx.AsyncClient`` on trio (aiohttp does not
run there; httpx runs on every anyio backend). Both sit behind
:class:`_Transport`, so every GCS rule is written once. Credentials come from
``google-auth``, refreshed in a worker thread. Conditional writes are GCS's own generation preconditions, decided by
the server:

- create-only: ``ifGenerationMatch=0`` ("no live generation");
- compare-and-swap: the store's etag *is* the object's generation, so
  ``IfMatch(etag)`` sends ``ifGenerationMatch=<etag>``.

Streamed puts longer than one chunk are resumable uploads: the precondition is
given when the session starts and GCS applies it when the last chunk finalises
the object; nothing is visible before that. See ``docs/gcs.md`` (and
``benchmarks/bench_gcs.py`` for why this client).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import urllib.parse
from typing import TYPE_CHECKING, Any, final

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from .._keys import validate_prefix
from .._validate import safe_repr
from ..errors import (
    AiolodeError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
    TransientStorageError,
)
from ..types import IfMatch, ObjectInfo, PendingUpload, PutMode
from ._base import Store
from ._s3 import PastEnd, _PartFiller

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterator

__all__ = ["GCSStore", "map_gcs_errors"]

_log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
_ALIGN = 256 * 1024  # resumable chunks (all but the last) are multiples of this
_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class GCSHTTPError(Exception):
    """An HTTP answer the store did not expect (mapped by :func:`map_gcs_errors`)."""

    def __init__(self, status: int, message: str, op: str) -> None:
        super().__init__(f"{op}: HTTP {status} {message}")
        self.status = status
        self.message = message
        self.op = op


def _error_message(body: bytes) -> str:
    """GCS's JSON error message (``{"error": {"message": ...}}``), else the text."""
    text = body[:2000].decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        return str(doc["error"].get("message", ""))
    return text.strip()


def _translate(
    exc: Exception, *, key: str | None, mode: PutMode | None, bucket: str, ranged: bool = False
) -> AiolodeError | PastEnd:
    """Map one HTTP / transport / auth error to the aiolode tree (the only place that does).

    ``ranged`` says the request carried a ``Range`` header: then a 416 means
    the range starts at or past the end, an empty answer (:class:`PastEnd`).
    """
    if isinstance(exc, GCSHTTPError):
        status = exc.status
        msg = f"GCS {exc.op} on {key!r} failed: HTTP {status} {exc.message}"
        if ranged and status == 416:
            return PastEnd(msg)
        if status == 412:
            if mode == "create":
                return ObjectExistsError(f"object {key!r} already exists", key=key)
            if isinstance(mode, IfMatch):
                return PreconditionFailedError(
                    f"object {key!r} is missing or not at generation {mode.etag!r}",
                    key=key,
                    expected_etag=mode.etag,
                )
            return ConflictError(msg, key=key)
        if status == 404:
            if "bucket" in exc.message.lower() or exc.op in ("upload", "list"):
                # Uploads and listings name no object: only the bucket can be missing.
                return StorageError(f"GCS bucket {bucket!r} does not exist ({exc.op})", key=key)
            return ObjectNotFoundError(f"object {key!r} not found", key=key)
        if status in (401, 403):
            return PermissionDeniedError(msg, key=key)
        if status in _RETRY_STATUSES or status >= 500:
            return TransientStorageError(msg, key=key)
        return StorageError(msg, key=key)
    if _transient(exc):
        return TransientStorageError(f"GCS connection failed for {key!r}: {exc!r}", key=key)
    if _from_module(exc, "httpx") or _from_module(exc, "aiohttp"):
        return StorageError(f"GCS request for {key!r} failed: {exc!r}", key=key)
    if type(exc).__module__.startswith("google.auth"):
        # DefaultCredentialsError, RefreshError, TransportError while refreshing.
        if type(exc).__name__ == "TransportError":
            return TransientStorageError(f"GCS token refresh failed: {exc}", key=key)
        return PermissionDeniedError(f"GCS credentials failed: {exc}", key=key)
    if isinstance(exc, OSError | TimeoutError):
        return TransientStorageError(f"GCS connection failed for {key!r}: {exc!r}", key=key)
    return StorageError(f"GCS request for {key!r} failed: {exc!r}", key=key)


@contextlib.contextmanager
def map_gcs_errors(
    *, key: str | None, bucket: str, mode: PutMode | None = None, ranged: bool = False
) -> Iterator[None]:
    """Translate backend errors raised inside the block, chained ``from`` the original.

    aiolode errors and cancellation pass through untouched.

    Raises
    ------
    AiolodeError
        The mapped error (see :func:`_translate`).
    PastEnd
        ``ranged`` and the range starts at or past the end of the object.
    """
    try:
        yield
    except AiolodeError:
        raise
    except Exception as exc:
        raise _translate(exc, key=key, mode=mode, bucket=bucket, ranged=ranged) from exc


@attrs.frozen
class _Response:
    """A whole HTTP answer: status, case-insensitive headers, body."""

    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Transport:
    """How GCSStore sends HTTP: one small interface, one implementation per event loop.

    All GCS logic (preconditions, resumable sessions, paging, error mapping) is
    written once against it; see :func:`_open_transport` for who gets which.
    """

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None,
        headers: dict[str, str],
        content: bytes | bytearray | memoryview | None,
        json_body: Any,
    ) -> _Response:
        """Send one request and read the whole answer."""
        raise NotImplementedError

    async def open_get(
        self, url: str, *, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        """Start a GET whose body is read with :meth:`read_all`/:meth:`next_chunk`."""
        raise NotImplementedError

    async def read_all(self, resp: Any) -> bytes:
        raise NotImplementedError

    async def next_chunk(self, resp: Any, n: int) -> bytes:
        """Up to ``n`` bytes of the body; ``b""`` at its end."""
        raise NotImplementedError

    async def close_response(self, resp: Any) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class _HttpxTransport(_Transport):
    """httpx: native on every anyio backend (the transport on trio)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._iters: dict[int, Any] = {}

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None,
        headers: dict[str, str],
        content: bytes | bytearray | memoryview | None,
        json_body: Any,
    ) -> _Response:
        body: Any = content
        if content is not None and not isinstance(content, bytes):
            # httpx takes only bytes as a body; send a bytearray or a memoryview
            # without copying, as one streamed piece of known length.
            headers = {**headers, "Content-Length": str(len(content))}
            body = _one_piece(content)
        resp = await self._client.request(
            method, url, params=params, headers=headers, content=body, json=json_body
        )
        return _Response(resp.status_code, resp.headers, resp.content)

    async def open_get(
        self, url: str, *, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        request = self._client.build_request("GET", url, params=params, headers=headers)
        resp = await self._client.send(request, stream=True)
        return resp.status_code, resp

    async def read_all(self, resp: Any) -> bytes:
        data: bytes = await resp.aread()
        return data

    async def next_chunk(self, resp: Any, n: int) -> bytes:
        it = self._iters.get(id(resp))
        if it is None:
            it = self._iters[id(resp)] = resp.aiter_bytes(n)
        chunk: bytes = await anext(it, b"")
        return chunk

    async def close_response(self, resp: Any) -> None:
        it = self._iters.pop(id(resp), None)
        if it is not None:
            await it.aclose()
        await resp.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


class _AiohttpTransport(_Transport):
    """aiohttp: asyncio only, and about 4x less client CPU per request than httpx."""

    def __init__(self, session: Any) -> None:
        import yarl

        self._session = session
        self._url = yarl.URL

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None,
        headers: dict[str, str],
        content: bytes | bytearray | memoryview | None,
        json_body: Any,
    ) -> _Response:
        # encoded=True: object names are percent-encoded already ("%2F" stays).
        async with self._session.request(
            method,
            self._url(url, encoded=True),
            params=params,
            headers=headers,
            data=content,
            json=json_body,
        ) as resp:
            return _Response(resp.status, resp.headers, await resp.read())

    async def open_get(
        self, url: str, *, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        resp = await self._session.get(self._url(url, encoded=True), params=params, headers=headers)
        return resp.status, resp

    async def read_all(self, resp: Any) -> bytes:
        data: bytes = await resp.read()
        return data

    async def next_chunk(self, resp: Any, n: int) -> bytes:
        # read(n) returns what has arrived (maybe less); chunks are full but the last.
        chunk: bytes = await resp.content.read(n)
        if len(chunk) == n or not chunk:
            return chunk
        parts = [chunk]
        got = len(chunk)
        while got < n:
            more: bytes = await resp.content.read(n - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    async def close_response(self, resp: Any) -> None:
        resp.release()
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await self._session.close()


def _import_transport_modules(kind: str) -> None:
    """Blocking: import (and so set up TLS for) the HTTP library; in a worker thread."""
    try:
        if kind == "aiohttp":
            import aiohttp  # noqa: F401
            import yarl  # noqa: F401
        else:
            import httpx  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"GCSStore needs {kind}: pip install aiolode[gcs]", package=kind, extra="gcs"
        ) from exc


def _transport_kind() -> str:
    """aiohttp on asyncio when it is installed (cheaper per request), else httpx."""
    import sniffio

    if sniffio.current_async_library() == "asyncio":
        try:
            import importlib.util

            if importlib.util.find_spec("aiohttp") is not None:
                return "aiohttp"
        except ValueError:
            pass
    return "httpx"


def _make_httpx(max_connections: int, timeout: float) -> Any:
    """Blocking: creating the client loads the TLS trust store."""
    import httpx

    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(
        limits=limits, timeout=httpx.Timeout(timeout), headers={"User-Agent": "aiolode"}
    )


def _info(key: str, doc: dict[str, Any]) -> ObjectInfo:
    updated = doc.get("updated")
    return ObjectInfo(
        key=key,
        size=int(doc["size"]),
        etag=str(doc["generation"]),
        last_modified=datetime.datetime.fromisoformat(updated) if updated else None,
    )


def _generation(key: str, mode: PutMode) -> str | None:
    """The ``ifGenerationMatch`` value for ``mode`` (``None``: unconditional).

    Raises
    ------
    PreconditionFailedError
        ``IfMatch`` with an etag that is no generation (a decimal number): no
        GCS object can have it, so the write could never succeed.
    """
    if mode == "create":
        return "0"
    if isinstance(mode, IfMatch):
        if not (mode.etag.isascii() and mode.etag.isdigit()):
            raise PreconditionFailedError(
                f"object {key!r} cannot have etag {mode.etag!r}: GCS etags are generations",
                key=key,
                expected_etag=mode.etag,
            )
        return mode.etag
    return None


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@final
class GCSStore(Store):
    """A store over one Google Cloud Storage bucket (and an optional key prefix).

    The HTTP client lives as long as the store: it is created by ``async with
    store`` (or lazily on first use) and closed on exit: aiohttp on asyncio,
    httpx on trio (and on asyncio when aiohttp is missing). Nothing blocks the
    event loop: TLS set-up, finding default credentials and refreshing tokens
    run in worker threads.

    Object etags are GCS *generations* (decimal strings). Create-only puts send
    ``ifGenerationMatch=0`` and ``IfMatch(etag)`` puts send
    ``ifGenerationMatch=<etag>``, so GCS decides atomically. Puts of bytes and
    streams shorter than one chunk are one multipart upload request; longer
    streams are resumable uploads, one chunk in flight, whose precondition GCS
    checks when the last chunk finalises the object; a failed or cancelled
    stream cancels its session (shielded), so nothing becomes visible.

    Cost: one request per operation (``get_range`` is a ranged GET; listing is
    one request per ``page_size`` objects); a streamed put of ``n >=
    chunk_size`` bytes takes ``ceil(n / chunk_size) + 2`` requests (a metadata
    read that refuses a doomed upload early, the session start, the chunks; one
    fewer with ``mode="overwrite"``) and one ``chunk_size`` buffer. See
    ``docs/gcs.md``.

    Parameters
    ----------
    bucket
        The bucket; it must exist.
    prefix
        Key prefix inside the bucket (joined with ``/``); keys and
        :class:`~aiolode.ObjectInfo` never include it.
    credentials
        ``google.auth.credentials.Credentials`` to use. Default: the
        application-default credentials (``google.auth.default()``), looked
        up when the store opens.
    anonymous
        Send no credentials (public buckets, emulators).
    project
        Quota project billed for the requests (``x-goog-user-project``), e.g.
        for requester-pays buckets.
    endpoint
        Base URL of the JSON API (default ``https://storage.googleapis.com``;
        an emulator's ``http://host:port``).
    chunk_size
        Resumable upload chunk size, and the largest stream sent in one
        request (a multiple of 256 KiB).
    max_connections
        Size of the HTTP connection pool.
    page_size
        Objects per listing page (1..1000).
    timeout
        Seconds before a connection attempt, or a wait for data, gives up.
    retries
        Extra attempts for requests that are safe to repeat (reads, listings,
        deletes, session starts) after a transient error.

    Raises
    ------
    InvalidInputError
        A parameter is out of range.
    InvalidKeyError
        ``prefix`` is malformed.
    """

    name = "gcs"

    @property
    def stamp_resolution(self) -> datetime.timedelta:
        """GCS reports ``updated`` in milliseconds."""
        return datetime.timedelta(milliseconds=1)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        credentials: Any = None,
        anonymous: bool = False,
        project: str | None = None,
        endpoint: str | None = None,
        chunk_size: int = 8 * MiB,
        max_connections: int = 10,
        page_size: int = 1000,
        timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        if not isinstance(bucket, str) or not bucket or "/" in bucket or not _utf8(bucket):
            raise InvalidInputError(
                f"bucket must be a non-empty name without '/', not {safe_repr(bucket)}"
            )
        validate_prefix(prefix)
        if not isinstance(chunk_size, int) or chunk_size < _ALIGN or chunk_size % _ALIGN:
            raise InvalidInputError(
                f"chunk_size must be a positive multiple of 256 KiB, not {safe_repr(chunk_size)}"
            )
        if not isinstance(max_connections, int) or max_connections < 1:
            raise InvalidInputError(
                f"max_connections must be an int >= 1, not {safe_repr(max_connections)}"
            )
        if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
            raise InvalidInputError(
                f"page_size must be an int in 1..1000, not {safe_repr(page_size)}"
            )
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise InvalidInputError(f"timeout must be a positive number, not {safe_repr(timeout)}")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidInputError(f"retries must be an int >= 0, not {safe_repr(retries)}")
        if anonymous and credentials is not None:
            raise InvalidInputError("pass either credentials or anonymous=True, not both")
        if endpoint is not None:
            if not isinstance(endpoint, str) or not _utf8(endpoint):
                raise InvalidInputError(f"endpoint must be a URL str, not {safe_repr(endpoint)}")
            parts = urllib.parse.urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidInputError(
                    f"endpoint must be an http(s) URL, not {safe_repr(endpoint)}"
                )
        self.bucket = bucket
        self.prefix: str = prefix.rstrip("/")
        self.endpoint: str = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self.chunk_size = chunk_size
        self.page_size = page_size
        self.max_connections = max_connections
        self.timeout: float = float(timeout)
        self.retries = retries
        self.project = project
        self._credentials = credentials
        self._anonymous = anonymous
        self._transport: _Transport | None = None
        self._creds: Any = None
        self._open_lock: anyio.Lock | None = None
        self._auth_lock: anyio.Lock | None = None
        b = urllib.parse.quote(bucket, safe="")
        self._objects_url = f"{self.endpoint}/storage/v1/b/{b}/o"
        self._upload_url = f"{self.endpoint}/upload/storage/v1/b/{b}/o"

    def __repr__(self) -> str:
        where = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return f"GCSStore('gs://{where}')"

    # ---------------------------------------------------------------- lifecycle
    async def aopen(self) -> None:
        """Create the HTTP client and find credentials (in worker threads); idempotent.

        Raises
        ------
        MissingDependencyError
            httpx (trio), aiohttp or httpx (asyncio), or google-auth is not
            installed (``pip install aiolode[gcs]``).
        PermissionDeniedError
            No credentials were found.
        """
        await self._ensure_open()

    async def _ensure_open(self) -> _Transport:
        if self._transport is not None:
            return self._transport
        if self._open_lock is None:
            self._open_lock = anyio.Lock()
        async with self._open_lock:
            if self._transport is None:
                kind = _transport_kind()
                with map_gcs_errors(key=None, bucket=self.bucket):
                    creds = await anyio.to_thread.run_sync(self._find_credentials)
                    await anyio.to_thread.run_sync(_import_transport_modules, kind)
                    if kind == "aiohttp":
                        self._transport = self._make_aiohttp()
                    else:
                        client = await anyio.to_thread.run_sync(
                            _make_httpx, self.max_connections, self.timeout
                        )
                        self._transport = _HttpxTransport(client)
                self._creds = creds
            return self._transport

    def _make_aiohttp(self) -> _AiohttpTransport:
        import aiohttp

        # On the event loop (aiohttp binds the session to it); the TLS context
        # was built when aiohttp was imported, in a worker thread.
        connector = aiohttp.TCPConnector(limit=self.max_connections)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.timeout
        )
        session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers={"User-Agent": "aiolode"}
        )
        return _AiohttpTransport(session)

    def _find_credentials(self) -> Any:
        """Blocking: ``google.auth.default()`` reads files and may ask the metadata server."""
        if self._anonymous:
            return None
        try:
            import google.auth
        except ImportError as exc:
            raise MissingDependencyError(
                "GCSStore needs google-auth: pip install aiolode[gcs]",
                package="google-auth",
                extra="gcs",
            ) from exc
        if self._credentials is not None:
            return self._credentials
        creds, _ = google.auth.default(scopes=[_SCOPE])
        return creds

    async def aclose(self) -> None:
        """Close the HTTP client; idempotent.

        Raises
        ------
        StorageError
            Closing the client failed.
        """
        transport, self._transport = self._transport, None
        # The locks belong to this event loop; a reopened store may run on another.
        self._open_lock = None
        self._auth_lock = None
        if transport is not None:
            with map_gcs_errors(key=None, bucket=self.bucket):
                await transport.aclose()
        else:
            await anyio.lowlevel.checkpoint()

    # ------------------------------------------------------------------ requests
    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def _object_url(self, key: str) -> str:
        return f"{self._objects_url}/{urllib.parse.quote(self._full(key), safe='')}"

    async def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        creds = self._creds
        if creds is not None:
            if not creds.valid:
                if self._auth_lock is None:
                    self._auth_lock = anyio.Lock()
                async with self._auth_lock:
                    if not creds.valid:
                        await anyio.to_thread.run_sync(_refresh, creds)
            creds.apply(headers)
        if self.project:
            headers["x-goog-user-project"] = self.project
        return headers

    async def _send(
        self,
        method: str,
        url: str,
        *,
        op: str,
        ok: tuple[int, ...] = (200,),
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | bytearray | memoryview | None = None,
        json_body: Any = None,
        retry: bool = False,
    ) -> _Response:
        """One request; an answer outside ``ok`` raises :class:`GCSHTTPError`.

        ``retry``: the request is safe to repeat; transient failures are retried
        ``self.retries`` times with exponential backoff.
        """
        transport = await self._ensure_open()
        attempt = 0
        while True:
            try:
                resp = await transport.request(
                    method,
                    url,
                    params=params,
                    headers=await self._headers(headers),
                    content=content,
                    json_body=json_body,
                )
                if resp.status not in ok:
                    raise GCSHTTPError(resp.status, _error_message(resp.body), op)
                return resp
            except Exception as exc:
                if not retry or attempt >= self.retries or not _transient(exc):
                    raise
            attempt += 1
            await anyio.sleep(min(2.0, 0.05 * 2**attempt))

    async def _request(
        self, method: str, url: str, *, key: str | None, mode: PutMode | None = None, **kw: Any
    ) -> _Response:
        with map_gcs_errors(key=key, bucket=self.bucket, mode=mode):
            return await self._send(method, url, **kw)

    # ------------------------------------------------------------------ writes
    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        # One multipart/related request: the metadata part names the object,
        # the media part is the content. Preconditions are query parameters.
        boundary = os.urandom(16).hex()
        meta = json.dumps({"name": self._full(key)}).encode()
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                meta,
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        await anyio.lowlevel.checkpoint()
        gen = _generation(key, mode)
        params = {"uploadType": "multipart"}
        if gen is not None:
            params["ifGenerationMatch"] = gen
        resp = await self._request(
            "POST",
            self._upload_url,
            key=key,
            mode=mode,
            op="upload",
            params=params,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
            content=body,
        )
        del body
        return _info(key, resp.json())

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        filler = _PartFiller(chunks)
        buf = bytearray(self.chunk_size)
        n = await filler.fill(buf)
        if n < self.chunk_size or await filler.exhausted():
            del buf[n:]
            return await self._put_bytes(key, buf, mode)
        # A long stream. Refuse a doomed upload before sending gigabytes; the
        # precondition on the session is what makes the outcome atomic.
        await self._precheck(key, mode)
        session = await self._start_session(key, mode)
        try:
            return await self._upload_chunks(key, session, buf, filler, mode)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._cancel_session(key, session)
            raise

    async def _precheck(self, key: str, mode: PutMode) -> None:
        if mode == "overwrite":
            return
        _generation(key, mode)
        try:
            current = await self._head(key)
        except ObjectNotFoundError:
            if isinstance(mode, IfMatch):
                raise PreconditionFailedError(
                    f"object {key!r} is missing, expected generation {mode.etag!r}",
                    key=key,
                    expected_etag=mode.etag,
                ) from None
            return
        if mode == "create":
            raise ObjectExistsError(f"object {key!r} already exists", key=key)
        if isinstance(mode, IfMatch) and current.etag != mode.etag:
            raise PreconditionFailedError(
                f"object {safe_repr(key)} is at generation {current.etag}, not {safe_repr(mode.etag)}",
                key=key,
                expected_etag=mode.etag,
            )

    async def _start_session(self, key: str, mode: PutMode) -> str:
        params = {"uploadType": "resumable", "name": self._full(key)}
        gen = _generation(key, mode)
        if gen is not None:
            params["ifGenerationMatch"] = gen
        resp = await self._request(
            "POST",
            self._upload_url,
            key=key,
            mode=mode,
            op="upload",
            params=params,
            json_body={"name": self._full(key)},
            headers={"X-Upload-Content-Type": "application/octet-stream"},
            retry=True,
        )
        location = resp.headers.get("Location")
        if not location:
            raise StorageError(f"GCS started no resumable upload session for {key!r}", key=key)
        return str(location)

    async def _upload_chunks(
        self, key: str, session: str, buf: bytearray, filler: _PartFiller, mode: PutMode
    ) -> ObjectInfo:
        offset = 0
        while True:
            last = await filler.exhausted()
            total = offset + len(buf) if last else None
            done = await self._send_chunk(key, session, buf, offset, total, mode)
            if done is not None:
                return done
            offset += len(buf)
            n = await filler.fill(buf)
            del buf[n:]

    async def _send_chunk(
        self,
        key: str,
        session: str,
        buf: bytearray,
        offset: int,
        total: int | None,
        mode: PutMode,
    ) -> ObjectInfo | None:
        """Send ``buf`` at ``offset`` (resending what GCS did not persist).

        ``total`` is the object's size when this is the last chunk. Returns the
        object's info once the upload is finalised, ``None`` before.
        """
        sent = 0
        stalls = 0
        view = memoryview(buf)
        while True:
            end = offset + len(buf) - 1
            size = "*" if total is None else str(total)
            crange = f"bytes {offset + sent}-{end}/{size}" if len(buf) else f"bytes */{size}"
            resp = await self._request(
                "PUT",
                session,
                key=key,
                mode=mode,
                op="upload",
                ok=(200, 201, 308),
                headers={"Content-Range": crange},
                content=view[sent:],
            )
            if resp.status in (200, 201):
                return _info(key, resp.json())
            persisted = resp.headers.get("Range")  # "bytes=0-N": N is the last byte kept
            kept = int(persisted.rpartition("-")[2]) + 1 if persisted else 0
            if kept >= offset + len(buf):
                if total is not None:
                    raise StorageError(
                        f"GCS did not finalise the upload of {key!r} after its last chunk",
                        key=key,
                    )
                return None
            if kept < offset + sent:
                raise TransientStorageError(
                    f"GCS lost already persisted bytes of the upload of {key!r}", key=key
                )
            stalls = stalls + 1 if kept == offset + sent else 0
            if stalls >= 3:
                raise TransientStorageError(
                    f"GCS keeps refusing the bytes at {kept} of the upload of {key!r}", key=key
                )
            sent = kept - offset

    async def _cancel_session(self, key: str, session: str) -> None:
        try:
            # GCS answers a cancelled session with 499.
            await self._request(
                "DELETE", session, key=key, op="cancel upload", ok=(200, 204, 404, 410, 499)
            )
        except AiolodeError as exc:
            # The original failure matters more; GCS expires abandoned sessions
            # after a week, and an unfinished session is never visible.
            _log.warning("could not cancel the resumable upload of %r: %s", key, exc)

    # ------------------------------------------------------------------- reads
    # ---------------------------------------------------------- pending uploads
    async def _abandoned_uploads(
        self, prefix: str, older_than: datetime.datetime
    ) -> AsyncGenerator[PendingUpload, None]:
        """Nothing: resumable upload sessions cannot be listed, and expire by themselves.

        A streamed put whose process dies leaves its resumable upload session
        open. The JSON API has no call that lists sessions (the XML API's
        "List multipart uploads" covers XML multipart uploads only, which this
        store never starts), and GCS discards a session a week after it began
        (a resumable upload "must be completed within a week of being
        initiated"); the object never becomes visible. Sources: see
        ``docs/gcs.md``.
        """
        await anyio.lowlevel.checkpoint()
        nothing: tuple[PendingUpload, ...] = ()
        for upload in nothing:
            yield upload

    async def _get(self, key: str) -> bytes:
        # docstring inherited
        resp = await self._request(
            "GET", self._object_url(key), key=key, op="get", params={"alt": "media"}, retry=True
        )
        return resp.body

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        try:
            with map_gcs_errors(key=key, bucket=self.bucket, ranged=True):
                resp = await self._send(
                    "GET",
                    self._object_url(key),
                    op="get",
                    ok=(200, 206),
                    params={"alt": "media"},
                    headers={"Range": f"bytes={offset}-{offset + length - 1}"},
                    retry=True,
                )
        except PastEnd:
            return b""
        data = resp.body
        if resp.status == 200:
            # A server that ignored Range sent the whole object.
            data = data[offset : offset + length]
        return data

    async def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        transport = await self._ensure_open()
        headers = await self._headers()
        with map_gcs_errors(key=key, bucket=self.bucket):
            status, resp = await transport.open_get(
                self._object_url(key), params={"alt": "media"}, headers=headers
            )
        try:
            if status != 200:
                with map_gcs_errors(key=key, bucket=self.bucket):
                    body = await transport.read_all(resp)
                    raise GCSHTTPError(status, _error_message(body), "get")
            while True:
                with map_gcs_errors(key=key, bucket=self.bucket):
                    chunk = await transport.next_chunk(resp, chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            # Also runs when the consumer stops early (aclose): free the connection.
            with anyio.CancelScope(shield=True), map_gcs_errors(key=key, bucket=self.bucket):
                await transport.close_response(resp)

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        resp = await self._request("GET", self._object_url(key), key=key, op="stat", retry=True)
        return _info(key, resp.json())

    async def _delete(self, key: str) -> None:
        # docstring inherited: a missing object (404) is already deleted.
        await self._request(
            "DELETE", self._object_url(key), key=key, op="delete", ok=(200, 204, 404), retry=True
        )

    # ----------------------------------------------------------------- listing
    async def _pages(self, prefix: str, **extra: str) -> AsyncGenerator[dict[str, Any], None]:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        token: str | None = None
        while True:
            params = {"prefix": full, "maxResults": str(self.page_size), **extra}
            if token is not None:
                params["pageToken"] = token
            resp = await self._request(
                "GET", self._objects_url, key=prefix or None, op="list", params=params, retry=True
            )
            page: dict[str, Any] = resp.json()
            yield page
            token = page.get("nextPageToken")
            if not token:
                return

    async def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        async with contextlib.aclosing(self._pages(prefix)) as pages:
            async for page in pages:
                for doc in page.get("items", ()):
                    yield _info(self._strip(doc["name"]), doc)

    async def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        # docstring inherited: one delimiter listing, never every key.
        last = ""
        async with contextlib.aclosing(self._pages(prefix, delimiter="/")) as pages:
            async for page in pages:
                # Sorted; fake-gcs-server repeats every prefix on every page.
                for p in page.get("prefixes", ()):
                    if p > last:
                        last = p
                        yield self._strip(p)


def _refresh(creds: Any) -> None:
    """Blocking: fetch a new access token."""
    import google.auth.transport.requests

    creds.refresh(google.auth.transport.requests.Request())


async def _one_piece(data: bytearray | memoryview) -> AsyncGenerator[bytearray | memoryview, None]:
    yield data


def _from_module(exc: BaseException, name: str) -> bool:
    return type(exc).__module__.split(".")[0] == name


def _transient(exc: Exception) -> bool:
    """Worth retrying: throttling, server errors, broken connections, timeouts."""
    if isinstance(exc, GCSHTTPError):
        return exc.status in _RETRY_STATUSES or exc.status >= 500
    if _from_module(exc, "httpx"):
        import httpx

        return isinstance(
            exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
        )
    if _from_module(exc, "aiohttp"):
        import aiohttp

        return isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | OSError)
    return isinstance(exc, OSError | TimeoutError)
