"""S3Store: S3 and S3-compatible object storage, on asyncio and trio.

Conditional writes are S3's own: ``If-None-Match: *`` for create-only and
``If-Match: <etag>`` for compare-and-swap, on PutObject and on
CompleteMultipartUpload, so the server decides atomically. How requests reach S3
is behind :mod:`._s3_transport` (botocore in worker threads by default, or the
caller's aioboto3 client on asyncio); see ``docs/s3.md``.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import urllib.parse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, final

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._concurrency import collapse_group
from .._keys import validate_key, validate_prefix
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
    StaleWriteError,
    StorageError,
    TransientStorageError,
    UnsupportedOperationError,
)
from ..types import IfMatch, ObjectInfo, PendingUpload, PutMode
from ._base import ArrowFilesystem, Store, check_mode
from ._s3_transport import (
    _SESSION_LOCK,
    AioTransport,
    S3Transport,
    ThreadTransport,
    _shared_session,
    is_async_client,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator

__all__ = ["PastEnd", "S3Store", "map_s3_errors"]

_log = logging.getLogger(__name__)

MiB = 1024 * 1024
_MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
_MAX_PARTS = 10_000

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidToken",
        "ExpiredToken",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "OperationAborted",
        "503",
        "500",
    }
)


class PastEnd(Exception):  # an outcome, not an error: never escapes the store
    """A ranged read started at or past the end of the object: the answer is ``b""``.

    Raised by :func:`map_s3_errors` (``ranged=True`` only) for S3's ``416
    InvalidRange``, which S3 sends when the range's first byte is at or past the
    end (a missing key is ``NoSuchKey`` instead). Never escapes the store.
    """


def _translate(
    exc: Exception, *, key: str | None, mode: PutMode | None, bucket: str, ranged: bool = False
) -> AiolodeError | PastEnd:
    """Map one botocore/transport error to the aiolode tree (the only place that does).

    ``ranged`` says the request carried a ``Range`` header: then a 416 means
    the range starts at or past the end, an empty answer (:class:`PastEnd`).
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        IncompleteReadError,
        NoCredentialsError,
        ParamValidationError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        msg = (
            f"S3 {exc.operation_name} on {key!r} failed: {code or status} {err.get('Message', '')}"
        )
        if ranged and (status == 416 or code == "InvalidRange"):
            return PastEnd(msg)
        if code == "NoSuchBucket":
            return StorageError(
                f"S3 bucket {bucket!r} does not exist ({exc.operation_name})", key=key
            )
        if code == "NoSuchUpload":
            if exc.operation_name in ("UploadPart", "CompleteMultipartUpload"):
                # Someone aborted the upload under a live writer: a reaper of
                # abandoned uploads with too short a grace, or a lifecycle rule.
                return StaleWriteError(
                    f"the multipart upload of {key!r} no longer exists: it was aborted "
                    "while being written (a cleanup of abandoned uploads with too short "
                    "a grace, or a bucket lifecycle rule); write it again",
                    key=key,
                )
            return ObjectNotFoundError(f"no such multipart upload of {key!r}", key=key)
        if status == 501 or code == "NotImplemented":
            # An S3-compatible server without this operation: retrying cannot help.
            return UnsupportedOperationError(
                f"this S3 server does not implement {exc.operation_name}: {msg}", key=key
            )
        if status == 412 or code == "PreconditionFailed":
            if mode == "create":
                return ObjectExistsError(f"object {key!r} already exists", key=key)
            if isinstance(mode, IfMatch):
                return PreconditionFailedError(
                    f"object {key!r} does not have etag {mode.etag!r}",
                    key=key,
                    expected_etag=mode.etag,
                )
            return ConflictError(msg, key=key)
        if status == 409 and code == "ConditionalRequestConflict":
            # Another conditional write to this key is in flight: we lost the race.
            if mode == "create":
                return ObjectExistsError(f"object {key!r} is being created concurrently", key=key)
            if isinstance(mode, IfMatch):
                return PreconditionFailedError(
                    f"object {key!r} is being written concurrently",
                    key=key,
                    expected_etag=mode.etag,
                )
            return ConflictError(msg, key=key)
        if code in _NOT_FOUND_CODES:
            if isinstance(mode, IfMatch):
                # S3 answers If-Match on a missing key with 404: it cannot match.
                return PreconditionFailedError(
                    f"object {key!r} is missing, expected etag {mode.etag!r}",
                    key=key,
                    expected_etag=mode.etag,
                )
            return ObjectNotFoundError(f"object {key!r} not found", key=key)
        if status == 403 or code in _PERMISSION_CODES:
            return PermissionDeniedError(msg, key=key)
        if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
            return TransientStorageError(msg, key=key)
        return StorageError(msg, key=key)
    if isinstance(exc, NoCredentialsError):
        return PermissionDeniedError(f"no AWS credentials found: {exc}", key=key)
    if isinstance(exc, ParamValidationError):
        return InvalidInputError(f"invalid S3 request: {exc}", key=key)
    if isinstance(
        exc, ConnectionError | ReadTimeoutError | IncompleteReadError | ResponseStreamingError
    ):
        return TransientStorageError(f"S3 connection failed for {key!r}: {exc}", key=key)
    if isinstance(exc, BotoCoreError):
        return StorageError(f"S3 request for {key!r} failed: {exc}", key=key)
    # Body reads below botocore (urllib3 or aiohttp) and socket timeouts.
    if isinstance(exc, OSError | TimeoutError) or type(exc).__module__.split(".")[0] in {
        "aiohttp",
        "urllib3",
    }:
        return TransientStorageError(f"S3 connection failed for {key!r}: {exc!r}", key=key)
    return StorageError(f"S3 request for {key!r} failed: {exc!r}", key=key)


