"""pytest plugin: a moto S3 server for the session and a fresh bucket per test.

Fixtures for every test module:

- ``s3_endpoint``: the URL of a serialising moto server
  (:func:`aiolode.testing.moto_server.run_moto_server`) started once per session
  in a subprocess on 127.0.0.1 with a free port;
- ``s3_bucket``: a freshly created, uniquely named, empty bucket;
- ``s3_store``: an opened :class:`aiolode.S3Store` on that bucket.

Tests using them should be marked ``pytest.mark.s3``; they always run (the
server is part of the test session, not an external dependency).
"""

from __future__ import annotations

import itertools
import os
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from aiolode import S3Store


def slow_down(operation: str) -> Exception:
    """The ``ClientError`` an overloaded S3 answers ``operation`` with (503 SlowDown)."""
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": "SlowDown", "Message": "Reduce your request rate."},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        },
        operation,
    )


_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_bucket_ids = itertools.count()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of the session's moto S3 server (fake credentials in the env)."""
    from aiolode.testing.moto_server import run_moto_server

    mp = pytest.MonkeyPatch()
    for name, value in _FAKE_ENV.items():
        mp.setenv(name, value)
    # Never let a developer's ~/.aws config leak into (or slow down) the tests.
    mp.setenv("AWS_CONFIG_FILE", os.devnull)
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    try:
        with run_moto_server() as url:
            yield url
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> Any:
    """A plain boto3 client on the server, for setup and backdoors (thread-safe).

    Blocking: call it through ``anyio.to_thread.run_sync`` from async tests.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        config=Config(
            max_pool_connections=16,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@pytest.fixture
def s3_bucket(s3_endpoint: str, s3_admin: Any) -> Iterator[str]:
    """A fresh empty bucket with a unique name (created before the test runs).

    moto is reset afterwards, so objects never pile up in the server's memory.
    """
    name = f"test-{os.getpid()}-{next(_bucket_ids)}"
    s3_admin.create_bucket(Bucket=name)
    yield name
    req = urllib.request.Request(f"{s3_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=30):
        pass


@pytest.fixture
async def s3_store(s3_endpoint: str, s3_bucket: str) -> AsyncIterator[S3Store]:
    """An opened :class:`aiolode.S3Store` on the fresh bucket."""
    from aiolode import S3Store

    async with S3Store(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1") as store:
        yield store
