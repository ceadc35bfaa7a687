"""A read-only pyarrow filesystem over any aiolode Store (moved from ``reader/_fs.py``).

pyarrow calls a :class:`pyarrow.fs.FileSystemHandler` from its own threads
(never anyio worker threads), so every store call is sent back to the event
loop that created the handler with :func:`anyio.from_thread.run` and an event
loop token. That loop must keep running (and must not be the thread pyarrow
scans on) for as long as pyarrow reads: run scans with
:func:`anyio.to_thread.run_sync`.

This module imports pyarrow (the handler must subclass pyarrow's): import it
lazily, inside functions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, NoReturn, final

import anyio.from_thread
import anyio.lowlevel
import pyarrow as pa
import pyarrow.fs as pafs

from ..checksum import StreamVerifier
from ..errors import AiolodeError, CorruptDataError, ObjectNotFoundError
from ..store._ranges import (
    DEFAULT_MAX_PAGES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TAIL_PREFETCH,
    RangeReader,
    RangeStats,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

    from ..compression import Compressor
    from ..manifest import FileRef
    from ..store import Store

__all__ = [
    "BufferFragmentsHandler",
    "DecodedFile",
    "StoreFileSystemHandler",
    "store_filesystem",
]

_MAX_READERS = 256


@final
class DecodedFile:
    """How the handler serves a virtual path: the stored object, verified and
    decompressed whole (pyarrow cannot decompress every format itself).

    Attributes
    ----------
    ref
        The manifest entry (key, size, checksum).
    compressor
        The compressor to undo, or ``None``.
    """

    def __init__(
        self, ref: FileRef, compressor: Compressor | None, snapshot_id: str | None = None
    ) -> None:
        self.ref = ref
        self.compressor = compressor
        self.snapshot_id = snapshot_id


class _SyncRangeFile:
    """A file-like object (as :class:`pyarrow.PythonFile` wants) over a RangeReader."""

    def __init__(
        self, owner: StoreFileSystemHandler, reader: RangeReader, size: int, path: str
    ) -> None:
        self._owner = owner
        self._path = path
        self._reader = reader
        self._size = size
        self._pos = 0
        self.closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        return self._size

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            pos = offset
        elif whence == 1:
            pos = self._pos + offset
        elif whence == 2:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if n is None or n < 0:
            n = max(self._size - self._pos, 0)
        data: bytes = self._owner._call_for(self._path, self._reader.read, self._pos, n)
        want = max(0, min(n, self._size - self._pos))
        if len(data) < want:
            # The object is shorter than its manifest says: never hand pyarrow
            # a short read it may take for the end of the data.
            self._owner._fail(
                self._path,
                CorruptDataError(
                    f"object {self._path!r} ends at byte {self._pos + len(data)}; its manifest "
                    f"records {self._size} bytes",
                    key=self._path,
                ),
            )
        self._pos += len(data)
        return data

    def close(self) -> None:
        self.closed = True

    def flush(self) -> None:
        pass


class _ReadOnlyHandler(pafs.FileSystemHandler):
    """A pyarrow filesystem handler that refuses every change with
    ``NotImplementedError`` (the message is ``_REFUSAL``)."""

    _REFUSAL = "an aiolode store filesystem is read-only"

    def _refuse(self) -> NoReturn:
        raise NotImplementedError(self._REFUSAL)

    def create_dir(self, path: str, recursive: bool) -> None:
        self._refuse()

    def delete_dir(self, path: str) -> None:
        self._refuse()

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._refuse()

    def delete_root_dir_contents(self) -> None:
        self._refuse()

    def delete_file(self, path: str) -> None:
        self._refuse()

    def move(self, src: str, dest: str) -> None:
        self._refuse()

    def copy_file(self, src: str, dest: str) -> None:
        self._refuse()

    def open_output_stream(self, path: str, metadata: dict[str, str]) -> Any:
        self._refuse()

    def open_append_stream(self, path: str, metadata: dict[str, str]) -> Any:
        self._refuse()


class StoreFileSystemHandler(_ReadOnlyHandler):
    """A read-only :class:`pyarrow.fs.FileSystemHandler` over an aiolode Store.

    Wrap it with :func:`store_filesystem` (``pyarrow.fs.PyFileSystem(handler)``).
    Paths are store keys. Random-access files read through a
    :class:`~aiolode.reader.RangeReader` each (page cache, true range
    requests); ``stats`` sums their counters. Paths registered in ``decoded``
    are served whole: fetched with one ``get``, checksum-verified and
    decompressed in pyarrow's thread (JSONL under gzip or zstd).

    Create it on the event loop (it captures the loop's token); pyarrow must
    use it from other threads while that loop runs. Calling it from the event
    loop thread itself raises instead of deadlocking.

    Cost per file: 0 calls to open (sizes known from ``sizes``/``decoded``,
    else one ``head``), then one ``get_range`` per cache-missing run; decoded
    files one ``get``. Listing (``FileSelector``) is one store listing.

    Parameters
    ----------
    store
        The store.
    sizes
        Known object sizes by key (from manifests): saves ``head`` calls.
    decoded
        Virtual paths served decoded (see :class:`DecodedFile`).
    page_size, max_pages, tail_prefetch
        Options of each file's :class:`~aiolode.reader.RangeReader`.

    Raises
    ------
    RuntimeError
        Not created on a running anyio event loop.
    """

    def __init__(
        self,
        store: Store,
        *,
        sizes: Mapping[str, int] | None = None,
        decoded: Mapping[str, DecodedFile] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        tail_prefetch: int = DEFAULT_TAIL_PREFETCH,
    ) -> None:
        super().__init__()
        self._store = store
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()
        self._sizes = dict(sizes or {})
        self._decoded = dict(decoded or {})
        self._opts = {
            "page_size": page_size,
            "max_pages": max_pages,
            "tail_prefetch": tail_prefetch,
        }
        self._lock = threading.Lock()
        self._errors: dict[str, AiolodeError] = {}
        self._done = RangeStats()
        # One reader per key, shared by every open of it, so the footer pyarrow
        # reads to inspect a schema is still cached when it scans the file.
        self._readers: OrderedDict[str, RangeReader] = OrderedDict()

    # ------------------------------------------------------------------ plumbing
    def _fail(self, path: str, err: AiolodeError) -> NoReturn:
        """Remember why ``path`` failed (for :meth:`error`) and raise it as pyarrow wants."""
        with self._lock:
            self._errors[path] = err
        if isinstance(err, ObjectNotFoundError):
            raise FileNotFoundError(str(err)) from err
        # pyarrow maps OSError to an IOError status and keeps the message.
        raise OSError(f"{type(err).__name__}: {err}") from err

    def error(self, path: str) -> AiolodeError | None:
        """The aiolode error behind the last failure on ``path``, if any.

        pyarrow turns the handler's errors into its own; the Arrow bridge asks
        here what really happened (a missing object, a transient store error,
        a short object) to raise the right aiolode error.
        """
        with self._lock:
            return self._errors.get(path.strip("/"))

    def _call_for(self, path: str, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        try:
            return self._call(fn, *args)
        except (FileNotFoundError, OSError) as exc:
            cause = exc.__cause__
            if isinstance(cause, AiolodeError):
                self._fail(path, cause)
            raise

    def _call(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "an aiolode store filesystem was used on its event loop's thread; run pyarrow "
                "scans in a worker thread (anyio.to_thread.run_sync) so the loop stays free"
            )
        try:
            return anyio.from_thread.run(fn, *args, token=self._token)
        except ObjectNotFoundError as exc:
            raise FileNotFoundError(str(exc)) from exc
        except AiolodeError as exc:
            # pyarrow maps OSError to an IOError status and keeps the message.
            raise OSError(f"{type(exc).__name__}: {exc}") from exc

    def _reader(self, path: str) -> RangeReader:
        with self._lock:
            reader = self._readers.get(path)
            if reader is None:
                reader = RangeReader(self._store, path, size=self._sizes.get(path), **self._opts)
                self._readers[path] = reader
                while len(self._readers) > _MAX_READERS:
                    _, old = self._readers.popitem(last=False)
                    self._done = self._done + old.statistics()
            self._readers.move_to_end(path)
            return reader

    def statistics(self) -> RangeStats:
        """Range-request counters summed over every file opened so far (no I/O)."""
        with self._lock:
            total = self._done
            for r in self._readers.values():
                total = total + r.statistics()
            return total

    @property
    def store(self) -> Store:
        """The store."""
        return self._store

    # ------------------------------------------------------------ handler methods
    def __eq__(self, other: object) -> bool:
        return other is self

    def __ne__(self, other: object) -> bool:
        return other is not self

    def __hash__(self) -> int:
        return id(self)

    def get_type_name(self) -> str:
        return f"aiolode+{self._store.name}"

    def normalize_path(self, path: str) -> str:
        return path.strip("/")

    def _info(self, path: str) -> Any:
        path = path.strip("/")
        size = self._sizes.get(path)
        if path in self._decoded:
            return pafs.FileInfo(path, pafs.FileType.File)
        if size is not None:
            return pafs.FileInfo(path, pafs.FileType.File, size=size)
        try:
            info = self._call_for(path, self._store.head, path)
        except FileNotFoundError:
            return pafs.FileInfo(path, pafs.FileType.NotFound)
        return pafs.FileInfo(path, pafs.FileType.File, size=info.size)

    def get_file_info(self, paths: str | list[str]) -> list[Any]:
        return [self._info(p) for p in ([paths] if isinstance(paths, str) else paths)]

    def get_file_info_selector(self, selector: Any) -> list[Any]:
        base = selector.base_dir.strip("/")
        prefix = f"{base}/" if base else ""

        async def collect() -> list[Any]:
            out: list[Any] = []
            async with aclosing(self._store.list(prefix)) as it:
                async for info in it:
                    rest = info.key[len(prefix) :]
                    if not selector.recursive and "/" in rest:
                        continue
                    out.append(pafs.FileInfo(info.key, pafs.FileType.File, size=info.size))
            return out

        return self._call(collect)  # type: ignore[no-any-return]

    def _open_decoded(self, path: str, d: DecodedFile) -> Any:
        data: bytes = self._call_for(path, self._store.get, d.ref.key)
        try:
            # pyarrow's thread: hashing here never blocks the event loop.
            v = StreamVerifier.of(d.ref, snapshot_id=d.snapshot_id)
            v.update(data)
            v.check()
            if d.compressor is not None:
                data = d.compressor.decompress(data)
        except AiolodeError as exc:
            if exc.key is None:
                exc.key = d.ref.key
            self._fail(path, exc)
        return pa.BufferReader(data)

    def open_input_file(self, path: str) -> Any:
        path = path.strip("/")
        d = self._decoded.get(path)
        if d is not None:
            return self._open_decoded(path, d)
        reader = self._reader(path)
        size = self._call_for(path, reader.size)
        handle: Any = _SyncRangeFile(self, reader, int(size), path)
        return pa.PythonFile(handle, mode="r")

    def open_input_stream(self, path: str) -> Any:
        return self.open_input_file(path)


class BufferFragmentsHandler(_ReadOnlyHandler):
    """The (unused) filesystem of a dataset whose fragments are in-memory buffers.

    pyarrow's ``FileSystemDataset`` must name a filesystem even when every
    fragment reads a buffer; this one refuses every call with
    ``NotImplementedError``, so nothing can quietly read from somewhere else.
    """

    _REFUSAL = "this dataset reads in-memory buffers; its filesystem holds no files"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BufferFragmentsHandler)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, BufferFragmentsHandler)

    def __hash__(self) -> int:
        return hash(BufferFragmentsHandler)

    def get_type_name(self) -> str:
        return "aiolode+buffers"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: str | list[str]) -> list[Any]:
        self._refuse()

    def get_file_info_selector(self, selector: Any) -> list[Any]:
        self._refuse()

    def open_input_stream(self, path: str) -> Any:
        self._refuse()

    def open_input_file(self, path: str) -> Any:
        self._refuse()


def store_filesystem(store: Store, **options: Any) -> Any:
    """``pyarrow.fs.PyFileSystem`` over a :class:`StoreFileSystemHandler`.

    Call it on the event loop; use the filesystem from worker threads.
    ``options`` are the handler's keyword arguments.

    Raises
    ------
    RuntimeError
        Not called on a running anyio event loop.
    """
    return pafs.PyFileSystem(StoreFileSystemHandler(store, **options))
