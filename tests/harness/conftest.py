"""Sizes of the CI versions of the harness (the long runs use ``python -m harness.*``)."""

from __future__ import annotations

import os

#: Hypothesis examples per fuzz property and backend; the long run sets more.
FUZZ_EXAMPLES = int(os.environ.get("AIOLODE_FUZZ_EXAMPLES", "15"))
