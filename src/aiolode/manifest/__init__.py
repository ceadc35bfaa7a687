"""Manifest models and their one converter."""

from __future__ import annotations

from ._converter import decode as decode
from ._converter import encode as encode

__all__ = ["decode", "encode"]
