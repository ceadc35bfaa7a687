"""pytest plugin: a fake-gcs-server for the session and a fresh bucket per test.

Fixtures for every test module:

- ``gcs_endpoint``: the URL of fake-gcs-server
  (:func:`aiolode.testing.gcs_server.run_fake_gcs_server`) started once per
  session in a subprocess on 127.0.0.1;
- ``gcs_bucket``: a freshly created, uniquely named, empty bucket.

Tests using them should be marked ``pytest.mark.gcs``; they always run (the
server is part of the test session, not an external dependency).
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

_bucket_ids = itertools.count()


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """Base URL of the session's fake-gcs-server (use it with ``anonymous=True``)."""
    from aiolode.testing.gcs_server import run_fake_gcs_server

    mp = pytest.MonkeyPatch()
    # Should a test ever look for default credentials, google-auth must not probe
    # the GCE metadata server (an address off this machine).
    mp.setenv("NO_GCE_CHECK", "True")
    try:
        with run_fake_gcs_server() as url:
            yield url
    finally:
        mp.undo()


@pytest.fixture
def gcs_bucket(gcs_endpoint: str) -> str:
    """A fresh empty bucket with a unique name (created before the test runs)."""
    from aiolode.testing.gcs_server import create_bucket

    name = f"test-{os.getpid()}-{next(_bucket_ids)}"
    create_bucket(gcs_endpoint, name)
    return name
