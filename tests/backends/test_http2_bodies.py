"""Request bodies over HTTP/2: streamed to a handler started on HEADERS, back-pressure through
the stream's window (never the connection's), limits from the route, and what ends a body
early: a reset, a stalled client, a length that does not match ``content-length``.

The raw client is the h2 library itself (it keeps the windows), so that a test can see exactly
which WINDOW_UPDATEs the server sends; curl and httpx upload as real clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import h2.events as ev
import httpx
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import StreamClosedError
from werkzeug.exceptions import ClientDisconnected

from conftest import Gates, StartServer
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends._server import KyoukaiServer
from uploads import PIECE, KiB, MiB

TIMEOUT = 30.0
#: The server's settings here: small, so that a few MiB cross many windows.
BUFFER = 64 * KiB
WINDOW = 64 * KiB
FRAME = 16 * KiB
#: The most a stream's body may hold in the server: its buffer, the window granted, a frame.
BOUND = BUFFER + WINDOW + FRAME

pytestmark = pytest.mark.timeout(60)


def build_body_app(gates: Gates, seen: dict[str, Any]) -> Kyoukai:
    app = Kyoukai("h2-bodies", max_body_size=64 * MiB)

    async def digest_of(ctx: HTTPRequestContext) -> dict[str, Any]:
        body = ctx.request.environ["kyoukai.body"]
        digest = hashlib.sha256()
        size = peak = 0
        async for chunk in ctx.request.iter_body():
            peak = max(peak, body.received - size)  # what the server held, this piece included
            digest.update(chunk)
            size += len(chunk)
        seen["peak"] = max(seen.get("peak", 0), peak)
        return {"size": size, "sha256": digest.hexdigest()}

    @app.route("/hash", methods=["POST"], stream_body=True)
    async def hash_body(ctx: HTTPRequestContext) -> dict[str, Any]:
        return await digest_of(ctx)

    @app.route("/held", methods=["POST"], stream_body=True)
    async def held(ctx: HTTPRequestContext) -> dict[str, Any]:
        seen["body"] = ctx.request.environ["kyoukai.body"]
        await gates["held"].wait()  # reads nothing until the test says so
        return await digest_of(ctx)

    @app.route("/loaded", methods=["POST"])
    async def loaded(ctx: HTTPRequestContext) -> dict[str, Any]:
        data = ctx.request.get_data()
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    @app.route("/small", methods=["POST"], stream_body=True, max_body_size=64 * KiB)
    async def small(ctx: HTTPRequestContext) -> dict[str, Any]:
        seen["small"] = True
        return await digest_of(ctx)

    @app.route("/watch", methods=["POST"], stream_body=True)
    async def watch(ctx: HTTPRequestContext) -> str:
        try:
            async for _ in ctx.request.iter_body():
                gates["watch-reading"].set()
        except BaseException as exc:
            seen["error"] = exc
            seen["body error"] = ctx.request.environ["kyoukai.body"].error
            gates["watch-failed"].set()
            raise
        return "complete"

    return app


@pytest.fixture
def seen() -> dict[str, Any]:
    return {}


@pytest.fixture
async def body_server(start: StartServer, gates: Gates, seen: dict[str, Any]) -> KyoukaiServer:
    return await start(
        app=build_body_app(gates, seen),
        http2=True,
        body_buffer_size=BUFFER,
        h2_initial_window_size=WINDOW,
        h2_connection_window_size=4 * WINDOW,
    )


class Client:
    """An HTTP/2 client on the h2 library: it keeps the windows, and records every frame's
    event the server's bytes produce."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.events: list[ev.Event] = []
        self.pongs = 0

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        client.conn.initiate_connection()
        await client.flush()
        return client

    async def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    async def read(self) -> None:
        """Read what the server sent next and take in its events."""
        data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
        assert data, "the server closed the connection"
        for event in self.conn.receive_data(data):
            self.events.append(event)
            if isinstance(event, ev.PingAckReceived):
                self.pongs += 1
            elif isinstance(event, ev.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        await self.flush()

    async def settle(self) -> None:
        """Return once the server has handled everything sent so far, and its answers are in.

        Two PINGs: the first one's ACK may leave in the same write as what the frames before
        it caused; the second's leaves after all of it.
        """
        for _ in range(2):
            target = self.pongs + 1
            self.conn.ping(b"settle!!")
            await self.flush()
            while self.pongs < target:
                await self.read()

    async def open(self, path: str, headers: list[tuple[str, str]] | None = None) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        head = [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", path)]
        self.conn.send_headers(stream_id, [*head, *(headers or [])])
        await self.flush()
        return stream_id

    def window(self, stream_id: int) -> int:
        try:
            return min(self.conn.local_flow_control_window(stream_id), FRAME)
        except StreamClosedError:
            return 0

    async def send(self, stream_id: int, size: int, digest: Any = None) -> None:
        """Send ``size`` bytes of the body, as the windows allow (waiting for them to open)."""
        while size:
            room = self.window(stream_id)
            if not room:
                await self.read()
                continue
            data = PIECE[: min(room, size)]
            if digest is not None:
                digest.update(data)
            self.conn.send_data(stream_id, data)
            size -= len(data)
            await self.flush()

    async def send_until_blocked(self, stream_id: int, digest: Any) -> int:
        """Send as long as the stream's window lets us; return how much went."""
        sent = 0
        while True:
            while room := self.window(stream_id):
                data = PIECE[sent % MiB :][:room]
                digest.update(data)
                self.conn.send_data(stream_id, data)
                sent += len(data)
                await self.flush()
            await self.settle()
            if not self.window(stream_id):
                return sent

    def updates(self, stream_id: int) -> int:
        return sum(
            e.delta
            for e in self.events
            if isinstance(e, ev.WindowUpdated) and e.stream_id == stream_id
        )

    async def response(self, stream_id: int) -> tuple[int, bytes, int | None]:
        """Read until the stream's response ended or the stream was reset: status, body and
        the reset's code (``None`` if it ended without one)."""
        status, body, ended, reset = 0, b"", False, None
        seen = 0
        while True:
            for event in self.events[seen:]:
                if getattr(event, "stream_id", None) != stream_id:
                    continue
                if isinstance(event, ev.ResponseReceived):
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, ev.DataReceived):
                    body += event.data
                elif isinstance(event, ev.StreamEnded):
                    ended = True
                elif isinstance(event, ev.StreamReset):
                    reset = event.error_code
            seen = len(self.events)
            if reset is not None or (ended and status):
                return status, body, reset
            await self.read()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


@pytest.fixture
async def client(body_server: KyoukaiServer) -> AsyncIterator[Client]:
    connection = await Client.connect(body_server.port)
    try:
        yield connection
    finally:
        await connection.close()


async def upload(client: Client, path: str, size: int) -> tuple[dict[str, Any], str]:
    stream_id = await client.open(path)
    digest = hashlib.sha256()
    await client.send(stream_id, size, digest)
    client.conn.end_stream(stream_id)
    await client.flush()
    status, body, reset = await client.response(stream_id)
    assert (status, reset) == (200, None), body
    return json.loads(body), digest.hexdigest()


async def test_streamed_upload_is_hashed_as_it_arrives(
    client: Client, seen: dict[str, Any]
) -> None:
    result, sent = await upload(client, "/hash", 8 * MiB)
    assert result == {"size": 8 * MiB, "sha256": sent}
    assert seen["peak"] <= BOUND


async def test_ordinary_route_gets_the_whole_body_across_many_windows(client: Client) -> None:
    result, sent = await upload(client, "/loaded", 2 * MiB)
    assert result == {"size": 2 * MiB, "sha256": sent}


async def test_window_is_withheld_while_the_handler_does_not_read(
    client: Client, gates: Gates, seen: dict[str, Any]
) -> None:
    stream_id = await client.open("/held")
    digest = hashlib.sha256()
    sent = await client.send_until_blocked(stream_id, digest)
    # The server took what fills its buffer and the window it had granted, then stopped.
    assert BUFFER <= sent <= BOUND
    assert seen["body"].received == sent
    withheld = client.updates(stream_id)
    await client.settle()
    assert client.updates(stream_id) == withheld  # still nothing: the handler reads nothing
    # Another stream of the same connection still gets the connection's window.
    result, other = await upload(client, "/hash", 2 * MiB)
    assert result == {"size": 2 * MiB, "sha256": other}
    gates["held"].set()
    await client.send(stream_id, 8 * MiB - sent, digest)
    client.conn.end_stream(stream_id)
    await client.flush()
    status, body, _ = await client.response(stream_id)
    assert status == 200
    assert json.loads(body) == {"size": 8 * MiB, "sha256": digest.hexdigest()}


async def test_streamed_body_over_the_route_limit_gets_413_then_reset(
    client: Client, seen: dict[str, Any]
) -> None:
    stream_id = await client.open("/small")
    sent = await client.send_until_blocked(stream_id, hashlib.sha256())
    assert sent <= BOUND  # no window once the body is over the limit
    status, _, reset = await client.response(stream_id)
    assert status == 413
    if reset is None:  # the response ended; the reset that stops the upload follows
        while not any(isinstance(e, ev.StreamReset) for e in client.events):
            await client.read()
        reset = next(e.error_code for e in client.events if isinstance(e, ev.StreamReset))
    assert reset == ErrorCodes.NO_ERROR
    assert seen["small"]
    result, sent = await upload(client, "/hash", 100 * KiB)  # the connection goes on
    assert result["sha256"] == sent


async def test_declared_length_over_the_route_limit_gets_413_before_the_body(
    client: Client, seen: dict[str, Any]
) -> None:
    stream_id = await client.open("/small", [("content-length", str(MiB))])
    status, _, _ = await client.response(stream_id)
    assert status == 413
    assert "small" not in seen  # refused after routing, before the handler
    assert client.updates(stream_id) == 0


async def test_client_reset_mid_body_fails_the_read(
    client: Client, gates: Gates, seen: dict[str, Any]
) -> None:
    stream_id = await client.open("/watch")
    await client.send(stream_id, 10 * KiB)
    await asyncio.wait_for(gates["watch-reading"].wait(), TIMEOUT)
    client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
    await client.flush()
    await asyncio.wait_for(gates["watch-failed"].wait(), TIMEOUT)
    # As on HTTP/1.1 when the client goes away: the body fails (a read after this raises
    # ClientDisconnected) and the handler is cancelled in its read.
    assert isinstance(seen["error"], asyncio.CancelledError)
    assert isinstance(seen["body error"], ClientDisconnected)
    result, sent = await upload(client, "/hash", 10 * KiB)
    assert result["sha256"] == sent


async def test_stalled_streamed_body_fails_with_408(
    start: StartServer, gates: Gates, seen: dict[str, Any]
) -> None:
    server = await start(app=build_body_app(gates, seen), http2=True, body_timeout=0.2)
    connection = await Client.connect(server.port)
    try:
        stream_id = await connection.open("/watch")
        await connection.send(stream_id, 10 * KiB)
        status, _, _ = await connection.response(stream_id)
    finally:
        await connection.close()
    assert status == 408
    assert getattr(seen["error"], "code", None) == 408


@pytest.mark.parametrize("declared", [5, 20], ids=["more data", "less data"])
async def test_content_length_mismatch_is_a_stream_error(client: Client, declared: int) -> None:
    stream_id = await client.open("/watch", [("content-length", str(declared))])
    # h2 checks what it sends as we do: frames for the mismatch are built by hand.
    frame = b"\x00\x00\x0a\x00\x01" + stream_id.to_bytes(4) + b"0123456789"
    client.writer.write(frame)
    await client.writer.drain()
    while not any(isinstance(e, ev.StreamReset) for e in client.events):
        await client.read()
    reset = next(e for e in client.events if isinstance(e, ev.StreamReset))
    assert reset.error_code == ErrorCodes.PROTOCOL_ERROR
    assert not any(isinstance(e, ev.ConnectionTerminated) for e in client.events)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it)")
    return path