@contextlib.contextmanager
def map_s3_errors(
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


def _is_leaf(err: BaseException, group: BaseExceptionGroup[BaseException]) -> bool:
    return any(
        e is err or (isinstance(e, BaseExceptionGroup) and _is_leaf(err, e))
        for e in group.exceptions
    )


def _info(key: str, size: int, etag: str, last_modified: Any = None) -> ObjectInfo:
    return ObjectInfo(key=key, size=int(size), etag=str(etag), last_modified=last_modified)


def _condition(mode: PutMode) -> dict[str, str]:
    if mode == "create":
        return {"IfNoneMatch": "*"}
    if isinstance(mode, IfMatch):
        return {"IfMatch": mode.etag}
    return {}


class _PartFiller:
    """Copies a stream of chunks into part buffers, splitting chunks across parts."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._carry: memoryview | None = None  # unread rest of the current chunk
        self._eof = False

    async def exhausted(self) -> bool:
        """Whether the stream has no more bytes (reads ahead one chunk)."""
        while self._carry is None:
            if self._eof:
                return True
            chunk = await anext(self._chunks, None)
            if chunk is None:
                self._eof = True
                return True
            mv = memoryview(chunk)
            if mv.format != "B" or mv.ndim != 1:
                mv = mv.cast("B")
            self._carry = mv if len(mv) else None
        return False

    async def fill(self, buf: bytearray) -> int:
        """Fill ``buf`` from the stream; return the bytes written (short only at EOF)."""
        pos = 0
        while pos < len(buf) and not await self.exhausted():
            carry = self._carry
            assert carry is not None
            n = min(len(buf) - pos, len(carry))
            buf[pos : pos + n] = carry[:n]
            pos += n
            # Drop our view as soon as the chunk is used up, so the producer may
            # reuse or resize its buffer.
            self._carry = carry[n:] if n < len(carry) else None
        return pos


@final
class S3Store(Store):
    """A store over one S3 bucket (and an optional key prefix).

    The client lives as long as the store: it is created by ``async with store``
    (or lazily on first use) and closed on exit. A caller-supplied ``client`` is
    used as is and never closed. On asyncio and trio the store drives a botocore
    client in worker threads; a caller's aioboto3/aiobotocore client is awaited
    directly (asyncio only).

    Create-only puts send ``If-None-Match: *`` and compare-and-swap puts send
    ``If-Match``, so S3 decides atomically. Streamed puts shorter than one part
    are a single PutObject; longer ones are multipart uploads with up to
    ``max_concurrency`` parts in flight, completed with the same condition, and
    aborted (shielded from cancellation) on any failure so nothing becomes
    visible.

    A multipart upload whose writer died (killed, not cancelled) stays in the
    bucket, billed, until aborted: :meth:`abandoned_uploads` finds those older
    than a cutoff and :meth:`abort_upload` aborts them.

    Cost: one request per operation (``get_range`` is a ranged GET; listing is
    one ListObjectsV2 per ``page_size`` keys, ``abandoned_uploads`` one
    ListMultipartUploads per ``page_size`` uploads); a streamed put of ``n``
    bytes takes ``ceil(n / part_size) + 2`` requests and at most ``part_size *
    max_concurrency`` bytes of buffers. See ``docs/s3.md``.

    Parameters
    ----------
    bucket
        The bucket; it must exist.
    prefix
        Key prefix inside the bucket (joined with ``/``); keys and
        :class:`~aiolode.ObjectInfo` never include it.
    client
        An existing S3 client: a boto3/botocore client (any event loop) or an
        aioboto3/aiobotocore client (asyncio only). Not closed by the store.
    session
        A ``boto3.Session`` to create the client from (credentials, profile).
    endpoint_url, region_name
        Passed to the client (``endpoint_url`` for S3-compatible servers).
    part_size
        Multipart part size in bytes (>= 5 MiB, S3's minimum).
    max_concurrency
        Parts uploaded at once per streamed put, and the size of the connection
        pool and thread limiter of the store's own client.
    page_size
        Keys per ListObjectsV2 page, and uploads per ListMultipartUploads page
        (1..1000).

    Raises
    ------
    InvalidInputError
        A parameter is out of range.
    InvalidKeyError
        ``prefix`` is malformed.
    """

    name = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        session: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        part_size: int = 8 * MiB,
        max_concurrency: int = 8,
        page_size: int = 1000,
    ) -> None:
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise InvalidInputError(
                f"bucket must be a non-empty name without '/', not {safe_repr(bucket)}"
            )
        validate_prefix(prefix)
        prefix = prefix.rstrip("/")
        if not isinstance(part_size, int) or part_size < _MIN_PART_SIZE:
            raise InvalidInputError(
                f"part_size must be an int >= 5 MiB, not {safe_repr(part_size)}"
            )
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise InvalidInputError(
                f"max_concurrency must be an int >= 1, not {safe_repr(max_concurrency)}"
            )
        if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
            raise InvalidInputError(
                f"page_size must be an int in 1..1000, not {safe_repr(page_size)}"
            )
        if client is not None and session is not None:
            raise InvalidInputError("pass either client or session, not both")
        if client is not None:
            is_async_client(client)  # validates it looks like an S3 client
        if session is not None and type(session).__module__.split(".")[0] in {
            "aioboto3",
            "aiobotocore",
        }:
            raise InvalidInputError(
                "session must be a boto3.Session; to use aioboto3 (asyncio only), "
                "create the client yourself and pass client="
            )
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.page_size = page_size
        self._client = client
        self._session = session
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._transport: S3Transport | None = None
        self._open_lock: anyio.Lock | None = None

    def __repr__(self) -> str:
        where = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return f"S3Store('s3://{where}')"

    # ---------------------------------------------------------------- lifecycle
    async def aopen(self) -> None:
        """Create the client (in a worker thread: it reads config files); idempotent.

        Raises
        ------
        UnsupportedError
            An aioboto3 client was supplied but the event loop is trio.
        StorageError
            The client could not be created.
        """
        await self._ensure_open()

    async def _ensure_open(self) -> S3Transport:
        if self._transport is not None:
            return self._transport
        if self._open_lock is None:
            self._open_lock = anyio.Lock()
        async with self._open_lock:
            if self._transport is None:
                pool = max(self.max_concurrency, 10)
                if self._client is None:
                    with map_s3_errors(key=None, bucket=self.bucket):
                        self._transport = await ThreadTransport.open(
                            session=self._session,
                            endpoint_url=self._endpoint_url,
                            region_name=self._region_name,
                            pool_size=pool,
                        )
                elif is_async_client(self._client):
                    self._transport = AioTransport(self._client)
                else:
                    self._transport = ThreadTransport(
                        self._client, limiter=anyio.CapacityLimiter(pool), owned=False
                    )
            return self._transport

    # ---------------------------------------------------------------- capabilities
    async def arrow_filesystem(self) -> ArrowFilesystem | None:
        """pyarrow's ``S3FileSystem`` on this bucket, with the store's settings.

        Same endpoint, region and credentials as the store's own client (the
        session's, or botocore's default chain). ``None`` when the store was given
        a caller's ``client``: its credentials are the caller's business (and an
        aiobotocore client only yields them asynchronously).

        Cost: no store calls; credentials are resolved in a worker thread.

        Raises
        ------
        MissingDependencyError
            pyarrow is not installed.
        PermissionDeniedError
            Resolving the credentials failed.
        """
        if self._client is not None:
            await anyio.lowlevel.checkpoint()
            return None
        with map_s3_errors(key=None, bucket=self.bucket):
            fs = await anyio.to_thread.run_sync(self._arrow_s3)
        base = f"{self.bucket}/{self.prefix}/" if self.prefix else f"{self.bucket}/"
        return ArrowFilesystem(fs, lambda key: base + key)

    def _arrow_s3(self) -> Any:
        """Blocking (imports pyarrow, reads credentials and config files)."""
        try:
            import pyarrow.fs as pafs
        except ImportError as exc:
            raise MissingDependencyError(
                "pyarrow is needed for arrow_filesystem(): pip install aiolode[parquet]",
                package="pyarrow",
                extra="parquet",
            ) from exc
        region = self._region_name
        if self._session is None:
            with _SESSION_LOCK:
                bsess: Any = _shared_session()
                creds = bsess.get_credentials()
                region = region or bsess.get_config_variable("region")
        else:
            creds = self._session.get_credentials()
            region = region or getattr(self._session, "region_name", None)
        kwargs: dict[str, Any] = {"region": region or "us-east-1"}
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            kwargs.update(
                access_key=frozen.access_key,
                secret_key=frozen.secret_key,
                session_token=frozen.token,
            )
        if self._endpoint_url:
            parts = urllib.parse.urlsplit(self._endpoint_url)
            kwargs.update(
                endpoint_override=parts.netloc + parts.path.rstrip("/"), scheme=parts.scheme
            )
        return pafs.S3FileSystem(**kwargs)

    async def aclose(self) -> None:
        """Close the client if the store created it; idempotent.

        Raises
        ------
        StorageError
            Closing the client failed.
        """
        transport, self._transport = self._transport, None
        # The lock belongs to this event loop; a reopened store may run on another.
        self._open_lock = None
        if transport is not None:
            with map_s3_errors(key=None, bucket=self.bucket):
                await transport.aclose()
        else:
            await anyio.lowlevel.checkpoint()

    # -------------------------------------------------------------------- keys
    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    async def _call(
        self, op: str, key: str | None, mode: PutMode | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        transport = await self._ensure_open()
        with map_s3_errors(key=key, bucket=self.bucket, mode=mode):
            return await transport.call(op, Bucket=self.bucket, **kwargs)

    # ------------------------------------------------------------------ writes
    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        # botocore and aiohttp send bytes and bytearray as they are; only a
        # memoryview needs a copy.
        body = bytes(data) if isinstance(data, memoryview) else data
        resp = await self._call(
            "put_object", key, mode, Key=self._full(key), Body=body, **_condition(mode)
        )
        return _info(key, len(body), resp["ETag"])

    def _puts_in_threads(self) -> bool:
        # docstring inherited
        return isinstance(self._transport, ThreadTransport)

    async def _put_produced(
        self, key: str, produce: Callable[[], bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        validate_key(key)
        mode = check_mode(mode)
        transport = await self._ensure_open()
        if not isinstance(transport, ThreadTransport):
            return await super()._put_produced(key, produce, mode)
        # botocore is synchronous here: the bytes are made and sent by one
        # worker thread (one hand-off to the loop, not two).
        body, resp, exc = await transport.produce_then_put(
            produce, Bucket=self.bucket, Key=self._full(key), **_condition(mode)
        )
        if exc is not None:
            with map_s3_errors(key=key, bucket=self.bucket, mode=mode):
                raise exc
        assert resp is not None
        return _info(key, len(body), resp["ETag"])

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        filler = _PartFiller(chunks)
        first = bytearray(self.part_size)
        n = await filler.fill(first)
        if n < self.part_size or await filler.exhausted():
            # At most one part: one PutObject, conditions and all.
            del first[n:]
            return await self._put_bytes(key, first, mode)
        # Hand the buffer over in a list so that no frame of ours keeps it alive
        # after its upload: every part buffer must be freed once sent.
        holder = [first]
        del first
        return await self._multipart(key, holder, filler, mode)

    async def _multipart(
        self, key: str, holder: list[bytearray], filler: _PartFiller, mode: PutMode
    ) -> ObjectInfo:
        full = self._full(key)
        resp = await self._call("create_multipart_upload", key, Key=full)
        upload_id: str = resp["UploadId"]
        try:
            parts, total = await self._upload_parts(key, upload_id, holder, filler)
            done = await self._call(
                "complete_multipart_upload",
                key,
                mode,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **_condition(mode),
            )
        except BaseException:
            # Nothing may become visible, whatever happened (cancellation included).
            with anyio.CancelScope(shield=True):
                await self._abort(key, upload_id)
            raise
        return _info(key, total, done["ETag"])

    async def _upload_parts(
        self, key: str, upload_id: str, first: list[bytearray], filler: _PartFiller
    ) -> tuple[list[dict[str, Any]], int]:
        full = self._full(key)
        parts: list[dict[str, Any]] = []
        total = 0
        # A slot is taken *before* a part buffer is allocated and given back when
        # its upload ends, so at most max_concurrency part buffers ever exist:
        # memory is part_size * max_concurrency whatever the stream's length.
        slots = anyio.Semaphore(self.max_concurrency)

        async def upload(number: int, data: bytearray) -> None:
            try:
                r = await self._call(
                    "upload_part",
                    key,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                )
                parts.append({"ETag": r["ETag"], "PartNumber": number})
            finally:
                slots.release()

        try:
            async with anyio.create_task_group() as tg:
                await slots.acquire()
                buf = first.pop()  # now the only reference
                number = 1
                while True:
                    total += len(buf)
                    tg.start_soon(upload, number, buf)
                    del buf  # the upload task owns it now: freed as soon as it is sent
                    if await filler.exhausted():
                        break
                    number += 1
                    if number > _MAX_PARTS:
                        raise InvalidInputError(
                            f"stream needs more than {_MAX_PARTS} parts of {self.part_size} "
                            "bytes: raise part_size",
                            key=key,
                        )
                    await slots.acquire()
                    buf = bytearray(self.part_size)
                    n = await filler.fill(buf)
                    del buf[n:]
        except BaseExceptionGroup as eg:
            err = collapse_group(eg)
            if _is_leaf(err, eg):
                # Keep the leaf's own chain (e.g. the botocore error behind it).
                raise err  # noqa: B904
            raise err from eg
        parts.sort(key=lambda p: p["PartNumber"])
        return parts, total

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            await self._abort_multipart(key, upload_id)
        except AiolodeError as exc:
            # The original failure matters more; abandoned_uploads() (or a bucket
            # lifecycle rule) reaps uploads we could not abort.
            _log.warning("could not abort multipart upload %s of %r: %s", upload_id, key, exc)

    async def _abort_multipart(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload that is already gone counts as aborted."""
        # NoSuchUpload (ObjectNotFoundError): aborted, completed or reaped already.
        with contextlib.suppress(ObjectNotFoundError):
            await self._call("abort_multipart_upload", key, Key=self._full(key), UploadId=upload_id)

    # --------------------------------------------------------- pending uploads
    async def _abandoned_uploads(
        self, prefix: str, older_than: datetime
    ) -> AsyncGenerator[PendingUpload, None]:
        """Multipart uploads under the prefix initiated before ``older_than``.

        Pages through ListMultipartUploads (``page_size`` uploads a page) with
        the markers the server hands back: S3's ``NextKeyMarker`` and
        ``NextUploadIdMarker``; SeaweedFS sends only the latter, pages by it
        alone, and treats a ``KeyMarker`` as "this key only", so a marker the
        server did not send is never sent back. An upload the server lists
        without an ``Initiated`` time is skipped (logged): its age is unknown,
        and it may be in flight.
        """
        markers: dict[str, Any] = {}
        while True:
            page = await self._call(
                "list_multipart_uploads",
                prefix or None,
                Prefix=self._full_prefix(prefix),
                MaxUploads=self.page_size,
                **markers,
            )
            for upload in page.get("Uploads", ()):
                found = self._pending(upload, older_than)
                if found is not None:
                    yield found
            if not page.get("IsTruncated"):
                return
            following: dict[str, Any] = {
                name: str(page[f"Next{name}"])
                for name in ("KeyMarker", "UploadIdMarker")
                if page.get(f"Next{name}")
            }
            if not following or following == markers:
                raise StorageError(
                    f"S3 listing of multipart uploads under {prefix!r} is truncated but "
                    "names no next page",
                    key=prefix,
                )
            markers = following

    def _pending(self, upload: dict[str, Any], older_than: datetime) -> PendingUpload | None:
        key, upload_id, initiated = (
            upload.get("Key"),
            upload.get("UploadId"),
            upload.get("Initiated"),
        )
        if not isinstance(key, str) or not isinstance(upload_id, str):
            return None
        if not isinstance(initiated, datetime):
            _log.warning(
                "S3 lists multipart upload %s of %r without an Initiated time: skipped",
                upload_id,
                key,
            )
            return None
        # botocore parses the timestamp as an aware datetime; a naive one is UTC.
        when = (initiated if initiated.tzinfo else initiated.replace(tzinfo=UTC)).astimezone(UTC)
        if when >= older_than or (self.prefix and not key.startswith(f"{self.prefix}/")):
            return None
        return PendingUpload(key=self._strip(key), upload_id=upload_id, initiated=when)

    async def _abort_upload(self, upload: PendingUpload) -> None:
        # docstring inherited: AbortMultipartUpload; NoSuchUpload means done.
        await self._abort_multipart(upload.key, upload.upload_id)

    # ------------------------------------------------------------------- reads
    async def _get(self, key: str) -> bytes:
        # docstring inherited
        transport = await self._ensure_open()
        with map_s3_errors(key=key, bucket=self.bucket):
            _, data = await transport.fetch(Bucket=self.bucket, Key=self._full(key))
        return data

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        transport = await self._ensure_open()
        try:
            with map_s3_errors(key=key, bucket=self.bucket, ranged=True):
                resp, data = await transport.fetch(
                    Bucket=self.bucket,
                    Key=self._full(key),
                    Range=f"bytes={offset}-{offset + length - 1}",
                )
        except PastEnd:
            return b""
        if "ContentRange" not in resp:
            # A server that ignored Range sent the whole object.
            data = data[offset : offset + length]
        return data

    async def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        transport = await self._ensure_open()
        resp = await self._call("get_object", key, Key=self._full(key))
        body = resp["Body"]
        try:
            while True:
                with map_s3_errors(key=key, bucket=self.bucket):
                    chunk = await transport.read(body, chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            # Also runs when the consumer stops early (aclose): free the connection.
            with anyio.CancelScope(shield=True), map_s3_errors(key=key, bucket=self.bucket):
                await transport.close_body(body)

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        resp = await self._call("head_object", key, Key=self._full(key))
        return _info(key, resp["ContentLength"], resp["ETag"], resp.get("LastModified"))

    async def _delete(self, key: str) -> None:
        # docstring inherited: S3 answers 204 for a missing key too.
        await self._call("delete_object", key, Key=self._full(key))

    # ----------------------------------------------------------------- listing
    def _full_prefix(self, prefix: str) -> str:
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    async def _pages(self, prefix: str, **extra: Any) -> AsyncGenerator[dict[str, Any], None]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Prefix": self._full_prefix(prefix),
                "MaxKeys": self.page_size,
                **extra,
            }
            if token is not None:
                kwargs["ContinuationToken"] = token
            page = await self._call("list_objects_v2", prefix or None, **kwargs)
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token:
                self._bad_listing(prefix)

    def _bad_listing(self, prefix: str) -> NoReturn:
        raise StorageError(
            f"S3 listing of {prefix!r} is truncated but has no continuation token", key=prefix
        )

    async def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        async with contextlib.aclosing(self._pages(prefix)) as pages:
            async for page in pages:
                for obj in page.get("Contents", ()):
                    yield _info(
                        self._strip(obj["Key"]), obj["Size"], obj["ETag"], obj.get("LastModified")
                    )

    async def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        # docstring inherited: one delimiter listing, never every key.
        # S3 sorts CommonPrefixes by bytes ("a-b/" < "a/"); SeaweedFS sorts them
        # by directory name ("a" < "a-b"). Hold a prefix back until no later one
        # can sort before it, so both come out in byte order. A prefix "P/" is
        # safe once the incoming bare name n > "P/": later names are >= n in
        # either order. Only prefixes of the current name are ever held.
        held: list[str] = []
        async with contextlib.aclosing(self._pages(prefix, Delimiter="/")) as pages:
            async for page in pages:
                for cp in page.get("CommonPrefixes", ()):
                    p: str = cp["Prefix"]
                    bare = p[:-1] if p.endswith("/") else p
                    while held and held[0] < bare:
                        yield self._strip(heapq.heappop(held))
                    heapq.heappush(held, p)
        while held:
            yield self._strip(heapq.heappop(held))
