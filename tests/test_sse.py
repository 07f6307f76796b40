"""Server-Sent Events (kyoukai.sse) through the test client: framing, pings, closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kyoukai import HTTPRequestContext, TestKyoukai
from kyoukai.sse import PING, EventStream, ServerSentEvent

TIMEOUT = 5.0


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (ServerSentEvent("hello"), b"data: hello\n\n"),
        (ServerSentEvent(""), b"data: \n\n"),
        (ServerSentEvent("a\nb\r\nc\rd"), b"data: a\ndata: b\ndata: c\ndata: d\n\n"),
        (ServerSentEvent("end\n"), b"data: end\ndata: \n\n"),
        (
            ServerSentEvent("x", event="update", id="42", retry=2500),
            b"event: update\nid: 42\nretry: 2500\ndata: x\n\n",
        ),
        (ServerSentEvent("境界"), "data: 境界\n\n".encode()),
    ],
)
def test_event_encoding(event: ServerSentEvent, wire: bytes) -> None:
    assert event.encode() == wire


@pytest.mark.parametrize(
    "kwargs",
    [{"event": "a\nb"}, {"id": "1\r"}, {"id": "a\0b"}, {"retry": -1}],
)
def test_fields_that_would_break_the_stream_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServerSentEvent("data", **kwargs)


async def stream_app(app: TestKyoukai, gate: asyncio.Event, closed: asyncio.Event) -> None:
    @app.route("/events")
    async def events(ctx: HTTPRequestContext) -> EventStream:
        last = ctx.request.headers.get("Last-Event-ID")

        async def generate() -> AsyncIterator[ServerSentEvent | str]:
            try:
                yield ServerSentEvent(f"resumed after {last}", id="1")
                yield "plain string"
                await gate.wait()
                yield ServerSentEvent("after the gate", event="late")
                await asyncio.Event().wait()
            finally:
                closed.set()

        return EventStream(generate(), ping_interval=0.01)


async def test_event_stream_response(app: TestKyoukai) -> None:
    gate, closed = asyncio.Event(), asyncio.Event()
    await stream_app(app, gate, closed)
    response = await app.get("/events", headers={"Last-Event-ID": "0"})
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    body: Any = response.response
    async with asyncio.timeout(TIMEOUT):
        assert await anext(body) == b"id: 1\ndata: resumed after 0\n\n"
        assert await anext(body) == b"data: plain string\n\n"
        assert await anext(body) == PING  # the generator waits: the stream stays alive
        assert await anext(body) == PING
        gate.set()
        item = await anext(body)
        while item == PING:
            item = await anext(body)
        assert item == b"event: late\ndata: after the gate\n\n"
        await body.aclose()
        await closed.wait()  # the idle generator was cancelled at its await


@pytest.mark.parametrize("ping_interval", [None, 5.0])
async def test_stream_ends_with_the_generator(
    app: TestKyoukai, ping_interval: float | None
) -> None:
    @app.route("/short")
    async def short(ctx: HTTPRequestContext) -> EventStream:
        async def generate() -> AsyncIterator[str]:
            yield "only"

        return EventStream(generate(), ping_interval=ping_interval)

    body: Any = (await app.get("/short")).response
    assert [item async for item in body] == [b"data: only\n\n"]


async def test_generator_failure_surfaces(app: TestKyoukai) -> None:
    @app.route("/broken")
    async def broken(ctx: HTTPRequestContext) -> EventStream:
        async def generate() -> AsyncIterator[str]:
            yield "first"
            raise RuntimeError("the source failed")

        return EventStream(generate())

    body: Any = (await app.get("/broken")).response
    assert await anext(body) == b"data: first\n\n"
    with pytest.raises(RuntimeError, match="source failed"):
        await anext(body)
    await body.aclose()


async def test_status_and_headers_can_be_given(app: TestKyoukai) -> None:
    async def nothing() -> AsyncIterator[str]:
        return
        yield

    response = EventStream(nothing(), status=201, headers={"Cache-Control": "no-store"})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    body: Any = response.response
    await body.aclose()
