"""Rebuilding components (codecs, compressors) from options read off a manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ManifestFormatError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["build_from_options"]

T = TypeVar("T")


def build_from_options(
    factory: Callable[..., T],
    options: Mapping[str, Any],
    names: frozenset[str],
    *,
    what: str,
    field: str,
) -> T:
    """Call ``factory`` with the known ``names`` of ``options``; unknown ones are
    ignored so a newer writer's extra options do not make a file unreadable.

    Raises
    ------
    ManifestFormatError
        An option has an invalid value (``.field`` is ``field``).
    """
    known = {k: v for k, v in options.items() if k in names}
    try:
        return factory(**known)
    except (TypeError, ValueError) as exc:
        raise ManifestFormatError(
            f"invalid options for {what}: {dict(options)!r} ({exc})", field=field
        ) from exc
