"""CI versions of the crash and race harnesses (real processes, filesystem and S3).

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
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return f"{endpoint}|{bucket}"


@pytest.mark.parametrize("kind", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_sigkill_at_random_instants(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    res = crash.run(kind, _location(kind, tmp_path, request), kills=2, seed=7, max_delay=0.5)
    assert res["violations"] == []
    assert res["acknowledged"] > 0


@pytest.mark.parametrize("kind", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_racing_processes(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    results = races.run(kind, _location(kind, tmp_path, request), procs=3, commits=3)
    for r in results:
        assert r["violations"] == []
        assert r["snapshots"] == 9
