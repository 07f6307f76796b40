"""Server-Sent Events over HTTP/2: each event reaches the client as it is produced."""

from __future__ import annotations

import asyncio

import httpx

from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.sse import EventStream, ServerSentEvent


async def test_event_stream_over_h2c_delivers_each_event_then_closes_the_generator(
    start,
) -> None:
    app = Kyoukai("sse-h2")
    sent: list[int] = []
    read = asyncio.Event()
    closed = asyncio.Event()

    @app.route("/events")
    async def events(ctx: HTTPRequestContext) -> EventStream:
        async def produce():
            try:
                for n in range(3):
                    sent.append(n)
                    yield ServerSentEvent(str(n), id=str(n))
                    await read.wait()  # the next event only after the client saw this one
                    read.clear()
            finally:
                closed.set()

        return EventStream(produce(), ping_interval=60)

    server = await start(app=app, http2=True)
    async with asyncio.timeout(10):
        async with httpx.AsyncClient(http1=False, http2=True, trust_env=False) as client:
            url = f"http://127.0.0.1:{server.port}/events"
            async with client.stream("GET", url) as response:
                assert response.http_version == "HTTP/2"
                assert response.headers["content-type"].startswith("text/event-stream")
                seen: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(line[6:])
                        assert sent == list(range(len(seen)))  # not buffered ahead
                        read.set()
                    if len(seen) == 3:
                        break
            await closed.wait()
    assert seen == ["0", "1", "2"]
