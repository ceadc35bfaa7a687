"""Module-level functions over a :class:`~aiolode.Dataset` (the lead's thin
``Dataset.files`` / ``Dataset.to_arrow_dataset`` methods call these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ._reader import DatasetReader

if TYPE_CHECKING:
    from ..dataset import Dataset
    from ._refs import DataFile

__all__ = ["files_of", "to_arrow_dataset"]


def _reader(ds: object) -> DatasetReader:
    from ..dataset import Dataset

    if not isinstance(ds, Dataset):
        raise InvalidInputError(f"expected an aiolode.Dataset, not {ds!r}")
    return DatasetReader(ds.store, layout=ds.layout)


async def files_of(ds: Dataset, as_of: object = None, where: object = None) -> list[DataFile]:
    """The data files of ``ds`` up to ``as_of``, filtered by ``where``.

    Same as :meth:`DatasetReader.files` (parameters, cost, errors) with a fresh
    reader: the ``latest`` hint is read cold (2 ``get``) + 1 ``get`` per commit
    record up to ``as_of``.

    Raises
    ------
    InvalidInputError
        ``ds`` is not a Dataset; bad ``as_of`` or ``where``.
    SnapshotNotFoundError, NoSnapshotsError
        ``as_of`` designates no snapshot.
    FormatError, StorageError
        A record is unreadable or the store failed.
    """
    return await _reader(ds).files(ds.id, as_of=as_of, where=where)


async def to_arrow_dataset(
    ds: Dataset,
    as_of: object = None,
    where: object = None,
    *,
    schema: Any = None,
    filesystem: str = "auto",
    verify: bool = False,
) -> Any:
    """A ``pyarrow.dataset.Dataset`` over :func:`files_of` ``(ds, as_of, where)``.

    See :func:`aiolode.reader.arrow_dataset` for the filesystem, schema and
    verification options and their costs.

    Raises
    ------
    InvalidInputError
        ``ds`` is not a Dataset; bad arguments.
    UnsupportedOperationError
        A raw dataset (no records).
    SnapshotNotFoundError, NoSnapshotsError
        ``as_of`` designates no snapshot.
    ChecksumMismatchError
        ``verify=True`` and a file does not match its manifest.
    """
    return await _reader(ds).to_arrow_dataset(
        ds.id, as_of=as_of, where=where, schema=schema, filesystem=filesystem, verify=verify
    )
