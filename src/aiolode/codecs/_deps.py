"""Optional dependencies: one error, naming the package and the extra, on every path."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["require", "require_pyarrow"]

#: package -> the extra that installs it.
_EXTRAS = {"pyarrow": "parquet", "zstandard": "zstd"}


def require(module: str, *, package: str | None = None, why: str = "this feature") -> ModuleType:
    """Import ``module`` or raise :class:`~aiolode.errors.MissingDependencyError`.

    Raises
    ------
    MissingDependencyError
        The module cannot be imported (``.package``, ``.extra`` say what to install).
    """
    pkg = package or module.split(".", 1)[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(pkg)
        hint = f"pip install 'aiolode[{extra}]'" if extra else f"pip install {pkg}"
        raise MissingDependencyError(
            f"{why} needs the {pkg!r} package: {hint}", package=pkg, extra=extra
        ) from exc


def require_pyarrow(why: str = "Arrow data") -> ModuleType:
    """Import pyarrow (and its compute, dataset and parquet modules' parent).

    Raises
    ------
    MissingDependencyError
        pyarrow is not installed (``.extra == "parquet"``).
    """
    return require("pyarrow", why=why)
