"""Request bodies under ASGI: the application pulls ``receive`` as it reads, so the body is
bounded by the route and never asked for when the route, the limit or a hook refuses."""

from __future__ import annotations

import asyncio
import json

import pytest

from asgi_helpers import Exchange, http_scope, request_messages
from kyoukai import Kyoukai
from kyoukai.backends.asgi import ASGIAdapter
from uploads import KiB, build_upload_app


@pytest.fixture
def seen() -> list[str]:
    return []


@pytest.fixture
def adapter(seen: list[str]) -> ASGIAdapter:
    app: Kyoukai = build_upload_app(seen)
    return ASGIAdapter(app, max_body_size=1 << 31)


async def run(
    adapter: ASGIAdapter, path: str, headers: list[tuple[bytes, bytes]], *pieces: bytes
) -> Exchange:
    exchange = Exchange(request_messages(*pieces))
    async with asyncio.timeout(5):
        await adapter(http_scope(path, "POST", headers), exchange.receive, exchange.send)
    return exchange


def length(size: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", b"%d" % size)]


async def test_streaming_route_pulls_the_body_piece_by_piece(adapter: ASGIAdapter) -> None:
    exchange = await run(adapter, "/hash", length(6), b"abc", b"def")
    assert json.loads(exchange.body)["size"] == 6
    assert not exchange.inbox


@pytest.mark.parametrize(
    ("path", "size", "status"),
    [
        ("/small", 2 << 20, 413),  # the application's 1 MiB
        ("/tight/inherits", KiB + 1, 413),  # the blueprint's 1 KiB
        ("/private/upload", 10, 401),  # a pre-request hook refuses
        ("/nowhere", 10, 404),
    ],
)
async def test_refused_before_any_of_the_body_is_pulled(
    adapter: ASGIAdapter, seen: list[str], path: str, size: int, status: int
) -> None:
    exchange = await run(adapter, path, length(size), b"x", b"never pulled")
    assert exchange.status == status
    assert len(exchange.inbox) == 2
    assert seen == []


async def test_body_past_the_route_limit_stops_being_pulled(adapter: ASGIAdapter) -> None:
    chunked = [(b"transfer-encoding", b"chunked")]
    exchange = await run(adapter, "/tight/stream", chunked, b"x" * 600, b"x" * 600, b"never")
    assert (exchange.status, exchange.body) == (413, b"too large for tight")
    assert len(exchange.inbox) == 1
