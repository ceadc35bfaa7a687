"""``benchmarks/bench_compact.py --quick`` runs to completion, so the script
cannot rot between the full runs that regenerate ``docs/benchmarks.md``.

The script checks what it measures as it goes (the compaction keeps every row
and the sum of the ids, leaves one file per day, and reports the rows it
rewrote), so a passing run means the figures came from correct behaviour.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "bench_compact.py"

HEADINGS = (
    "## Compaction",
    "### local filesystem (FileStore)",
    "### S3 (moto server, serialising)",
    "| aiolode `ds.compact()` |",
    "| deltalake `optimize.compact()` |",
    "- Store calls of the compaction:",
    "### Round-trip bound: 20 ms per store call",
)


def test_bench_compact_quick_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"bench_compact.py failed:\n{proc.stdout}\n{proc.stderr}"
    missing = [h for h in HEADINGS if h not in proc.stdout]
    assert not missing, f"bench_compact.py did not print {missing}:\n{proc.stdout}"
