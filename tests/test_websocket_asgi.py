"""WebSocket routes under real ASGI servers (uvicorn with websockets, Hypercorn): the server
speaks the protocol, Kyoukai routes the handshake and runs the session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from processes import BIN, TIMEOUT, free_port, run_program

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

TESTS = Path(__file__).resolve().parent
APP = "from ws_helpers import Record, build_ws_app\n\napp = build_ws_app(Record())\n"
COMMANDS = {
    "uvicorn": lambda port: [str(BIN / "uvicorn"), "ws_app:app", "--port", str(port)],
    "hypercorn": lambda port: [str(BIN / "hypercorn"), "--bind", f"127.0.0.1:{port}", "ws_app:app"],
}


@pytest.fixture(scope="module", params=sorted(COMMANDS))
def server_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def url(server_name: str, tmp_path: Path) -> AsyncIterator[str]:
    (tmp_path / "ws_app.py").write_text(APP)
    port = free_port()
    env = {"PYTHONPATH": f"{TESTS}:{tmp_path}"}
    async with run_program(COMMANDS[server_name](port), cwd=tmp_path, env=env) as program:
        await program.wait_for_port(port)
        yield f"ws://127.0.0.1:{port}"


async def open_ws(url: str, path: str, **kwargs: object) -> ClientConnection:
    async with asyncio.timeout(TIMEOUT):
        return await connect(url + path, **kwargs)  # type: ignore[arg-type]


async def test_echo_subprotocol_and_close_codes(url: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        async with await open_ws(url, "/echo") as ws:
            await ws.send("text")
            assert await ws.recv() == "text"
            await ws.send(b"\x00bytes")
            assert await ws.recv() == b"\x00bytes"
        async with await open_ws(url, "/proto", subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            assert await ws.recv() == "chat.v1"
        ws = await open_ws(url, "/close/4001")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001
        ws = await open_ws(url, "/boom")
        await ws.send("trigger")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1011


async def test_refused_handshakes(url: str) -> None:
    for path, status in [("/private", 403), ("/nowhere", 404)]:
        with pytest.raises(InvalidStatus) as info:
            await open_ws(url, path)
        assert info.value.response.status_code == status, path
    ws = await open_ws(url, "/private", additional_headers={"Authorization": "Bearer yes"})
    async with asyncio.timeout(TIMEOUT):
        assert await ws.recv() == "secret"
        await ws.close()
