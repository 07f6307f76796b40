"""Test helpers: a raw HTTP/1.1 client on asyncio streams, and raw request constants."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

#: Seconds any single client operation may take before the test fails.
IO_TIMEOUT = 5.0

SIMPLE_GET = b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"
HTTP10_GET = b"GET / HTTP/1.0\r\n\r\n"
HTTP10_KEEPALIVE_GET = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
CLOSE_GET = b"GET / HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n"
HEAD_REQUEST = b"HEAD / HTTP/1.1\r\nHost: example.org\r\n\r\n"
CHUNKED_POST = (
    b"POST /echo HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
)


@dataclass
class RawResponse:
    """One response as read off the wire."""

    status_line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    #: The sizes of the chunks when the body was chunked.
    chunks: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The value of the header ``name`` (case-insensitive), or None."""
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    def header_names(self) -> list[str]:
        return [key.decode("latin-1").lower() for key, _ in self.headers]


class RawClient:
    """A client that writes bytes and reads HTTP/1.1 responses, every step under a timeout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> RawClient:
        """Connect to ``127.0.0.1:port``; ``rcvbuf`` shrinks the socket's receive buffer."""
        async with asyncio.timeout(IO_TIMEOUT):
            if rcvbuf is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
                reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(IO_TIMEOUT):
            await self.writer.drain()

    async def read_head(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        async with asyncio.timeout(IO_TIMEOUT):
            head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name, value.strip()))
        return lines[0], headers

    async def read_response(self, *, head_request: bool = False) -> RawResponse:
        """Read one response; the body is framed by Content-Length, chunks, or the close."""
        status_line, headers = await self.read_head()
        response = RawResponse(status_line, headers)
        code = int(status_line.split()[1])
        if head_request or code < 200 or code in (204, 304):
            return response
        async with asyncio.timeout(IO_TIMEOUT):
            length = response.header("content-length")
            if length is not None:
                response.body = await self.reader.readexactly(int(length))
            elif response.header("transfer-encoding") == "chunked":
                parts = []
                while True:
                    size_line = await self.reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        await self.reader.readuntil(b"\r\n")
                        break
                    parts.append(await self.reader.readexactly(size))
                    response.chunks.append(size)
                    assert await self.reader.readexactly(2) == b"\r\n"
                response.body = b"".join(parts)
            else:
                response.body = await self.reader.read()
        return response

    async def read_until_closed(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        async with asyncio.timeout(IO_TIMEOUT):
            return await self.reader.read()

    async def assert_closed(self) -> None:
        """Fail unless the server closes the connection without sending anything more."""
        try:
            data = await self.read_until_closed()
        except ConnectionResetError:
            data = b""
        assert data == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(IO_TIMEOUT):
                await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
