"""Layouts: where a dataset's commit log and data files live in a store.

A layout maps ``(dataset id, partition values, file name)`` to store keys and
back. Partition values are always strings in paths; every character outside a
small safe set is percent-encoded (UTF-8, uppercase hex), so no value can add,
remove or escape a path segment, and decoding gives back the exact string.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from .._keys import validate_key
from .._validate import safe_repr
from ..errors import InvalidInputError, SchemaViolationError

__all__ = [
    "DATASET_ID_RE",
    "Layout",
    "TemplateLayout",
    "decode_value",
    "encode_value",
    "stringify_partition_value",
    "validate_dataset_id",
]

#: A dataset id is one safe path segment: letters, digits, ``_ - .``, not
#: starting with ``.`` or ``_`` (those prefixes are reserved for aiolode's own
#: objects such as ``_log``), at most 200 characters.
DATASET_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")

_KEY_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX = "0123456789ABCDEF"
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def check_values(values: object) -> None:
    """Partition values must be a mapping of str to str.

    Raises
    ------
    InvalidInputError
        They are not.
    """
    if not isinstance(values, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise InvalidInputError(
            f"partition values must be a mapping of str to str, not {safe_repr(values)}"
        )


def check_path(path: object) -> None:
    """A partition path must be a str.

    Raises
    ------
    InvalidInputError
        It is not.
    """
    if not isinstance(path, str):
        raise InvalidInputError(f"a partition path must be a str, not {type(path).__name__}")


def validate_dataset_id(dataset_id: object) -> str:
    """Return ``dataset_id`` if it is a valid dataset id, else raise.

    Raises
    ------
    InvalidKeyError
        Not a single safe path segment (see :data:`DATASET_ID_RE`).
    """
    from ..errors import InvalidKeyError

    if not isinstance(dataset_id, str) or DATASET_ID_RE.fullmatch(dataset_id) is None:
        raise InvalidKeyError(
            f"dataset id {safe_repr(dataset_id)} is invalid: use 1-200 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit",
            dataset_id=dataset_id if isinstance(dataset_id, str) else None,
        )
    return dataset_id


def encode_value(value: str, safe: frozenset[str]) -> str:
    """Percent-encode every character of ``value`` not in ``safe`` (UTF-8, ``%XX``)."""
    out: list[str] = []
    for ch in value:
        if ch in safe:
            out.append(ch)
        else:
            for b in ch.encode("utf-8", "surrogatepass"):
                out.append("%" + _HEX[b >> 4] + _HEX[b & 15])
    return "".join(out)


def decode_value(text: str) -> str:
    """Invert :func:`encode_value`.

    Raises
    ------
    InvalidInputError
        A malformed escape.
    """
    if "%" not in text:
        return text
    buf = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            h = text[i + 1 : i + 3]
            if len(h) != 2 or any(c not in "0123456789ABCDEFabcdef" for c in h):
                raise InvalidInputError(f"malformed percent-escape in partition path {text!r}")
            buf.append(int(h, 16))
            i += 3
        else:
            buf += ch.encode("utf-8")
            i += 1
    return buf.decode("utf-8", "surrogatepass")


def stringify_partition_value(name: str, value: object) -> str:
    """Return the path form of a partition value.

    ``str`` as is; ``bool`` as ``"true"``/``"false"``; ``int`` in decimal;
    ``float`` by ``repr`` (round-trips); ``datetime``/``date`` in ISO 8601.
    Anything else (``None`` included) is refused: a partition value must be
    deterministic text.

    Raises
    ------
    SchemaViolationError
        The value has another type (``.field`` names the partition key).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise SchemaViolationError(
        f"partition value for {name!r} must be str, int, float, bool, date or datetime, "
        f"not {type(value).__name__}",
        field=name,
    )


