"""Every public module exports exactly what it defines, through a tuple ``__all__``.

As anyio's ``tests/test_all_attributes.py``, in both directions and module by
module (not only packages): a name in ``__all__`` that does not exist fails,
and so does a public function or class *defined* in the module (for a package:
in one of its submodules) that the module holds and ``__all__`` leaves out. Names a module
merely imports for its own use are not its exports. Modules with a ``._``
component are private and skipped.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import aiolode

PUBLIC_MODULES = sorted(
    {"aiolode"}
    | {m.name for m in pkgutil.walk_packages(aiolode.__path__, "aiolode.") if "._" not in m.name}
)

#: Modules whose ``__all__`` does not pass yet (owned elsewhere), with why; each
#: one is an ``xfail(strict=False)`` until fixed.
KNOWN_FAILURES: dict[str, str] = {}


def _defined_here(mod: ModuleType) -> set[str]:
    """Public functions and classes whose home is ``mod`` (or, for a package, one
    of its submodules: a package's ``__init__`` holds re-exports only)."""
    name = mod.__name__
    is_pkg = hasattr(mod, "__path__")
    out: set[str] = set()
    for attr, value in vars(mod).items():
        if attr.startswith("_") or not (inspect.isfunction(value) or inspect.isclass(value)):
            continue
        home = getattr(value, "__module__", None) or ""
        if home == name or (is_pkg and home.startswith(f"{name}.")):
            out.add(attr)
    return out


def _problems(mod: ModuleType) -> list[str]:
    exported = getattr(mod, "__all__", None)
    if exported is None:
        return ["no __all__"]
    out: list[str] = []
    if not isinstance(exported, tuple):
        out.append(f"__all__ is a {type(exported).__name__}, not a tuple")
    if len(exported) != len(set(exported)):
        out.append("__all__ has duplicates")
    if missing := sorted(n for n in exported if not hasattr(mod, n)):
        out.append(f"in __all__ but not defined: {', '.join(missing)}")
    if unlisted := sorted(_defined_here(mod) - set(exported)):
        out.append(f"defined but not in __all__: {', '.join(unlisted)}")
    return out


def _param(name: str) -> object:
    why = KNOWN_FAILURES.get(name)
    if why is None:
        return name
    return pytest.param(name, marks=pytest.mark.xfail(strict=False, reason=why))


@pytest.mark.parametrize("name", [_param(n) for n in PUBLIC_MODULES])
def test_all_is_a_tuple_of_what_the_module_defines(name: str) -> None:
    mod = importlib.import_module(name)
    assert _problems(mod) == [], f"{name}: {'; '.join(_problems(mod))}"


def test_known_failures_are_public_modules() -> None:
    # A renamed or removed module must leave the list, or its xfail hides nothing.
    assert set(KNOWN_FAILURES) <= set(PUBLIC_MODULES)


def test_the_checker_fails_both_ways() -> None:
    mod = ModuleType("fake")

    def helper() -> None: ...

    class Thing: ...

    helper.__module__ = Thing.__module__ = "fake"
    mod.helper, mod.Thing = helper, Thing  # type: ignore[attr-defined]
    mod.imported = inspect.isclass  # type: ignore[attr-defined]  # defined elsewhere: not required
    mod.__all__ = ["Thing", "Ghost"]  # type: ignore[attr-defined]
    assert _problems(mod) == [
        "__all__ is a list, not a tuple",
        "in __all__ but not defined: Ghost",
        "defined but not in __all__: helper",
    ]
    mod.__all__ = ("Thing", "helper")  # type: ignore[attr-defined]
    assert _problems(mod) == []
    del mod.__all__  # type: ignore[attr-defined]
    assert _problems(mod) == ["no __all__"]


def test_py_typed_shipped() -> None:
    from importlib.resources import files

    assert files("aiolode").joinpath("py.typed").is_file()
