"""A local S3 endpoint for tests: moto's server in a subprocess, one request at a time.

:func:`run_moto_server` starts ``python -m aiolode.testing.moto_server`` on
``127.0.0.1`` with a free port, waits until it answers, yields the endpoint URL
and terminates the process on exit. Because it is a separate process, the memory
of the objects it stores never counts against the process under test.

Two deliberate differences from plain ``moto_server``:

- **Requests are serialised.** moto's threaded server checks a condition
  (``If-None-Match: *``, ``If-Match``) and then writes without a lock, so under
  concurrent requests 2-4 creators can "win" a create-only race. Race tests must
  prove *our* logic, not moto's luck, so a WSGI middleware holds one global lock
  for the whole request, response body included. werkzeug's threaded server still
  accepts many keep-alive connections; only the application step is serialised.
- **``If-Match`` on CompleteMultipartUpload is enforced.** moto (checked with
  5.2.x) honours ``If-None-Match: *`` on CompleteMultipartUpload but silently
  ignores ``If-Match`` there, while real S3 honours both. The middleware checks
  the etag itself (under the same lock, so atomically) and answers like S3: 412
  ``PreconditionFailed`` on a mismatch, 404 ``NoSuchKey`` when the object is
  missing. Only path-style requests (``/bucket/key``) are checked, which is what
  botocore sends to an IP endpoint.
- **ListMultipartUploads answers like S3.** moto (5.2.x) reports every upload as
  initiated at the fixed time 2010-11-10T20:48:33Z, ignores ``max-uploads``,
  ``key-marker`` and ``upload-id-marker`` (one unsorted page, always), so no
  age cutoff and no paging could be tested on it. The server stamps each upload
  with its real creation time, and the middleware answers the listing itself
  from moto's own upload table: sorted by key then initiation time, at most
  ``max-uploads`` a page, with ``NextKeyMarker`` / ``NextUploadIdMarker``.
  Listings with a ``delimiter`` (which aiolode never sends) are left to moto.
- **A part or completion of an aborted upload is** ``NoSuchUpload``. moto looks
  the upload id up without a check there and answers 500 (which botocore then
  retries); S3 answers 404 ``NoSuchUpload``, the answer a writer gets when its
  upload was reaped under it.

This module is test tooling: it imports moto and werkzeug, which are not
runtime dependencies of aiolode.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = (
    "SerializingMiddleware",
    "run_moto_server",
    "serve",
)

_READY = "AIOLODE-MOTO-READY "


class SerializingMiddleware:
    """WSGI middleware running one request at a time through ``app``.

    The response body is consumed inside the lock so that streaming responses
    cannot interleave with a concurrent write.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()
        _stamp_multipart_uploads()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            refused = _check_upload_exists(environ, start_response)
            if refused is not None:
                return refused
            refused = _check_complete_if_match(environ, start_response)
            if refused is not None:
                return refused
            listed = _list_multipart_uploads(environ, start_response)
            if listed is not None:
                return listed
            result = self._app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def _s3_error(start_response: Callable[..., Any], status: str, code: str, msg: str) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{msg}</Message></Error>"
    ).encode()
    start_response(
        status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _check_upload_exists(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes] | None:
    """Answer UploadPart / CompleteMultipartUpload of an unknown upload id with 404."""
    if environ.get("REQUEST_METHOD") not in ("PUT", "POST"):
        return None
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    upload_id = query.get("uploadId", [""])[0]
    if not upload_id:
        return None
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    bucket_name, _, key = path.lstrip("/").partition("/")
    if not bucket_name or not key:
        return None
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    try:
        bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(bucket_name)
    except Exception:
        return None  # moto answers NoSuchBucket itself
    if upload_id in bucket.multiparts:
        return None
    return _s3_error(
        start_response,
        "404 Not Found",
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the "
        "upload may have been aborted or completed.",
    )


def _check_complete_if_match(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes] | None:
    """Enforce ``If-Match`` on CompleteMultipartUpload (moto ignores it there)."""
    if_match = environ.get("HTTP_IF_MATCH")
    if not if_match or environ.get("REQUEST_METHOD") != "POST":
        return None
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "uploadId" not in query:
        return None
    # WSGI hands PATH_INFO over as latin-1-decoded bytes.
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        return None
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    obj = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key)
    if obj is None:
        return _s3_error(
            start_response, "404 Not Found", "NoSuchKey", "The specified key does not exist."
        )
    if if_match.replace('"', "") != obj.etag.replace('"', ""):
        return _s3_error(
            start_response,
            "412 Precondition Failed",
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
    return None


_INITIATED = "_aiolode_initiated"


def _stamp_multipart_uploads() -> None:
    """Make moto record when each multipart upload starts (idempotent)."""
    from moto.s3.models import FakeMultipart

    if getattr(FakeMultipart, _INITIATED, False):
        return
    original = FakeMultipart.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        setattr(self, _INITIATED, datetime.now(UTC))

    FakeMultipart.__init__ = init  # type: ignore[method-assign]
    setattr(FakeMultipart, _INITIATED, True)


def _list_multipart_uploads(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes] | None:
    """Answer ``GET /bucket?uploads`` as S3 does (moto pages and dates it wrongly)."""
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "uploads" not in query or "delimiter" in query:
        return None
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    bucket_name, _, rest = path.lstrip("/").partition("/")
    if not bucket_name or rest:
        return None
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    try:
        bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(bucket_name)
    except Exception:
        return None  # moto answers NoSuchBucket itself

    def arg(name: str) -> str:
        return str(query.get(name, [""])[0])

    prefix, key_marker, id_marker = arg("prefix"), arg("key-marker"), arg("upload-id-marker")
    try:
        max_uploads = min(1000, int(arg("max-uploads") or 1000))
    except ValueError:
        return _s3_error(start_response, "400 Bad Request", "InvalidArgument", "max-uploads")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    uploads = sorted(
        (
            (u.key_name, getattr(u, _INITIATED, epoch), u.id)
            for u in bucket.multiparts.values()
            if u.key_name.startswith(prefix)
        ),
        key=lambda u: (u[0].encode("utf-8"), u[1], u[2]),
    )
    if key_marker:
        marked = next((u for u in uploads if u[0] == key_marker and u[2] == id_marker), None)

        def after(u: tuple[str, datetime, str]) -> bool:
            if u[0] != key_marker:
                return u[0].encode("utf-8") > key_marker.encode("utf-8")
            if not id_marker:
                return False
            if marked is not None:
                return (u[1], u[2]) > (marked[1], marked[2])
            return u[2] > id_marker

        uploads = [u for u in uploads if after(u)]
    page, truncated = uploads[:max_uploads], len(uploads) > max_uploads
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
        f"<Bucket>{escape(bucket_name)}</Bucket>",
        f"<KeyMarker>{escape(key_marker)}</KeyMarker>",
        f"<UploadIdMarker>{escape(id_marker)}</UploadIdMarker>",
    ]
    if truncated:
        parts.append(f"<NextKeyMarker>{escape(page[-1][0])}</NextKeyMarker>")
        parts.append(f"<NextUploadIdMarker>{escape(page[-1][2])}</NextUploadIdMarker>")
    parts.append(f"<Prefix>{escape(prefix)}</Prefix>")
    parts.append(f"<MaxUploads>{max_uploads}</MaxUploads>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    for key, initiated, upload_id in page:
        stamp = f"{initiated:%Y-%m-%dT%H:%M:%S}.{initiated.microsecond // 1000:03d}Z"
        parts.append(
            f"<Upload><Key>{escape(key)}</Key><UploadId>{escape(upload_id)}</UploadId>"
            f"<StorageClass>STANDARD</StorageClass><Initiated>{stamp}</Initiated></Upload>"
        )
    parts.append("</ListMultipartUploadsResult>")
    body = "".join(parts).encode("utf-8")
    start_response(
        "200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]


def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve moto's S3 (and every other moto service) until killed; blocking.

    Prints ``AIOLODE-MOTO-READY http://host:port`` on stdout once listening.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = SerializingMiddleware(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    bound_port = server.server_address[1]
    print(f"{_READY}http://{host}:{bound_port}", flush=True)
    server.serve_forever()


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def run_moto_server(*, timeout: float = 60.0) -> Iterator[str]:
    """Run the serialising moto server in a subprocess; yield its endpoint URL.

    Blocking (a synchronous context manager): use it from a session fixture or a
    script, not from inside an event loop.

    Parameters
    ----------
    timeout
        Seconds to wait for the server to start.

    Raises
    ------
    RuntimeError
        The server did not start.
    """
    env = dict(os.environ)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiolode.testing.moto_server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        url: str | None = None
        assert proc.stdout is not None
        # The child prints the bound port first; port 0 means no free-port race.
        for line in proc.stdout:
            if line.startswith(_READY):
                url = line[len(_READY) :].strip()
                break
        if url is None:
            raise RuntimeError(f"moto server did not start (exit code {proc.wait()})")
        _wait_ready(url, proc, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    serve()
