"""The application the deployment tests serve besides the examples: streams, bodies, environ.

Run by the servers under test, in their own processes (with ``tests/`` on the import path,
for the stream routes it shares with the built-in server tests): ``probe_app:app`` is the Kyoukai
application itself (an ASGI application) and ``probe_app:wsgi`` its WSGI callable. An event
stream that ends (the client left), and a slow handler that is cancelled and torn down, print
a line, which the tests read from the server's output, whichever worker process served it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

from werkzeug.wrappers import Response

from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends.uwsgi import uWSGIAdapter
from stream_routes import add_stream_routes

app = Kyoukai("probe")
add_stream_routes(app)


@app.route("/info")
async def info(ctx: HTTPRequestContext) -> dict[str, Any]:
    env = ctx.environ
    keys = ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR", "SERVER_PROTOCOL"]
    result: dict[str, Any] = {key: env.get(key) for key in keys}
    result["scheme"] = env["wsgi.url_scheme"]
    result["url"] = ctx.url_for("probe.info", force_external=True)
    result["pid"] = os.getpid()
    return result


@app.route("/echo", methods=["POST"])
async def echo(ctx: HTTPRequestContext) -> dict[str, Any]:
    data = ctx.request.get_data()
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.route("/events/<name>")
async def events(ctx: HTTPRequestContext, name: str) -> Response:
    async def generate() -> AsyncIterator[bytes]:
        try:
            count = 0
            while True:
                yield b"data: %d\n\n" % count
                count += 1
                await asyncio.sleep(0.02)  # an event source's pace, not synchronisation
        finally:
            print(f"event stream {name} closed", flush=True)

    return Response(generate(), mimetype="text/event-stream")  # type: ignore[arg-type]


@app.route("/slow/<name>")
async def slow(ctx: HTTPRequestContext, name: str) -> str:
    ctx.add_teardown_callback(functools.partial(print, f"slow {name} torn down", flush=True))
    print(f"slow {name} started", flush=True)
    try:
        await asyncio.Event().wait()  # a computation that outlasts the client
    except asyncio.CancelledError:
        print(f"slow {name} cancelled", flush=True)
        raise
    return "nobody waits for this"


#: The WSGI callable, for WSGI hosts.
wsgi = uWSGIAdapter(app).run_application
