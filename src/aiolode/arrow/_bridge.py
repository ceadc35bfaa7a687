"""The Arrow bridge: committed data files as a ``pyarrow.dataset.Dataset``.

Routing is a typed :class:`Plan`: every file gets one :class:`Route`, decided
from the store's capabilities (never its concrete class):

- ``NATIVE``: pyarrow reads the file itself, on the filesystem
  ``await store.arrow_filesystem()`` offers (files on disk, S3);
- ``STORE``: pyarrow reads through the store (a Python filesystem calling back
  into the event loop: lazy range requests); compressed files are fetched,
  checked and decompressed whole when opened;
- ``MEMORY``: aiolode fetches the file whole (one ``get``, checked,
  decompressed) into a pyarrow buffer; pyarrow never calls back into Python.
  The default when ``store.objects_in_memory`` says ``get`` is a memory copy;
- ``EAGER``: JSON Lines that pyarrow cannot scan safely from a Python
  filesystem (its JSON scanner holds the GIL while waiting for its first read)
  or cannot decompress (zstd): decoded by aiolode into an in-memory table.

Integrity: every file is checked against its manifest while the dataset is
built, with or without a checksum:

=========  =========================================  ===================================
route      size                                       row count
=========  =========================================  ===================================
MEMORY     every byte counted (and the digest, if     Parquet footer; Arrow IPC batches
           recorded)
EAGER      every byte counted (and the digest)        the decoded table
NATIVE     Parquet / Arrow IPC: read with the         Parquet footer (read once)
           recorded size (``file_size=``): a shorter
           or replaced file fails its footer read;
           JSONL: one ``head`` per file
STORE      the recorded size, and a short object      Parquet footer
           fails any read that reaches its end
=========  =========================================  ===================================

Without a checksum, what is not detected: bytes changed in place without
changing the length (and, for Arrow IPC and JSONL read in place, the row
count); a file that grew past its recorded size is read up to that size only,
which is the data as written. ``verify=True`` reads every file read in place
once through the store and checks size and digest first.
"""

from __future__ import annotations

import enum
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, final

import anyio.to_thread
import attrs

from .._concurrency import bounded_map
from .._validate import safe_repr
from ..checksum import StreamVerifier
from ..codecs._deps import require_pyarrow
from ..compression import compressor_from_name
from ..errors import (
    AiolodeError,
    CorruptDataError,
    InvalidInputError,
    ObjectNotFoundError,
    SchemaViolationError,
    UnsupportedOperationError,
)
from ..manifest import DataFile
from ..store import ArrowFilesystem

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..compression import Compressor
    from ..store import Store

__all__ = ["Plan", "Planned", "Route", "arrow_dataset", "arrow_filesystem", "plan"]

_CONCURRENCY = 8
_FILESYSTEMS = ("auto", "native", "store", "memory")


class Route(enum.Enum):
    """How pyarrow gets at one file (see the module docstring)."""

    NATIVE = "native"
    STORE = "store"
    MEMORY = "memory"
    EAGER = "eager"


@final
@attrs.frozen
class Planned:
    """One file and its route."""

    file: DataFile
    route: Route


@final
@attrs.frozen
class Plan:
    """Where every file of an Arrow dataset is read from.

    Attributes
    ----------
    native
        The store's own pyarrow filesystem, if it has one (and it was allowed).
    items
        Every file with its route, in the order given.
    """

    native: ArrowFilesystem | None
    items: tuple[Planned, ...]

    def files(self, route: Route) -> list[DataFile]:
        """The files taking ``route``, in order."""
        return [p.file for p in self.items if p.route is route]


def plan(
    files: Sequence[DataFile],
    *,
    native: ArrowFilesystem | None,
    filesystem: str,
    objects_in_memory: bool,
) -> Plan:
    """Decide every file's route (pure: no I/O).

    ``filesystem`` is :func:`arrow_dataset`'s argument; ``native`` what the
    store offers (``None`` when it offers nothing or ``filesystem`` forbids it).
    """
    in_memory = filesystem == "memory" or (
        filesystem == "auto" and native is None and objects_in_memory
    )
    items = []
    for f in files:
        if f.codec == "jsonl" and (native is None or f.compressor not in (None, "gzip")):
            # pyarrow's JSON scanner holds the GIL while it waits for its first
            # read (Scanner.to_reader, used by DuckDB), so it deadlocks on any
            # filesystem written in Python; and it cannot undo zstd.
            route = Route.EAGER
        elif native is not None and (f.compressor is None or f.codec == "jsonl"):
            route = Route.NATIVE  # pyarrow undoes gzip itself (by the .gz suffix)
        elif in_memory:
            route = Route.MEMORY
        else:
            route = Route.STORE
        items.append(Planned(file=f, route=route))
    return Plan(native=native, items=tuple(items))


