"""Artifacts: large binary payloads beside the records that reference them.

An artifact (a screenshot, a page body) is one raw snapshot of a companion
dataset, streamed in bounded memory; the item record carries an
:class:`ArtifactRef` naming that snapshot. An artifact is always durable
before ``emit_artifact`` returns (whatever the records' policy): a record must
never reference a blob that may not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, final

import attrs

from .._validate import safe_repr
from ..errors import DatasetNotFoundError, InvalidInputError

if TYPE_CHECKING:
    from ..dataset import Dataset, Snapshot

__all__ = ("ArtifactRef", "artifact_index", "store_artifact")

_MAX_NAME = 1024
_MAX_CONTENT_TYPE = 255


@final
@attrs.frozen
class ArtifactRef:
    """Where an artifact lives: put :meth:`to_record` in the item that uses it.

    Attributes
    ----------
    dataset_id
        The companion (raw) dataset holding it.
    snapshot_id
        The snapshot whose one file is the artifact:
        ``await Dataset(dataset_id, store).read(snapshot_id)`` returns its bytes.
    name
        The name given to ``emit_artifact`` (unique within a run, by convention).
    content_type
        Its media type.
    size
        Its size in bytes.
    """

    dataset_id: str
    snapshot_id: str
    name: str
    content_type: str
    size: int

    def to_record(self) -> dict[str, Any]:
        """A plain mapping for an item record (JSON Lines, Parquet struct)."""
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, value: Mapping[str, Any]) -> ArtifactRef:
        """Rebuild a reference from :meth:`to_record`'s mapping.

        Raises
        ------
        InvalidInputError
            ``value`` is not such a mapping: a key is missing, an id, the name
            or the content type is not a str, or the size not an int >= 0.
        """
        try:
            ref = cls(
                dataset_id=value["dataset_id"],
                snapshot_id=value["snapshot_id"],
                name=value["name"],
                content_type=value["content_type"],
                size=value["size"],
            )
        except (KeyError, TypeError):
            raise InvalidInputError(f"not an artifact reference: {safe_repr(value)}") from None
        texts = (ref.dataset_id, ref.snapshot_id, ref.name, ref.content_type)
        if (
            not all(isinstance(v, str) for v in texts)
            or not isinstance(ref.size, int)
            or isinstance(ref.size, bool)
            or ref.size < 0
        ):
            raise InvalidInputError(f"not an artifact reference: {safe_repr(value)}")
        return ref


def check_artifact_args(name: object, content_type: object) -> None:
    """Validate ``emit_artifact``'s name and content type.

    Raises
    ------
    InvalidInputError
        Either is not a non-empty printable str of reasonable length.
    """
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME or not name.isprintable():
        raise InvalidInputError(
            f"artifact name must be a non-empty printable str of at most {_MAX_NAME} "
            f"characters, not {safe_repr(name)}"
        )
    if (
        not isinstance(content_type, str)
        or not content_type
        or len(content_type) > _MAX_CONTENT_TYPE
        or not content_type.isprintable()
    ):
        raise InvalidInputError(
            f"content_type must be a media type str, not {safe_repr(content_type)}"
        )


def _ref(snap: Snapshot, name: str, content_type: str) -> ArtifactRef:
    return ArtifactRef(
        dataset_id=snap.dataset_id,
        snapshot_id=snap.id,
        name=name,
        content_type=content_type,
        size=sum(f.size for f in snap.files),
    )


async def store_artifact(
    ds: Dataset, name: str, data: object, content_type: str, metadata: Mapping[str, Any]
) -> ArtifactRef:
    """Store one artifact as one snapshot of ``ds`` (raw): bytes in one put,
    an async iterable of bytes streamed (bounded memory).

    Raises
    ------
    InvalidInputError
        ``data`` is neither bytes-like nor an async iterable of bytes.
    SnapshotConflictError, StorageError
        As for :meth:`~aiolode.Dataset.write`.
    """
    meta = {**metadata, "artifact": {"name": name, "content_type": content_type}}
    if isinstance(data, bytes | bytearray | memoryview):
        snap = await ds.write(data, meta)
    elif isinstance(data, AsyncIterable):
        async with ds.stream_write(meta) as w:
            async for chunk in data:
                await w.write(chunk)
        snap = w.snapshot
    else:
        raise InvalidInputError(
            f"emit_artifact() takes bytes or an async iterable of bytes, not {type(data).__name__}"
        )
    return _ref(snap, name, content_type)


async def artifact_index(ds: Dataset, run_id: str) -> dict[str, ArtifactRef]:
    """The artifacts run ``run_id`` already stored in ``ds``, by name (the newest
    of each name), for a resumed run to skip.

    Cost: ``latest()`` + one ``get`` per commit record of ``ds``.

    Raises
    ------
    StorageError, FormatError
        The store failed or a record is unreadable.
    """
    out: dict[str, ArtifactRef] = {}
    try:
        async with aclosing(ds.snapshots()) as snaps:
            async for snap in snaps:
                art = snap.metadata.get("artifact")
                ing = snap.metadata.get("ingest")
                if not isinstance(art, Mapping) or not isinstance(ing, Mapping):
                    continue
                run = ing.get("run")
                if not isinstance(run, Mapping) or run.get("run_id") != run_id:
                    continue
                name, ctype = art.get("name"), art.get("content_type")
                if isinstance(name, str) and isinstance(ctype, str):
                    out[name] = _ref(snap, name, ctype)
    except DatasetNotFoundError:
        pass
    return out