class Layout(abc.ABC):
    """Where a dataset's commit log and data files live.

    Subclass it (or :class:`TemplateLayout`) for a custom layout. A layout is a
    pure mapping between names and keys: it never does I/O.

    Attributes
    ----------
    name
        Recorded in every manifest (``layout``).
    partition_keys
        Names of the partition fields, in path order (empty: unpartitioned).
    models_datasets
        Whether dataset ids can be enumerated from the store by listing the
        layout's dataset prefix (see :meth:`datasets_prefix`).
    """

    name: str = "custom"
    partition_keys: tuple[str, ...] = ()
    models_datasets: bool = True

    def datasets_prefix(self) -> str:
        """The prefix under which every dataset's root sits (``""`` for none)."""
        return "datasets/"

    def root(self, dataset_id: str) -> str:
        """The prefix (ending in ``/``) holding everything of ``dataset_id``.

        Raises
        ------
        InvalidKeyError
            ``dataset_id`` is not a valid dataset id.
        """
        return f"{self.datasets_prefix()}{validate_dataset_id(dataset_id)}/"

    def log_prefix(self, dataset_id: str) -> str:
        """The prefix of the commit log (``<root>_log/``)."""
        return f"{self.root(dataset_id)}_log/"

    def data_prefix(self, dataset_id: str) -> str:
        """The prefix under which data files live (``<root>data/``)."""
        return f"{self.root(dataset_id)}data/"

    def partition_values(self, record: Mapping[str, Any]) -> dict[str, str]:
        """Extract and stringify the partition values of one record.

        Raises
        ------
        SchemaViolationError
            A partition field is missing or has an unsupported type.
        """
        out: dict[str, str] = {}
        for k in self.partition_keys:
            try:
                v = record[k]
            except KeyError:
                raise SchemaViolationError(
                    f"record has no partition field {k!r}", field=k
                ) from None
            except TypeError:
                raise SchemaViolationError(
                    f"records must be mappings, not {type(record).__name__}"
                ) from None
            out[k] = stringify_partition_value(k, v)
        return out

    @abc.abstractmethod
    def partition_path(self, values: Mapping[str, str]) -> str:
        """Render partition values as a relative path ending in ``/`` (``""`` if none).

        Raises
        ------
        InvalidInputError
            The values do not fit the layout.
        """

    @abc.abstractmethod
    def parse_partition_path(self, path: str) -> dict[str, str]:
        """Invert :meth:`partition_path`.

        Raises
        ------
        InvalidInputError
            ``path`` was not produced by this layout.
        """

    def data_key(self, dataset_id: str, values: Mapping[str, str], filename: str) -> str:
        """The key of a data file.

        Raises
        ------
        InvalidKeyError
            The resulting key is invalid (e.g. too long).
        """
        if not isinstance(filename, str):
            raise InvalidInputError(f"filename must be a str, not {type(filename).__name__}")
        return validate_key(
            f"{self.data_prefix(dataset_id)}{self.partition_path(values)}{filename}"
        )

    def partition_manifest_key(self, dataset_id: str, values: Mapping[str, str], token: str) -> str:
        """The key of a partition manifest (format v2): beside the partition's
        data files, ``<data prefix><partition path>_manifests/<token>.json``.

        ``token`` is unique per write (the snapshot id is assigned at commit).

        Raises
        ------
        InvalidKeyError
            The resulting key is invalid (e.g. too long).
        """
        if not isinstance(token, str):
            raise InvalidInputError(f"token must be a str, not {type(token).__name__}")
        return self.data_key(dataset_id, values, f"_manifests/{token}.json")

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this layout (name + options)."""
        return {"name": self.name, "partition_keys": list(self.partition_keys)}

    def __repr__(self) -> str:
        keys = ", ".join(repr(k) for k in self.partition_keys)
        return f"{type(self).__name__}({keys})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Layout)
            and type(other) is type(self)
            and other.describe() == self.describe()
        )

    def __hash__(self) -> int:
        return hash((type(self), self.name, self.partition_keys))


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateLayout(Layout):
    """A partitioned layout from a path template such as
    ``"{network}/{era}/{version}/{table}/range={start}-{end}/"``.

    Each ``{name}`` is a partition key. Values are percent-encoded: letters,
    digits and ``_ - . ~`` stay, except a character that ends a placeholder in
    the template (``-`` in ``range={start}-{end}``); everything else becomes
    ``%XX``. A value can therefore never contain ``/`` nor the text that ends
    it, and parsing is unambiguous.
    Empty values are refused (they could create an empty path segment), and
    a value made only of dots is escaped whole (never ``.`` or ``..``).

    Parameters
    ----------
    template
        Relative path template ending in ``/``; placeholders must be separated
        by literal text; each key appears once.
    name
        Recorded in manifests (default ``"template"``).

    Raises
    ------
    InvalidInputError
        The template is malformed.
    """

    def __init__(self, template: str, *, name: str = "template") -> None:
        if not isinstance(template, str) or not template.endswith("/") or template.startswith("/"):
            raise InvalidInputError(
                f"template must be a relative path ending in '/', not {safe_repr(template)}"
            )
        keys = _PLACEHOLDER.findall(template)
        if not keys:
            raise InvalidInputError(f"template {template!r} has no {{placeholder}}")
        if len(set(keys)) != len(keys):
            raise InvalidInputError(f"template {template!r} repeats a placeholder")
        literals = _PLACEHOLDER.split(template)[::2]
        for lit in literals[1:-1]:
            if lit == "":
                raise InvalidInputError(
                    f"template {template!r}: placeholders must be separated by literal text"
                )
        literal_chars = set("".join(literals))
        # Parsing stays unambiguous if no value can contain the character that
        # ends it: the first literal character after each placeholder.
        terminators = {lit[0] for lit in literals[1:] if lit}
        if literal_chars & {"%", "{", "}"}:
            raise InvalidInputError(f"template {template!r} has a stray '%', '{{' or '}}'")
        for seg in template[:-1].split("/"):
            if seg in ("", ".", ".."):
                raise InvalidInputError(f"template {template!r} has an empty or dot segment")
        self.template = template
        self.name = name
        self.partition_keys: tuple[str, ...] = tuple(keys)
        self._safe = frozenset((_ALNUM | {"_", "-", ".", "~"}) - terminators)
        token = "(?:[" + re.escape("".join(sorted(self._safe))) + "]|%[0-9A-F]{2})+"
        pattern = ""
        for i, part in enumerate(_PLACEHOLDER.split(template)):
            pattern += re.escape(part) if i % 2 == 0 else f"(?P<{part}>{token})"
        self._re = re.compile(pattern)

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {**super().describe(), "template": self.template}

    def __repr__(self) -> str:
        return f"TemplateLayout({self.template!r})"

    def _encode(self, key: str, value: str) -> str:
        if value == "":
            raise InvalidInputError(
                f"partition value for {key!r} is empty; a template path cannot hold it "
                "(HiveLayout can)"
            )
        if set(value) == {"."}:
            return "%2E" * len(value)
        return encode_value(value, self._safe)

    def partition_path(self, values: Mapping[str, str]) -> str:
        # docstring inherited
        check_values(values)
        missing = [k for k in self.partition_keys if k not in values]
        if missing:
            raise InvalidInputError(f"missing partition values for {missing}")

        def sub(m: re.Match[str]) -> str:
            return self._encode(m.group(1), values[m.group(1)])

        return _PLACEHOLDER.sub(sub, self.template)

    def parse_partition_path(self, path: str) -> dict[str, str]:
        # docstring inherited
        check_path(path)
        m = self._re.fullmatch(path)
        if m is None:
            raise InvalidInputError(f"{path!r} does not match template {self.template!r}")
        return {k: decode_value(m.group(k)) for k in self.partition_keys}