async def arrow_filesystem(store: Store, *, native: bool = True) -> ArrowFilesystem:
    """A pyarrow filesystem reading ``store``, and how keys map to its paths.

    ``native=True`` takes the store's own (``await store.arrow_filesystem()``:
    ``LocalFileSystem`` for files on disk, ``S3FileSystem`` …) where it has
    one; otherwise, and for every other store, a ``PyFileSystem`` over the
    store (usable from worker threads while this event loop runs), whose
    paths are the keys. Cost: no store calls.

    Raises
    ------
    MissingDependencyError
        pyarrow is not installed.
    """
    require_pyarrow("the Arrow bridge")
    if native:
        found = await store.arrow_filesystem()
        if found is not None:
            return found
    from ._fs import store_filesystem

    return ArrowFilesystem(filesystem=store_filesystem(store), path=_same)


def _same(key: str) -> str:
    return key


# ------------------------------------------------------------------ building
def _format(codec: str) -> Any:
    import pyarrow.dataset as pads

    if codec == "jsonl":
        return pads.JsonFileFormat()
    if codec == "parquet":
        return pads.ParquetFileFormat()
    if codec == "arrow":
        return pads.IpcFileFormat()
    raise UnsupportedOperationError(f"codec {codec!r} has no pyarrow dataset format")


@attrs.define
class _Source:
    """One file as pyarrow will open it: a path on ``filesystem``, or a buffer."""

    file: DataFile
    route: Route
    source: Any
    filesystem: Any  # None: ``source`` is an in-memory buffer
    file_size: int | None = None


@attrs.define
class _Group:
    """Files of one codec on one filesystem: one pyarrow ``FileSystemDataset``."""

    codec: str
    route: Route
    filesystem: Any
    sources: list[_Source] = attrs.field(factory=list)


def _partition_expr(schema: Any, partition: Mapping[str, str]) -> Any:
    """``field == value`` for each partition key, typed like the dataset's column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    expr = None
    for k, v in partition.items():
        typ = schema.field(k).type
        try:
            value = pa.scalar(v).cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            # The column's type cannot hold the path text (e.g. a float written
            # as repr): skip this key's pruning; rows still carry the true value.
            continue
        term = pc.field(k) == value
        expr = term if expr is None else expr & term
    return pc.scalar(True) if expr is None else expr


def _json_strings(schema: Any) -> Any:
    """``schema`` with pyarrow's inferred JSON timestamps turned back into strings.

    JSON has no timestamp type: aiolode's JSONL codec writes datetimes as ISO
    strings and the Dataset API reads strings back, so the Arrow view does the
    same (pass ``schema=`` to read them as timestamps).
    """
    import pyarrow as pa

    for i, f in enumerate(schema):
        if pa.types.is_timestamp(f.type):
            schema = schema.set(i, f.with_type(pa.string()))
    return schema


def _conform(table: Any, schema: Any, given: bool, f: DataFile) -> Any:
    """``table`` with exactly ``schema``'s columns (missing ones null), cast."""
    import pyarrow as pa

    try:
        cols = [
            table.column(fd.name).cast(fd.type)
            if table.schema.get_field_index(fd.name) >= 0
            else pa.nulls(table.num_rows, fd.type)
            for fd in schema
        ]
        return pa.Table.from_arrays(cols, schema=schema)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        cls = SchemaViolationError if given else CorruptDataError
        raise cls(
            f"data file {f.key!r} does not fit the dataset schema: {exc}",
            key=f.key,
            snapshot_id=f.snapshot_id,
        ) from exc


def _damaged(s: _Source, exc: BaseException, handler: Any) -> AiolodeError:
    """The aiolode error behind pyarrow's failure to read one file."""
    f = s.file
    err: AiolodeError | None = None
    if handler is not None and s.route is Route.STORE:
        err = handler.error(s.source)
    cur: BaseException | None = exc
    while err is None and cur is not None:
        if isinstance(cur, AiolodeError):
            err = cur
        cur = cur.__cause__ or cur.__context__
    if err is None:
        if isinstance(exc, FileNotFoundError):
            err = ObjectNotFoundError(f"data file {f.key!r} is missing: {exc}")
        else:
            err = CorruptDataError(
                f"data file {f.key!r} cannot be read as {f.codec} "
                f"(size recorded: {f.size} bytes): {exc}",
                format=f.codec,
            )
    if err.key is None:
        err.key = f.key
    if err.snapshot_id is None:
        err.snapshot_id = f.snapshot_id
    return err


