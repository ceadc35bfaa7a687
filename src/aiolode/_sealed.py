"""Sealed documents: every JSON document aiolode stores carries a digest of itself.

A manifest, commit record, checkpoint, partition manifest, volume root or
pointer is canonical JSON (sorted keys, compact). :func:`seal` appends one
last member, ``"~digest":"xxh3_64:<16 hex>"``, the XXH3-64 of the document
without it (``~`` sorts after every other key, so the result is still
canonical). :func:`verdict` checks it, byte for byte, without re-serialising:
a bit flipped anywhere in a stored document — one that still parses, with a
plausible value — is detected, whether or not the dataset checksums its data.
Documents written before seals existed (or by hand) have none and are read as
they are; their fields are still validated, and they may hold only the members
their format version defines: a bit flip in the seal's own name (``~digust``)
leaves a document with no seal to check, and the decoder refuses it for that
unknown member (``manifest/_converter.py``).
"""

from __future__ import annotations

import re

import xxhash

__all__ = ("SEAL_KEY", "digest_of", "seal", "verdict")

#: The member a sealed document ends with.
SEAL_KEY = "~digest"
_PREFIX = b',"~digest":"xxh3_64:'
_TAIL = re.compile(rb',"~digest":"xxh3_64:([0-9a-f]{16})"\}[ \t\r\n]*')


def _digest(body: bytes) -> bytes:
    return xxhash.xxh3_64_hexdigest(body).encode()


def digest_of(body: bytes) -> str:
    """The seal's value for the canonical document ``body`` (without a seal)."""
    return "xxh3_64:" + _digest(body).decode()


def seal(body: bytes) -> bytes:
    """``body`` (a canonical JSON object with at least one member) sealed."""
    if not body.endswith(b"}") or body == b"{}":
        raise ValueError("seal() takes a non-empty JSON object")
    return body[:-1] + _PREFIX + _digest(body) + b'"}'


def verdict(raw: bytes) -> bool | None:
    """``None``: no seal at the end of ``raw``; ``True``: the seal matches what it
    seals; ``False``: it does not (the document was damaged)."""
    at = raw.rfind(_PREFIX)
    if at < 0:
        return None
    m = _TAIL.fullmatch(raw, at)
    if m is None:
        return None
    return _digest(raw[:at] + b"}") == m.group(1)
