"""The Arrow bridge: committed data files as a ``pyarrow.dataset.Dataset``.

Where pyarrow reads from:

- :class:`~aiolode.FileStore`: the files themselves (``LocalFileSystem``);
- :class:`~aiolode.S3Store` with its own client: ``pyarrow.fs.S3FileSystem``
  with the store's bucket, prefix, endpoint, region and credentials (resolved
  the way the store's botocore client resolves them);
- a :class:`~aiolode.MemoryStore` (or a wrapper of one), or
  ``filesystem="memory"``: each file fetched whole (checksum verified,
  decompressed) into a pyarrow buffer; pyarrow never calls back into Python;
- any other store (an S3Store over a caller's client, custom adapters), or
  ``filesystem="store"``: a :class:`~aiolode.reader._fs.StoreFileSystemHandler`
  calling back into the event loop (lazy range reads; see the warning in
  :func:`arrow_dataset` about ``Scanner.to_reader()``);
- JSONL on a non-native store, and zstd JSONL anywhere: decoded by aiolode
  into an in-memory table (pyarrow's JSON reader cannot undo zstd).

Checksums: pyarrow reads uncompressed files directly, bypassing aiolode's
verify-on-read; pass ``verify=True`` for a verification pass first.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio.to_thread

from .._concurrency import bounded_map
from ..errors import InvalidInputError, UnsupportedOperationError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..manifest import DataFile
    from ..store import Store

__all__ = ["arrow_dataset", "arrow_filesystem"]

_VERIFY_CONCURRENCY = 8
_FILESYSTEMS = ("auto", "native", "store", "memory")


async def _native_filesystem(store: Store) -> tuple[Any, Callable[[str], str]] | None:
    """pyarrow's own filesystem for ``store`` and a key -> path function, if any."""
    from ..store import FileStore, S3Store

    if isinstance(store, FileStore):
        await store.aopen()  # resolves the root (realpath) off the loop

        def local() -> Any:
            import pyarrow.fs as pafs

            return pafs.LocalFileSystem()

        lfs = await anyio.to_thread.run_sync(local)
        root = await anyio.to_thread.run_sync(os.path.abspath, store.root)
        return lfs, lambda key: f"{root}/{key}"
    if isinstance(store, S3Store):
        if getattr(store, "_client", None) is not None:
            # A caller's client: its credentials are its own business (and an
            # aiobotocore client only yields them asynchronously).
            return None
        fs = await anyio.to_thread.run_sync(_s3_filesystem, store)
        base = f"{store.bucket}/{store.prefix}/" if store.prefix else f"{store.bucket}/"
        return fs, lambda key: base + key
    return None


def _memory_backed(store: Store) -> bool:
    """Whether ``store`` (through any wrappers) keeps its objects in memory."""
    from ..store import MemoryStore

    for _ in range(64):  # wrappers of wrappers, but never loop on a cycle
        if isinstance(store, MemoryStore):
            return True
        inner = getattr(store, "inner", None)
        if inner is None:
            return False
        store = inner
    return False


def _buffer_filesystem() -> Any:
    """The filesystem of a dataset whose fragments read in-memory buffers.

    pyarrow requires one but never uses it for buffer fragments; it refuses
    every call, so nothing can silently read from elsewhere.
    """
    import pyarrow.fs as pafs

    from ._fs import BufferFragmentsHandler

    return pafs.PyFileSystem(BufferFragmentsHandler())


def _s3_filesystem(store: Any) -> Any:
    """Blocking (reads credentials and config files): run in a worker thread."""
    import pyarrow.fs as pafs

    session = getattr(store, "_session", None)
    endpoint: str | None = getattr(store, "_endpoint_url", None)
    region: str | None = getattr(store, "_region_name", None)
    if session is None:
        import botocore.session

        bsess: Any = botocore.session.get_session()
        creds = bsess.get_credentials()
        region = region or bsess.get_config_variable("region")
    else:
        creds = session.get_credentials()
        region = region or getattr(session, "region_name", None)
    kwargs: dict[str, Any] = {"region": region or "us-east-1"}
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        kwargs.update(
            access_key=frozen.access_key, secret_key=frozen.secret_key, session_token=frozen.token
        )
    if endpoint:
        parts = urlsplit(endpoint)
        kwargs.update(endpoint_override=parts.netloc + parts.path.rstrip("/"), scheme=parts.scheme)
    return pafs.S3FileSystem(**kwargs)


