"""What the upload tests share: an application with body limits in its tree, and a client that
sends a large body generated as it goes (never held whole), hashing what it sent."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from werkzeug.exceptions import Unauthorized

from helpers import RawClient, RawResponse
from kyoukai import Blueprint, HTTPRequestContext, Kyoukai

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: Every piece the client sends: random, so that nothing compresses or repeats by accident.
PIECE = os.urandom(MiB)


def vm_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * KiB
    return values


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux: ``clear_refs`` value 5)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def build_upload_app(seen: list[str]) -> Kyoukai:
    """The application: 1 MiB for every route unless its blueprint or route says otherwise."""
    app = Kyoukai("uploads", max_body_size=MiB)

    @app.route("/small", methods=["POST", "PUT"])
    async def small(ctx: HTTPRequestContext) -> str:
        seen.append("small")
        return f"{len(ctx.request.get_data())} bytes"

    @app.route("/hash", methods=["POST", "PUT"], stream_body=True, max_body_size=2 * GiB)
    async def hash_body(ctx: HTTPRequestContext) -> dict[str, Any]:
        seen.append("hash")
        digest = hashlib.sha256()
        size = 0
        async for chunk in ctx.request.iter_body():
            digest.update(chunk)
            size += len(chunk)
        return {"size": size, "sha256": digest.hexdigest()}

    @app.route("/form", methods=["POST"], max_body_size=2 * GiB)
    async def form(ctx: HTTPRequestContext) -> dict[str, Any]:
        upload = ctx.request.files["file"]
        digest = hashlib.sha256()
        size = 0
        while data := upload.stream.read(MiB):
            digest.update(data)
            size += len(data)
        return {
            "size": size,
            "sha256": digest.hexdigest(),
            "name": upload.filename,
            "note": ctx.request.form["note"],
        }

    @app.route("/only-get")
    async def only_get(ctx: HTTPRequestContext) -> str:
        return "get"

    tight = Blueprint("tight", prefix="/tight", max_body_size=KiB)

    @tight.route("/inherits", methods=["POST"])
    async def inherits(ctx: HTTPRequestContext) -> str:
        seen.append("inherits")
        return f"{len(ctx.request.get_data())} bytes"

    @tight.route("/own", methods=["POST"], max_body_size=8 * KiB)
    async def own(ctx: HTTPRequestContext) -> str:
        return f"{len(ctx.request.get_data())} bytes"

    @tight.route("/stream", methods=["POST"], stream_body=True)
    async def stream(ctx: HTTPRequestContext) -> str:
        size = 0
        async for chunk in ctx.request.iter_body():
            size += len(chunk)
        return f"{size} bytes"

    @tight.errorhandler(413)
    async def too_large(ctx: HTTPRequestContext, exc: Exception) -> tuple[str, int]:
        return "too large for tight", 413

    private = Blueprint("private", prefix="/private")

    @private.before_request
    async def authenticate(ctx: HTTPRequestContext) -> None:
        if ctx.request.headers.get("Authorization") != "Bearer ok":
            raise Unauthorized("no token")

    @private.route("/upload", methods=["POST"], stream_body=True, max_body_size=2 * GiB)
    async def private_upload(ctx: HTTPRequestContext) -> str:
        seen.append("private")
        return f"{len(await ctx.request.read_async())} bytes"

    app.register_blueprint(tight)
    app.register_blueprint(private)
    return app


async def send_body(
    client: RawClient, size: int, *, chunked: bool = False, prefix: bytes = b"", suffix: bytes = b""
) -> str:
    """Send ``prefix``, ``size`` bytes of :data:`PIECE` and ``suffix`` as a body, a piece at a
    time (chunked if asked); return the sha256 of the ``size`` bytes."""
    digest = hashlib.sha256()
    writer = client.writer

    def write(data: bytes) -> None:
        if chunked:
            writer.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            writer.write(data)

    if prefix:
        write(prefix)
    left = size
    while left:
        data = PIECE if left >= len(PIECE) else PIECE[:left]
        left -= len(data)
        digest.update(data)
        write(data)
        await client.send(b"")
    if suffix:
        write(suffix)
    await client.send(b"0\r\n\r\n" if chunked else b"")
    return digest.hexdigest()


def head(path: str, *fields: str) -> bytes:
    """A POST head to ``path`` with ``fields`` (``"Name: value"``)."""
    lines = [f"POST {path} HTTP/1.1", "Host: x", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def response_to(client: RawClient, request: bytes) -> RawResponse:
    await client.send(request)
    return await client.read_response()
