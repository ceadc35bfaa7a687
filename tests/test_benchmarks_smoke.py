"""Benchmark scripts run to completion at their smallest sizes (``--quick``), so
they cannot rot between the full runs that regenerate ``docs/benchmarks.md``.

The scripts assert their own results as they go (the files a view returns, what
gc deletes against its dry run, the snapshots left after expiry), so a passing
run means the figures were measured on correct behaviour, not just printed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"

#: Script name -> headings its quick run must print.
SMOKED = {
    "bench_arrow_inputs.py": ("## Arrow-native inputs", "| polars.DataFrame |"),
    "bench_volume.py": ("read_at", "committed blocks"),
    "bench_lifecycle.py": (
        "## Lifecycle",
        "### Cold reads vs history length",
        "### What a checkpoint costs at that length",
        "### A writer at that length",
        "### Garbage collection, 1% of the data files garbage",
        "### Expiry on the history, then gc",
    ),
}


@pytest.mark.parametrize("script", sorted(SMOKED))
def test_benchmark_quick_run(script: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    missing = [h for h in SMOKED[script] if h not in proc.stdout]
    assert not missing, f"{script} did not print {missing}:\n{proc.stdout}"
    assert "FAILED" not in proc.stdout