def _check_rows(f: DataFile, got: int) -> None:
    if f.row_count is not None and got != f.row_count:
        raise CorruptDataError(
            f"data file {f.key!r} holds {got} records; its manifest records {f.row_count}",
            key=f.key,
            snapshot_id=f.snapshot_id,
            format=f.codec,
        )


def _probe(s: _Source, fmt: Any, handler: Any) -> Any:
    """Read one file's footer/first block: its schema, after checking what can
    be checked cheaply (see the module docstring). Blocking."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    f = s.file
    try:
        if s.filesystem is None:
            frag = fmt.make_fragment(s.source)
        else:
            frag = fmt.make_fragment(s.source, s.filesystem, file_size=s.file_size)
        if isinstance(fmt, pads.ParquetFileFormat):
            frag.ensure_complete_metadata()
            _check_rows(f, frag.metadata.num_rows)
            return frag.physical_schema
        if isinstance(fmt, pads.IpcFileFormat):
            schema = frag.physical_schema  # reads the footer, at the recorded size
            if s.filesystem is None:
                with pa.ipc.open_file(s.source) as reader:
                    rows = sum(
                        reader.get_batch(i).num_rows for i in range(reader.num_record_batches)
                    )
                _check_rows(f, rows)
            return schema
        return _json_strings(frag.physical_schema)
    except AiolodeError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise _damaged(s, exc, handler) from exc


def _build(
    groups: list[_Group],
    tables: list[tuple[DataFile, Any]],
    schema: Any,
    partition_keys: list[str],
    handler: Any,
) -> Any:
    """Blocking: check and inspect every file, unify schemas, build the dataset."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    given = schema is not None
    formats = {g.codec: _format(g.codec) for g in groups}
    schemas = [(s.file, _probe(s, formats[g.codec], handler)) for g in groups for s in g.sources]
    if schema is None:
        schemas += [(f, t.schema) for f, t in tables]
        try:
            schema = (
                pa.unify_schemas([sc for _, sc in schemas], promote_options="permissive")
                if schemas
                else pa.schema([])
            )
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise CorruptDataError(
                f"the data files do not form one table ({exc}); pass schema= to read them "
                "as one type"
            ) from exc
        for k in partition_keys:
            if schema.get_field_index(k) < 0:
                schema = schema.append(pa.field(k, pa.string()))
    parts: list[Any] = []
    for g in groups:
        fmt = formats[g.codec]
        frags = []
        for s in g.sources:
            expr = _partition_expr(schema, s.file.partition)
            if s.filesystem is None:
                frags.append(fmt.make_fragment(s.source, partition_expression=expr))
            else:
                frags.append(
                    fmt.make_fragment(
                        s.source, s.filesystem, partition_expression=expr, file_size=s.file_size
                    )
                )
        fs = g.filesystem if g.filesystem is not None else _buffer_filesystem()
        parts.append(pads.FileSystemDataset(frags, schema=schema, format=fmt, filesystem=fs))
    if tables:
        mem: Any = pads.InMemoryDataset
        parts.append(mem([_conform(t, schema, given, f) for f, t in tables], schema=schema))
    if not parts:
        return pads.dataset([], schema=schema)
    if len(parts) == 1:
        return parts[0]
    return pads.dataset(parts)


def _buffer_filesystem() -> Any:
    """The filesystem of a dataset whose fragments read in-memory buffers.

    pyarrow requires one but never uses it for buffer fragments; it refuses
    every call, so nothing can silently read from elsewhere.
    """
    import pyarrow.fs as pafs

    from ._fs import BufferFragmentsHandler

    return pafs.PyFileSystem(BufferFragmentsHandler())


def _compressor(f: DataFile) -> Compressor | None:
    return compressor_from_name(f.compressor, f.compressor_options)


def _virtual_path(f: DataFile) -> str:
    """Where the handler serves a compressed file decoded: the key without its
    compression suffix, so pyarrow never tries to decompress it again."""
    comp = _compressor(f)
    ext = comp.extension if comp is not None else ""
    return f.key[: -len(ext)] if ext and f.key.endswith(ext) else f"{f.key}.decoded"


# ------------------------------------------------------------------ fetching
async def _read_whole(store: Store, f: DataFile) -> bytes:
    """One file: one ``get``, size and digest checked, decompressed (off the loop)."""
    try:
        data = await store.get(f.key)
        v = StreamVerifier.of(f, snapshot_id=f.snapshot_id)
        await v.aupdate(data)
        v.check()
        comp = _compressor(f)
        if comp is not None:
            data = await anyio.to_thread.run_sync(comp.decompress, data)
    except AiolodeError as exc:
        if exc.key is None:
            exc.key = f.key
        if exc.snapshot_id is None:
            exc.snapshot_id = f.snapshot_id
        raise
    return data


