"""Kyoukai under the real ASGI servers and WSGI hosts, each a program started on a free port.

Every server serves three applications in turn: the notes example from its Asphalt
configuration (a database and a template renderer published by sibling components), the
spec's tutorial configuration (a template page and a streamed static file), and the probe
application of ``probe_app.py`` (streams, request bodies, limits, a client leaving an event
stream). ASGI servers get the Kyoukai application object itself or
``ASGIAdapter.from_asphalt_config``; WSGI hosts the ``uWSGIAdapter`` callable.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from processes import BIN, EXAMPLES, TIMEOUT, Program, free_port, run_program

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Server:
    """How to run one server program on a target (``module:attribute``) and a port."""

    #: ``"asgi"`` or ``"wsgi"``: which callable the server takes.
    interface: str
    command: Callable[[str, int], list[str]]
    #: Whether the client speaks HTTP/2 with prior knowledge (h2c).
    http2: bool = False
    #: Whether the server keeps connections open between requests.
    keep_alive: bool = True


def gunicorn(worker: str, *extra: str) -> Callable[[str, int], list[str]]:
    def command(target: str, port: int) -> list[str]:
        bind = f"127.0.0.1:{port}"
        return [
            str(BIN / "gunicorn"),
            "-k",
            worker,
            "-b",
            bind,
            "--no-control-socket",
            *extra,
            target,
        ]

    return command


def hypercorn(target: str, port: int) -> list[str]:
    return [str(BIN / "hypercorn"), "--bind", f"127.0.0.1:{port}", target]


SERVERS = {
    "uvicorn": Server(
        "asgi",
        lambda target, port: [
            str(BIN / "uvicorn"), target, "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "on",
        ],
    ),
    "hypercorn": Server("asgi", hypercorn),
    "hypercorn-h2c": Server("asgi", hypercorn, http2=True),
    "granian": Server(
        "asgi",
        lambda target, port: [
            str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), target,
        ],
    ),
    "gunicorn-asgi": Server("asgi", gunicorn("asgi")),
    "uwsgi": Server(
        "wsgi",
        lambda target, port: [
            str(BIN / "uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--module", target,
            "--master", "--processes", "2", "--threads", "2", "--need-app", "--die-on-term",
        ],
        # uWSGI's http-socket closes the connection after each response.
        keep_alive=False,
    ),
    "gunicorn-gthread": Server("wsgi", gunicorn("gthread", "--workers", "2", "--threads", "2")),
}  # fmt: skip


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def connect(base_url: str | httpx.URL, spec: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=TIMEOUT,
        trust_env=False,
        http1=not spec.http2,
        http2=spec.http2,
        headers=None if spec.keep_alive else {"Connection": "close"},
    )


@asynccontextmanager
async def serving(
    name: str, target: str, cwd: Path, **env: str
) -> AsyncIterator[tuple[Program, httpx.AsyncClient]]:
    """Run server ``name`` on ``target``; yield it and a client for it. It is stopped (and
    must exit) at the end."""
    spec = SERVERS[name]
    port = free_port()
    python_path = os.pathsep.join([str(HERE), str(HERE.parent), str(cwd)])
    environment = {"PYTHONPATH": python_path, **env}
    async with run_program(spec.command(target, port), cwd=cwd, env=environment) as proc:
        await proc.wait_for_port(port)
        try:
            async with connect(f"http://127.0.0.1:{port}", spec) as client:
                yield proc, client
        except BaseException:
            print(f"{name} said:\n{proc.output}")  # shown with the failure
            raise
        await proc.terminate()


def callable_for(name: str, module: str) -> str:
    interface = SERVERS[name].interface
    return f"{module}:{'app' if interface == 'asgi' else 'wsgi'}"


async def test_notes_from_its_asphalt_configuration(server: str, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.yml"
    overlay.write_text(f"component:\n  database: {tmp_path / 'notes.sqlite'}\n")
    config = os.pathsep.join([str(EXAMPLES / "notes" / "config.yml"), str(overlay)])
    target = f"entry:{SERVERS[server].interface}"
    async with serving(server, target, EXAMPLES / "notes", KYOUKAI_CONFIG=config) as (_, client):
        created = await client.post("/notes", json={"title": "Groceries", "body": "tea"})
        assert created.status_code == 201, created.text
        assert created.headers["location"].endswith(f"/notes/{created.json()['id']}")
        listed = await client.get("/notes")
        assert [note["title"] for note in listed.json()["notes"]] == ["Groceries"]
        page = await client.get("/")  # rendered by the templating component's renderer
        assert page.status_code == 200 and "Groceries" in page.text
        invalid = await client.post("/notes", content=b"not json")
        assert invalid.status_code == 400 and invalid.json()["error"]
        missing = await client.get("/notes/999")
        assert missing.status_code == 404
        assert missing.json() == {"error": "there is no note 999"}


async def test_tutorial_configuration_from_the_spec(server: str) -> None:
    config = str(EXAMPLES / "tutorial" / "config.yml")
    target = f"entry:{SERVERS[server].interface}"
    cwd = EXAMPLES / "tutorial"
    async with serving(server, target, cwd, KYOUKAI_CONFIG=config) as (_, client):
        page = await client.get("/")
        assert page.status_code == 200 and "Hello from Kyoukai" in page.text
        style = await client.get("/static/style.css")  # a file, streamed
        assert style.status_code == 200
        assert style.headers["content-type"].startswith("text/css")
        assert style.content == (cwd / "static" / "style.css").read_bytes()
        assert (await client.get("/static/../app.py")).status_code == 404


async def raw_status(port: int, head: bytes) -> bytes:
    """The status line the server answers a raw request head with."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        async with asyncio.timeout(TIMEOUT):
            return (await reader.readline()).rstrip()
    finally:
        writer.close()


