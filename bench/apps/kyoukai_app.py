"""Kyoukai on its built-in server. ``--no-uvloop`` runs it on plain asyncio; ``--routes N``
registers N filler routes instead of 50 (the routing-scale variants); ``--http2`` serves
HTTP/2 too (prior knowledge on cleartext; ``--tls CERT KEY`` for TLS with ALPN)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import _routes

from kyoukai import Kyoukai

app = Kyoukai("bench")
app.access_log = False  # every server here runs without an access log


def _filler(n: int) -> Callable[..., Awaitable[str]]:
    async def filler(ctx: Any, item: int) -> str:
        return str(item)

    filler.__name__ = filler.__qualname__ = f"filler_{n}"
    return filler


for _n, _path in enumerate(_routes.filler_routes(_routes.routes_from_argv())):
    app.route(_routes.render(_path, "werkzeug"))(_filler(_n))


@app.route("/")
async def index(ctx: Any) -> str:
    return _routes.HELLO


@app.route("/json")
async def json_(ctx: Any) -> dict[str, str]:
    return _routes.JSON_BODY


@app.route(_routes.render(_routes.USER_ROUTE, "werkzeug"))
async def user(ctx: Any, id: int) -> str:
    return str(id)


@app.route("/upload", methods=["POST"])
async def upload(ctx: Any) -> str:
    return str(len(ctx.request.get_data()))


if __name__ == "__main__":
    options: dict[str, Any] = {}
    if "--http2" in sys.argv:
        # h2load keeps each connection for its whole run: no GOAWAY after 1000 requests.
        options = {"http2": True, "h2_max_requests": 10**9}
    if "--tls" in sys.argv:
        import ssl

        cert, key = sys.argv[sys.argv.index("--tls") + 1 : sys.argv.index("--tls") + 3]
        options["ssl"] = context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    use_uvloop = "--no-uvloop" not in sys.argv
    app.run(_routes.HOST, _routes.port_from_argv(), use_uvloop=use_uvloop, **options)
