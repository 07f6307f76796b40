"""Routes with streamed responses, shared by the built-in server tests' application
(``backends/conftest.py``) and the application the deployment tests hand real servers
(``deploy/probe_app.py``): one source for what every server must stream alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from werkzeug.wrappers import Response

from kyoukai import HTTPRequestContext, Kyoukai

#: What ``/stream`` and ``/astream`` send, piece by piece.
STREAM_PIECES = [b"part 0\n", b"part 1\n", b"part 2\n"]
ASTREAM_PIECES = [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]


def add_stream_routes(app: Kyoukai) -> None:
    """Add ``/stream`` (a generator of bytes) and ``/astream`` (an async generator of text,
    as server-sent events) to ``app``."""

    @app.route("/stream")
    async def stream(ctx: HTTPRequestContext) -> Response:
        def generate() -> Iterator[bytes]:
            yield from STREAM_PIECES

        return Response(generate(), mimetype="text/plain")

    @app.route("/astream")
    async def astream(ctx: HTTPRequestContext) -> Response:
        async def generate() -> AsyncIterator[str]:
            for piece in ASTREAM_PIECES:
                await asyncio.sleep(0)  # a piece per turn of the loop
                yield piece.decode()

        return Response(generate(), mimetype="text/event-stream")  # type: ignore[arg-type]
