"""Hand-edited documents, stored the way aiolode stores its own."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._sealed import SEAL_KEY, seal
from ..errors import InvalidInputError

__all__ = ("seal_document",)


def seal_document(doc: Mapping[str, Any]) -> bytes:
    """Encode a JSON document as aiolode stores one: canonical, with its seal.

    Every document aiolode stores ends with a digest of itself (``~digest``), so
    a test that edits one (``json.loads``, change a field, store it back) to
    inject a *valid but inconsistent* document must reseal it, or readers see
    a damaged document instead of the inconsistency under test. An old seal in
    ``doc`` is dropped first.

    Raises
    ------
    InvalidInputError
        ``doc`` is not a non-empty mapping of JSON values.
    """
    if not isinstance(doc, Mapping) or not doc:
        raise InvalidInputError("seal_document() takes a non-empty mapping")
    body = {k: v for k, v in doc.items() if k != SEAL_KEY}
    try:
        data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"seal_document(): not a JSON document: {exc}") from exc
    return seal(data.encode())