async def arrow_filesystem(
    store: Store, *, native: bool = True
) -> tuple[Any, Callable[[str], str]]:
    """A pyarrow filesystem reading ``store`` and a function mapping keys to its paths.

    ``native=True`` picks pyarrow's own filesystem where there is one
    (``LocalFileSystem`` for a FileStore, ``S3FileSystem`` for an S3Store with
    its own client); otherwise, and for every other store, a
    ``PyFileSystem`` over the store (usable from worker threads while this
    event loop runs). Cost: no store calls (S3: credentials are resolved in a
    worker thread).

    Raises
    ------
    ImportError
        pyarrow is not installed.
    """
    if native:
        found = await _native_filesystem(store)
        if found is not None:
            return found
    from ._fs import store_filesystem

    return store_filesystem(store), lambda key: key


def _format(codec: str) -> Any:
    import pyarrow.dataset as pads

    if codec == "jsonl":
        return pads.JsonFileFormat()
    if codec == "parquet":
        return pads.ParquetFileFormat()
    if codec == "arrow":
        return pads.IpcFileFormat()
    raise UnsupportedOperationError(f"codec {codec!r} has no pyarrow dataset format")


def _partition_expr(schema: Any, partition: dict[str, str]) -> Any:
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


def _conform(table: Any, schema: Any) -> Any:
    """``table`` with exactly ``schema``'s columns (missing ones null), cast."""
    import pyarrow as pa

    cols = [
        table.column(f.name).cast(f.type)
        if table.schema.get_field_index(f.name) >= 0
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _build(
    groups: list[tuple[Any, Any, list[Any], list[dict[str, str]]]],
    tables: list[Any],
    schema: Any,
    partition_keys: list[str],
) -> Any:
    """Blocking: inspect schemas (reads footers / first blocks) and build the dataset.

    Each group is (format, filesystem, paths, partition values); a ``None``
    filesystem means the "paths" are in-memory pyarrow buffers.
    """
    import pyarrow as pa
    import pyarrow.dataset as pads

    if schema is None:
        schemas = [
            _json_strings(fmt.inspect(p, fs))
            if isinstance(fmt, pads.JsonFileFormat)
            else fmt.inspect(p, fs)
            for fmt, fs, paths, _ in groups
            for p in paths
        ]
        schemas += [t.schema for t in tables]
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
        if schema is None:
            schema = pa.schema([])
        for k in partition_keys:
            if schema.get_field_index(k) < 0:
                schema = schema.append(pa.field(k, pa.string()))
    parts: list[Any] = []
    for fmt, fs, paths, pvs in groups:
        exprs = [_partition_expr(schema, pv) for pv in pvs]
        if fs is None:  # in-memory buffers: one fragment each
            frags = [
                fmt.make_fragment(buf, partition_expression=e)
                for buf, e in zip(paths, exprs, strict=True)
            ]
            parts.append(
                pads.FileSystemDataset(
                    frags, schema=schema, format=fmt, filesystem=_buffer_filesystem()
                )
            )
        else:
            parts.append(
                pads.FileSystemDataset.from_paths(
                    paths, schema=schema, format=fmt, filesystem=fs, partitions=exprs
                )
            )
    if tables:
        mem: Any = pads.InMemoryDataset
        parts.append(mem([_conform(t, schema) for t in tables], schema=schema))
    if not parts:
        return pads.dataset([], schema=schema)
    if len(parts) == 1:
        return parts[0]
    return pads.dataset(parts)


def _virtual_path(f: DataFile) -> str:
    """Where the handler serves a compressed file decoded: the key without its
    compression suffix, so pyarrow never tries to decompress it again."""
    from ..compression import compressor_from_name

    comp = compressor_from_name(f.compressor, f.compressor_options)
    ext = comp.extension if comp is not None else ""
    return f.key[: -len(ext)] if ext and f.key.endswith(ext) else f"{f.key}.decoded"


async def _verify_all(store: Store, files: Sequence[DataFile]) -> None:
    from contextlib import aclosing

    from ..checksum import StreamVerifier

    async def one(f: DataFile) -> None:
        v = StreamVerifier(key=f.key, size=f.size, checksum=f.checksum)
        async with aclosing(store.iter_bytes(f.key)) as it:
            async for chunk in it:
                await v.aupdate(chunk)
        v.check()

    await bounded_map(one, [f for f in files if f.checksum is not None], limit=_VERIFY_CONCURRENCY)


async def arrow_dataset(
    store: Store,
    files: Sequence[DataFile],
    *,
    schema: Any = None,
    filesystem: str = "auto",
    verify: bool = False,
) -> Any:
    """A ``pyarrow.dataset.Dataset`` over committed data files.

    One fragment per file, each with its partition values as its
    ``partition_expression`` (typed like the column), so filters on partition
    columns skip whole files. Partition columns are also stored in the files
    (aiolode keeps them in the records); a key missing from the files is added
    as a string column. Files of several codecs become a union dataset.

    Parameters
    ----------
    store
        Where the files live.
    files
        From :meth:`DatasetReader.files` (or :func:`files_of`).
    schema
        The dataset schema; ``None`` infers it by inspecting **every** file and
        unifying (Parquet: its footer; JSONL: its first block), which costs
        reads. Pass one to skip inspection.
    filesystem
        ``"auto"``: pyarrow's own filesystem where possible (files on disk,
        S3); in-memory buffers for a store that keeps its objects in memory
        (a :class:`~aiolode.MemoryStore`, also wrapped); the store filesystem
        otherwise. ``"native"``: pyarrow's own filesystem, refusing other
        stores. ``"memory"``: fetch every selected file whole (one ``get``
        each, checksum verified, decompressed) into pyarrow buffers, on any
        store: memory grows with the selected files, but pyarrow never calls
        back into Python. ``"store"``: read lazily through the store (range
        requests with a page cache, counted by ``dataset.filesystem.handler.stats``).
    verify
        Read every file pyarrow will read directly once through the store and
        check its recorded checksum first (those bypass aiolode's
        verify-on-read). Files aiolode decodes itself (JSONL not read natively,
        anything compressed read through the store) are always verified.

    Cost: store calls: none to build with ``schema`` given, except one
    ``get`` per file loaded into memory (the ``"memory"`` route) and per JSONL
    file decoded eagerly (plus the verification pass: one
    streamed read per checksummed file pyarrow reads directly); inspection
    reads each file's footer or first block. Scanning reads through pyarrow:
    with the store filesystem, one ``get_range`` per cache-missing run, or one
    ``get`` per compressed file. Memory: the fragment list; scans are pyarrow's.

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
    UnsupportedOperationError
        A raw (codec-less) file, or ``filesystem="native"`` on a store pyarrow
        cannot read directly.
    InvalidInputError
        Bad ``filesystem``.
    ChecksumMismatchError
        A file aiolode reads itself (``verify=True``, the ``"memory"`` route,
        JSONL decoded eagerly) does not match its manifest.
    ObjectNotFoundError
        A data file aiolode reads itself (as above) is missing.
    """
    if filesystem not in _FILESYSTEMS:
        raise InvalidInputError(f"filesystem must be one of {_FILESYSTEMS}, not {filesystem!r}")
    for f in files:
        if f.codec is None:
            raise UnsupportedOperationError(
                f"data file {f.key!r} is a raw blob (no codec): it has no records for Arrow",
                key=f.key,
                snapshot_id=f.snapshot_id,
            )
    from ..compression import compressor_from_name

    native = None
    if filesystem in ("auto", "native"):
        native = await _native_filesystem(store)
        if native is None and filesystem == "native":
            raise UnsupportedOperationError(
                f"pyarrow has no filesystem for {store!r}; use filesystem='auto', "
                "'memory' or 'store'"
            )
    in_memory = filesystem == "memory" or (
        filesystem == "auto" and native is None and _memory_backed(store)
    )
    eager: list[DataFile] = []
    direct: list[DataFile] = []
    loaded: list[DataFile] = []
    through: list[DataFile] = []
    for f in files:
        if f.codec == "jsonl" and (native is None or f.compressor not in (None, "gzip")):
            # pyarrow's JSON scanner holds the GIL while it waits for its first
            # read (Scanner.to_reader, used by DuckDB), so it deadlocks on any
            # filesystem written in Python; and it cannot undo zstd. Decode
            # these files here instead.
            eager.append(f)
        elif native is not None and (f.compressor is None or f.codec == "jsonl"):
            direct.append(f)  # pyarrow undoes gzip itself (by the .gz suffix)
        elif in_memory:
            loaded.append(f)
        else:
            through.append(f)
    if verify:
        await _verify_all(store, direct + [f for f in through if f.compressor is None])
    handler_fs = None
    if through:
        from ._fs import DecodedFile, store_filesystem

        decoded = {
            _virtual_path(f): DecodedFile(
                f.file, compressor_from_name(f.compressor, f.compressor_options)
            )
            for f in through
            if f.compressor is not None
        }
        sizes = {f.key: f.size for f in through if f.compressor is None}
        handler_fs = store_filesystem(store, sizes=sizes, decoded=decoded)
    buffers = await bounded_map(lambda f: _load(store, f), loaded, limit=_VERIFY_CONCURRENCY)
    # (file, route, filesystem, path on it or in-memory buffer): one group per codec and route.
    sources: list[tuple[DataFile, str, Any, Any]] = []
    if native is not None:
        sources += [(f, "native", native[0], native[1](f.key)) for f in direct]
    sources += [
        (f, "store", handler_fs, f.key if f.compressor is None else _virtual_path(f))
        for f in through
    ]
    sources += [(f, "memory", None, buf) for f, buf in zip(loaded, buffers, strict=True)]
    groups: dict[tuple[str, str], tuple[Any, Any, list[Any], list[dict[str, str]]]] = {}
    for f, route, fs, source in sources:
        assert f.codec is not None
        g = groups.get((f.codec, route))
        if g is None:
            g = groups[(f.codec, route)] = (_format(f.codec), fs, [], [])
        g[2].append(source)
        g[3].append(dict(f.partition))
    tables = await bounded_map(lambda f: _decode_jsonl(store, f), eager, limit=_VERIFY_CONCURRENCY)
    partition_keys: list[str] = []
    for f in files:
        partition_keys += [k for k in f.partition if k not in partition_keys]
    return await anyio.to_thread.run_sync(
        _build, list(groups.values()), tables, schema, partition_keys
    )


async def _load(store: Store, f: DataFile) -> Any:
    """One file whole as a pyarrow buffer: one ``get``, verified, decompressed.

    No copy for a MemoryStore's (immutable) bytes.
    """
    import pyarrow as pa

    from ..compression import compressor_from_name
    from ..dataset._read import read_file

    data = await read_file(store, f.file, compressor_from_name(f.compressor, f.compressor_options))
    return pa.py_buffer(data)


async def _decode_jsonl(store: Store, f: DataFile) -> Any:
    """Get, verify, decompress and parse one JSONL file (off the loop)."""
    from ..compression import compressor_from_name
    from ..dataset._read import read_file

    data = await read_file(store, f.file, compressor_from_name(f.compressor, f.compressor_options))

    def parse() -> Any:
        import pyarrow as pa
        import pyarrow.json as pajson

        buf: Any = pa.BufferReader(data)
        table = pajson.read_json(buf)
        schema = _json_strings(table.schema)
        if schema.equals(table.schema):
            return table
        buf = pa.BufferReader(data)
        return pajson.read_json(buf, parse_options=pajson.ParseOptions(explicit_schema=schema))

    return await anyio.to_thread.run_sync(parse)
