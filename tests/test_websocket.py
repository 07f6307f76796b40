"""WebSocket routes, hooks and sessions, through the test client (in process, no sockets)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from werkzeug.exceptions import Forbidden

from kyoukai import Blueprint, HTTPRequestContext, TestKyoukai
from kyoukai.routegroup import RouteGroup, websocket
from kyoukai.testing import WebSocketRejected
from kyoukai.websocket import WebSocket, WebSocketDisconnect

pytestmark = pytest.mark.timeout(10)


def add_echo(app: TestKyoukai, url: str = "/echo") -> None:
    @app.websocket(url)
    async def echo(ctx: HTTPRequestContext, ws: WebSocket, **params: str) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)


async def test_text_and_binary_messages_echo(app: TestKyoukai) -> None:
    add_echo(app)
    async with app.websocket_connect("/echo") as ws:
        await ws.send_text("hello")
        assert await ws.receive_text() == "hello"
        await ws.send_bytes(b"\x00\xff")
        assert await ws.receive_bytes() == b"\x00\xff"
        await ws.send_json({"a": [1, 2]})
        assert await ws.receive_json() == {"a": [1, 2]}


async def test_path_parameters_and_context_reach_the_handler(app: TestKyoukai) -> None:
    @app.websocket("/chat/<room>")
    async def chat(ctx: HTTPRequestContext, ws: WebSocket, room: str) -> None:
        await ws.accept()
        await ws.send_json({"room": room, "url": ctx.url_for("test.chat", room="x")})

    async with app.websocket_connect("/chat/lobby") as ws:
        assert await ws.receive_json() == {"room": "lobby", "url": "ws://localhost/chat/x"}


async def test_handler_return_closes_with_1000(app: TestKyoukai) -> None:
    @app.websocket("/once")
    async def once(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("bye")

    async with app.websocket_connect("/once") as ws:
        assert await ws.receive() == "bye"
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive()
    assert info.value.code == 1000


async def test_server_close_code_and_reason_reach_the_client(app: TestKyoukai) -> None:
    @app.websocket("/close")
    async def close(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(4001, "go away")
        assert (ws.close_code, ws.close_reason) == (4001, "go away")
        with pytest.raises(WebSocketDisconnect):
            await ws.send_text("too late")

    async with app.websocket_connect("/close") as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive()
    assert (info.value.code, info.value.reason) == (4001, "go away")


async def test_client_close_raises_disconnect_in_the_handler(app: TestKyoukai) -> None:
    seen: list[tuple[int | None, str | None]] = []

    @app.websocket("/close")
    async def close(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))
        seen.append((ws.close_code, ws.close_reason))

    async with app.websocket_connect("/close") as ws:
        await ws.close(4002, "done")
    assert seen == [(4002, "done"), (4002, "done")]


async def test_subprotocol_is_chosen_from_the_offer(app: TestKyoukai) -> None:
    @app.websocket("/proto")
    async def proto(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        assert ws.subprotocols == ["chat.v2", "chat.v1"]
        with pytest.raises(ValueError, match="offered"):
            await ws.accept("chat.v3")
        await ws.accept("chat.v1", headers={"X-Room": "1"})

    async with app.websocket_connect("/proto", subprotocols=["chat.v2", "chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ("X-Room", "1") in ws.headers


async def test_hook_raising_forbidden_refuses_the_handshake(app: TestKyoukai) -> None:
    add_echo(app)

    @app.before_request
    async def auth(ctx: HTTPRequestContext) -> None:
        if ctx.request.headers.get("Authorization") != "yes":
            raise Forbidden()

    @app.errorhandler(403)
    async def forbidden(ctx: HTTPRequestContext, exc: Exception) -> Any:
        return "no entry", 403

    with pytest.raises(WebSocketRejected) as info:
        async with app.websocket_connect("/echo"):
            pass
    assert info.value.response.status_code == 403
    assert info.value.response.get_data() == b"no entry"
    async with app.websocket_connect("/echo", headers={"Authorization": "yes"}) as ws:
        await ws.send("ok")
        assert await ws.receive() == "ok"


async def test_handler_returning_a_response_answers_the_handshake(app: TestKyoukai) -> None:
    @app.websocket("/full")
    async def full(ctx: HTTPRequestContext, ws: WebSocket) -> Any:
        return "room full", 409

    with pytest.raises(WebSocketRejected) as info:
        async with app.websocket_connect("/full"):
            pass
    assert info.value.response.status_code == 409


@pytest.mark.parametrize("how", ["return", "close"])
async def test_leaving_without_accepting_is_403(app: TestKyoukai, how: str) -> None:
    @app.websocket("/no")
    async def no(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        if how == "close":
            await ws.close()

    with pytest.raises(WebSocketRejected) as info:
        async with app.websocket_connect("/no"):
            pass
    assert info.value.response.status_code == 403


async def test_unknown_and_http_routes_refuse_handshakes_as_routing_says(
    app: TestKyoukai,
) -> None:
    @app.route("/page")
    async def page(ctx: HTTPRequestContext) -> str:
        return "page"

    @app.route("/form", methods=["POST"])
    async def form(ctx: HTTPRequestContext) -> str:
        return "form"

    for url, status in [("/nowhere", 404), ("/page", 404), ("/form", 405)]:
        with pytest.raises(WebSocketRejected) as info:
            async with app.websocket_connect(url):
                pass
        assert info.value.response.status_code == status, url
    assert (await app.get("/page")).status_code == 200


async def test_plain_http_to_a_websocket_route_is_426(app: TestKyoukai) -> None:
    add_echo(app)
    add_echo(app, "/rooms/<name>")
    for url in ("/echo", "/rooms/a"):
        response = await app.get(url)
        assert response.status_code == 426
        assert response.headers["Upgrade"] == "websocket"


async def test_http_and_websocket_routes_share_a_path(app: TestKyoukai) -> None:
    @app.route("/live/<feed>")
    async def page(ctx: HTTPRequestContext, feed: str) -> str:
        return f"page {feed}"

    @app.websocket("/live/<feed>")
    async def live(ctx: HTTPRequestContext, ws: WebSocket, feed: str) -> None:
        await ws.accept()
        await ws.send(f"feed {feed}")

    for _ in range(2):  # the second round is answered from the match caches
        assert (await app.get("/live/a")).get_data() == b"page a"
        async with app.websocket_connect("/live/a") as ws:
            assert await ws.receive() == "feed a"


async def test_upgrade_header_on_a_plain_request_does_not_poison_routing(
    app: TestKyoukai,
) -> None:
    @app.route("/items/<int:n>")
    async def item(ctx: HTTPRequestContext, n: int) -> str:
        return str(n)

    headers = {"Upgrade": "websocket", "Connection": "Upgrade"}
    assert (await app.inject_request(headers, "/items/1")).status_code == 200
    assert (await app.get("/items/2")).get_data() == b"2"


async def test_error_after_accept_closes_with_1011_logged_once(
    app: TestKyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    @app.websocket("/boom")
    async def boom(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive()
        raise RuntimeError("kaboom")

    with caplog.at_level(logging.ERROR, "kyoukai"):
        async with app.websocket_connect("/boom") as ws:
            await ws.send("x")
            with pytest.raises(WebSocketDisconnect) as info:
                await ws.receive()
    assert info.value.code == 1011
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert len(logged) == 1


async def test_error_before_accept_goes_to_the_error_handlers(app: TestKyoukai) -> None:
    @app.websocket("/early")
    async def early(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        raise KeyError("x")

    @app.errorhandler(500)
    async def oops(ctx: HTTPRequestContext, exc: Exception) -> Any:
        return "oops", 500

    with pytest.raises(WebSocketRejected) as info:
        async with app.websocket_connect("/early"):
            pass
    assert info.value.response.get_data() == b"oops"


async def test_blueprints_and_route_groups_have_websocket_routes(app: TestKyoukai) -> None:
    bp = Blueprint("api", prefix="/api")

    @bp.websocket("/feed")
    async def feed(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("bp")

    class Chat(RouteGroup, prefix="/group"):
        def __init__(self) -> None:
            self.greeting = "group"

        @websocket("/<room>")
        async def chat(self, ctx: HTTPRequestContext, ws: WebSocket, room: str) -> None:
            await ws.accept()
            await ws.send(f"{self.greeting} {room}")

    app.register_blueprint(bp)
    app.add_route_group(Chat)
    async with app.websocket_connect("/api/feed") as ws:
        assert await ws.receive() == "bp"
    async with app.websocket_connect("/group/r1") as ws:
        assert await ws.receive() == "group r1"


async def test_handler_arguments_are_checked_after_the_session() -> None:
    app = TestKyoukai("test")

    @app.websocket("/<room>")
    async def bad(ctx: HTTPRequestContext, ws: WebSocket) -> None: ...

    with pytest.raises(TypeError, match="room"):
        app.finalize()


async def test_receive_text_refuses_binary_with_1003(app: TestKyoukai) -> None:
    @app.websocket("/text")
    async def text(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()

    async with app.websocket_connect("/text") as ws:
        await ws.send(b"binary")
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive()
    assert info.value.code == 1003


async def test_close_refuses_codes_a_server_may_not_send(app: TestKyoukai) -> None:
    @app.websocket("/codes")
    async def codes(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept()
        for code in (1005, 1006, 999, 5000):
            with pytest.raises(ValueError, match="close code"):
                await ws.close(code)
        await ws.send("checked")

    async with app.websocket_connect("/codes") as ws:
        assert await ws.receive() == "checked"


async def test_request_resources_live_as_long_as_the_session(app: TestKyoukai) -> None:
    closed = asyncio.Event()

    @app.websocket("/res")
    async def res(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        ctx.add_teardown_callback(closed.set)
        await ws.accept()
        await ws.receive()
        assert not closed.is_set()

    async with app.websocket_connect("/res") as ws:
        await ws.send("x")
    assert closed.is_set()
