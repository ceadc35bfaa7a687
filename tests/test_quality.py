"""Static checks run as part of the suite, so CI enforces them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (it is in the 'test' extra)")
    return found


def _run(*args: str) -> None:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"


TARGETS = ["src", "tests", "examples", "benchmarks", "harness", "noxfile.py", "hatch_build.py"]


def test_ruff_check() -> None:
    _run(_tool("ruff"), "check", *TARGETS)


def test_ruff_format() -> None:
    _run(_tool("ruff"), "format", "--check", *TARGETS)


def test_mypy_strict() -> None:
    _run(_tool("mypy"))
