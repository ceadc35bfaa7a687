from __future__ import annotations

import errno
import itertools
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from aiolode import (
    FileStore,
    IfMatch,
    InvalidInputError,
    InvalidKeyError,
    MissingDependencyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
)
from aiolode.store import _linux, _posix
from aiolode.store._fs import _map_oserror
from aiolode.store._posix import PosixTree
from aiolode.testing.store_suite import StoreConformance

LOCK_DIR = Path(".aiolode", "locks")


def _physical_files(root: Path) -> set[str]:
    """Every file under root (temp files included), except the lock stripes."""
    out: set[str] = set()
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            rel = Path(dirpath, f).relative_to(root)
            if rel.parent == LOCK_DIR:
                continue  # persistent lock stripes: infrastructure, not data
            out.add(rel.as_posix())
    return out


def _tree(store: FileStore) -> PosixTree:
    assert store._tree is not None, "open the store first"
    return store._tree


def _root(store: FileStore) -> Path:
    return Path(store.root)


class TestFileStore(StoreConformance[FileStore]):
    use_tmpfile = True

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[FileStore]:
        async with FileStore(tmp_path, page_size=self.page_size) as s:
            _tree(s).use_tmpfile = _tree(s).use_tmpfile and self.use_tmpfile
            yield s

    async def raw_get(self, store: FileStore, key: str) -> bytes | None:
        path = _root(store) / key

        def read() -> bytes | None:
            return path.read_bytes() if path.is_file() else None

        return await anyio.to_thread.run_sync(read)

    async def raw_put(self, store: FileStore, key: str, data: bytes) -> None:
        path = _root(store) / key

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        await anyio.to_thread.run_sync(write)

    async def raw_keys(self, store: FileStore) -> set[str]:
        return await anyio.to_thread.run_sync(_physical_files, _root(store))


class TestFileStoreNamedTemps(TestFileStore):
    """The fallback for filesystems without O_TMPFILE: named temp + link."""

    use_tmpfile = False


# ----------------------------------------------------------------- FS-specific
@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FileStore]:
    root = tmp_path / "root"
    root.mkdir()
    async with FileStore(root, page_size=3) as s:
        yield s


def _run(fn: Any, *args: Any) -> Any:
    return anyio.to_thread.run_sync(fn, *args)


async def test_missing_root_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InvalidInputError, match="does not exist"):
        async with FileStore(missing):
            pass
    assert not await _run(missing.exists)
    # Used without `async with`, the first operation reports it the same way.
    with pytest.raises(InvalidInputError):
        await FileStore(missing).put("k", b"x")
    assert not await _run(missing.exists)


async def test_root_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    await _run(f.write_bytes, b"")
    with pytest.raises(InvalidInputError, match="not a directory"):
        async with FileStore(f):
            pass


@pytest.mark.parametrize("kw", [{"page_size": 0}, {"max_threads": -1}, {"page_size": "3"}])
def test_bad_options(tmp_path: Path, kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        FileStore(tmp_path, **kw)


async def test_root_resolved_through_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    await _run(real.mkdir)
    await _run((tmp_path / "alias").symlink_to, real)
    async with FileStore(tmp_path / "alias") as s:
        assert s.root == os.path.realpath(real)
        await s.put("a/b", b"via alias")
    assert await _run((real / "a" / "b").read_bytes) == b"via alias"


@pytest.mark.parametrize(
    "key",
    [".aiolode/locks/00", ".aiolode", "a/.aiolode-tmp-0123", "x/.aiolodeanything", "s" * 256],
)
async def test_reserved_and_long_segments(store: FileStore, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        await store.put(key, b"x")
    with pytest.raises(InvalidKeyError):
        await store.get(key)
    with pytest.raises(InvalidKeyError):
        store.iter_bytes(key)  # at once, not on first iteration
    with pytest.raises(InvalidKeyError):
        await store.delete(key)
    assert await _run(_physical_files, Path(store.root)) == set()


async def test_segment_of_255_bytes_is_fine(store: FileStore) -> None:
    key = "é" * 127 + "x"  # 255 bytes in UTF-8
    await store.put(key, b"ok")
    assert await store.get(key) == b"ok"


async def test_symlinked_dir_escaping_root_is_refused(store: FileStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    await _run(outside.mkdir)
    await _run((outside / "secret").write_bytes, b"do not read")
    await _run((Path(store.root) / "link").symlink_to, outside)
    for call in (store.get, store.head, store.delete):
        with pytest.raises(InvalidKeyError, match="symlink"):
            await call("link/secret")
    with pytest.raises(InvalidKeyError):
        await store.get_range("link/secret", 0, 3)
    with pytest.raises(InvalidKeyError):
        await store.put("link/new", b"escape", mode="overwrite")
    with pytest.raises(InvalidKeyError):
        await store.put("link/deeper/new", b"escape")
    with pytest.raises(InvalidKeyError):
        async for _ in store.iter_bytes("link/secret"):
            pass
    assert sorted(os.listdir(outside)) == ["secret"]
    assert await _run((outside / "secret").read_bytes) == b"do not read"
    await store.put("real/x", b"")
    assert [i.key async for i in store.list()] == ["real/x"]
    assert [i.key async for i in store.list("link/")] == []
    assert [d async for d in store.list_dirs()] == ["real/"]


async def test_symlinked_file_is_refused(store: FileStore, tmp_path: Path) -> None:
    target = tmp_path / "target"
    await _run(target.write_bytes, b"outside")
    await _run((Path(store.root) / "f").symlink_to, target)
    with pytest.raises(InvalidKeyError):
        await store.get("f")
    with pytest.raises(InvalidKeyError):
        await store.head("f")
    with pytest.raises(ObjectExistsError):
        await store.put("f", b"new")  # create never replaces an existing name
    assert [i async for i in store.list()] == []
    assert await _run(target.read_bytes) == b"outside"


async def test_key_that_is_also_a_prefix(store: FileStore) -> None:
    # "f" is an object, then "f/child" arrives: "f" must move into the directory
    # (as f/.aiolode-self) without changing its etag or ever disappearing.
    f = await store.put("f", b"file")
    await store.put("f/child", b"child")
    root = Path(store.root)
    assert await _run((root / "f" / ".aiolode-self").read_bytes) == b"file"
    assert await store.get("f") == b"file"
    assert await store.get_range("f", 1, 2) == b"il"
    assert (await store.head("f")).etag == f.etag
    assert b"".join([c async for c in store.iter_bytes("f")]) == b"file"
    assert [i.key async for i in store.list()] == ["f", "f/child"]
    assert [i.key async for i in store.list("f")] == ["f", "f/child"]
    assert [i.key async for i in store.list("f/")] == ["f/child"]
    assert [d async for d in store.list_dirs()] == ["f/"]
    with pytest.raises(ObjectExistsError):
        await store.put("f", b"again")
    g = await store.put("f", b"v2", mode=IfMatch(f.etag))
    with pytest.raises(PreconditionFailedError):
        await store.put("f", b"v3", mode=IfMatch(f.etag))
    assert (await store.head("f")).etag == g.etag
    await store.put("f", b"v4", mode="overwrite")
    assert await store.get("f") == b"v4"
    await store.delete("f")
    assert not await store.exists("f")
    assert await store.get("f/child") == b"child"
    await store.delete("f/child")
    assert await _run(os.listdir, root) == [".aiolode"]  # pruned; only the lock stripes
    with pytest.raises(ObjectNotFoundError):
        await store.get("f/child/deeper")


async def test_object_written_over_a_directory(store: FileStore) -> None:
    await store.put("d/x", b"child")
    with pytest.raises(PreconditionFailedError):
        await store.put("d", b"x", mode=IfMatch('"etag"'))
    with pytest.raises(ObjectNotFoundError):
        await store.get("d")
    assert not await store.exists("d")
    await store.delete("d")  # idempotent: "d" is only a prefix
    info = await store.put("d", b"self")
    assert (await store.head("d")).etag == info.etag
    assert [i.key async for i in store.list()] == ["d", "d/x"]
    await store.delete("d/x")
    assert [i.key async for i in store.list()] == ["d"]
    assert [d async for d in store.list_dirs()] == []  # no key below "d/"


async def test_parent_file_read_paths(store: FileStore) -> None:
    await store.put("f", b"file")
    with pytest.raises(ObjectNotFoundError):
        await store.get("f/child")
    with pytest.raises(ObjectNotFoundError):
        await store.head("f/child/deeper")
    await store.delete("f/child")
    assert await store.get("f") == b"file"
    assert await _run(Path(store.root, "f").is_file)  # reads never migrate


async def test_empty_leftover_directory(store: FileStore) -> None:
    await _run(os.makedirs, Path(store.root, "left", "over"))
    assert [d async for d in store.list_dirs()] == []  # like S3: no objects, no prefix
    assert [i async for i in store.list()] == []
    await store.put("left/over", b"replaces the empty directory")
    assert await store.get("left/over") == b"replaces the empty directory"


async def test_delete_prunes_empty_directories(store: FileStore) -> None:
    await store.put("a/b/c/k", b"1")
    await store.put("a/other", b"2")
    await store.delete("a/b/c/k")
    root = Path(store.root)
    assert await _run((root / "a" / "b").exists) is False
    assert await _run((root / "a" / "other").exists)
    await store.delete("a/other")
    assert await _run(os.listdir, root) == [".aiolode"]  # only the lock stripes
    assert await _run(root.is_dir)  # never the root itself


async def test_internal_files_are_never_listed(store: FileStore) -> None:
    a = await store.put("x/k", b"1")
    await store.put("x/k", b"2", mode=IfMatch(a.etag))  # creates the lock stripes
    await _run((Path(store.root) / "x" / ".aiolode-tmp-leftover").write_bytes, b"junk")
    await _run(os.mkfifo, Path(store.root) / "x" / "fifo")
    assert await _run((Path(store.root) / LOCK_DIR).is_dir)
    assert [i.key async for i in store.list()] == ["x/k"]
    assert [d async for d in store.list_dirs()] == ["x/"]
    with pytest.raises(ObjectNotFoundError):
        await store.get("x/fifo")  # O_NONBLOCK: a FIFO must not hang a thread


async def test_list_utf8_byte_order(store: FileStore) -> None:
    keys = ["a/b", "a-b", "a0", "ab", "é", "z", "日本", "Z", "a/b/c", "ÿ/x", "\u00e9t\u00e9/1"]
    for k in keys:
        await store.put(k, b"")
    got = [i.key async for i in store.list()]
    assert got == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert len(got) == len(keys)


async def test_etags_unique_across_rewrites_and_recreates(store: FileStore) -> None:
    etags = set()
    for _ in range(5):
        etags.add((await store.put("same", b"same", mode="overwrite")).etag)
    for _ in range(5):
        await store.delete("same")
        etags.add((await store.put("same", b"same")).etag)  # inode numbers may be reused
    assert len(etags) == 10


async def test_etag_shared_between_store_instances(store: FileStore) -> None:
    info = await store.put("k", b"v1")
    async with FileStore(store.root) as other:
        assert (await other.head("k")).etag == info.etag
        b = await other.put("k", b"v2", mode=IfMatch(info.etag))
    with pytest.raises(PreconditionFailedError):
        await store.put("k", b"v3", mode=IfMatch(info.etag))
    assert (await store.head("k")).etag == b.etag


async def test_written_with_fsync_and_no_temp_left(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    await store.put("n/k", b"data")  # file + new dir "n" (in root) + dir after link
    assert len(synced) >= 3
    await store.put("n/k", b"data2", mode="overwrite")  # first one creates the lock dir
    synced.clear()
    await store.put("n/k", b"data3", mode="overwrite")
    assert len(synced) == 2  # the file, then its directory
    assert await _run(_physical_files, Path(store.root)) == {"n/k"}


@pytest.mark.parametrize("use_tmpfile", [True, False])
@pytest.mark.parametrize("mode", ["create", "overwrite"])
async def test_disk_full_maps_to_storage_error(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, use_tmpfile: bool, mode: str
) -> None:
    _tree(store).use_tmpfile = use_tmpfile

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if mode == "overwrite":
        await store.put("k", b"old")
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StorageError) as ei:
        await store.put("k", b"new", mode=mode)  # type: ignore[arg-type]
    assert isinstance(ei.value.__cause__, OSError)
    assert ei.value.__cause__.errno == errno.ENOSPC
    assert ei.value.key == "k"
    monkeypatch.undo()
    expected = {"k"} if mode == "overwrite" else set()
    assert await _run(_physical_files, Path(store.root)) == expected
    if mode == "overwrite":
        assert await store.get("k") == b"old"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (errno.ENOENT, ObjectNotFoundError),
        (errno.EACCES, PermissionDeniedError),
        (errno.EPERM, PermissionDeniedError),
        (errno.EEXIST, ObjectExistsError),
        (errno.ENOSPC, StorageError),
        (errno.EIO, StorageError),
        (errno.ENAMETOOLONG, InvalidKeyError),
    ],
)
def test_oserror_mapping(code: int, cls: type[Exception]) -> None:
    err = _map_oserror(OSError(code, os.strerror(code)), "the/key", "op")
    assert type(err) is cls
    assert err.key == "the/key"  # type: ignore[attr-defined]


async def test_fds_closed_after_early_stop(store: FileStore) -> None:
    for i in range(7):
        await store.put(f"d{i}/k", os.urandom(10_000))
    before = len(await _run(os.listdir, "/proc/self/fd"))
    it = store.list()
    await it.__anext__()
    await it.aclose()
    chunks = store.iter_bytes("d0/k", chunk_size=100)
    await chunks.__anext__()
    await chunks.aclose()
    assert len(await _run(os.listdir, "/proc/self/fd")) == before


async def test_concurrent_put_delete_with_pruning(store: FileStore) -> None:
    # Deletes prune directories that concurrent puts are about to use: the puts
    # must recreate them and retry, never fail.
    async def churn(i: int) -> None:
        for j in range(15):
            key = f"p/q/{i}-{j}"
            await store.put(key, b"x")
            await store.delete(key)

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(churn, i)
    assert [i async for i in store.list()] == []


async def test_stream_put_spools_large_and_small_chunks(store: FileStore) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for n in (10, 2 << 20, 5, 300_000, 1 << 20, 1):
            yield bytes([n % 251]) * n

    expected = b"".join(bytes([n % 251]) * n for n in (10, 2 << 20, 5, 300_000, 1 << 20, 1))
    info = await store.put("s", chunks())
    assert info.size == len(expected)
    assert await store.get("s") == expected
    assert info.etag == (await store.head("s")).etag


@pytest.mark.parametrize("streamed", [False, True])
async def test_large_writes_start_writeback_per_8_mib(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    ranges: list[tuple[int, int]] = []
    monkeypatch.setattr(_linux, "start_writeback", lambda fd, off, n: ranges.append((off, n)))
    sizes = (3 << 20, 7 << 20, 1, 9 << 20, 12345)
    blob = b"".join(os.urandom(n) for n in sizes)

    async def chunks() -> AsyncIterator[bytes]:
        pos = 0
        for n in sizes:
            yield blob[pos : pos + n]
            pos += n

    await store.put("big", chunks() if streamed else blob)
    assert await store.get("big") == blob
    # Contiguous ranges from 0, each at least 8 MiB, the tail left to fsync.
    assert ranges
    assert ranges[0][0] == 0
    for (off, n), (nxt, _) in itertools.pairwise(ranges):
        assert n >= _posix.WRITEBACK_BYTES
        assert off + n == nxt
    covered = ranges[-1][0] + ranges[-1][1]
    assert len(blob) - _posix.WRITEBACK_BYTES < covered <= len(blob)


_WORKER = """
import sys
import anyio
from aiolode import FileStore, IfMatch, PreconditionFailedError

async def main(root: str, n: int) -> None:
    async with FileStore(root) as s:
        done = conflicts = 0
        while done < n:
            info = await s.head("counter")
            value = int(await s.get("counter"))
            try:
                await s.put("counter", str(value + 1).encode(), mode=IfMatch(info.etag))
            except PreconditionFailedError:
                conflicts += 1
            else:
                done += 1
        print(done, conflicts)

anyio.run(main, sys.argv[1], int(sys.argv[2]), backend=sys.argv[3])
"""


async def test_if_match_is_atomic_across_processes(store: FileStore, anyio_backend: str) -> None:
    await store.put("counter", b"0")
    workers, per_worker = 4, 40
    outputs: list[str] = []

    async def worker() -> None:
        proc = await anyio.run_process(
            [sys.executable, "-c", _WORKER, store.root, str(per_worker), anyio_backend]
        )
        outputs.append(proc.stdout.decode())

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    successes = sum(int(out.split()[0]) for out in outputs)
    assert successes == workers * per_worker
    # A lost update (two CAS winners on one etag) would leave the counter short.
    assert int(await store.get("counter")) == successes


async def test_reopen_and_use_without_async_with(tmp_path: Path) -> None:
    s = FileStore(tmp_path, max_threads=2)
    await s.put("k", b"lazy open")  # resolves the root on first use
    async with s:
        assert await s.get("k") == b"lazy open"
    async with s:  # opened again after closing
        assert await s.exists("k")
    assert repr(s) == f"FileStore({str(tmp_path)!r})"


async def test_list_walks_lazily_page_by_page(store: FileStore) -> None:
    # Pages are produced on demand: a directory not reached yet is scanned only when
    # the walk gets there, so the whole tree is never collected up front.
    for i in range(6):
        await store.put(f"a/{i}", b"")
    await store.put("b/0", b"")
    it = store.list()
    first = [await it.__anext__() for _ in range(3)]  # one page (page_size=3)
    await store.put("b/1", b"")  # written after the first page, in an unvisited dir
    rest = [i async for i in it]
    keys = [i.key for i in first + rest]
    assert keys == [*(f"a/{i}" for i in range(6)), "b/0", "b/1"]


# ------------------------------------------------------------------ capabilities
async def test_arrow_filesystem_is_local_with_absolute_paths(tmp_path: Path) -> None:
    import pyarrow.fs as pafs

    real = tmp_path / "real"
    await _run(real.mkdir)
    await _run((tmp_path / "alias").symlink_to, real)
    store = FileStore(tmp_path / "alias")  # never opened: the root is resolved on demand
    await store.put("d/k.bin", b"native")
    afs = await store.arrow_filesystem()
    assert isinstance(afs.filesystem, pafs.LocalFileSystem)
    path = afs.path("d/k.bin")
    assert path == f"{os.path.realpath(real)}/d/k.bin"

    def read() -> bytes:
        with afs.filesystem.open_input_file(path) as f:
            return bytes(f.read())

    assert await _run(read) == b"native"
    assert not store.objects_in_memory


@pytest.mark.parametrize(
    "key", ["../escape", "/etc/passwd", "a//b", ".aiolode/locks/00", "s" * 256]
)
async def test_arrow_paths_never_leave_the_root(store: FileStore, key: str) -> None:
    afs = await store.arrow_filesystem()
    with pytest.raises(InvalidKeyError):
        afs.path(key)


async def test_arrow_filesystem_without_pyarrow(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow.fs", None)  # `import pyarrow.fs` fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'aiolode\[parquet\]'") as ei:
        await store.arrow_filesystem()
    assert ei.value.package == "pyarrow"
    assert isinstance(ei.value, ImportError)


async def test_arrow_filesystem_of_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        await FileStore(tmp_path / "nope").arrow_filesystem()
