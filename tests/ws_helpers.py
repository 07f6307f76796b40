"""WebSocket test helpers: an application with WebSocket routes, and raw RFC 6455 frames."""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

from werkzeug.exceptions import Forbidden

from helpers import IO_TIMEOUT, RawClient
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.websocket import WebSocket, WebSocketDisconnect

#: A raw opening handshake for ``path`` (the key is RFC 6455's example).
HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Record:
    """What the handlers saw, for the tests to check."""

    def __init__(self) -> None:
        self.closes: list[tuple[int, str]] = []
        self.closed = asyncio.Event()
        self.gate = asyncio.Event()
        self.queued: list[int] = []


def build_ws_app(record: Record) -> Kyoukai:
    app = Kyoukai("ws-tests")

    @app.route("/")
    async def index(ctx: HTTPRequestContext) -> str:
        return "http"

    @app.websocket("/echo")
    async def echo(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            record.closes.append((ws.close_code or 0, ws.close_reason or ""))
            record.closed.set()

    @app.websocket("/proto")
    async def proto(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept("chat.v1" if "chat.v1" in ws.subprotocols else None)
        await ws.send(",".join(ws.subprotocols))
        await ws.receive()

    @app.websocket("/close/<int:code>")
    async def close(ctx: HTTPRequestContext, ws: WebSocket, code: int) -> None:
        await ws.accept()
        await ws.close(code, "server says bye")

    @app.websocket("/boom")
    async def boom(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive()
        raise RuntimeError("handler failure")

    @app.websocket("/private")
    async def private(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("secret")

    @private.before_request
    async def auth(ctx: HTTPRequestContext) -> None:
        if ctx.request.headers.get("Authorization") != "Bearer yes":
            raise Forbidden()

    @app.websocket("/slow")
    async def slow(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        await record.gate.wait()
        wire: Any = ctx.environ["kyoukai.websocket"]
        record.queued.append(len(wire._queue))
        count = 0
        try:
            while True:
                await ws.receive()
                count += 1
        except WebSocketDisconnect:
            await ws.close()
        record.queued.append(count)
        record.closed.set()

    @app.websocket("/count")
    async def count(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        total = 0
        async for message in ws:
            total += len(message)
            if message == "end":
                await ws.send(str(total))

    return app


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    key: bytes | None = None,
) -> bytes:
    """One client frame (RFC 6455 section 5.2), masked (with ``key``, else a random one)
    unless told otherwise."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def raw_websocket(port: int, path: str = "/echo") -> RawClient:
    """A raw connection past the ``101`` of ``path``."""
    client = await RawClient.connect(port)
    await client.send(HANDSHAKE.format(path=path).encode())
    status, _ = await client.read_head()
    assert status == b"HTTP/1.1 101 Switching Protocols"
    return client


async def read_frame(client: RawClient) -> tuple[int, bytes]:
    """One server frame: ``(opcode, payload)``; server frames are never masked."""
    async with asyncio.timeout(IO_TIMEOUT):
        first, second = await client.reader.readexactly(2)
        assert not second & 0x80, "a server frame was masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await client.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await client.reader.readexactly(8))
        return first & 0x0F, await client.reader.readexactly(length)


async def read_close(client: RawClient) -> int:
    """Skip to the server's close frame and return its code; the server then closes."""
    while True:
        opcode, payload = await read_frame(client)
        if opcode == 0x8:
            code: int = struct.unpack("!H", payload[:2])[0]
            await client.assert_closed()
            return code
