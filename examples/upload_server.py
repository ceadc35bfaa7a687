"""An upload server over aiolode: streamed uploads, verified downloads, HTTP ranges.

Run:   python examples/upload_server.py [--root DIR] [--host 127.0.0.1] [--port 8000]
Check: python examples/upload_server.py --self-test   (starts it, drives it, exits)

A small ASGI app (Starlette), built by ``create_app(store)`` so it mounts on any
aiolode store, and served by any ASGI server (uvicorn on asyncio, hypercorn on
trio: :func:`open_server` runs either). One dataset per file name; every upload
is a snapshot, so a file has a history and can be read as it was.

==========================  =====================================================
``POST /files/{name}``      stream the body into ``Dataset.stream_write``; sha256,
                            size and sniffed content type go into the snapshot's
                            metadata at commit. 201 + JSON. A client that
                            disconnects midway leaves no snapshot and no object.
``GET /files/{name}``       the latest snapshot, streamed and verified; ``ETag``,
                            ``Content-Length``, ``Content-Type``, ``Accept-Ranges``;
                            ``Range:`` → 206 through ``read_range`` (416 past the
                            end); ``If-None-Match`` → 304; ``HEAD``;
                            ``?snapshot=<id>`` for any earlier upload.
``GET /files``              the files and their latest snapshots (JSON).
``GET /files/{name}/snapshots``  the file's history, newest first (JSON).
``DELETE /files/{name}``    the whole file (``Dataset.drop``), or one upload of it
                            with ``?snapshot=<id>`` (``Dataset.expire``).
==========================  =====================================================

Memory per request is bounded whatever the file size: an upload holds about
four 1 MiB chunks, a download two.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import hashlib
import re
import socket
import sys
import tempfile
from collections import OrderedDict
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import aiolode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.streams.memory import MemoryObjectSendStream
    from starlette.types import Message, Receive, Scope, Send

#: Request bodies are regrouped into chunks of this size before they are written.
CHUNK = 1 << 20
#: Bytes sniffed for a content type.
SNIFF_BYTES = 512
#: Dataset objects kept (one per name; a Dataset caches what it has read).
MAX_OPEN_DATASETS = 1024
#: Largest range answered from one read (larger ones are streamed in pieces).
RANGE_PIECE = 4 << 20


# ------------------------------------------------------------------ names
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,149}")


def dataset_id(name: str) -> str:
    """The dataset id of a file name: ``f-<name>`` for plain names, ``x-<hex>``
    for any other (unicode, spaces…); one-to-one, so a listing gives names back.

    Raises
    ------
    ValueError
        An empty name, or one too long for an id.
    """
    if _PLAIN.fullmatch(name) and ".." not in name:
        return f"f-{name}"
    raw = name.encode("utf-8", "surrogatepass")
    if not raw or len(raw) > 98:
        raise ValueError("a file name is 1-98 bytes of UTF-8 (150 plain characters)")
    return f"x-{raw.hex()}"


def file_name(ds_id: str) -> str | None:
    """The file name of a dataset id made by :func:`dataset_id` (``None`` for others)."""
    if ds_id.startswith("f-"):
        return ds_id[2:]
    if ds_id.startswith("x-"):
        try:
            return bytes.fromhex(ds_id[2:]).decode("utf-8")
        except ValueError:
            return None
    return None


# ----------------------------------------------------------- content types
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"PAR1", "application/vnd.apache.parquet"),
    (b"ARROW1", "application/vnd.apache.arrow.file"),
)
_GENERIC = {"application/octet-stream", "application/x-www-form-urlencoded"}


def sniff(head: bytes, declared: str | None) -> str:
    """The content type of a body starting with ``head``: its magic number if
    known, else the type the client declared (checked when it is recorded),
    else UTF-8 text or ``application/octet-stream``."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if declared and declared.split(";")[0].strip().lower() not in _GENERIC:
        return declared
    if head and b"\x00" not in head:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
            return "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            pass
    return "application/octet-stream"