async def _verify(store: Store, f: DataFile) -> None:
    """Stream one file through a StreamVerifier (size and digest)."""
    v = StreamVerifier.of(f, snapshot_id=f.snapshot_id)
    try:
        async with aclosing(store.iter_bytes(f.key)) as chunks:
            async for chunk in chunks:
                await v.aupdate(chunk)
        v.check()
    except AiolodeError as exc:
        if exc.key is None:
            exc.key = f.key
        if exc.snapshot_id is None:
            exc.snapshot_id = f.snapshot_id
        raise


async def _check_size(store: Store, f: DataFile) -> None:
    """One ``head``: the stored size is the recorded one."""
    try:
        info = await store.head(f.key)
    except AiolodeError as exc:
        if exc.key is None:
            exc.key = f.key
        exc.snapshot_id = exc.snapshot_id or f.snapshot_id
        raise
    if info.size != f.size:
        raise CorruptDataError(
            f"object {f.key!r} has {info.size} bytes; its manifest records {f.size}",
            key=f.key,
            snapshot_id=f.snapshot_id,
        )


async def _decode_jsonl(store: Store, f: DataFile) -> tuple[DataFile, Any]:
    """Get, check, decompress and parse one JSONL file (off the loop)."""
    data = await _read_whole(store, f)

    def parse() -> Any:
        import pyarrow as pa
        import pyarrow.json as pajson

        try:
            buf: Any = pa.BufferReader(data)
            table = pajson.read_json(buf)
            schema = _json_strings(table.schema)
            if not schema.equals(table.schema):
                opts = pajson.ParseOptions(explicit_schema=schema)
                buf = pa.BufferReader(data)
                table = pajson.read_json(buf, parse_options=opts)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise CorruptDataError(
                f"data file {f.key!r} cannot be read as JSON Lines by pyarrow: {exc}",
                key=f.key,
                snapshot_id=f.snapshot_id,
                format="jsonl",
            ) from exc
        _check_rows(f, table.num_rows)
        return table

    return f, await anyio.to_thread.run_sync(parse)


