"""A raw HTTP/2 client for the server tests: frames built and read with hyperframe and hpack.

It keeps no stream state of its own, so a test can send anything, malformed frames included,
and read exactly what the server answers.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TIMEOUT = 10.0


@dataclass
class H2Response:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reset: int | None = None
    ended: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class H2Client:
    """One HTTP/2 connection to the server under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.responses: dict[int, H2Response] = {}
        self.goaway: GoAwayFrame | None = None
        self.frames: list[Frame] = []
        self.server_settings: dict[int, int] = {}
        self.next_stream = 1
        self.closed = False

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        ca: ssl.SSLContext | None = None,
        settings: dict[int, int] | None = None,
        preface: bool = True,
        rcvbuf: int | None = None,
    ) -> H2Client:
        """Open a connection (TLS with ALPN ``h2`` when ``ca`` is given) and send the preface."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ca), TIMEOUT
        )
        if rcvbuf is not None:
            import socket

            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        client = cls(reader, writer)
        if preface:
            frame = SettingsFrame(0)
            frame.settings = dict(settings or {})
            await client.send(PREFACE + frame.serialize())
        return client

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def headers_frame(
        self,
        stream_id: int,
        headers: list[tuple[str, str]],
        *,
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> HeadersFrame:
        frame = HeadersFrame(stream_id)
        frame.data = self.encoder.encode(headers)
        frame.flags.add("END_HEADERS") if end_headers else None
        frame.flags.add("END_STREAM") if end_stream else None
        return frame

    def request_headers(
        self, path: str = "/", method: str = "GET", extra: list[tuple[str, str]] | None = None
    ) -> list[tuple[str, str]]:
        base = [(":method", method), (":scheme", "http"), (":authority", "example.com")]
        return [*base, (":path", path), *(extra or [])]

    async def request(
        self,
        path: str = "/",
        method: str = "GET",
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> int:
        """Send a request on a new stream; return the stream id."""
        stream_id = self.next_stream
        self.next_stream += 2
        frames = [
            self.headers_frame(
                stream_id, self.request_headers(path, method, headers), end_stream=body is None
            )
        ]
        if body is not None:
            data = DataFrame(stream_id, body)
            data.flags.add("END_STREAM")
            frames.append(data)
        await self.send(b"".join(f.serialize() for f in frames))
        return stream_id

    async def read_frame(self) -> Frame | None:
        """The next frame from the server, or ``None`` once the connection is closed."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(9), TIMEOUT)
            frame, length = Frame.parse_frame_header(memoryview(head))
            body = await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            self.closed = True
            return None
        frame.parse_body(memoryview(body))
        self._note(frame)
        return frame

    def _note(self, frame: Frame) -> None:
        self.frames.append(frame)
        if isinstance(frame, HeadersFrame | ContinuationFrame):
            response = self.responses.setdefault(frame.stream_id, H2Response())
            for name, value in self.decoder.decode(frame.data):
                if name == ":status":
                    response.status = int(value)
                else:
                    response.headers.append((name, value))
            response.ended = response.ended or "END_STREAM" in frame.flags
        elif isinstance(frame, DataFrame):
            response = self.responses.setdefault(frame.stream_id, H2Response())
            response.body += frame.data
            response.ended = response.ended or "END_STREAM" in frame.flags
            if frame.flow_controlled_length:
                for stream in (0, frame.stream_id):
                    update = WindowUpdateFrame(stream, frame.flow_controlled_length)
                    self.writer.write(update.serialize())
        elif isinstance(frame, RstStreamFrame):
            self.responses.setdefault(frame.stream_id, H2Response()).reset = frame.error_code
        elif isinstance(frame, GoAwayFrame):
            self.goaway = frame
        elif isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            self.server_settings.update(frame.settings)
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            self.writer.write(ack.serialize())

    async def response(self, stream_id: int) -> H2Response:
        """Read until the stream's response ended or was reset (or the connection closed)."""
        while True:
            response = self.responses.get(stream_id)
            if response is not None and (response.ended or response.reset is not None):
                return response
            if await self.read_frame() is None:
                return response or H2Response()

    async def get(self, path: str = "/", **options: object) -> H2Response:
        return await self.response(await self.request(path, **options))  # type: ignore[arg-type]

    async def wait_goaway(self) -> GoAwayFrame | None:
        """Read until a GOAWAY arrives or the connection closes."""
        while self.goaway is None:
            if await self.read_frame() is None:
                break
        return self.goaway

    async def wait_closed(self) -> None:
        while await self.read_frame() is not None:
            pass

    async def ping(self, data: bytes = b"12345678") -> None:
        await self.send(PingFrame(0, data).serialize())

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass

    async def __aenter__(self) -> H2Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
