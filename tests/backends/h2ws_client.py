"""An HTTP/2 client that opens WebSockets with extended CONNECT (RFC 8441).

The HTTP/2 side is h2's client state machine (so the server's frames and windows are checked
as a real client checks them); the WebSocket frames are those of the sans-I/O core of
``websockets`` on the client side (masked). A test can stop acknowledging what it receives
(``ack=False``) to keep the server's send window closed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, cast

import h2.events as ev
from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.headers import parse_extension
from websockets.protocol import Protocol, Side

TIMEOUT = 10.0


class ClientSocket:
    """One extended CONNECT stream: its response, then its WebSocket messages."""

    def __init__(self, connection: H2WSConnection, stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.frames = Protocol(Side.CLIENT, max_size=None)
        self.messages: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.pings: list[bytes] = []
        self.pongs: asyncio.Queue[bytes] = asyncio.Queue()
        self.close_frame: tuple[int, str] | None = None
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.reset: int | None = None
        self.auto_answer = True
        #: False for a plain request's stream (:meth:`H2WSConnection.get`).
        self.websocket = True
        self._parts: list[bytes] = []
        self._text = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.frames.send_text(message.encode())
        else:
            self.frames.send_binary(message)
        await self.flush()

    async def ping(self, data: bytes) -> None:
        self.frames.send_ping(data)
        await self.flush()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.frames.send_close(code, reason)
        await self.flush()

    async def flush(self) -> None:
        """Send what the frame protocol has to send, within the windows."""
        for data in self.frames.data_to_send():
            if data:
                await self.connection.send_data(self.stream_id, data)
            else:
                await self.connection.end_stream(self.stream_id)

    async def reset_stream(self) -> None:
        self.connection.conn.reset_stream(self.stream_id, ErrorCodes.CANCEL)
        await self.connection.write()

    # -- receiving --------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        async with asyncio.timeout(TIMEOUT):
            return await self.messages.get()

    async def wait_ended(self) -> None:
        """Until the server ended or reset the stream."""
        async with asyncio.timeout(TIMEOUT):
            await self.ended.wait()

    def data_received(self, data: bytes) -> None:
        self.frames.receive_data(data)
        for frame in self.frames.events_received():
            frame = cast(Frame, frame)
            opcode = frame.opcode
            if opcode in (Opcode.TEXT, Opcode.BINARY):
                self._parts, self._text = [bytes(frame.data)], opcode is Opcode.TEXT
            elif opcode is Opcode.CONT:
                self._parts.append(bytes(frame.data))
            elif opcode is Opcode.PING:
                self.pings.append(bytes(frame.data))
                continue
            elif opcode is Opcode.PONG:
                self.pongs.put_nowait(bytes(frame.data))
                continue
            elif opcode is Opcode.CLOSE:
                received = self.frames.close_rcvd
                self.close_frame = (received.code, received.reason) if received else (1005, "")
                continue
            if frame.fin and opcode is not Opcode.PING:
                data = b"".join(self._parts)
                self.messages.put_nowait(data.decode() if self._text else data)
        if self.auto_answer:
            self.connection.spawn(self.flush())


class H2WSConnection:
    """One HTTP/2 connection (h2c prior knowledge, or TLS with ALPN ``h2``)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ack: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.ack = ack
        self.sockets: dict[int, ClientSocket] = {}
        self.settings = asyncio.Event()
        self.window = asyncio.Event()
        self.terminated: ev.ConnectionTerminated | None = None
        self.lost = asyncio.Event()
        #: What broke the client's reading (a protocol error of the server's), if anything.
        self.error: Exception | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress = asyncio.Event()

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        ca: ssl.SSLContext | None = None,
        settings: dict[int, int] | None = None,
        ack: bool = True,
    ) -> H2WSConnection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ca), TIMEOUT
        )
        client = cls(reader, writer, ack)
        client.conn.initiate_connection()
        if settings:
            client.conn.update_settings(settings)  # they apply once the server acknowledges
        await client.write()
        client._reader_task = asyncio.ensure_future(client._read())
        async with asyncio.timeout(TIMEOUT):
            await client.settings.wait()
        return client

    @property
    def remote_settings(self) -> Any:
        return self.conn.remote_settings

    async def write(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)
            await self.writer.drain()

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    self._dispatch(event)
                await self.write()
                self._progress.set()
        except (ConnectionError, ssl.SSLError):
            pass
        except Exception as exc:
            self.error = exc
            raise
        finally:
            self._progress.set()
            self.lost.set()
            self.window.set()
            for socket in self.sockets.values():
                socket.ended.set()
                socket.answered.set()

    def _dispatch(self, event: ev.Event) -> None:
        socket = self.sockets.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, ev.RemoteSettingsChanged):
            self.settings.set()
            self.window.set()
        elif isinstance(event, ev.WindowUpdated):
            self.window.set()
        elif isinstance(event, ev.ConnectionTerminated):
            self.terminated = event
            if event.error_code == ErrorCodes.NO_ERROR:
                # A graceful GOAWAY lets the streams it covers finish (RFC 9113 section 6.8),
                # as real clients do; h2's state machine would refuse their frames.
                self.conn.state_machine.state = ConnectionState.CLIENT_OPEN
        elif socket is None:
            return
        elif isinstance(event, ev.ResponseReceived):
            for name, value in cast(Iterable[tuple[str, str]], event.headers):
                if name == ":status":
                    socket.status = int(value)
                else:
                    socket.headers[name] = value
            socket.answered.set()
        elif isinstance(event, ev.DataReceived):
            if self.ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if socket.websocket and socket.status == 200:
                socket.data_received(event.data)
            else:
                socket.body += event.data
        elif isinstance(event, ev.StreamEnded):
            socket.frames.receive_eof()
            if socket.auto_answer:
                self.spawn(socket.flush())
            socket.ended.set()
        elif isinstance(event, ev.StreamReset):
            socket.reset = event.error_code
            socket.ended.set()
            socket.answered.set()

    async def open(
        self,
        path: str = "/echo",
        *,
        subprotocols: list[str] | None = None,
        headers: list[tuple[str, str]] | None = None,
        version: str | None = "13",
        protocol: str | None = "websocket",
        deflate: bool = False,
    ) -> ClientSocket:
        """Send an extended CONNECT for ``path`` and wait for the server's answer."""
        stream_id = self.conn.get_next_available_stream_id()
        socket = self.sockets[stream_id] = ClientSocket(self, stream_id)
        fields = [(":method", "CONNECT")]
        if protocol is not None:
            fields += [(":protocol", protocol), (":scheme", "http"), (":path", path)]
        fields.append((":authority", "127.0.0.1"))
        if version is not None:
            fields.append(("sec-websocket-version", version))
        if subprotocols:
            fields.append(("sec-websocket-protocol", ", ".join(subprotocols)))
        if deflate:
            fields.append(("sec-websocket-extensions", "permessage-deflate"))
        self.conn.send_headers(stream_id, [*fields, *(headers or [])])
        await self.write()
        async with asyncio.timeout(TIMEOUT):
            await socket.answered.wait()
        if socket.status != 200:
            async with asyncio.timeout(TIMEOUT):
                await socket.ended.wait()  # the refusal's body, then the stream's end
        accepted = socket.header("sec-websocket-extensions")
        if accepted:
            [(_, params)] = parse_extension(accepted)
            factory = ClientPerMessageDeflateFactory()
            socket.frames.extensions = [factory.process_response_params(params, [])]
        return socket

    async def get(self, path: str = "/") -> tuple[int, bytes]:
        """A plain GET on the same connection."""
        stream_id = self.conn.get_next_available_stream_id()
        socket = self.sockets[stream_id] = ClientSocket(self, stream_id)
        socket.websocket = False
        fields = [(":method", "GET"), (":scheme", "http"), (":path", path)]
        self.conn.send_headers(stream_id, [*fields, (":authority", "127.0.0.1")], end_stream=True)
        await self.write()
        await socket.wait_ended()
        return socket.status, socket.body

    async def send_data(self, stream_id: int, data: bytes) -> None:
        """Send ``data`` on a stream within the server's windows, waiting for them."""
        conn = self.conn
        async with asyncio.timeout(TIMEOUT):
            while data:
                size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if size <= 0:
                    self._progress.set()  # blocked: what a test may wait for
                    self.window.clear()
                    await self.window.wait()
                    if self.lost.is_set():
                        raise ConnectionError("the server closed the connection")
                    continue
                conn.send_data(stream_id, data[:size])
                data = data[size:]
                await self.write()

    async def end_stream(self, stream_id: int) -> None:
        if self.conn.streams.get(stream_id) is not None and self.conn.streams[stream_id].open:
            self.conn.end_stream(stream_id)
            await self.write()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the reader (answers to the server's frames)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds, checked each time the client read or got blocked."""
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                self._progress.clear()
                await self._progress.wait()

    def acknowledge(self, stream_id: int, size: int) -> None:
        self.conn.acknowledge_received_data(size, stream_id)

    async def close(self) -> None:
        for task in [self._reader_task, *self._tasks]:
            if task is not None:
                task.cancel()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


__all__ = ["TIMEOUT", "ClientSocket", "H2WSConnection", "SettingCodes"]
