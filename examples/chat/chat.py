"""A chat server: rooms of WebSockets, and the page that joins them.

Open http://127.0.0.1:4444/ in two browser windows and talk. Each room keeps its members'
sessions; a message from one goes to all of them, and everyone hears who comes and goes.
``?name=`` picks a nickname; a nickname already in the room is refused (409) before the
WebSocket opens, as ordinary HTTP.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from werkzeug.exceptions import Conflict
from werkzeug.wrappers import Response

from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.util import as_html
from kyoukai.websocket import WebSocket, WebSocketDisconnect

PAGE = (Path(__file__).resolve().parent / "chat.html").read_text(encoding="utf-8")
#: Longest message a member may send, in characters.
MAX_MESSAGE = 500

app = Kyoukai("chat")
#: Room name -> nickname -> that member's session.
rooms: dict[str, dict[str, WebSocket]] = {}


async def broadcast(room: str, event: dict[str, str]) -> None:
    """Send ``event`` to every member of ``room``; a member who left meanwhile is skipped."""
    members = list(rooms.get(room, {}).values())
    results = await asyncio.gather(*(ws.send_json(event) for ws in members), return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, WebSocketDisconnect):
            raise result


@app.route("/")
async def index(ctx: HTTPRequestContext) -> Response:
    return as_html(PAGE)


@app.websocket("/rooms/<room>")
async def chat(ctx: HTTPRequestContext, ws: WebSocket, room: str) -> None:
    name = ctx.request.args.get("name", "").strip()[:30] or "anonymous"
    members = rooms.setdefault(room, {})
    if name in members:
        raise Conflict(f"{name!r} is already in {room!r}: pick another name")
    await ws.accept()
    members[name] = ws
    try:
        await ws.send_json({"kind": "welcome", "room": room, "members": ", ".join(members)})
        await broadcast(room, {"kind": "joined", "name": name})
        async for message in ws:
            if isinstance(message, str) and message.strip():
                await broadcast(room, {"kind": "said", "name": name, "text": message[:MAX_MESSAGE]})
    finally:
        del members[name]
        if not members:
            del rooms[room]
        await broadcast(room, {"kind": "left", "name": name})


if __name__ == "__main__":
    app.run("127.0.0.1", 4444)