# ------------------------------------------------------------------- HTTP
def etag_of(snap: aiolode.Snapshot) -> str:
    """A strong ETag: the content's sha256 (as uploaded here), else the snapshot id."""
    digest = snap.metadata.get("sha256")
    return f'"{digest}"' if isinstance(digest, str) else f'"{snap.id}"'


def _etags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """One ``bytes=`` range of a ``size``-byte body: ``(first, last)`` inclusive;
    ``None`` to ignore the header (bad syntax, other units, several ranges:
    RFC 9110 lets a server answer 200); ``False`` when unsatisfiable (416)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else False
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    a = int(first)
    if last and int(last) < a:
        return None
    if a >= size:
        return False
    return a, min(int(last), size - 1) if last else size - 1


class BlobResponse(Response):
    """Streams a snapshot (whole or one range) with ``Dataset.open_blob``.

    The body is sent inside the ``open_blob`` block; a client that goes away
    stops it (uvicorn and hypercorn drop what is sent after a disconnect, so
    the disconnect is watched for, as Starlette's StreamingResponse does). A
    blob found damaged while streaming raises, so the connection is cut
    short: the client never takes a damaged body for a complete one.
    """

    def __init__(
        self,
        ds: aiolode.Dataset,
        snap: aiolode.Snapshot,
        *,
        status_code: int,
        headers: dict[str, str],
        span: tuple[int, int] | None,
    ) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self._ds = ds
        self._snap = snap
        self._span = span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            await self._body(send)
            await send({"type": "http.response.body", "body": b""})
            tg.cancel_scope.cancel()

    async def _body(self, send: Send) -> None:
        async with self._ds.open_blob(self._snap, chunk_size=CHUNK) as blob:
            if self._span is None:
                async for chunk in blob:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                return
            pos, last = self._span
            while pos <= last:
                n = min(RANGE_PIECE, last + 1 - pos)
                data = await blob.read_range(pos, n)
                await send({"type": "http.response.body", "body": data, "more_body": True})
                pos += n


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


# ------------------------------------------------------------------ the app
@dataclass
class Stats:
    """Upload counters, as ``app.state.stats`` (for tests and monitoring)."""

    started: int = 0
    committed: int = 0
    aborted: int = 0
    bytes_received: int = 0


class Files:
    """The handlers, over one store."""

    def __init__(self, store: aiolode.Store) -> None:
        self.store = store
        self.stats = Stats()
        self._datasets: OrderedDict[str, aiolode.Dataset] = OrderedDict()

    def dataset(self, name: str) -> aiolode.Dataset:
        try:
            ds_id = dataset_id(name)
        except ValueError as exc:
            raise aiolode.InvalidInputError(str(exc)) from None
        ds = self._datasets.get(ds_id)
        if ds is None:
            # compressor=None: what is served by range is stored as it came.
            ds = aiolode.Dataset(ds_id, self.store, compressor=None)
            self._datasets[ds_id] = ds
            if len(self._datasets) > MAX_OPEN_DATASETS:
                self._datasets.popitem(last=False)
        else:
            self._datasets.move_to_end(ds_id)
        return ds

    # -------------------------------------------------------------- upload
    async def upload(self, request: Request) -> Response:
        name = request.path_params["name"]
        ds = self.dataset(name)
        declared = request.headers.get("content-type")
        self.stats.started += 1
        digest = hashlib.sha256()
        try:
            async with ds.stream_write({"name": name}) as w:
                head = await _pump(request, w, digest, self.stats)
                # Decided now that the data has streamed; committed on exit.
                w.metadata["sha256"] = digest.hexdigest()
                w.metadata["size"] = w.bytes_written
                w.metadata["uploaded_at"] = datetime.now(UTC)
                try:
                    w.content_type = sniff(head, declared)
                except aiolode.InvalidInputError:  # the client declared nonsense
                    w.content_type = sniff(head, None)
        except ClientDisconnect:
            # Leaving the block by an exception aborted the write: no snapshot,
            # the partial object removed. Nobody is left to read an answer.
            self.stats.aborted += 1
            return Response(status_code=400)
        except BaseException:
            self.stats.aborted += 1
            raise
        self.stats.committed += 1
        snap = w.snapshot
        return JSONResponse(
            _describe(name, snap),
            status_code=201,
            headers={
                "ETag": etag_of(snap),
                "Location": f"/files/{request.path_params['name']}?snapshot={snap.id}",
            },
        )

    # ------------------------------------------------------------ download
    async def download(self, request: Request) -> Response:
        ds = self.dataset(request.path_params["name"])
        wanted = request.query_params.get("snapshot")
        snap = await (ds.snapshot(wanted) if wanted else ds.latest())
        async with ds.open_blob(snap) as blob:  # no data read: the facts up front
            size, content_type = blob.size, blob.content_type
        tag = etag_of(snap)
        headers = {
            "ETag": tag,
            "Last-Modified": format_datetime(snap.created_at, usegmt=True),
            "Content-Type": content_type or "application/octet-stream",
            "Accept-Ranges": "bytes" if size is not None else "none",
            "X-Snapshot-Id": snap.id,
            # A snapshot never changes; "the latest" does.
            "Cache-Control": "public, max-age=31536000, immutable" if wanted else "no-cache",
            # Uploaded content is never run as this origin's page.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        }
        if_none = request.headers.get("if-none-match")
        if if_none is not None and (if_none.strip() == "*" or tag in _etags(if_none)):
            keep = ("ETag", "Last-Modified", "Cache-Control", "X-Snapshot-Id")
            return Response(status_code=304, headers={k: headers[k] for k in keep})
        span: tuple[int, int] | None = None
        header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if header and size is not None and (if_range is None or if_range.strip() == tag):
            parsed = parse_range(header, size)
            if parsed is False:
                return Response(
                    status_code=416, headers={"Content-Range": f"bytes */{size}", "ETag": tag}
                )
            if isinstance(parsed, tuple):
                span = parsed
        if span is not None:
            first, last = span
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            headers["Content-Length"] = str(last + 1 - first)
            return BlobResponse(ds, snap, status_code=206, headers=headers, span=span)
        if size is not None:
            headers["Content-Length"] = str(size)
        return BlobResponse(ds, snap, status_code=200, headers=headers, span=None)

    # ------------------------------------------------------------- listing
    async def listing(self, request: Request) -> Response:
        limit = _limit(request)
        files: list[dict[str, Any]] = []
        reader = aiolode.DatasetReader(self.store)
        async with aclosing(reader.list_datasets()) as ids:
            async for ds_id in ids:
                name = file_name(ds_id)
                if name is None:
                    continue
                try:
                    snap = await self.dataset(name).latest()
                except aiolode.NotFoundError:
                    continue  # dropped (its log lingers until gc), or empty
                files.append(_describe(name, snap))
                if len(files) >= limit:
                    break
        return JSONResponse({"files": files})

    async def history(self, request: Request) -> Response:
        name = request.path_params["name"]
        ds = self.dataset(name)
        limit = _limit(request)
        out: list[dict[str, Any]] = []
        async with aclosing(ds.snapshots(newest_first=True)) as snaps:
            async for snap in snaps:
                out.append(_describe(name, snap))
                if len(out) >= limit:
                    break
        if not out:
            await ds.latest()  # 404 when there is no such file
        return JSONResponse({"name": name, "snapshots": out})

    # -------------------------------------------------------------- delete
    async def delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        ds = self.dataset(name)
        wanted = request.query_params.get("snapshot")
        if wanted:
            snap = await ds.snapshot(wanted)
            report = await ds.expire(snapshots=[snap])
            if snap.id not in report.expired:
                return _error(
                    409,
                    "the latest upload of a file cannot be expired alone: "
                    "DELETE the file, or upload a newer version first",
                )
            return Response(status_code=204)
        await ds.latest()  # 404 for a file that does not exist
        await ds.drop()  # the objects go now; the log records once past the grace
        self._datasets.pop(ds.id, None)  # the name starts afresh
        return Response(status_code=204)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "1000")
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise aiolode.InvalidInputError("limit must be an integer in 1..10000")
    return int(raw)


def _describe(name: str, snap: aiolode.Snapshot) -> dict[str, Any]:
    meta = snap.metadata
    return {
        "name": name,
        "snapshot": snap.id,
        "created_at": snap.created_at.isoformat(),
        "size": meta.get("size", sum(f.size for f in snap.files)),
        "sha256": meta.get("sha256"),
        "content_type": meta.get("content_type"),
    }


async def _pump(request: Request, w: aiolode.BlobWriter, digest: Any, stats: Stats) -> bytes:
    """Stream the request body into ``w`` (and ``digest``); return its first bytes.

    Two tasks, so that receiving the next chunk overlaps hashing and storing
    this one; two chunks in flight between them bound the memory. The first
    failure (a client gone: :class:`ClientDisconnect`) stops both and is
    raised as it is, not in an exception group, for the caller to map.
    """
    send, recv = anyio.create_memory_object_stream[bytes](2)
    failed: list[Exception] = []
    head = b""
    async with anyio.create_task_group() as tg:
        tg.start_soon(_receive, request, send, stats, failed, tg.cancel_scope)
        try:
            async with recv:
                async for chunk in recv:
                    head = head or chunk[:SNIFF_BYTES]
                    await _hash(digest, chunk)
                    await w.write(chunk)
        except Exception as exc:
            failed.append(exc)
            tg.cancel_scope.cancel()
    if failed:
        raise failed[0]
    return head


async def _receive(
    request: Request,
    send: MemoryObjectSendStream[bytes],
    stats: Stats,
    failed: list[Exception],
    scope: anyio.CancelScope,
) -> None:
    """The body regrouped into CHUNK-sized chunks (the server hands out ~64 KiB)."""
    async with send:
        try:
            buf = bytearray()
            async with aclosing(request.stream()) as body:
                async for part in body:
                    buf += part
                    stats.bytes_received += len(part)
                    if len(buf) >= CHUNK:
                        await send.send(bytes(buf))
                        buf = bytearray()
            if buf:
                await send.send(bytes(buf))
        except Exception as exc:
            failed.append(exc)
            scope.cancel()


async def _hash(digest: Any, chunk: bytes) -> None:
    if len(chunk) >= 256 * 1024:
        await anyio.to_thread.run_sync(digest.update, chunk)
    else:
        digest.update(chunk)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _aiolode_error(request: Request, exc: Exception) -> Response:
    """aiolode's error tree, grouped by what a handler does, maps onto HTTP."""
    if isinstance(exc, aiolode.SnapshotExpiredError):
        return _error(410, str(exc))
    if isinstance(exc, aiolode.NotFoundError):
        return _error(404, str(exc))
    if isinstance(exc, aiolode.ConflictError | aiolode.ConfigMismatchError):
        return _error(409, str(exc))
    if isinstance(exc, aiolode.InvalidInputError):
        return _error(400, str(exc))
    if isinstance(exc, aiolode.UnsupportedError):
        return _error(409, f"{exc} (this name holds no raw file)")
    if isinstance(exc, aiolode.TransientStorageError):
        return _error(503, "storage is unavailable; retry")
    return _error(500, f"{type(exc).__name__}: {exc}")


def create_app(store: aiolode.Store) -> Starlette:
    """The ASGI app over ``store`` (opened, and kept open, by the caller).

    ``app.state.stats`` counts uploads started, committed and aborted.
    """
    files = Files(store)
    app = Starlette(
        routes=[
            Route("/files", files.listing, methods=["GET"]),
            Route("/files/{name}", files.upload, methods=["POST"]),
            Route("/files/{name}", files.download, methods=["GET", "HEAD"]),
            Route("/files/{name}", files.delete, methods=["DELETE"]),
            Route("/files/{name}/snapshots", files.history, methods=["GET"]),
        ],
        exception_handlers={aiolode.AiolodeError: _aiolode_error},
    )
    app.state.stats = files.stats
    return app


# ------------------------------------------------------------ running it
def _free_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listening now: connections made before the server has started wait in the
    # backlog instead of being refused.
    sock.listen(128)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def open_server(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0: a free port) for the block; yields its URL.

    On asyncio it runs uvicorn, on trio hypercorn: the same app on both.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        async with _hypercorn(app, host, port, log_level) as url:
            yield url
        return
    async with _uvicorn(app, host, port, log_level) as url:
        yield url


@asynccontextmanager
async def _uvicorn(app: Any, host: str, port: int, log_level: str) -> AsyncIterator[str]:
    import uvicorn

    sock = _free_socket(host, port)
    config = uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield f"http://{host}:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
    sock.close()


@asynccontextmanager
async def _hypercorn(app: Any, host: str, port: int, log_level: str) -> AsyncIterator[str]:
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.loglevel = log_level.upper()
    config.graceful_timeout = 5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                app, config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        try:
            yield binds[0]
        finally:
            stop.set()


async def serve_forever(root: str, host: str, port: int) -> None:
    """Serve a local directory until interrupted (Ctrl-C)."""
    import uvicorn

    async with aiolode.FileStore(root) as store:
        config = uvicorn.Config(create_app(store), host=host, port=port, lifespan="off")
        print(f"serving {root} on http://{host}:{port}/files")
        await uvicorn.Server(config).serve()


# --------------------------------------------------------------- self-test
async def self_test(root: str) -> None:
    """Start the server on a free port, upload, read, range, time-travel, delete."""
    import httpx

    async with aiolode.FileStore(root) as store:
        app = create_app(store)
        async with open_server(app) as url, httpx.AsyncClient(base_url=url) as http:
            png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40

            async def body() -> AsyncIterator[bytes]:
                for i in range(0, len(png), 1000):
                    yield png[i : i + 1000]

            r = await http.post("/files/logo.png", content=body())
            assert r.status_code == 201, r.text
            first = r.json()
            assert first["sha256"] == hashlib.sha256(png).hexdigest()
            assert first["content_type"] == "image/png"
            r = await http.get("/files/logo.png")
            assert r.content == png
            assert r.headers["content-type"] == "image/png"
            assert r.headers["accept-ranges"] == "bytes"
            etag = r.headers["etag"]
            r = await http.get("/files/logo.png", headers={"If-None-Match": etag})
            assert r.status_code == 304
            r = await http.get("/files/logo.png", headers={"Range": "bytes=-8"})
            assert r.status_code == 206
            assert r.content == png[-8:]
            assert r.headers["content-range"] == f"bytes {len(png) - 8}-{len(png) - 1}/{len(png)}"
            r = await http.get("/files/logo.png", headers={"Range": f"bytes={len(png)}-"})
            assert r.status_code == 416
            r = await http.head("/files/logo.png")
            assert r.headers["content-length"] == str(len(png))
            assert r.content == b""

            r = await http.post("/files/logo.png", content=b"version two")
            assert r.json()["content_type"] == "text/plain; charset=utf-8"
            r = await http.get("/files/logo.png", params={"snapshot": first["snapshot"]})
            assert r.content == png  # time travel
            r = await http.get("/files")
            assert [f["name"] for f in r.json()["files"]] == ["logo.png"]
            r = await http.get("/files/logo.png/snapshots")
            assert len(r.json()["snapshots"]) == 2

            r = await http.delete("/files/logo.png", params={"snapshot": first["snapshot"]})
            assert r.status_code == 204
            r = await http.get("/files/logo.png", params={"snapshot": first["snapshot"]})
            assert r.status_code == 410
            assert (await http.delete("/files/logo.png")).status_code == 204
            assert (await http.get("/files/logo.png")).status_code == 404
            assert (await http.get("/files")).json() == {"files": []}
        print(f"self-test ok: {app.state.stats}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="./upload-data", help="directory of the FileStore")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--self-test", action="store_true", help="run, check, exit")
    args = parser.parse_args(argv)
    if args.self_test:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(self_test, tmp)
        return
    anyio.run(serve_forever, args.root, args.host, args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