async def test_probe_streams_bodies_and_environ(server: str) -> None:
    spec = SERVERS[server]
    target = callable_for(server, "probe_app")
    async with serving(server, target, HERE) as (proc, client):
        info = (await client.get("/info?q=1")).json()
        assert info["REMOTE_ADDR"] == "127.0.0.1" and info["QUERY_STRING"] == "q=1"
        assert info["SERVER_PROTOCOL"] == ("HTTP/2" if spec.http2 else "HTTP/1.1")
        assert info["scheme"] == "http" and info["url"] == f"{client.base_url}/info"

        assert (await client.get("/stream")).text == "part 0\npart 1\npart 2\n"
        assert (await client.get("/astream")).text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"

        data = os.urandom(300_000)
        digest = hashlib.sha256(data).hexdigest()
        echoed = await client.post("/echo", content=data)
        assert echoed.json() == {"length": len(data), "sha256": digest}
        packed = gzip.compress(data)
        decoded = await client.post("/echo", content=packed, headers={"Content-Encoding": "gzip"})
        assert decoded.json() == {"length": len(data), "sha256": digest}

        async def pieces(body: bytes) -> AsyncIterator[bytes]:
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        chunked = await client.post("/echo", content=pieces(data))  # no Content-Length
        assert chunked.json() == {"length": len(data), "sha256": digest}
        gzip_header = {"Content-Encoding": "gzip"}
        unpacked = await client.post("/echo", content=pieces(packed), headers=gzip_header)
        assert unpacked.json() == {"length": len(data), "sha256": digest}
        if not spec.http2:
            port = int(str(client.base_url).rpartition(":")[2])
            head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n"
            assert (await raw_status(port, head)).startswith(b"HTTP/1.1 413")
        if server == "uwsgi":  # a chunk its chunked input API cannot read: refused, not lost
            head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            assert (await raw_status(port, head + b"5;x=1\r\nhello\r\n0\r\n\r\n")).startswith(
                b"HTTP/1.1 400"
            )

        async with (
            connect(client.base_url, spec) as leaving,
            leaving.stream("GET", "/events/left") as events,
        ):
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.aiter_lines()
            assert await anext(lines) == "data: 0"
        # The client has gone (its connection closed): the handler's generator is closed.
        await proc.wait_for_line("event stream left closed")
    if server == "uwsgi":
        assert "spawned uWSGI worker 2 (" in proc.output and "cores: 2" in proc.output


@pytest.mark.parametrize(
    "asgi_server",
    sorted(name for name, spec in SERVERS.items() if spec.interface == "asgi" and not spec.http2),
)
async def test_a_client_leaving_cancels_a_slow_handler(asgi_server: str) -> None:
    async with serving(asgi_server, "probe_app:app", HERE) as (proc, client):
        port = int(str(client.base_url).rpartition(":")[2])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow/left HTTP/1.1\r\nHost: x\r\n\r\n")
        await proc.wait_for_line("slow left started")
        writer.close()  # while the handler still computes its in-memory answer
        await writer.wait_closed()
        await proc.wait_for_line("slow left cancelled")
        await proc.wait_for_line("slow left torn down")  # its request context
        assert (await client.get("/info")).status_code == 200
    assert "Traceback" not in proc.output and "Exception" not in proc.output, proc.output


async def test_uvicorn_root_path_is_the_script_name() -> None:
    port = free_port()
    command = [str(BIN / "uvicorn"), "probe_app:app", "--port", str(port), "--root-path", "/api"]
    python_path = os.pathsep.join([str(HERE), str(HERE.parent)])
    async with run_program(command, cwd=HERE, env={"PYTHONPATH": python_path}) as proc:
        await proc.wait_for_port(port)
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as client:
            info = (await client.get(f"http://127.0.0.1:{port}/info")).json()
        assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("/api", "/info")
        assert info["url"] == f"http://127.0.0.1:{port}/api/info"
        await proc.terminate()
