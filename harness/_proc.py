"""Helpers for the multi-process parts of the harness: stores by location, moto."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import aiolode

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PY", "fake_aws_env", "open_location", "run_checker", "s3_location", "seaweed_location"]

PY = sys.executable


def open_location(kind: str, location: str) -> aiolode.Store:
    """``file`` + a directory, or ``s3``/``seaweed`` + ``endpoint|bucket[|prefix]``."""
    if kind == "file":
        return aiolode.FileStore(location)
    endpoint, bucket, *prefix = location.split("|")
    return aiolode.S3Store(bucket, *prefix, endpoint_url=endpoint, region_name="us-east-1")


def run_checker(kind: str, location: str, spec_path: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Write ``spec`` to ``spec_path`` and run ``harness._check`` on it in a fresh
    process; return its JSON result (a checker that fails is one violation)."""
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    chk = subprocess.run(
        [PY, "-m", "harness._check", kind, location, spec_path],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        result: dict[str, Any] = json.loads(chk.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"violations": [f"checker failed: {chk.stderr[-2000:]}"], "snapshots": {}}
    return result


def fake_aws_env() -> None:
    """Fake credentials for moto (inherited by child processes)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }.items():
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def s3_location(bucket: str, endpoint: str | None = None) -> Iterator[str]:
    """A bucket on ``endpoint`` (or on a serialising moto server started here)."""
    import boto3

    fake_aws_env()
    with contextlib.ExitStack() as stack:
        if endpoint is None:
            from aiolode.testing.moto_server import run_moto_server

            endpoint = stack.enter_context(run_moto_server())
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        yield f"{endpoint}|{bucket}"


@contextlib.contextmanager
def seaweed_location(bucket: str) -> Iterator[str]:
    """A bucket on a SeaweedFS server (``weed mini``) started here."""
    from aiolode.testing.seaweed_server import run_seaweed_server

    fake_aws_env()
    with run_seaweed_server(bucket=bucket) as endpoint:
        yield f"{endpoint}|{bucket}"
