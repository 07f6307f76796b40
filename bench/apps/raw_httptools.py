"""The ceiling: an httptools + uvloop protocol answering every request with fixed bytes.

No routing, no request object, no headers beyond the minimum: the least work a Python
HTTP/1.1 server can do per request on this machine.
"""

from __future__ import annotations

import asyncio
from typing import cast

import _routes
import httptools
import uvloop

_BODY = _routes.HELLO.encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class FixedResponseProtocol(asyncio.Protocol):
    """Parse requests with httptools and answer each with :data:`RESPONSE`."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        if self.transport is None:
            return
        self.transport.write(RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FixedResponseProtocol, _routes.HOST, port, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(_routes.port_from_argv()))
