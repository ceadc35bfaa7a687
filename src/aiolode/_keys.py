"""Key and prefix validation shared by every store.

Keys are ``/``-separated relative paths. Validation happens before any I/O so
a bad key never reaches a backend (and can never escape a filesystem root).
"""

from __future__ import annotations

import re

from .errors import InvalidKeyError, InvalidRangeError

__all__ = [
    "MAX_KEY_BYTES",
    "is_valid_segment",
    "validate_key",
    "validate_prefix",
    "validate_range",
]

MAX_KEY_BYTES = 1024
"""S3's limit on key length, applied to every store so keys stay portable."""

# Control characters cannot be represented in S3's XML listings (XML 1.0), so
# they are refused everywhere rather than only failing on one backend.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")


def _check_segments(value: str, what: str, *, allow_trailing_slash: bool) -> None:
    if value.startswith("/"):
        raise InvalidKeyError(f"{what} {value!r} is absolute: keys are relative paths", key=value)
    m = _FORBIDDEN.search(value)
    if m is not None:
        raise InvalidKeyError(
            f"{what} {value!r} contains forbidden character {m.group()!r} "
            "(NUL, control characters and backslashes are not allowed)",
            key=value,
        )
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"{what} {value!r} is not valid UTF-8 text", key=value) from exc
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"{what} is {len(encoded)} bytes long; the limit is {MAX_KEY_BYTES}", key=value
        )
    segments = value.split("/")
    if allow_trailing_slash and segments and segments[-1] == "":
        segments = segments[:-1]
    for seg in segments:
        if seg == "":
            raise InvalidKeyError(f"{what} {value!r} has an empty path segment", key=value)
        if seg in (".", ".."):
            raise InvalidKeyError(f"{what} {value!r} has a {seg!r} path segment", key=value)


def is_valid_segment(name: str) -> bool:
    """Whether ``name`` can be one ``/``-free segment of a valid key.

    For stores that map keys onto names they find in the backend (directory
    entries): a name failing this check can never be (part of) a key, so
    listings skip it. No exceptions, no I/O.
    """
    if not name or name in (".", "..") or "/" in name or _FORBIDDEN.search(name):
        return False
    try:
        return len(name.encode("utf-8")) <= MAX_KEY_BYTES
    except UnicodeEncodeError:  # undecodable bytes, surrogate-escaped by the OS layer
        return False


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid store key, else raise.

    Raises
    ------
    InvalidKeyError
        Not a string; empty; absolute; an empty, ``.`` or ``..`` segment; NUL,
        control characters or backslashes; not UTF-8 encodable; over 1024 bytes.
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"a key must be a str, not {type(key).__name__}")
    if key == "":
        raise InvalidKeyError("a key must not be empty", key=key)
    _check_segments(key, "key", allow_trailing_slash=False)
    return key


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a valid listing prefix (``""`` allowed), else raise.

    A prefix is a plain string prefix of keys (as in S3): it may end inside a
    segment (``"logs/2024-"``) or with ``/``.

    Raises
    ------
    InvalidKeyError
        Same rules as keys, except that it may be empty or end with ``/``.
    """
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"a prefix must be a str, not {type(prefix).__name__}")
    if prefix == "":
        return prefix
    _check_segments(prefix, "prefix", allow_trailing_slash=True)
    return prefix


def validate_range(offset: object, length: object) -> tuple[int, int]:
    """Check an ``(offset, length)`` pair.

    Raises
    ------
    InvalidRangeError
        Either is not an int, or is negative.
    """
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise InvalidRangeError(f"offset must be an int, not {type(offset).__name__}")
    if not isinstance(length, int) or isinstance(length, bool):
        raise InvalidRangeError(f"length must be an int, not {type(length).__name__}")
    if offset < 0 or length < 0:
        raise InvalidRangeError(f"range offset={offset} length={length} is negative")
    return offset, length
