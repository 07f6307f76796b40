"""Sanic's WebSocket echo (websockets' protocol inside), one process."""

from __future__ import annotations

import sys

from sanic import Request, Sanic

app = Sanic("wsbench")
app.config.WEBSOCKET_MAX_SIZE = 16 * 1024 * 1024


@app.websocket("/ws")
async def echo(request: Request, ws: object) -> None:
    async for message in ws:  # type: ignore[attr-defined]
        await ws.send(message)  # type: ignore[attr-defined]


if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )
