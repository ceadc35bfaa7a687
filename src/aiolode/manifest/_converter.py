"""The one converter between manifest models and JSON bytes.

Every persisted document is a JSON object whose first two fields are
``schema_name`` and ``format_version``. Decoding reads those first, then
dispatches to the hooks registered for that exact (name, version); older
versions are upgraded by migration functions registered alongside. Structuring
is strict: a string where an int belongs is an error, not a coercion.

Model modules call :func:`register` at import time; nothing else in aiolode
serialises manifests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from .._sealed import SEAL_KEY, digest_of, seal, verdict
from ..errors import InvalidInputError, ManifestFormatError, UnsupportedFormatVersionError
from ._metadata import Metadata, decode_metadata, encode_metadata

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["converter", "decode", "encode", "register", "register_migration"]

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=False)


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    return value


def _structure_dt(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 timestamp string, got {value!r}")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no timezone")
    return dt.astimezone(UTC)


def _unstructure_dt(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not persisted; use timezone-aware UTC")
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook(float, _strict_float)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook(datetime, _structure_dt)
converter.register_unstructure_hook(datetime, _unstructure_dt)
# Caller metadata: tagged JSON (see _metadata), decoded into the frozen form.
converter.register_structure_hook(Metadata, lambda v, _: decode_metadata(v))
converter.register_unstructure_hook(Metadata, encode_metadata)

_BY_VERSION: dict[tuple[str, int], type[Any]] = {}
_CURRENT: dict[type[Any], tuple[str, int]] = {}
_LATEST: dict[str, int] = {}
_MIGRATIONS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def register(schema_name: str, format_version: int, cls: type[Any]) -> None:
    """Declare that ``cls`` is the model of ``schema_name`` at ``format_version``.

    The highest registered version of a schema is what :func:`encode` writes.
    """
    _BY_VERSION[(schema_name, format_version)] = cls
    if format_version >= _LATEST.get(schema_name, 0):
        _LATEST[schema_name] = format_version
        _CURRENT[cls] = (schema_name, format_version)


def register_migration(
    schema_name: str, from_version: int, fn: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Register ``fn`` upgrading a raw ``from_version`` document to ``from_version + 1``."""
    _MIGRATIONS[(schema_name, from_version)] = fn


def encode(obj: Any) -> bytes:
    """Serialise a registered model to canonical JSON bytes (sorted keys, UTF-8).

    Raises
    ------
    TypeError
        ``obj`` is not a registered manifest model (a programming error).
    """
    try:
        schema_name, version = _CURRENT[type(obj)]
    except KeyError:
        raise TypeError(f"{type(obj).__name__} is not a registered manifest model") from None
    body = converter.unstructure(obj)
    doc = {"schema_name": schema_name, "format_version": version, **body}
    return seal(_canonical(doc))


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _field_of(exc: BaseException) -> str | None:
    try:
        msgs = cattrs.transform_error(exc)
    except Exception:  # pragma: no cover - transform_error is best effort
        return None
    if not msgs:
        return None
    # "invalid value for type, expected int @ $.files[0].size" -> "files[0].size"
    first = msgs[0]
    _, _, path = first.partition(" @ ")
    return path.removeprefix("$.").removeprefix("$") or None


_FIELDS: dict[type[Any], frozenset[str]] = {}


def _check_unsealed(body: dict[str, Any], target: type[Any], key: str | None) -> None:
    """An unsealed document may hold only the members its version defines.

    Documents without a seal were written by an aiolode older than seals, whose
    members are all known here. Any other member means the document *was*
    sealed and its seal's own name was damaged (``"~digest"`` with a bit
    flipped): without this check, the damage would turn it into an unsealed
    document and go unseen. Sealed documents may carry members this version
    does not know (their seal vouches for them).
    """
    known = _FIELDS.get(target)
    if known is None:
        known = _FIELDS[target] = frozenset(a.name for a in attrs.fields(target))
    unknown = body.keys() - known
    if unknown:
        name = min(unknown)
        raise ManifestFormatError(
            f"manifest {key!r} has no seal and a member its format does not define "
            f"({name[:100]!r}): it is damaged (a sealed document whose seal was altered?)",
            key=key,
            field=name[:100],
        )


def _leaf(exc: BaseException) -> BaseException:
    """The first error at the bottom of cattrs' nested validation groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def decode(data: bytes | str, cls: type[T], *, key: str | None = None) -> T:
    """Parse JSON bytes into the model ``cls`` (any registered version of its schema).

    Raises
    ------
    ManifestFormatError
        Not JSON, not an object, wrong schema name, or a field is missing or of
        the wrong type (``.field`` names it).
    UnsupportedFormatVersionError
        The document's format version is unknown to this aiolode.
    """
    want_schema, latest = _CURRENT[cls]
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    sealed = verdict(raw)
    if sealed is False:
        raise ManifestFormatError(
            f"manifest {key!r} is damaged: its content does not match its digest", key=key
        )
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestFormatError(f"manifest {key!r} is not valid JSON: {exc}", key=key) from exc
    if not isinstance(doc, dict):
        raise ManifestFormatError(f"manifest {key!r} is not a JSON object", key=key)
    unsealed = sealed is None and SEAL_KEY not in doc
    if SEAL_KEY in doc:
        digest = doc.pop(SEAL_KEY)
        # Sealed but no longer canonical (reformatted): check it the slow way.
        if sealed is None and digest != digest_of(_canonical(doc)):
            raise ManifestFormatError(
                f"manifest {key!r} is damaged: its content does not match its digest", key=key
            )
    schema = doc.get("schema_name")
    version = doc.get("format_version")
    if schema != want_schema:
        raise ManifestFormatError(
            f"manifest {key!r} has schema_name {schema!r}, expected {want_schema!r}",
            key=key,
            field="schema_name",
        )
    if isinstance(version, bool) or not isinstance(version, int):
        raise ManifestFormatError(
            f"manifest {key!r} has no integer format_version", key=key, field="format_version"
        )
    if (schema, version) not in _BY_VERSION:
        raise UnsupportedFormatVersionError(
            f"manifest {key!r} is {schema} format version {version}; this aiolode reads "
            f"versions up to {latest}. Upgrade aiolode to read it.",
            key=key,
            schema_name=schema,
            format_version=version,
        )
    while version < latest:
        migrate = _MIGRATIONS.get((schema, version))
        if migrate is None:
            break
        doc = migrate(doc)
        version += 1
    target = _BY_VERSION[(schema, version)]
    body = {k: v for k, v in doc.items() if k not in ("schema_name", "format_version")}
    if unsealed:
        _check_unsealed(body, target, key)
    try:
        obj = converter.structure(body, target)
    except (ClassValidationError, ForbiddenExtraKeysError, TypeError, ValueError, KeyError) as exc:
        # A model's own check (an InvalidInputError naming its field) is raised
        # by the constructor cattrs calls: the path ends at the object, the
        # error names the field within it.
        field = _field_of(exc)
        leaf = _leaf(exc)
        if isinstance(leaf, InvalidInputError) and leaf.field:
            field = f"{field}.{leaf.field}" if field else leaf.field
        raise ManifestFormatError(
            f"manifest {key!r} is invalid" + (f" at {field}" if field else "") + f": {leaf}",
            key=key,
            field=field,
        ) from exc
    if not isinstance(obj, cls):
        raise ManifestFormatError(f"manifest {key!r} did not migrate to {cls.__name__}", key=key)
    return obj
