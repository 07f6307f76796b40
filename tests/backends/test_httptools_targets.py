"""Request targets and hosts on the built-in server: the absolute form names the one host.

RFC 9112 section 3.2.2: with an absolute-form target the server must ignore ``Host`` and use
the target's authority. Routing, ``request.host``, ``request.url`` and built URLs then agree,
so a host-matched blueprint cannot be reached under one host and answered under another.
"""

from __future__ import annotations

import json

from helpers import RawClient
from kyoukai import Blueprint, HTTPRequestContext, Kyoukai


def hosted_app() -> Kyoukai:
    app = Kyoukai("hosts", host_matching=True)
    admin = Blueprint("admin", host="admin.example")
    public = Blueprint("public", host="www.example")

    @admin.route("/who")
    async def admin_who(ctx: HTTPRequestContext) -> dict[str, str]:
        return {
            "bp": "admin",
            "host": ctx.request.host,
            "url": ctx.request.url,
            "built": ctx.url_for("admin.admin_who", force_external=True),
        }

    @public.route("/who")
    async def public_who(ctx: HTTPRequestContext) -> dict[str, str]:
        return {"bp": "public", "host": ctx.request.host, "url": ctx.request.url}

    app.register_blueprint(admin)
    app.register_blueprint(public)
    return app


async def ask(port: int, request: bytes) -> tuple[bytes, dict[str, str]]:
    async with await RawClient.connect(port) as client:
        await client.send(request)
        response = await client.read_response()
    body = json.loads(response.body) if response.body.startswith(b"{") else {}
    return response.status_line, body


async def test_absolute_form_target_uses_its_authority_not_host(start) -> None:
    server = await start(app=hosted_app())
    status, body = await ask(
        server.port, b"GET http://admin.example/who?x=1 HTTP/1.1\r\nHost: www.example\r\n\r\n"
    )
    assert status == b"HTTP/1.1 200 OK"
    assert body == {
        "bp": "admin",
        "host": "admin.example",
        "url": "http://admin.example/who?x=1",
        "built": "http://admin.example/who",
    }


async def test_origin_form_still_routes_by_host(start) -> None:
    server = await start(app=hosted_app())
    _, body = await ask(server.port, b"GET /who HTTP/1.1\r\nHost: www.example\r\n\r\n")
    assert body == {"bp": "public", "host": "www.example", "url": "http://www.example/who"}


async def test_absolute_form_to_an_unknown_host_is_404_whatever_host_says(start) -> None:
    server = await start(app=hosted_app())
    status, _ = await ask(
        server.port, b"GET http://evil.example/who HTTP/1.1\r\nHost: admin.example\r\n\r\n"
    )
    assert status == b"HTTP/1.1 404 Not Found"


async def test_absolute_form_without_a_plain_host_is_refused(start) -> None:
    server = await start(app=hosted_app())
    for target in (b"http:///who", b"http://user@admin.example/who"):
        status, _ = await ask(server.port, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status == b"HTTP/1.1 400 Bad Request"


async def test_absolute_form_without_a_path_is_the_root(start, server_app) -> None:
    server = await start()
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET http://a.example HTTP/1.1\r\nHost: b\r\n\r\n")
        response = await client.read_response()
    assert response.body == b"hello"
