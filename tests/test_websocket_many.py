"""A thousand WebSockets open at once on the built-in server, each one still answering."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from websockets.asyncio.client import ClientConnection, connect

from ws_helpers import Record, build_ws_app

pytestmark = pytest.mark.timeout(60)

SESSIONS = 1000


async def test_a_thousand_concurrent_websockets() -> None:
    server = await build_ws_app(Record()).start("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.port}/echo"
    try:
        async with AsyncExitStack() as stack, asyncio.timeout(45):

            async def open_one() -> ClientConnection:
                return await stack.enter_async_context(connect(url, compression=None))

            sessions: list[ClientConnection] = []
            for _ in range(SESSIONS // 100):  # in waves, within the listen backlog
                sessions += await asyncio.gather(*(open_one() for _ in range(100)))
            assert server.connections == SESSIONS

            async def echo(index: int, ws: ClientConnection) -> str | bytes:
                await ws.send(f"session {index}")
                return await ws.recv()

            replies = await asyncio.gather(*(echo(i, ws) for i, ws in enumerate(sessions)))
            assert replies == [f"session {i}" for i in range(SESSIONS)]
    finally:
        await server.stop(grace=1.0)
    assert server.connections == 0
