"""A real browser's WebSocket: headless Chromium on a page served by Kyoukai.

The page opens a WebSocket to the server (Chromium offers permessage-deflate, so the session
is compressed), sends text and binary messages, writes every echo it gets into the DOM, then
asks the server to close; Chromium dumps the DOM once the page has loaded. A WebSocket does not
hold the page's load (nor Chromium's virtual time) back, so the page ends with a script,
``/hold.js``, that the server sends only once the page has reported what it saw to ``/report``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from browser import dump_dom, needs_chromium
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.util import as_html
from kyoukai.websocket import WebSocket

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(60),
    needs_chromium,
]

PAGE = """<!doctype html>
<html><head><title>waiting</title></head><body><ul id="log"></ul><script>
const log = (text) => {
  const item = document.createElement("li");
  item.textContent = text;
  document.getElementById("log").appendChild(item);
};
const scheme = location.protocol === "https:" ? "wss" : "ws";
const ws = new WebSocket(`${scheme}://${location.host}/echo`, ["echo.v1"]);
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  const deflate = ws.extensions.includes("permessage-deflate");
  log("open " + ws.protocol + " " + (deflate ? "deflate" : "plain"));
  ws.send("hello");
  ws.send("h\\u00e9llo \\u2713 ".repeat(200));
  ws.send(new Uint8Array([0, 1, 2, 255]).buffer);
};
let count = 0;
ws.onmessage = (event) => {
  log(typeof event.data === "string"
      ? "text " + event.data.length + " " + event.data.slice(0, 7)
      : "binary " + Array.from(new Uint8Array(event.data)).join(","));
  if (++count === 3) ws.send("bye");
};
ws.onclose = (event) => {
  log("close " + event.code + " " + event.reason);
  fetch("/report", {method: "POST", body: document.getElementById("log").innerText});
};
</script><script src="/hold.js"></script></body></html>
"""


def build_app(
    closes: list[tuple[int | None, str | None]],
    reports: list[str],
    protocols: list[str] | None = None,
) -> Kyoukai:
    app = Kyoukai("browser")
    reported = asyncio.Event()

    @app.route("/")
    async def index(ctx: HTTPRequestContext) -> Response:
        return as_html(PAGE)

    @app.route("/hold.js")
    async def hold(ctx: HTTPRequestContext) -> Response:
        async with asyncio.timeout(30):
            await reported.wait()
        return Response('document.title = "done";', mimetype="text/javascript")

    @app.route("/report", methods=["POST"])
    async def report(ctx: HTTPRequestContext) -> str:
        reports.append(ctx.request.get_data(as_text=True))
        reported.set()
        return "thanks"

    @app.websocket("/echo")
    async def echo(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept("echo.v1" if "echo.v1" in ws.subprotocols else None)
        if protocols is not None:
            protocols.append(ctx.request.environ["SERVER_PROTOCOL"])
        async for message in ws:
            if message == "bye":
                await ws.close(4000, "page done")
            else:
                await ws.send(message)
        closes.append((ws.close_code, ws.close_reason))

    return app


async def test_chromium_websocket_echoes_text_and_binary(tmp_path: Path) -> None:
    closes: list[tuple[int | None, str | None]] = []
    reports: list[str] = []
    server = await build_app(closes, reports).start("127.0.0.1", 0)
    try:
        text = await dump_dom(f"http://127.0.0.1:{server.port}/", tmp_path)
    finally:
        await server.stop(grace=1.0)
    assert "<title>done</title>" in text, text
    assert (
        "<li>open echo.v1 deflate</li><li>text 5 hello</li><li>text 1600 héllo ✓</li>"
        "<li>binary 0,1,2,255</li><li>close 4000 page done</li>"
    ) in text, text
    assert closes == [(4000, "page done")]
    assert reports[0].splitlines()[-1] == "close 4000 page done"
