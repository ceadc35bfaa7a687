from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from aiolode import FileStore, GCSStore, InvalidInputError, MemoryStore, S3Store, open_store


async def test_memory() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    async with store:
        await store.put("k", b"v")
        assert await store.get("k") == b"v"


def test_memory_options() -> None:
    store = open_store("memory://", page_size=2)
    assert isinstance(store, MemoryStore)
    assert store._page_size == 2


async def test_file_url(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    assert isinstance(store, FileStore)
    async with store:
        await store.put("a/b", b"v")
    assert await anyio.to_thread.run_sync((tmp_path / "a" / "b").read_bytes) == b"v"


async def test_file_url_percent_decoded_and_localhost(tmp_path: Path) -> None:
    root = tmp_path / "with space é"
    await anyio.to_thread.run_sync(root.mkdir)
    assert root.as_uri().count("%") > 0
    for url in (root.as_uri(), root.as_uri().replace("file://", "file://localhost")):
        store = open_store(url, page_size=7)
        assert isinstance(store, FileStore)
        assert store.root == str(root)
        assert store._page_size == 7


async def test_plain_absolute_path(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    assert isinstance(store, FileStore)
    async with store:
        await store.put("x", b"1")
        assert [i.key async for i in store.list()] == ["x"]


async def test_file_root_must_exist(tmp_path: Path) -> None:
    store = open_store((tmp_path / "missing").as_uri())  # no I/O yet
    with pytest.raises(InvalidInputError, match="does not exist"):
        async with store:
            pass


@pytest.mark.parametrize(
    "url",
    [
        "",
        "relative/path",
        "gs:///no-bucket",
        "gs://",
        "ftp://host/x",
        "file://remote-host/path",
        "file:relative",
        "memory://somewhere",
        "s3:///no-bucket",
        "s3://",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidInputError):
        open_store(url)


def test_non_string_url() -> None:
    with pytest.raises(InvalidInputError):
        open_store(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("memory://", {"nope": 1}),
        ("/tmp", {"page_size": 1, "bogus": True}),
        ("gs://b", {"endpoint_url": "http://x"}),
    ],
)
def test_unknown_option(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="bad options"):
        open_store(url, **options)


def test_s3_url_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    store = open_store(
        "s3://bucket/some/prefix/",
        endpoint_url="http://127.0.0.1:9",
        region_name="eu-west-3",
        part_size=16 << 20,
    )
    assert isinstance(store, S3Store)
    assert store.bucket == "bucket"
    assert store.prefix == "some/prefix"
    assert store.part_size == 16 << 20
    assert store._endpoint_url == "http://127.0.0.1:9"
    assert store._region_name == "eu-west-3"
    bare = open_store("s3://bucket")
    assert isinstance(bare, S3Store)
    assert bare.prefix == ""
    assert bare._endpoint_url is None
    assert bare._region_name is None


@pytest.mark.parametrize(
    ("env", "endpoint", "region"),
    [
        ({"AWS_ENDPOINT_URL_S3": "http://s3", "AWS_ENDPOINT_URL": "http://all"}, "http://s3", None),
        ({"AWS_ENDPOINT_URL": "http://all"}, "http://all", None),
        ({"AWS_REGION": "r1", "AWS_DEFAULT_REGION": "r2"}, None, "r1"),
        ({"AWS_DEFAULT_REGION": "r2"}, None, "r2"),
    ],
)
def test_s3_environment_fallbacks(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], endpoint: str | None, region: str | None
) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = open_store("s3://b/p")
    assert isinstance(store, S3Store)
    assert store._endpoint_url == endpoint
    assert store._region_name == region
    # Explicit options win over the environment.
    explicit = open_store("s3://b", endpoint_url="http://mine", region_name="mine")
    assert isinstance(explicit, S3Store)
    assert explicit._endpoint_url == "http://mine"
    assert explicit._region_name == "mine"


@pytest.mark.s3
async def test_s3_round_trip(s3_endpoint: str, s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/pre/fix", endpoint_url=s3_endpoint)
    async with store:
        await store.put("k", b"through open_store")
        assert await store.get("k") == b"through open_store"
        assert [i.key async for i in store.list()] == ["k"]


@pytest.mark.s3
async def test_s3_round_trip_endpoint_from_env(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    async with open_store(f"s3://{s3_bucket}") as store:
        await store.put("e", b"env")
        assert await store.get("e") == b"env"


def test_gs_url_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    store = open_store("gs://bucket/some/prefix/", project="billing", chunk_size=1 << 20)
    assert isinstance(store, GCSStore)
    assert (store.bucket, store.prefix, store.project) == ("bucket", "some/prefix", "billing")
    assert store.chunk_size == 1 << 20
    assert store.endpoint == "https://storage.googleapis.com"
    assert not store._anonymous
    bare = open_store("gs://bucket")
    assert isinstance(bare, GCSStore)
    assert bare.prefix == ""


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [("127.0.0.1:4443", "http://127.0.0.1:4443"), ("https://emu:1", "https://emu:1")],
)
def test_gs_emulator_from_env(monkeypatch: pytest.MonkeyPatch, env: str, endpoint: str) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", env)
    store = open_store("gs://b/p")
    assert isinstance(store, GCSStore)
    assert store.endpoint == endpoint
    assert store._anonymous
    # Explicit options win over the environment.
    explicit = open_store("gs://b", endpoint="http://mine:1", anonymous=False)
    assert isinstance(explicit, GCSStore)
    assert explicit.endpoint == "http://mine:1"
    assert not explicit._anonymous


@pytest.mark.gcs
async def test_gs_round_trip_emulator_from_env(
    gcs_endpoint: str, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    async with open_store(f"gs://{gcs_bucket}/pre/fix") as store:
        await store.put("k", b"through open_store")
        assert await store.get("k") == b"through open_store"
        assert [i.key async for i in store.list()] == ["k"]
