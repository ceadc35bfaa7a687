"""CI versions of the crash and race harnesses (real processes; filesystem, moto, SeaweedFS).

``python -m harness.crash`` / ``python -m harness.races`` are the long runs.
The writer processes alternate between asyncio and trio, so these tests run
once, not once per backend of the test process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from harness import crash, races

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.no_blockbuster  # the test process only waits on children


def _location(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "file":
        return str(tmp_path)
    if kind == "seaweed":
        # One bucket for the session (SeaweedFS has per-bucket volumes), a prefix per test.
        endpoint = request.getfixturevalue("seaweed_endpoint")
        bucket = request.getfixturevalue("seaweed_bucket")
        return f"{endpoint}|{bucket}|{request.getfixturevalue('seaweed_prefix')}"
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return f"{endpoint}|{bucket}"


KINDS = [
    "file",
    pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("seaweed", marks=pytest.mark.seaweed),
]


@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_at_random_instants(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    res = crash.run(kind, _location(kind, tmp_path, request), kills=2, seed=7, max_delay=0.5)
    assert res["violations"] == []
    assert res["acknowledged"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_racing_processes(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    results = races.run(kind, _location(kind, tmp_path, request), procs=3, commits=3)
    for r in results:
        assert r["violations"] == []
        assert r["snapshots"] == 9
