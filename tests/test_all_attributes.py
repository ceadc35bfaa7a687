"""Every public package re-exports exactly what its ``__all__`` lists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import aiolode

PACKAGES = sorted(
    {"aiolode"}
    | {
        m.name
        for m in pkgutil.walk_packages(aiolode.__path__, "aiolode.")
        if m.ispkg and not m.name.rsplit(".", 1)[-1].startswith("_")
    }
)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete_and_importable(name: str) -> None:
    mod = importlib.import_module(name)
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
    for attr in exported:
        assert hasattr(mod, attr), f"{name}.__all__ lists missing {attr}"
    public = {
        k
        for k, v in vars(mod).items()
        if not k.startswith("_")
        and not isinstance(v, type(importlib))  # submodules
        and k not in {"annotations", "TYPE_CHECKING"}
    }
    assert public <= set(exported) | {"annotations"}, (
        f"{name}: not in __all__: {public - set(exported)}"
    )


def test_py_typed_shipped() -> None:
    from importlib.resources import files

    assert files("aiolode").joinpath("py.typed").is_file()
