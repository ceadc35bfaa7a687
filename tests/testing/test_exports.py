"""Each name in aiolode.testing has one import path, and every public module says
what it exports with a tuple ``__all__``."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections import Counter

import pytest

import aiolode.testing

PUBLIC = [
    "aiolode.testing",
    *(
        f"aiolode.testing.{m.name}"
        for m in pkgutil.iter_modules(aiolode.testing.__path__)
        if not m.name.startswith("_")
    ),
]


def test_the_public_modules_are_the_documented_ones() -> None:
    assert sorted(PUBLIC) == [
        "aiolode.testing",
        "aiolode.testing.gcs_server",
        "aiolode.testing.history_suite",
        "aiolode.testing.moto_server",
        "aiolode.testing.seaweed_server",
        "aiolode.testing.store_suite",
        "aiolode.testing.strategies",
    ]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_module_has_a_tuple_all(name: str) -> None:
    mod = importlib.import_module(name)
    exported = mod.__dict__.get("__all__")
    assert isinstance(exported, tuple), f"{name}.__all__ must be a tuple, not {exported!r}"
    assert exported, name
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ lists missing names {missing}"


def test_no_name_is_exported_twice() -> None:
    counts = Counter(n for name in PUBLIC for n in importlib.import_module(name).__all__)
    twice = sorted(n for n, c in counts.items() if c > 1)
    assert not twice, f"exported by more than one public module: {twice}"


def test_the_package_reexports_private_modules_only() -> None:
    for name in aiolode.testing.__all__:
        obj = getattr(aiolode.testing, name)
        home = getattr(obj, "__module__", None)
        if home is None or not isinstance(obj, type):
            continue  # constants and aliases carry no module of their own
        assert home.startswith("aiolode.testing._"), f"{name} lives in public {home}"


def test_old_faults_module_is_gone() -> None:
    # Rule and friends were importable from aiolode.testing.faults as well.
    assert importlib.util.find_spec("aiolode.testing.faults") is None
    from aiolode.testing import FaultInjectingStore, Rule

    assert FaultInjectingStore.__module__ == Rule.__module__ == "aiolode.testing._faults"
