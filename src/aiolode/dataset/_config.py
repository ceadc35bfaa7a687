"""A dataset's configuration: what the caller asked for, what the dataset recorded.

The first write records the configuration in a create-only *descriptor*
(``<root>_dataset.json``, :class:`~aiolode.manifest.DatasetDescriptor`). Later,
``Dataset("events", store)`` with no options opens it as recorded, and options
that contradict the descriptor are refused with
:class:`~aiolode.ConfigMismatchError` before anything is written. Datasets
written before descriptors existed are opened from their newest manifest (which
records codec, compressor and layout) and get a descriptor at their next write.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, final

import attrs

from .._validate import safe_repr
from ..checksum import Checksum, check_checksum_arg, checksum_from_name, parse_recorded
from ..codecs import Codec, codec_from_name
from ..compression import Compressor, compressor_from_name
from ..errors import (
    ConfigMismatchError,
    FormatError,
    InvalidInputError,
    PartitioningNotSupportedError,
)
from ..layout import DefaultLayout, Layout
from ..layout._layouts import layout_from_description
from ..manifest._dataset import DatasetDescriptor

if TYPE_CHECKING:
    from ..manifest._dataset import Manifest

__all__ = ["UNSET", "DatasetConfig", "Options", "descriptor_key"]


@final
class _Unset:
    """An option the caller did not pass (distinct from an explicit ``None``)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unset>"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def descriptor_key(layout: Layout, dataset_id: str) -> str:
    """Where a dataset's descriptor lives under ``layout``."""
    return f"{layout.root(dataset_id)}_dataset.json"


@attrs.frozen
class Options:
    """The configuration options as the caller passed them (``UNSET`` if not)."""

    codec: Any = UNSET
    compressor: Any = UNSET
    checksum: Any = UNSET
    layout: Any = UNSET
    timestamp_field: Any = UNSET

    def check_types(self) -> None:
        """Refuse wrong types and impossible combinations at construction.

        Raises
        ------
        InvalidInputError
            An option has the wrong type, or two explicit options cannot go together.
        PartitioningNotSupportedError
            An explicit partitioned layout with an explicit ``codec=None``.
        """
        if self.codec is not UNSET and self.codec is not None and not isinstance(self.codec, Codec):
            raise InvalidInputError(
                f"codec must be None or an aiolode codec, not {safe_repr(self.codec)}"
            )
        if (
            self.compressor is not UNSET
            and self.compressor is not None
            and not isinstance(self.compressor, Compressor)
        ):
            raise InvalidInputError(
                f"compressor must be None or an aiolode compressor, not {safe_repr(self.compressor)}"
            )
        if self.checksum is not UNSET:
            check_checksum_arg(self.checksum)
        if self.layout is not UNSET and not isinstance(self.layout, Layout):
            raise InvalidInputError(
                f"layout must be an aiolode Layout, not {safe_repr(self.layout)}"
            )
        ts = self.timestamp_field
        if ts is not UNSET and ts is not None and (not isinstance(ts, str) or not ts):
            raise InvalidInputError(f"timestamp_field must be a str, not {safe_repr(ts)}")
        # Combinations decidable from explicit options alone fail now, not at a write.
        if self.codec is not UNSET:
            DatasetConfig(
                codec=self.codec,
                compressor=None if self.compressor is UNSET else self.compressor,
                checksum=None,
                layout=DefaultLayout() if self.layout is UNSET else self.layout,
                timestamp_field=None if ts is UNSET else ts,
            ).check()


