"""Debug mode: the traceback page, the debugger's files, and the start-up warnings."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

import pytest
from werkzeug.exceptions import abort

from helpers import IO_TIMEOUT, RawClient
from kyoukai import Kyoukai, TestKyoukai


class DomainError(Exception):
    pass


def crashing_app(**options) -> TestKyoukai:
    app = TestKyoukai("debugged", **options)

    @app.route("/crash")
    async def crash(ctx):
        raise ValueError("the detail of the crash")

    @app.route("/forbidden")
    async def forbidden(ctx):
        abort(403)

    @app.route("/domain")
    async def domain(ctx):
        raise DomainError("handled by class")

    @app.errorhandler(DomainError)
    async def on_domain(ctx, exc):
        return str(exc), 409

    return app


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "kyoukai" and r.levelno == logging.WARNING
    ]


async def test_debug_is_off_by_default() -> None:
    app = crashing_app()
    assert app.debug is False
    body = (await app.get("/crash")).get_data(as_text=True)
    assert "Traceback" not in body
    assert "the detail of the crash" not in body


async def test_debug_shows_werkzeug_traceback_page() -> None:
    app = crashing_app(debug=True)
    resp = await app.get("/crash", headers={"Accept": "text/html,*/*;q=0.8"})
    assert resp.status_code == 500
    assert resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "Werkzeug Debugger" in page
    assert "ValueError" in page
    assert "the detail of the crash" in page
    assert 'raise ValueError("the detail of the crash")' in page
    assert "EVALEX = false" in page  # no interactive console


async def test_debug_traceback_as_text_for_clients_without_html() -> None:
    app = crashing_app(debug=True)
    for accept in ("text/plain", "application/json"):
        resp = await app.get("/crash", headers={"Accept": accept})
        assert (resp.status_code, resp.mimetype) == (500, "text/plain")
        text = resp.get_data(as_text=True)
        assert text.startswith("Traceback (most recent call last):")
        assert "ValueError: the detail of the crash" in text


async def test_debug_is_a_settable_attribute_and_skips_500_handlers() -> None:
    app = crashing_app()

    @app.errorhandler(500)
    async def handle_500(ctx, exc):
        return "the 500 page"

    assert (await app.get("/crash")).get_data() == b"the 500 page"
    app.debug = True
    assert "Traceback" in (await app.get("/crash")).get_data(as_text=True)


async def test_debug_keeps_http_errors_and_class_handlers() -> None:
    app = crashing_app(debug=True)
    resp = await app.get("/forbidden")
    assert resp.status_code == 403
    assert "Traceback" not in resp.get_data(as_text=True)
    resp = await app.get("/domain")
    assert (resp.status_code, resp.get_data()) == (409, b"handled by class")


async def test_debug_shows_a_failing_error_handler() -> None:
    app = crashing_app(debug=True)

    @app.errorhandler(403)
    async def broken_403(ctx, exc):
        raise KeyError("the 403 page is broken")

    text = (await app.get("/forbidden", headers={"Accept": "text/plain"})).get_data(as_text=True)
    assert "KeyError: 'the 403 page is broken'" in text


async def test_debugger_resources_only_in_debug_mode() -> None:
    query = "?__debugger__=yes&cmd=resource&f=style.css"
    resp = await crashing_app(debug=True).get("/crash" + query)
    assert (resp.status_code, resp.mimetype) == (200, "text/css")
    assert b".debugger" in resp.get_data()
    assert (await crashing_app(debug=True).get("/x?__debugger__=yes&f=../x")).status_code == 404
    assert (await crashing_app().get("/nothing" + query)).status_code == 404


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_warning_on_loopback(caplog: pytest.LogCaptureFixture, host: str) -> None:
    app = Kyoukai("debugged", debug=True)
    app.warn_debug(host)
    (message,) = warnings_of(caplog)
    assert "Debug mode is on for 'debugged'" in message
    assert "NOT A LOOPBACK" not in message


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com", ""])
def test_loud_warning_elsewhere(caplog: pytest.LogCaptureFixture, host: str) -> None:
    app = Kyoukai("debugged", debug=True)
    app.warn_debug(host)
    (message,) = warnings_of(caplog)
    assert "DEBUG MODE ON" in message
    assert "NOT A LOOPBACK ADDRESS" in message
    assert (host or "EVERY INTERFACE") in message


def test_no_warning_without_debug(caplog: pytest.LogCaptureFixture) -> None:
    Kyoukai("quiet").warn_debug("0.0.0.0")
    assert not warnings_of(caplog)


async def test_start_with_debug(caplog: pytest.LogCaptureFixture) -> None:
    app = crashing_app()
    server = await app.start("127.0.0.1", 0, debug=True)
    try:
        assert app.debug is True
        assert any("Debug mode is on" in message for message in warnings_of(caplog))
        async with await RawClient.connect(server.port) as client:
            await client.send(b"GET /crash HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n")
            response = await client.read_response()
    finally:
        await server.stop()
    assert response.status_line == b"HTTP/1.1 500 Internal Server Error"
    assert b"ValueError: the detail of the crash" in response.body


RUN_SCRIPT = """
import sys
from kyoukai import Kyoukai

app = Kyoukai("debug-run")

@app.route("/crash")
async def crash(ctx):
    raise ValueError("crashed in the subprocess")

app.run(ip="127.0.0.1", port=int(sys.argv[1]), debug=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def connect_when_listening(process: asyncio.subprocess.Process, port: int) -> RawClient:
    """Connect as soon as the server accepts; the server prints nothing we could wait on."""
    async with asyncio.timeout(IO_TIMEOUT * 2):
        while True:
            try:
                return await RawClient.connect(port)
            except OSError:
                assert process.returncode is None, "the server exited"
                await asyncio.sleep(0.02)  # retry interval of the poll, not a synchronisation


@pytest.mark.slow
async def test_run_with_debug_in_a_subprocess() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_SCRIPT, str(port), stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with await connect_when_listening(process, port) as client:
            await client.send(b"GET /crash HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n")
            response = await client.read_response()
    finally:
        if process.returncode is None:
            process.kill()
        async with asyncio.timeout(IO_TIMEOUT):
            stderr = (await process.stderr.read()).decode()
            await process.wait()
    assert response.status_line == b"HTTP/1.1 500 Internal Server Error"
    assert response.header("content-type") == "text/html; charset=utf-8"
    page = response.body.decode()
    assert "Werkzeug Debugger" in page
    assert "ValueError: crashed in the subprocess" in page
    assert "Debug mode is on for 'debug-run'" in stderr
