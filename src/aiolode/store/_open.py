"""open_store: build a store from a URL (``memory://``, ``file://``, ``s3://``, ``gs://``)."""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING, Any

from .._validate import safe_repr
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ._base import Store

__all__ = ["open_store"]

# Standard AWS environment variables, most specific first (as botocore reads them).
_ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
# What google-cloud-storage and gcsfs read to talk to an emulator.
_GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


def _from_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _construct(cls: type[Store], url: str, *args: Any, **options: Any) -> Store:
    try:
        return cls(*args, **options)
    except TypeError as exc:
        # An unknown or misspelt option: a caller error, reported as one.
        raise InvalidInputError(f"bad options for {url!r} ({cls.__name__}): {exc}") from exc


def open_store(url: str, **options: Any) -> Store:
    """Create the store a URL names; enter it with ``async with`` to use it.

    ========================  ==============================================
    ``memory://``             :class:`~aiolode.MemoryStore` (``page_size``)
    ``file:///abs/path``      :class:`~aiolode.FileStore` on ``/abs/path``
    ``/abs/path``             the same (a plain absolute path)
    ``s3://bucket/prefix``    :class:`~aiolode.S3Store` (``endpoint_url``,
                              ``region_name``, ``part_size``, … forwarded)
    ``gs://bucket/prefix``    :class:`~aiolode.GCSStore` (``credentials``,
                              ``project``, ``endpoint``, … forwarded)
    ========================  ==============================================

    For ``s3://``, ``endpoint_url`` falls back to ``AWS_ENDPOINT_URL_S3`` then
    ``AWS_ENDPOINT_URL``, and ``region_name`` to ``AWS_REGION`` then
    ``AWS_DEFAULT_REGION``; credentials come from the usual AWS chain. For
    ``gs://``, when ``endpoint`` is not given and ``STORAGE_EMULATOR_HOST`` is
    set (as for google-cloud-storage), the store talks to that emulator without
    credentials (``anonymous=True`` unless ``credentials`` is given); otherwise
    to GCS with the application-default credentials. No I/O happens here
    (cost: none); a ``FileStore`` checks its root when opened.

    Parameters
    ----------
    url
        The store's URL. ``file://`` paths are percent-decoded.
    **options
        Keyword arguments for the store's constructor.

    Raises
    ------
    InvalidInputError
        Unknown scheme, a relative path, a ``file://`` URL with a remote host,
        an ``s3://`` or ``gs://`` URL without a bucket, or an option the store
        does not take.
    """
    if not isinstance(url, str) or not url:
        raise InvalidInputError(f"a store URL must be a non-empty str, not {safe_repr(url)}")
    if url.startswith("/"):
        from ._fs import FileStore

        return _construct(FileStore, url, url, **options)
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme == "memory":
        if parsed.netloc or parsed.path not in ("", "/"):
            raise InvalidInputError(f"memory:// takes no location, got {safe_repr(url)}")
        from ._memory import MemoryStore

        return _construct(MemoryStore, url, **options)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInputError(f"file:// URL {url!r} names a remote host; use file:///path")
        path = urllib.parse.unquote(parsed.path)
        if not path.startswith("/"):
            raise InvalidInputError(f"file:// URL {url!r} needs an absolute path")
        from ._fs import FileStore

        return _construct(FileStore, url, path, **options)
    if scheme == "s3":
        bucket = parsed.netloc
        if not bucket:
            raise InvalidInputError(f"s3:// URL {url!r} has no bucket")
        prefix = urllib.parse.unquote(parsed.path).strip("/")
        if options.get("endpoint_url") is None:
            options["endpoint_url"] = _from_env(_ENDPOINT_ENV)
        if options.get("region_name") is None:
            options["region_name"] = _from_env(_REGION_ENV)
        # Lazy: S3Store pulls in the optional s3 extra only when it is used.
        from ._s3 import S3Store

        return _construct(S3Store, url, bucket, prefix, **options)
    if scheme == "gs":
        bucket = parsed.netloc
        if not bucket:
            raise InvalidInputError(f"gs:// URL {url!r} has no bucket")
        prefix = urllib.parse.unquote(parsed.path).strip("/")
        emulator = os.environ.get(_GCS_EMULATOR_ENV)
        if options.get("endpoint") is None and emulator:
            options["endpoint"] = emulator if "://" in emulator else f"http://{emulator}"
            if options.get("credentials") is None:
                options.setdefault("anonymous", True)
        # Lazy like S3: httpx and google-auth load only when the store opens.
        from ._gcs import GCSStore

        return _construct(GCSStore, url, bucket, prefix, **options)
    if not scheme:
        raise InvalidInputError(
            f"store URL {url!r} is neither an absolute path nor a URL "
            "(memory://, file:///abs/path, s3://bucket/prefix, gs://bucket/prefix)"
        )
    raise InvalidInputError(
        f"unknown store URL scheme {parsed.scheme!r} in {url!r} "
        "(known: memory://, file:///abs/path, s3://bucket/prefix, gs://bucket/prefix)"
    )