@attrs.frozen
class DatasetConfig:
    """The resolved configuration new snapshots are written with."""

    codec: Codec | None
    compressor: Compressor | None
    checksum: Checksum | None
    layout: Layout
    timestamp_field: str | None

    def check(self) -> None:
        """Refuse combinations that can never write.

        Raises
        ------
        InvalidInputError
            A compressor with a codec that compresses internally, or a
            ``timestamp_field`` without a codec.
        PartitioningNotSupportedError
            A partitioned layout for raw blobs (no fields to partition by).
        """
        codec, compressor = self.codec, self.compressor
        if codec is not None and compressor is not None and not codec.accepts_outer_compression:
            raise InvalidInputError(
                f"codec {codec.name!r} compresses internally; do not add compressor "
                f"{compressor.name!r} (set the codec's own compression option instead)"
            )
        if self.layout.partition_keys and codec is None:
            raise PartitioningNotSupportedError(
                "a partitioned layout splits records by field: it needs a codec (raw blobs have "
                "no fields)"
            )
        if self.timestamp_field is not None and codec is None:
            raise InvalidInputError("timestamp_field needs a codec (raw blobs have no fields)")

    @classmethod
    def from_options(cls, options: Options, *, default_checksum: Checksum | None) -> DatasetConfig:
        """A new dataset's configuration: the options given, defaults for the rest."""
        return cls(
            codec=None if options.codec is UNSET else options.codec,
            compressor=None if options.compressor is UNSET else options.compressor,
            checksum=default_checksum if options.checksum is UNSET else options.checksum,
            layout=DefaultLayout() if options.layout is UNSET else options.layout,
            timestamp_field=None if options.timestamp_field is UNSET else options.timestamp_field,
        )

    def fingerprint(self) -> dict[str, object]:
        """Everything recorded about this configuration, comparable with ``==``."""
        return {
            "codec": _describe(self.codec),
            "compressor": _describe(self.compressor),
            "checksum": _name(self.checksum),
            "layout": _plain(self.layout.describe()),
            "timestamp_field": self.timestamp_field,
        }

    def descriptor(self, dataset_id: str, *, first_seq: int = 1) -> DatasetDescriptor:
        """A new descriptor recording this configuration (a new incarnation)."""
        return DatasetDescriptor(
            first_seq=first_seq,
            dataset_id=dataset_id,
            created_at=datetime.now(UTC),
            incarnation=uuid.uuid4().hex,
            codec=self.codec.name if self.codec is not None else None,
            codec_options=self.codec.options() if self.codec is not None else {},
            compressor=self.compressor.name if self.compressor is not None else None,
            compressor_options=self.compressor.options() if self.compressor is not None else {},
            checksum=self.checksum.name if self.checksum is not None else None,
            layout=self.layout.describe(),
            timestamp_field=self.timestamp_field,
        )

    @classmethod
    def from_descriptor(
        cls, desc: DatasetDescriptor, layout: Layout | None, *, key: str
    ) -> DatasetConfig:
        """The configuration a descriptor records (``layout``: the caller's, if given).

        Raises
        ------
        ManifestFormatError
            Unknown codec, compressor or checksum names.
        ConfigMismatchError
            The recorded layout is a custom one that cannot be rebuilt and no
            layout was given, or the given one differs.
        """
        recorded = _layout(desc.layout, layout, desc.dataset_id, key=key)
        try:
            return cls(
                codec=codec_from_name(desc.codec, desc.codec_options),
                compressor=compressor_from_name(desc.compressor, desc.compressor_options),
                checksum=checksum_from_name(desc.checksum) if desc.checksum else None,
                layout=recorded,
                timestamp_field=desc.timestamp_field,
            )
        except FormatError as exc:
            exc.key = exc.key or key
            exc.dataset_id = exc.dataset_id or desc.dataset_id
            raise

    @classmethod
    def from_manifest(cls, m: Manifest, layout: Layout | None) -> DatasetConfig:
        """The configuration a pre-descriptor dataset's newest manifest implies.

        Raises
        ------
        ManifestFormatError, ConfigMismatchError
            As for :meth:`from_descriptor`.
        """
        checksum = None
        for f in m.files:
            if f.checksum is not None:
                checksum, _ = parse_recorded(f.checksum)
                break
        return cls(
            codec=codec_from_name(m.codec, m.codec_options),
            compressor=compressor_from_name(m.compressor, m.compressor_options),
            checksum=checksum,
            layout=_layout(m.layout, layout, m.dataset_id, key=None),
            timestamp_field=None,
        )

    def reconcile(self, given: Options, *, dataset_id: str, legacy: bool = False) -> DatasetConfig:
        """This (recorded) configuration, after checking that ``given`` agrees with it.

        Raises
        ------
        ConfigMismatchError
            An explicitly given option differs from the recorded one.
        """
        pairs: list[tuple[str, object, object]] = []
        if given.codec is not UNSET:
            pairs.append(("codec", _describe(self.codec), _describe(given.codec)))
        if given.compressor is not UNSET:
            pairs.append(("compressor", _describe(self.compressor), _describe(given.compressor)))
        if given.checksum is not UNSET and not (legacy and self.checksum is None):
            pairs.append(("checksum", _name(self.checksum), _name(given.checksum)))
        if given.layout is not UNSET:
            pairs.append(("layout", self.layout.describe(), given.layout.describe()))
        if given.timestamp_field is not UNSET and not legacy:
            pairs.append(("timestamp_field", self.timestamp_field, given.timestamp_field))
        for name, recorded, asked in pairs:
            if recorded != asked:
                raise ConfigMismatchError(
                    f"dataset {dataset_id!r} was created with {name}={recorded!r}; this Dataset "
                    f"was opened with {name}={asked!r}. Open it without {name}= to use what it "
                    "recorded (a dataset's configuration cannot change after its first write)",
                    dataset_id=dataset_id,
                    field=name,
                )
        if legacy:
            # What the manifests could not say comes from the caller.
            return attrs.evolve(
                self,
                checksum=self.checksum if given.checksum is UNSET else given.checksum,
                timestamp_field=None if given.timestamp_field is UNSET else given.timestamp_field,
            )
        return self


def _describe(component: Codec | Compressor | None) -> object:
    if component is None:
        return None
    return {"name": component.name, "options": dict(component.options())}


def _name(checksum: Checksum | None) -> str | None:
    return None if checksum is None else checksum.name


def _layout(recorded: Any, given: Layout | None, dataset_id: str, *, key: str | None) -> Layout:
    if given is not None:
        if _plain(given.describe()) != _plain(recorded):
            raise ConfigMismatchError(
                f"dataset {dataset_id!r} was created with layout {_plain(recorded)!r}; this "
                f"Dataset was opened with layout {given.describe()!r}",
                dataset_id=dataset_id,
                key=key,
                field="layout",
            )
        return given
    try:
        return layout_from_description(_plain(recorded))
    except InvalidInputError:
        raise ConfigMismatchError(
            f"dataset {dataset_id!r} uses the custom layout {_plain(recorded)!r}: pass it "
            "(layout=...) to open the dataset",
            dataset_id=dataset_id,
            key=key,
            field="layout",
        ) from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
