"""The sync POSIX core of FileStore, tested directly: no event loop, no threads hops.

The conformance suite (test_fs.py) proves the contract through the async adapter;
these tests pin down the core's own decisions: what it raises (OSError vs aiolode
errors), where bytes land on disk, listing order, locks and the rare paths
(O_TMPFILE refused, a directory pruned under a write, a failed migration).
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from aiolode import (
    IfMatch,
    InvalidInputError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
)
from aiolode.store import _linux, _posix
from aiolode.store._posix import PosixTree, scan, split_key

LOCKS = Path(".aiolode", "locks")


def _files(root: Path) -> set[str]:
    """Every file below root (temp files included) except the lock stripes."""
    out: set[str] = set()
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            rel = Path(dirpath, f).relative_to(root)
            if rel.parent != LOCKS:
                out.add(rel.as_posix())
    return out


@pytest.fixture(params=[True, False], ids=["tmpfile", "named-temp"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> PosixTree:
    root = tmp_path / "root"
    root.mkdir()
    t = PosixTree.open(str(root))
    t.use_tmpfile = t.use_tmpfile and bool(request.param)
    return t


def _root(tree: PosixTree) -> Path:
    return Path(tree.root)


# ------------------------------------------------------------------------ opening
def test_open_resolves_and_checks_the_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    assert PosixTree.open(str(tmp_path / "alias")).root == os.path.realpath(real)
    with pytest.raises(InvalidInputError, match="does not exist"):
        PosixTree.open(str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="not a directory"):
        PosixTree.open(str(tmp_path / "file"))


def test_split_key() -> None:
    assert split_key("a") == ((), "a")
    assert split_key("a/b/c.bin") == (("a", "b"), "c.bin")
    assert split_key("é" * 127 + "x") == ((), "é" * 127 + "x")  # 255 bytes
    for bad in (".aiolode", "a/.aiolode-self", "x/.aiolodeanything/y", "s" * 256, "é" * 128):
        with pytest.raises(InvalidKeyError):
            split_key(bad)


def test_path_is_absolute_and_validated(tree: PosixTree) -> None:
    assert tree.path("a/b") == f"{tree.root}/a/b"
    assert os.path.isabs(tree.path("a"))
    for bad in ("../etc/passwd", "/abs", "a//b", ".aiolode/locks/00", ""):
        with pytest.raises(InvalidKeyError):
            tree.path(bad)


# ------------------------------------------------------------------ round trips
def test_put_get_head_range_delete(tree: PosixTree) -> None:
    info = tree.put_bytes("d/k", b"0123456789", "create")
    assert (_root(tree) / "d" / "k").read_bytes() == b"0123456789"
    assert info.size == 10
    assert tree.head("d/k") == info
    assert tree.get("d/k") == b"0123456789"
    assert tree.get_range("d/k", 3, 4) == b"3456"
    assert tree.get_range("d/k", 8, 100) == b"89"
    assert tree.get_range("d/k", 50, 5) == b""
    tree.delete("d/k")
    assert not (_root(tree) / "d").exists()  # pruned
    tree.delete("d/k")  # idempotent
    assert _files(_root(tree)) == set()


def test_modes(tree: PosixTree) -> None:
    a = tree.put_bytes("k", b"one", "create")
    with pytest.raises(ObjectExistsError):
        tree.put_bytes("k", b"two", "create")
    b = tree.put_bytes("k", b"two", IfMatch(a.etag))
    with pytest.raises(PreconditionFailedError):
        tree.put_bytes("k", b"three", IfMatch(a.etag))
    c = tree.put_bytes("k", b"four", "overwrite")
    assert len({a.etag, b.etag, c.etag}) == 3
    assert tree.get("k") == b"four"
    with pytest.raises(PreconditionFailedError):
        tree.put_bytes("new", b"x", IfMatch(a.etag))
    assert _files(_root(tree)) == {"k"}  # no temp file left by any refusal


def test_missing_objects_raise_oserror_or_not_found(tree: PosixTree) -> None:
    # The adapter maps OSError; the core reports the cases it decides itself.
    with pytest.raises(FileNotFoundError):
        tree.get("nope")
    with pytest.raises(FileNotFoundError):
        tree.head("dir/nope")
    tree.put_bytes("f", b"", "create")
    with pytest.raises(ObjectNotFoundError):
        tree.get("f/child")  # "f" is an object, not a directory
    (_root(tree) / "d").mkdir()
    with pytest.raises(FileNotFoundError):
        tree.head("d")  # a directory is no object (it has no d/.aiolode-self)


# ------------------------------------------------------------- in-flight writes
def test_begin_append_commit(tree: PosixTree) -> None:
    p = tree.begin("s/obj", "create")
    try:
        p.append(b"abc")
        p.append(memoryview(b"xxdef")[2:])
        assert not (_root(tree) / "s" / "obj").exists()  # nothing visible before commit
        assert (p.tmpname is None) == tree.use_tmpfile
        info = tree.commit(p)
    finally:
        tree.abort(p)
    assert info.size == 6
    assert tree.get("s/obj") == b"abcdef"
    assert _files(_root(tree)) == {"s/obj"}


def test_abort_leaves_nothing_and_is_idempotent(tree: PosixTree) -> None:
    p = tree.begin("a/b", "overwrite")  # overwrite always uses a named temp
    p.append(b"partial")
    assert p.tmpname is not None
    assert (_root(tree) / "a" / p.tmpname).exists()
    tree.abort(p)
    tree.abort(p)
    assert (p.fd, p.dfd, p.tmpname) == (-1, -1, None)
    assert _files(_root(tree)) == set()


def test_failed_fsync_publishes_nothing(tree: PosixTree, monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    p = tree.begin("k", "create")
    p.append(b"data")
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as ei:
        tree.commit(p)
    monkeypatch.undo()
    tree.abort(p)
    assert ei.value.errno == errno.ENOSPC
    assert _files(_root(tree)) == set()


def test_writeback_started_every_8_mib(tree: PosixTree, monkeypatch: pytest.MonkeyPatch) -> None:
    ranges: list[tuple[int, int]] = []
    monkeypatch.setattr(_linux, "start_writeback", lambda fd, off, n: ranges.append((off, n)))
    step = _posix.WRITEBACK_BYTES
    tree.put_bytes("big", bytes(2 * step + 5), "create")
    assert ranges == [(0, step), (step, step)]  # the 5-byte tail is left to fsync


def test_tmpfile_refused_falls_back_to_named_temps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _posix.HAS_O_TMPFILE:
        pytest.skip("no O_TMPFILE on this platform")
    tree = PosixTree.open(str(tmp_path))
    real_open = os.open

    def refusing_open(path: str, flags: int, *args: object, **kw: object) -> int:
        if flags & _posix._O_TMPFILE == _posix._O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing_open)
    assert tree.use_tmpfile
    tree.put_bytes("k", b"named", "create")
    assert not tree.use_tmpfile  # turned off for good
    assert tree.get("k") == b"named"
    assert _files(tmp_path) == {"k"}


def test_directory_pruned_under_a_write_is_recreated(tmp_path: Path) -> None:
    # An O_TMPFILE write does not keep its directory non-empty: a concurrent delete
    # may prune it before the link. The publish must recreate it and link there.
    if not _posix.HAS_O_TMPFILE:
        pytest.skip("no O_TMPFILE on this platform")
    tree = PosixTree.open(str(tmp_path))
    tree.put_bytes("p/q/other", b"", "create")
    p = tree.begin("p/q/k", "create")
    try:
        if p.tmpname is not None:
            pytest.skip("this filesystem refuses O_TMPFILE")
        p.append(b"survives")
        tree.delete("p/q/other")
        assert not (tmp_path / "p").exists()
        tree.commit(p)
    finally:
        tree.abort(p)
    assert tree.get("p/q/k") == b"survives"


# ------------------------------------------------------- key and prefix at once
def test_object_becomes_a_prefix(tree: PosixTree) -> None:
    f = tree.put_bytes("f", b"file", "create")
    tree.put_bytes("f/child", b"child", "create")
    assert (_root(tree) / "f" / ".aiolode-self").read_bytes() == b"file"
    assert tree.head("f").etag == f.etag  # same inode: a hard link, swapped in
    assert [i.key for i in tree.walk("")] == ["f", "f/child"]
    tree.delete("f")
    assert [i.key for i in tree.walk("")] == ["f/child"]


def test_failed_migration_leaves_the_object_in_place(
    tree: PosixTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_exchange(dfd: int, a: str, b: str) -> None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")

    f = tree.put_bytes("f", b"file", "create")
    monkeypatch.setattr(_linux, "exchange", no_exchange)
    with pytest.raises(OSError):
        tree.put_bytes("f/child", b"child", "create")
    assert sorted(os.listdir(tree.root)) == [".aiolode", "f"]  # no temp directory left
    assert tree.head("f") == f
    assert tree.get("f") == b"file"


def test_exchange_swaps_two_names(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"A")
    (tmp_path / "b").mkdir()
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        _linux.exchange(fd, "a", "b")
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EINVAL):
            pytest.skip(f"no renameat2(RENAME_EXCHANGE) here: {exc}")
        raise
    finally:
        os.close(fd)
    assert (tmp_path / "b").read_bytes() == b"A"
    assert (tmp_path / "a").is_dir()


def test_stamp_strictly_increases_across_threads() -> None:
    stamps: list[int] = []

    def take() -> None:
        stamps.extend(_linux.stamp() for _ in range(500))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(stamps)) == len(stamps) == 2000


# ---------------------------------------------------------------------- symlinks
def test_symlinks_are_never_followed(tree: PosixTree, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not read")
    (_root(tree) / "link").symlink_to(outside)
    (_root(tree) / "flink").symlink_to(outside / "secret")
    for call in (tree.get, tree.head, tree.delete):
        with pytest.raises(InvalidKeyError, match="symlink"):
            call("link/secret")
    with pytest.raises(InvalidKeyError):
        tree.put_bytes("link/deeper/new", b"escape", "create")
    with pytest.raises(InvalidKeyError):
        tree.head("flink")
    with pytest.raises(OSError) as ei:
        tree.get("flink")  # O_NOFOLLOW: the adapter maps ELOOP to InvalidKeyError
    assert ei.value.errno == errno.ELOOP
    assert list(tree.walk("")) == []
    assert tree.list_dirs("") == []
    assert sorted(os.listdir(outside)) == ["secret"]


# ----------------------------------------------------------------------- listing
def test_scan_orders_like_s3_and_skips_what_is_no_key(tree: PosixTree) -> None:
    root = _root(tree)
    for name in ("a-b", "a0", "ab", "é", "Z"):
        (root / name).write_bytes(b"")
    (root / "a").mkdir()
    (root / "a" / ".aiolode-self").write_bytes(b"")  # "a" is an object and a prefix
    (root / ".aiolode-tmp-x").write_bytes(b"")
    (root / "back\\slash").write_bytes(b"")
    (root / "ctrl\x01").write_bytes(b"")
    os.mkfifo(root / "fifo")
    (root / "sym").symlink_to(root / "ab")
    bad = os.open(os.fsencode(root) + b"/\xff", os.O_WRONLY | os.O_CREAT, 0o666)
    os.close(bad)  # a name that is not UTF-8
    fd = os.open(root, os.O_RDONLY)
    try:
        entries = scan(fd, "")
        assert [(n, d, p) for _, n, d, p in entries] == [
            ("Z", False, "Z"),
            ("a", False, "a/.aiolode-self"),
            ("a-b", False, "a-b"),
            ("a", True, "a"),
            ("a0", False, "a0"),
            ("ab", False, "ab"),
            ("é", False, "é"),
        ]
        assert [n for _, n, _, _ in scan(fd, "a")] == ["a", "a-b", "a", "a0", "ab"]
    finally:
        os.close(fd)


def test_walk_is_lazy_and_closes_its_fds(tree: PosixTree) -> None:
    for i in range(5):
        tree.put_bytes(f"d{i}/k", b"x", "create")
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    walk = tree.walk("")
    assert next(walk).key == "d0/k"
    tree.put_bytes("d4/later", b"", "create")  # a directory not reached yet
    walk.close()
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before
    assert [i.key for i in tree.walk("d4")] == ["d4/k", "d4/later"]
    assert [i.key for i in tree.walk("d4/l")] == ["d4/later"]
    assert list(tree.walk("nothing/here/")) == []


def test_list_dirs_only_where_objects_are(tree: PosixTree) -> None:
    tree.put_bytes("d/a/1", b"", "create")
    tree.put_bytes("d/b/c/2", b"", "create")
    tree.put_bytes("d/file", b"", "create")
    (_root(tree) / "d" / "empty" / "deeper").mkdir(parents=True)
    assert tree.list_dirs("d/") == ["d/a/", "d/b/"]
    assert tree.list_dirs("") == ["d/"]
    assert tree.list_dirs("d/a") == ["d/a/"]
    assert tree.list_dirs(".aiolode/") == []


# ------------------------------------------------------------------------- locks
def test_lock_stripes_exclude_threads_of_one_process(tree: PosixTree) -> None:
    entered = threading.Event()

    def other() -> None:
        with tree.locked("k"):
            entered.set()

    with tree.locked("k"):
        t = threading.Thread(target=other)
        t.start()
        # flock belongs to the open file description: another open of the same
        # stripe in this process must wait, as another process would.
        assert not entered.wait(0.2)
    assert entered.wait(10)
    t.join()
    assert len(os.listdir(_root(tree) / LOCKS)) == 1  # one stripe file, kept for reuse
