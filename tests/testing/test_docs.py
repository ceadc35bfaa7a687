"""The complete scripts in docs/testing.md run, on asyncio and trio."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
SCRIPTS = [b for b in BLOCKS if b.rstrip().endswith("anyio.run(main)")]


def test_the_guide_has_scripts() -> None:
    assert len(SCRIPTS) >= 4


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.split("\n", 1)[0][:40])
async def test_doc_script_runs(script: str) -> None:
    # Run main() on the test's backend instead of the script's own anyio.run.
    body = script.rstrip()[: -len("anyio.run(main)")]
    namespace: dict[str, Any] = {"__name__": "doc_snippet"}
    exec(compile(body, f"<docs/testing.md snippet {SCRIPTS.index(script) + 1}>", "exec"), namespace)
    await namespace["main"]()
