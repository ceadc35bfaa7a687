"""Text for error messages (the bottom of the bottom layer: imports nothing)."""

from __future__ import annotations

__all__ = ("safe_repr",)


def safe_repr(value: object, limit: int = 200) -> str:
    """``repr(value)`` for error messages: shortened, and never raising (a hostile
    ``__repr__`` must not replace the error being reported)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    text = text.encode("utf-8", "backslashreplace").decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."
