"""DatasetReader: layout-aware discovery and byte access for external consumers.

Manifests (the commit records of each dataset's log) are the only truth: data
files are found through them, never through listings, so uncommitted or
aborted files sitting under a dataset's prefix are never handed out as data.
Listing is used only to *discover dataset ids*, and each candidate is then
confirmed by its commit log.

Everything about one dataset — snapshots, partitions, files, the Arrow view —
is asked of the :class:`~aiolode.Dataset` that :meth:`DatasetReader.dataset`
returns: one entry point per capability.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, final

from .._validate import safe_repr
from ..checksum import StreamVerifier
from ..dataset import Dataset
from ..errors import CorruptDataError, DatasetsNotModeledError, InvalidInputError, InvalidKeyError
from ..layout import DefaultLayout, Layout, validate_dataset_id
from ..manifest import DataFile, FileRef
from ..store import Store
from ..store._base import DEFAULT_CHUNK_SIZE
from ..store._ranges import DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, DEFAULT_TAIL_PREFETCH, RangeReader

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

__all__ = ["DatasetReader"]


@final
class DatasetReader:
    """Discover the datasets in a store, and read committed objects byte by byte.

    Parameters
    ----------
    store
        The store holding the datasets.
    layout
        How datasets are laid out (default :class:`~aiolode.DefaultLayout`).
        Default and hive layouts share the same roots, so either finds both;
        partition values always come from the manifests.

    Raises
    ------
    InvalidInputError
        ``store`` is not a Store or ``layout`` not a Layout.

    Notes
    -----
    Store calls per method (``docs/reader.md``): ``list_datasets`` one
    delimiter listing + 1 ``head`` per candidate (a **cold path**);
    ``dataset`` none; ``read_range`` 1 ``get_range``; ``iter_object`` 1 streamed
    read.
    """

    def __init__(self, store: Store, *, layout: Layout | None = None) -> None:
        if not isinstance(store, Store):
            raise InvalidInputError(f"store must be an aiolode Store, not {safe_repr(store)}")
        layout = DefaultLayout() if layout is None else layout
        if not isinstance(layout, Layout):
            raise InvalidInputError(f"layout must be an aiolode Layout, not {safe_repr(layout)}")
        self._store = store
        self._layout = layout

    @property
    def store(self) -> Store:
        """The store."""
        return self._store

    @property
    def layout(self) -> Layout:
        """The layout."""
        return self._layout

    def __repr__(self) -> str:
        return f"DatasetReader({self._store!r}, layout={self._layout!r})"

    # ------------------------------------------------------------------ discovery
    def list_datasets(self) -> AsyncGenerator[str, None]:
        """Iterate over the ids of the datasets that have at least one commit.

        A **cold path**: one delimiter listing of the layout's datasets prefix,
        then one ``head`` per candidate directory to confirm that its commit log
        exists (a directory holding only uncommitted files is not a dataset).
        Ids come in key order. Memory: one listing page.

        Raises
        ------
        DatasetsNotModeledError
            The layout cannot enumerate datasets (e.g. :class:`~aiolode.FlatLayout`);
            raised at once.
        StorageError
            The store failed.
        """
        if not self._layout.models_datasets:
            raise DatasetsNotModeledError(
                f"layout {self._layout!r} does not model datasets: they cannot be listed; "
                "open them by id"
            )
        return self._list_datasets()

    async def _list_datasets(self) -> AsyncGenerator[str, None]:
        prefix = self._layout.datasets_prefix()
        async with aclosing(self._store.list_dirs(prefix)) as dirs:
            async for d in dirs:
                candidate = d[len(prefix) : -1]
                try:
                    validate_dataset_id(candidate)
                except InvalidInputError:
                    continue  # not a dataset id (e.g. a foreign directory)
                ds = self.dataset(candidate)
                if await ds.exists():
                    yield candidate

    def dataset(self, dataset_id: str) -> Dataset:
        """A read handle on one dataset (no I/O): snapshots, partitions, files,
        records and the Arrow view are all asked of it.

        Raises
        ------
        InvalidKeyError
            ``dataset_id`` is not a valid dataset id.
        """
        return Dataset(dataset_id, self._store, layout=self._layout)

    # ---------------------------------------------------------------------- bytes
    def iter_object(
        self, ref: DataFile | FileRef, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncGenerator[bytes, None]:
        """Stream a committed file's stored bytes (not decompressed), verified.

        The recorded size and checksum are checked as the bytes stream: a
        mismatch raises after the last chunk (:class:`~aiolode.CorruptDataError`
        for a size, :class:`~aiolode.ChecksumMismatchError` for a digest). Wrap
        in :func:`contextlib.aclosing` if you may stop early. For arbitrary keys
        use the store itself (``store.iter_bytes``): nothing vouches for them.

        Cost: one streamed read. Memory: one chunk.

        Raises
        ------
        InvalidInputError
            ``ref`` is not a DataFile or FileRef (raised at once).
        ObjectNotFoundError
            The object does not exist.
        CorruptDataError, ChecksumMismatchError
            The bytes do not match the manifest.
        StorageError
            The store failed.
        """
        if isinstance(ref, DataFile):
            return self._verified(ref.file, ref.dataset_id, ref.snapshot_id, chunk_size)
        if isinstance(ref, FileRef):
            return self._verified(ref, None, None, chunk_size)
        raise InvalidInputError(
            f"iter_object() takes a DataFile or FileRef, not {type(ref).__name__}; "
            "for a plain key use store.iter_bytes()"
        )

    async def _verified(
        self, ref: FileRef, dataset_id: str | None, snapshot_id: str | None, chunk_size: int
    ) -> AsyncGenerator[bytes, None]:
        verifier = StreamVerifier.of(ref, dataset_id=dataset_id, snapshot_id=snapshot_id)
        async with aclosing(self._store.iter_bytes(ref.key, chunk_size=chunk_size)) as chunks:
            async for chunk in chunks:
                await verifier.aupdate(chunk)
                yield chunk
        verifier.check()

    async def read_range(self, key: str | DataFile | FileRef, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of an object's stored bytes (short at EOF).

        Given a :class:`~aiolode.DataFile` or :class:`~aiolode.FileRef`, a read
        past the recorded size is refused (the bytes beyond it cannot be the
        committed file's). No checksum can be verified on a part of an object.

        Cost: one ``get_range`` (a true range request). For many small reads of
        one object use :meth:`range_reader`.

        Raises
        ------
        InvalidKeyError, InvalidRangeError
            Bad key or range.
        ObjectNotFoundError
            The object does not exist.
        CorruptDataError
            The object is shorter than its recorded size.
        StorageError
            The store failed.
        """
        if isinstance(key, DataFile | FileRef):
            ref = key.file if isinstance(key, DataFile) else key
            data = await self._store.get_range(ref.key, offset, length)
            want = max(0, min(length, ref.size - offset)) if isinstance(offset, int) else 0
            if len(data) < want:
                raise CorruptDataError(
                    f"object {ref.key!r} is shorter than its recorded {ref.size} bytes",
                    key=ref.key,
                    dataset_id=key.dataset_id if isinstance(key, DataFile) else None,
                )
            return data[:want]
        if not isinstance(key, str):
            raise InvalidKeyError(f"a key must be a str, not {type(key).__name__}")
        return await self._store.get_range(key, offset, length)

    def range_reader(
        self,
        key: str | DataFile | FileRef,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        tail_prefetch: int = DEFAULT_TAIL_PREFETCH,
    ) -> RangeReader:
        """A :class:`RangeReader` (page cache + request counters) over one object.

        A :class:`~aiolode.DataFile`/:class:`~aiolode.FileRef` gives the size,
        saving a ``head``. No I/O here.

        Raises
        ------
        InvalidKeyError, InvalidInputError
            Bad key or options.
        """
        if isinstance(key, str):
            return RangeReader(
                self._store,
                key,
                page_size=page_size,
                max_pages=max_pages,
                tail_prefetch=tail_prefetch,
            )
        if not isinstance(key, DataFile | FileRef):
            raise InvalidKeyError(f"a key must be a str, DataFile or FileRef, not {safe_repr(key)}")
        ref = key.file if isinstance(key, DataFile) else key
        return RangeReader(
            self._store,
            ref.key,
            size=ref.size,
            page_size=page_size,
            max_pages=max_pages,
            tail_prefetch=tail_prefetch,
        )