async def test_curl_uploads_8_mib_to_a_streaming_route(
    body_server: KyoukaiServer, tmp_path: Path, seen: dict[str, Any]
) -> None:
    upload_file = tmp_path / "upload.bin"
    upload_file.write_bytes(PIECE * 8)
    process = await asyncio.create_subprocess_exec(
        need("curl"),
        "-sS",
        "--http2-prior-knowledge",
        "--data-binary",
        f"@{upload_file}",
        "-w",
        " %{http_version}",
        f"http://127.0.0.1:{body_server.port}/hash",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err
    body, version = out.decode().rsplit(" ", 1)
    assert version == "2"
    assert seen["peak"] <= BOUND
    assert json.loads(body) == {"size": 8 * MiB, "sha256": hashlib.sha256(PIECE * 8).hexdigest()}


async def test_httpx_uploads_8_mib_to_a_streaming_route(
    body_server: KyoukaiServer, seen: dict[str, Any]
) -> None:
    async def content() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield PIECE

    async with httpx.AsyncClient(http1=False, http2=True, trust_env=False) as http:
        response = await http.post(
            f"http://127.0.0.1:{body_server.port}/hash", content=content(), timeout=TIMEOUT
        )
    assert response.http_version == "HTTP/2"
    assert response.json() == {"size": 8 * MiB, "sha256": hashlib.sha256(PIECE * 8).hexdigest()}
    assert seen["peak"] <= BOUND