async def arrow_dataset(
    store: Store,
    files: Sequence[DataFile],
    *,
    schema: Any = None,
    filesystem: str = "auto",
    verify: bool = False,
) -> Any:
    """A ``pyarrow.dataset.Dataset`` over committed data files, each checked.

    One fragment per file, each with its partition values as its
    ``partition_expression`` (typed like the column), so filters on partition
    columns skip whole files. Partition columns are also stored in the files
    (aiolode keeps them in the records); a key missing from the files is added
    as a string column. Files of several codecs become a union dataset. Every
    file is checked against its manifest while the dataset is built (size and
    row count as the module docstring's table says; digests on the routes
    that read whole files, and everywhere with ``verify=True``): a damaged or
    missing file raises an aiolode error here, not a pyarrow error later.

    Parameters
    ----------
    store
        Where the files live.
    files
        From :meth:`DatasetReader.files` (or :meth:`Dataset.files`).
    schema
        The dataset schema (a ``pyarrow.Schema``); ``None`` unifies the files'
        own schemas.
    filesystem
        ``"auto"``: the store's own pyarrow filesystem where it offers one
        (:meth:`~aiolode.Store.arrow_filesystem`), in-memory buffers when
        :attr:`~aiolode.Store.objects_in_memory`, the store filesystem
        otherwise. ``"native"``: the store's own, refusing stores without one.
        ``"memory"``: fetch every selected file whole (one ``get`` each,
        checked, decompressed) into pyarrow buffers, on any store: memory grows
        with the files, but pyarrow never calls back into Python. ``"store"``:
        read lazily through the store (range requests with a page cache,
        counted by ``dataset.filesystem.handler.statistics()``).
    verify
        Read every file pyarrow reads in place once through the store first,
        checking its size and recorded digest. Files aiolode reads whole
        (``MEMORY`` and ``EAGER`` routes, compressed files through the store)
        are always checked.

    Cost: one footer read per Parquet and Arrow IPC file read in place (pyarrow
    keeps Parquet's for the scan; the store filesystem's page cache keeps both)
    and one ``head`` per JSONL file read natively; one ``get`` per file read
    whole; with ``verify=True`` one streamed read per file read in place.
    Scanning reads through pyarrow. Memory: the fragment list, plus the files
    read whole.

    The result reads through the event loop when it uses the store filesystem:
    scan it from a worker thread (``anyio.to_thread.run_sync``) while the loop
    runs. Warning: pyarrow's ``Scanner.to_reader()`` holds the GIL while it
    starts a scan, and a scan over a Python filesystem takes a lock of
    pyarrow's and then needs the GIL: the two can deadlock (pyarrow 26; DuckDB
    scans datasets this way). The store filesystem is safe with pyarrow's own
    ``to_table``/``to_batches``/``count_rows``/``head`` and Polars; give DuckDB
    a ``"memory"`` or native dataset.

    Raises
    ------
    InvalidInputError
        Bad ``filesystem``, or ``schema`` not a ``pyarrow.Schema``.
    UnsupportedOperationError
        A raw (codec-less) file, or ``filesystem="native"`` on a store pyarrow
        cannot read directly.
    MissingDependencyError
        pyarrow is not installed.
    ObjectNotFoundError
        A data file is missing.
    CorruptDataError
        A data file's size or row count differs from its manifest, it cannot
        be decoded, or the files' schemas do not unify (pass ``schema=``).
    ChecksumMismatchError
        A file read whole (or any file, with ``verify=True``) does not match
        its recorded digest.
    SchemaViolationError
        A JSONL file decoded by aiolode does not fit the given ``schema``.
    StorageError
        The store failed.
    """
    if filesystem not in _FILESYSTEMS:
        raise InvalidInputError(
            f"filesystem must be one of {_FILESYSTEMS}, not {safe_repr(filesystem)}"
        )
    require_pyarrow("the Arrow bridge")
    import pyarrow as pa

    if schema is not None and not isinstance(schema, pa.Schema):
        raise InvalidInputError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
    for f in files:
        if f.codec is None:
            raise UnsupportedOperationError(
                f"data file {f.key!r} is a raw blob (no codec): it has no records for Arrow",
                key=f.key,
                snapshot_id=f.snapshot_id,
            )
    native = None
    if filesystem in ("auto", "native"):
        native = await store.arrow_filesystem()
        if native is None and filesystem == "native":
            raise UnsupportedOperationError(
                f"pyarrow has no filesystem for {store!r}; use filesystem='auto', "
                "'memory' or 'store'"
            )
    routes = plan(
        files, native=native, filesystem=filesystem, objects_in_memory=store.objects_in_memory
    )
    direct = routes.files(Route.NATIVE)
    through = routes.files(Route.STORE)
    if verify:
        await bounded_map(
            lambda f: _verify(store, f),
            direct + [f for f in through if f.compressor is None],
            limit=_CONCURRENCY,
        )
    else:
        await bounded_map(
            lambda f: _check_size(store, f),
            [f for f in direct if f.codec == "jsonl"],
            limit=_CONCURRENCY,
        )
    sources: list[_Source] = []
    if native is not None:
        sources += [
            _Source(f, Route.NATIVE, native.path(f.key), native.filesystem, f.size) for f in direct
        ]
    handler = None
    if through:
        from ._fs import DecodedFile, store_filesystem

        decoded = {
            _virtual_path(f): DecodedFile(f.file, _compressor(f), f.snapshot_id)
            for f in through
            if f.compressor is not None
        }
        sizes = {f.key: f.size for f in through if f.compressor is None}
        handler_fs = store_filesystem(store, sizes=sizes, decoded=decoded)
        handler = handler_fs.handler
        sources += [
            _Source(
                f,
                Route.STORE,
                f.key if f.compressor is None else _virtual_path(f),
                handler_fs,
                f.size if f.compressor is None else None,
            )
            for f in through
        ]
    loaded = routes.files(Route.MEMORY)
    buffers = await bounded_map(lambda f: _read_whole(store, f), loaded, limit=_CONCURRENCY)
    sources += [
        _Source(f, Route.MEMORY, pa.py_buffer(buf), None)
        for f, buf in zip(loaded, buffers, strict=True)
    ]
    groups: dict[tuple[str, Route], _Group] = {}
    for s in sources:
        assert s.file.codec is not None
        g = groups.get((s.file.codec, s.route))
        if g is None:
            g = groups[(s.file.codec, s.route)] = _Group(s.file.codec, s.route, s.filesystem)
        g.sources.append(s)
    tables = await bounded_map(
        lambda f: _decode_jsonl(store, f), routes.files(Route.EAGER), limit=_CONCURRENCY
    )
    partition_keys: list[str] = []
    for f in files:
        partition_keys += [k for k in f.partition if k not in partition_keys]
    return await anyio.to_thread.run_sync(
        _build, list(groups.values()), tables, schema, partition_keys, handler
    )
