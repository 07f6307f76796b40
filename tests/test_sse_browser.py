"""An event stream read by a real browser: headless Chromium's EventSource on a Kyoukai page.

The page writes every event it receives into the DOM, which Chromium dumps once the page is
done. The first connection gets one event and ends; the browser reconnects with
``Last-Event-ID``, and the handler resumes after it. Everything goes through ``Compress``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from browser import dump_dom, needs_chromium
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.compression import Compress
from kyoukai.sse import EventStream, ServerSentEvent
from kyoukai.util import as_html

pytestmark = [
    pytest.mark.slow,
    needs_chromium,
]

PAGE = """<!doctype html>
<html><head><title>waiting</title></head><body><ul id="events"></ul><script>
const list = document.getElementById("events");
const source = new EventSource("/events");
source.addEventListener("tick", (event) => {
  const item = document.createElement("li");
  item.textContent = event.lastEventId + "|" + event.data.replace("\\n", "/");
  list.appendChild(item);
  if (list.children.length === 3) { source.close(); document.title = "done"; }
});
</script></body></html>
"""


def build_app(seen: list[str | None]) -> Kyoukai:
    app = Kyoukai("browser")
    app.after_request(Compress(min_size=0))

    @app.route("/")
    async def index(ctx: HTTPRequestContext) -> Response:
        return as_html(PAGE)

    @app.route("/events")
    async def events(ctx: HTTPRequestContext) -> EventStream:
        last = ctx.request.headers.get("Last-Event-ID")
        seen.append(last)

        async def generate() -> AsyncIterator[ServerSentEvent]:
            if last is None:
                yield ServerSentEvent("first\nof two lines", event="tick", id="1", retry=50)
                return  # the stream ends; the browser reconnects
            for index in range(int(last) + 1, int(last) + 3):
                yield ServerSentEvent(f"after {last}", event="tick", id=str(index))
            await asyncio.Event().wait()

        return EventStream(generate())

    return app


async def test_chromium_event_source_receives_events_and_resumes(tmp_path: Path) -> None:
    seen: list[str | None] = []
    server = await build_app(seen).start("127.0.0.1", 0)
    try:
        text = await dump_dom(f"http://127.0.0.1:{server.port}/", tmp_path)
    finally:
        await server.stop(grace=1.0)
    assert "<title>done</title>" in text, text
    assert "<li>1|first/of two lines</li><li>2|after 1</li><li>3|after 1</li>" in text
    assert seen == [None, "1"]
