"""The WSGI host in process: the callable driven by Werkzeug's WSGI test client, from this
(blocking) thread, while the application runs on the host's own loop."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asphalt.core import Component, Context
from werkzeug.test import Client

from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends._wsgi_host import WSGIHost, _forget_after_fork
from kyoukai.backends.uwsgi import uWSGIAdapter


@pytest.fixture
def app(server_app: Kyoukai) -> Kyoukai:
    """The server tests' application, with routes that show where the request ran."""

    @server_app.route("/where")
    async def where(ctx: HTTPRequestContext) -> dict[str, Any]:
        return {"thread": threading.current_thread().name, "base": id(ctx.parent)}

    @server_app.route("/resource")
    async def resource(ctx: HTTPRequestContext) -> str:
        return ctx.require_resource(str, "greeting")

    return server_app


@pytest.fixture
def host(app: Kyoukai) -> Iterator[uWSGIAdapter]:
    adapter = uWSGIAdapter(app, max_body_size=2000)
    yield adapter
    adapter.close()


def test_the_application_runs_on_the_hosts_own_loop(host: uWSGIAdapter) -> None:
    client = Client(host.run_application)
    first, second = client.get("/where"), client.get("/where")
    assert first.status_code == 200
    assert first.json is not None and first.json["thread"] == "kyoukai-wsgi-loop"
    assert first.json == second.json  # one loop and one base context per process
    assert client.head("/").data == b"" and client.get("/").data == b"hello"


def test_request_body_is_read_and_decoded_within_the_limit(host: uWSGIAdapter) -> None:
    client = Client(host)
    assert client.post("/echo", data=b"hello").data == b"hello"
    packed = gzip.compress(b"a" * 1500)
    response = client.post("/echo", data=packed, headers={"Content-Encoding": "gzip"})
    assert response.data == b"a" * 1500 and response.headers["X-Length"] == "1500"
    too_big = client.post("/echo", data=b"x" * 2001)
    assert (
        too_big.status_code == 413
        and too_big.data == b"413 Request Entity Too Large: body too large\n"
    )
    bomb = gzip.compress(b"a" * 3000)
    assert client.post("/echo", data=bomb, headers={"Content-Encoding": "gzip"}).status_code == 413


def test_body_without_a_length_is_read_to_its_end(host: uWSGIAdapter) -> None:
    environ_overrides = {"wsgi.input_terminated": True}
    response = Client(host).post("/echo", data=b"chunked body", environ_overrides=environ_overrides)
    assert response.data == b"chunked body"


def test_streams_reach_the_server_piece_by_piece(host: uWSGIAdapter) -> None:
    client = Client(host)
    response = client.get("/stream", buffered=False)
    assert list(response.response) == [b"part 0\n", b"part 1\n", b"part 2\n"]
    response.close()
    events = client.get("/astream", buffered=False)
    assert list(events.response) == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    events.close()


def test_server_closing_the_response_closes_the_generator(host: uWSGIAdapter, gates: Any) -> None:
    response = Client(host).get("/events", buffered=False)
    assert next(iter(response.response)) == b"data: first\n\n"
    response.close()  # what a server does when the client has gone; it waits for the close
    assert gates["events-closed"].is_set()


def test_header_that_could_split_the_response_is_a_500(
    host: uWSGIAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    response = Client(host).get("/bad-header/crlf")
    assert response.status_code == 500 and "X-Evil" not in response.headers
    assert "Cannot send the response" in caplog.text


def test_a_fork_starts_its_own_loop_and_context(host: uWSGIAdapter) -> None:
    client = Client(host)
    before = client.get("/where").json
    parents = host._running
    assert parents is not None
    _forget_after_fork()  # what the child of a fork runs
    after = client.get("/where").json
    parents.stop()  # in a real child, the parent's loop thread does not exist
    assert before is not None and after is not None and before["base"] != after["base"]


def test_close_tears_the_base_context_down(app: Kyoukai) -> None:
    base = Context()
    closed: list[bool] = []
    base.add_teardown_callback(lambda: closed.append(True))
    given = uWSGIAdapter(app, base)
    Client(given).get("/")
    given.close()
    assert closed == []  # a given context is the caller's to close
    owned = uWSGIAdapter(app)
    Client(owned).get("/")
    running = owned._running
    assert running is not None
    owned.close()
    assert running.lifecycle.base_context is None and not running.thread.is_alive()


class Greeter(Component):
    async def start(self, ctx: Context) -> None:
        ctx.add_resource("from a sibling", "greeting")


def test_from_asphalt_config_starts_the_components_in_the_worker(app: Kyoukai) -> None:
    config = {
        "component": {
            "type": "asphalt.core:ContainerComponent",
            "components": {
                "sibling": {"type": Greeter},
                "kyoukai": {"type": "kyoukai", "app": app, "max_body_size": 10},
            },
        }
    }
    host = uWSGIAdapter.from_asphalt_config(config)
    assert isinstance(host, uWSGIAdapter)
    try:
        assert host._running is None  # nothing starts before the first request
        assert Client(host.run_application).get("/resource").data == b"from a sibling"
        # The component's body limit holds behind the WSGI server too.
        assert Client(host).post("/echo", data=b"x" * 11).status_code == 413
    finally:
        host.close()


def test_the_host_is_a_plain_wsgi_callable(app: Kyoukai) -> None:
    host = WSGIHost(app)
    try:
        assert Client(host).get("/").status_code == 200
    finally:
        host.close()
