"""Kyoukai's WebSocket echo on its built-in server, uvloop."""

from __future__ import annotations

import sys

from kyoukai import Kyoukai
from kyoukai.websocket import WebSocket

app = Kyoukai("ws-bench")
app.access_log = False


@app.websocket("/ws")
async def echo(ctx: object, ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)


if __name__ == "__main__":
    app.run("127.0.0.1", int(sys.argv[1]), websocket_max_message_size=16 * 1024 * 1024)
