"""pytest plugin: a SeaweedFS S3 server for the session, one bucket, a prefix per test.

Fixtures for every test module:

- ``seaweed_endpoint``: the S3 URL of ``weed mini``
  (:func:`aiolode.testing.seaweed_server.run_seaweed_server`) started once per
  session in a subprocess on 127.0.0.1 (free ports, a temp dir, stopped at the end);
- ``seaweed_bucket``: the session's one bucket. SeaweedFS gives every bucket its
  own volumes, so a bucket per test would run out of writable volumes;
- ``seaweed_prefix``: a unique key prefix for the test, inside that bucket;
- ``seaweed_admin``: a plain boto3 client for backdoors (blocking: call it through
  ``anyio.to_thread.run_sync`` in async tests).

Tests using them should be marked ``pytest.mark.seaweed``; they always run (the
server is part of the test session, not an external dependency).
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

_BUCKET = "aiolode-tests"
_prefix_ids = itertools.count()


@pytest.fixture(scope="session")
def seaweed_endpoint() -> Iterator[str]:
    """S3 endpoint URL of the session's SeaweedFS (fake credentials in the env)."""
    from aiolode.testing.seaweed_server import run_seaweed_server

    mp = pytest.MonkeyPatch()
    # The gateway runs without identities (any signature is accepted): botocore
    # resolves credentials once per process, and moto's fixture may set others
    # (a session token included) first.
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_CONFIG_FILE", os.devnull)
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    try:
        with run_seaweed_server(bucket=_BUCKET) as url:
            yield url
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def seaweed_bucket(seaweed_endpoint: str) -> str:
    """The session's one bucket (created when the server started)."""
    return _BUCKET


@pytest.fixture
def seaweed_prefix() -> str:
    """A key prefix no other test (of this process) uses."""
    return f"t{os.getpid()}-{next(_prefix_ids)}"


@pytest.fixture(scope="session")
def seaweed_admin(seaweed_endpoint: str) -> Any:
    """A plain boto3 client on the server, for backdoors (thread-safe, blocking)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=seaweed_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            max_pool_connections=16,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
