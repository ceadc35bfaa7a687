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
from typing import TYPE_CHECKING, Any

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

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            refused = _check_complete_if_match(environ, start_response)
            if refused is not None:
                return refused
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
