"""The route table every benchmark server registers, and its command-line conventions.

Each server registers ``FILLER_ROUTES`` first, so its router holds ~50 rules before the
measured ones, and then the measured endpoints:

- ``GET /`` → ``Hello, world!`` as ``text/plain``
- ``GET /json`` → ``{"message": "Hello, world!"}`` as ``application/json``
- ``GET /user/<int:id>`` → the id as text
- ``POST /upload`` → the length of the request body as text

Paths are written with one ``{int}`` placeholder style here and rendered into each router's
own syntax by :func:`render`.
"""

from __future__ import annotations

import os
import sys

HOST = "127.0.0.1"
HELLO = "Hello, world!"
JSON_BODY = {"message": HELLO}
FILLER_COUNT = 50


def filler_routes(count: int = FILLER_COUNT) -> list[str]:
    """``count`` filler routes; ``{int:name}`` marks an integer path parameter."""
    return [f"/filler/{n}/items/{{int:item}}" for n in range(count)]


FILLER_ROUTES = filler_routes()
USER_ROUTE = "/user/{int:id}"

#: How each router spells an integer parameter called ``name``.
INT_PARAM_STYLES = {
    "werkzeug": "<int:{name}>",
    "sanic": "<{name}:int>",
    "aiohttp": "{{{name}:\\d+}}",
    "starlette": "{{{name}:int}}",
    "blacksheep": "{{int:{name}}}",
}


def render(path: str, style: str) -> str:
    """Render ``path`` with its ``{int:name}`` placeholders in the given router's syntax."""
    template = INT_PARAM_STYLES[style]
    out: list[str] = []
    for segment in path.split("/"):
        if segment.startswith("{int:") and segment.endswith("}"):
            segment = template.format(name=segment[5:-1])
        out.append(segment)
    return "/".join(out)


def routes_from_argv(argv: list[str] | None = None) -> int:
    """Return the filler route count: ``--routes N`` on the command line, else 50."""
    args = sys.argv[1:] if argv is None else argv
    if "--routes" in args:
        return int(args[args.index("--routes") + 1])
    return FILLER_COUNT


def port_from_argv(argv: list[str] | None = None) -> int:
    """Return the port to bind: the first command-line argument, else ``$BENCH_PORT``."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    if args:
        return int(args[0])
    return int(os.environ.get("BENCH_PORT", "8000"))
