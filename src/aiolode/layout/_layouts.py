"""The built-in layouts: default (unpartitioned), hive (``key=value/``) and flat."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from .._validate import safe_repr
from ..errors import InvalidInputError
from ._base import _ALNUM, Layout, check_path, check_values, decode_value, encode_value

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DefaultLayout", "FlatLayout", "HiveLayout"]

# RFC 3986 unreserved characters: what pyarrow's hive partitioning
# (segment_encoding="uri") and most engines leave alone. "=" and "/" are not in
# it, so a value can neither split the key from the value nor add a segment.
_HIVE_SAFE = frozenset(_ALNUM | {"-", "_", ".", "~"})


@final
class DefaultLayout(Layout):
    """Unpartitioned datasets under ``datasets/<id>/``.

    Keys: commit log ``datasets/<id>/_log/<seq>.json``, data files
    ``datasets/<id>/data/<uuid><ext>``. Datasets can be enumerated by listing
    ``datasets/``.
    """

    name = "default"

    def __init__(self) -> None:
        self.partition_keys: tuple[str, ...] = ()

    def partition_path(self, values: Mapping[str, str]) -> str:
        # docstring inherited
        check_values(values)
        if values:
            raise InvalidInputError("DefaultLayout is not partitioned")
        return ""

    def parse_partition_path(self, path: str) -> dict[str, str]:
        # docstring inherited
        check_path(path)
        if path:
            raise InvalidInputError(f"DefaultLayout has no partition paths, got {safe_repr(path)}")
        return {}


@final
class HiveLayout(Layout):
    """Hive-style partitions: ``datasets/<id>/data/k1=v1/k2=v2/<uuid><ext>``.

    Values are percent-encoded outside the RFC 3986 unreserved set
    (``A-Z a-z 0-9 - _ . ~``, UTF-8, uppercase hex), which pyarrow, DuckDB and
    Spark decode; an empty value gives ``k=``. Non-str values are stringified
    by :func:`~aiolode.layout.stringify_partition_value`.

    Parameters
    ----------
    *keys
        Partition field names (identifiers), in path order; at least one.

    Raises
    ------
    InvalidInputError
        No keys, a duplicate, or a name that is not an identifier.
    """

    name = "hive"

    def __init__(self, *keys: str) -> None:
        from ._base import _KEY_NAME_RE

        if not keys:
            raise InvalidInputError("HiveLayout needs at least one partition key")
        for k in keys:
            if not isinstance(k, str) or _KEY_NAME_RE.fullmatch(k) is None:
                raise InvalidInputError(f"partition key {safe_repr(k)} must be an identifier")
        if len(set(keys)) != len(keys):
            raise InvalidInputError(f"duplicate partition keys in {keys!r}")
        self.partition_keys: tuple[str, ...] = tuple(keys)

    def partition_path(self, values: Mapping[str, str]) -> str:
        # docstring inherited
        check_values(values)
        parts = []
        for k in self.partition_keys:
            if k not in values:
                raise InvalidInputError(f"missing partition value for {k!r}")
            parts.append(f"{k}={encode_value(values[k], _HIVE_SAFE)}/")
        return "".join(parts)

    def parse_partition_path(self, path: str) -> dict[str, str]:
        # docstring inherited
        check_path(path)
        segs = path.split("/")
        if segs and segs[-1] == "":
            segs.pop()
        if len(segs) != len(self.partition_keys):
            raise InvalidInputError(f"{path!r} is not a {len(self.partition_keys)}-level path")
        out: dict[str, str] = {}
        for k, seg in zip(self.partition_keys, segs, strict=True):
            name, eq, val = seg.partition("=")
            if not eq or name != k:
                raise InvalidInputError(f"segment {seg!r} of {path!r} is not {k}=<value>")
            out[k] = decode_value(val)
        return out


@final
class FlatLayout(Layout):
    """Everything of a dataset under ``<id>/`` at the store root; no enumeration.

    Useful when a store (or a prefix of it) holds one dataset, or when the
    caller tracks ids itself. :attr:`models_datasets` is ``False``: a
    :class:`~aiolode.DatasetReader` cannot list datasets under it.
    """

    name = "flat"
    models_datasets = False

    def __init__(self) -> None:
        self.partition_keys: tuple[str, ...] = ()

    def datasets_prefix(self) -> str:
        # docstring inherited
        return ""

    def partition_path(self, values: Mapping[str, str]) -> str:
        # docstring inherited
        check_values(values)
        if values:
            raise InvalidInputError("FlatLayout is not partitioned")
        return ""

    def parse_partition_path(self, path: str) -> dict[str, str]:
        # docstring inherited
        check_path(path)
        if path:
            raise InvalidInputError(f"FlatLayout has no partition paths, got {safe_repr(path)}")
        return {}


def layout_from_description(desc: Mapping[str, object]) -> Layout:
    """Rebuild a layout from what a manifest recorded (:meth:`Layout.describe`).

    Raises
    ------
    InvalidInputError
        Unknown layout description.
    """
    from ._base import TemplateLayout

    name = desc.get("name")
    keys = desc.get("partition_keys") or []
    if name == "default":
        return DefaultLayout()
    if name == "flat":
        return FlatLayout()
    if name == "hive" and isinstance(keys, list):
        return HiveLayout(*[str(k) for k in keys])
    template = desc.get("template")
    if isinstance(template, str) and isinstance(name, str):
        return TemplateLayout(template, name=name)
    raise InvalidInputError(f"unknown layout {desc!r}")
