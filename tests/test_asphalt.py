"""The Asphalt components: configuration, start-up, resources, serving, teardown and events."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from asphalt.core import Component, ContainerComponent, Context, Signal
from werkzeug.exceptions import BadRequest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from kyoukai import HTTPRequestContext, Kyoukai, KyoukaiComponent, TestKyoukai
from kyoukai.asphalt import (
    ConnectionLostEvent,
    ConnectionMadeEvent,
    KyoukaiBaseComponent,
    RouteInvokedEvent,
    RouteMatchedEvent,
    RouteReturnedEvent,
)
from kyoukai.backends._settings import ServerSettings
from kyoukai.backends.httptools_ import KyoukaiProtocol

#: Seconds any network operation of a test may take.
TIMEOUT = 5.0


class Database:
    """A resource another component publishes."""

    def __init__(self, name: str) -> None:
        self.name = name


class DatabaseComponent(Component):
    """A stand-in for asphalt-sqlalchemy and the like: publishes a resource."""

    async def start(self, ctx: Context) -> None:
        ctx.add_resource(Database("main"))


def make_request(path: str = "/", method: str = "GET") -> Request:
    return Request(EnvironBuilder(path=path, method=method).get_environ())


def client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, **kwargs)


@pytest.fixture
def app() -> Kyoukai:
    app = Kyoukai("web")

    @app.route("/")
    async def index(ctx: HTTPRequestContext) -> str:
        return "hello"

    @app.route("/db")
    async def database(ctx: HTTPRequestContext) -> str:
        return ctx.require_resource(Database).name

    return app


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of an importable module holding an application as ``application``."""
    name = "kyoukai_reference_app"
    (tmp_path / f"{name}.py").write_text(
        "from kyoukai import Kyoukai\n\napplication = Kyoukai('by_reference')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
async def served(app: Kyoukai) -> AsyncIterator[tuple[KyoukaiComponent, Context]]:
    """A started component serving ``app`` on a free port; torn down after the test."""
    ctx = Context()
    component = KyoukaiComponent(app, port=0)
    await DatabaseComponent().start(ctx)
    await component.start(ctx)
    try:
        yield component, ctx
    finally:
        if not ctx.closed:
            await ctx.close()


def url(component: KyoukaiComponent, path: str = "/", scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{component.server.port}{path}"


# -- construction and configuration ----------------------------------------------------------


def test_component_takes_the_application_object(app: Kyoukai) -> None:
    component = KyoukaiComponent(app, ip="127.0.0.2", port=8080)
    assert (component.app, component.ip, component.port) == (app, "127.0.0.2", 8080)
    assert component.run_server is True
    assert component.ssl_context is None
    assert component.settings == ServerSettings()
    assert component.server is None and component.base_context is None


def test_component_defaults_to_localhost_4444(app: Kyoukai) -> None:
    component = KyoukaiComponent(app)
    assert (component.ip, component.port) == ("127.0.0.1", 4444)


def test_component_resolves_a_reference_string(app_module: str) -> None:
    component = KyoukaiComponent(f"{app_module}:application")
    assert isinstance(component.app, Kyoukai)
    assert component.app.name == "by_reference"


def test_reference_is_also_looked_up_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `asphalt run` (a console script) does not put the working directory on sys.path.
    (tmp_path / "kyoukai_cwd_app.py").write_text(
        "from kyoukai import Kyoukai\nkyk = Kyoukai('c')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    try:
        assert KyoukaiComponent("kyoukai_cwd_app:kyk").app.name == "c"
    finally:
        sys.modules.pop("kyoukai_cwd_app", None)


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        ("no_such_module_here:app", LookupError, "cannot import 'no_such_module_here'"),
        ("kyoukai:no_such_attribute", LookupError, "has no attribute 'no_such_attribute'"),
        ("kyoukai", ValueError, "not a 'module:attribute' reference"),
        ("kyoukai:__version__", TypeError, "not a Kyoukai application"),
    ],
)
def test_bad_reference_gets_a_clear_error(reference: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        KyoukaiComponent(reference)


def test_application_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"app: .* not a Kyoukai application"):
        KyoukaiComponent(object())  # type: ignore[arg-type]


def test_unknown_key_is_named_with_a_suggestion(app: Kyoukai) -> None:
    with pytest.raises(TypeError, match=r"'max_body'.*did you mean 'max_body_size'"):
        KyoukaiComponent(app, max_body=10)


def test_unknown_key_lists_the_valid_keys(app: Kyoukai) -> None:
    with pytest.raises(TypeError, match=r"'colour'.*valid keys are: .*run_server.*request_timeout"):
        KyoukaiComponent(app, colour="red")
    with pytest.raises(TypeError, match=r"valid keys are: app, ip, port, "):
        KyoukaiComponent(app, colour="red")


def test_server_settings_are_taken_from_the_configuration(app: Kyoukai) -> None:
    component = KyoukaiComponent(app, max_body_size=1024, keep_alive_timeout=2.5)
    assert component.settings.max_body_size == 1024
    assert component.settings.keep_alive_timeout == 2.5
    assert component.settings.request_timeout == ServerSettings().request_timeout


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"max_body_size": -1}, ValueError, "'max_body_size' must be positive"),
        ({"request_timeout": "soon"}, TypeError, "'request_timeout' must be a number"),
        ({"run_server": "no"}, TypeError, "run_server must be true or false"),
        ({"http2": "yes"}, TypeError, "http2 must be true or false"),
        ({"access_log": 0}, TypeError, "access_log must be true or false"),
        ({"resource_name": "my app"}, ValueError, "resource_name must be a name"),
        ({"port": "80"}, ValueError, "port must be an integer"),
        ({"port": 70000}, ValueError, "port must be an integer from 0 to 65535"),
        ({"ip": None}, TypeError, "ip must be an address string"),
    ],
)
def test_bad_value_is_named(
    app: Kyoukai, config: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        KyoukaiComponent(app, **config)


def test_http2_key_picks_the_protocol(app: Kyoukai) -> None:
    from kyoukai.backends._select import SelectingProtocol
    from kyoukai.backends.httptools_ import KyoukaiProtocol

    assert KyoukaiComponent(app, http2=True).protocol_class() is SelectingProtocol
    assert KyoukaiComponent(app, http2=False).protocol_class() is KyoukaiProtocol
    assert KyoukaiComponent(app).protocol_class() is KyoukaiProtocol


def test_get_server_name_names_kyoukai_and_its_version(app: Kyoukai) -> None:
    from kyoukai import __version__

    assert KyoukaiComponent(app).get_server_name() == f"Kyoukai/{__version__}"


def test_base_component_has_no_protocol_of_its_own(app: Kyoukai) -> None:
    with pytest.raises(NotImplementedError, match="overrides get_protocol"):
        KyoukaiBaseComponent(app).get_protocol(Context(), ("127.0.0.1", 4444))


async def test_get_protocol_builds_the_http1_protocol(app: Kyoukai) -> None:
    component = KyoukaiComponent(app, request_timeout=3)
    ctx = Context()
    protocol = component.get_protocol(ctx, ("127.0.0.1", 4444))
    assert isinstance(protocol, KyoukaiProtocol)
    assert protocol.component is component and protocol.parent_context is ctx
    assert (protocol.server_ip, protocol.server_port) == ("127.0.0.1", 4444)


def test_every_configuration_key_is_documented() -> None:
    from kyoukai._component import COMPONENT_KEYS
    from kyoukai._config import SSL_KEYS

    docs = (Path(__file__).resolve().parent.parent / "docs" / "asphalt.md").read_text()
    for key in [*COMPONENT_KEYS, *SSL_KEYS, *ServerSettings.field_names()]:
        assert f"`{key}`" in docs or f"{key}:" in docs, key


async def test_get_protocol_serves_on_a_socket_of_ones_own(app: Kyoukai) -> None:
    component = KyoukaiComponent(app, run_server=False)
    async with Context() as ctx:
        await DatabaseComponent().start(ctx)
        await component.start(ctx)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: component.get_protocol(ctx, ("127.0.0.1", 0)), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        try:
            async with client() as http:
                response = await http.get(f"http://127.0.0.1:{port}/db")
        finally:
            server.close()
            await server.wait_closed()
        assert (response.status_code, response.text) == (200, "main")


# -- TLS configuration -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A throwaway CA and a certificate for 127.0.0.1 issued by it, as PEM files."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: str(directory / name) for name in ("ca.pem", "server.crt", "server.key")}
    ca.cert_pem.write_to_path(paths["ca.pem"])
    for blob in issued.cert_chain_pems:
        blob.write_to_path(paths["server.crt"], append=True)
    issued.private_key_pem.write_to_path(paths["server.key"])
    return paths


def test_ssl_section_builds_a_server_context(app: Kyoukai, certificate: dict[str, str]) -> None:
    ssl_config = {
        "enabled": True,
        "ssl_certfile": certificate["server.crt"],
        "ssl_keyfile": certificate["server.key"],
    }
    context = KyoukaiComponent(app, ssl=ssl_config).ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert not context.check_hostname  # a server context: clients need no certificate


def test_ssl_section_without_enabled_counts_as_enabled(
    app: Kyoukai, certificate: dict[str, str]
) -> None:
    ssl_config = {
        "ssl_certfile": certificate["server.crt"],
        "ssl_keyfile": certificate["server.key"],
    }
    assert KyoukaiComponent(app, ssl=ssl_config).ssl_context is not None


def test_disabled_ssl_reads_no_files(app: Kyoukai) -> None:
    ssl_config = {"enabled": False, "ssl_certfile": "missing.crt", "ssl_keyfile": "missing.key"}
    assert KyoukaiComponent(app, ssl=ssl_config).ssl_context is None


def test_ready_ssl_context_is_used_as_it_is(app: Kyoukai) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert KyoukaiComponent(app, ssl=context).ssl_context is context


@pytest.mark.parametrize(
    ("ssl_config", "error", "message"),
    [
        ({"enabled": True}, ValueError, "ssl.ssl_certfile: the path of the certificate"),
        ({"ssl_certfile": "nope.crt"}, ValueError, "ssl.ssl_certfile: no such file"),
        ({"certfile": "server.crt"}, TypeError, r"'certfile'.*did you mean 'ssl_certfile'"),
        ({"enabled": "yes"}, TypeError, "ssl.enabled must be true or false"),
        ("server.crt", TypeError, "ssl must be a mapping"),
    ],
)
def test_bad_ssl_section_is_named(app: Kyoukai, ssl_config: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        KyoukaiComponent(app, ssl=ssl_config)


def test_key_that_does_not_match_the_certificate_is_refused(
    app: Kyoukai, certificate: dict[str, str], tmp_path: Path
) -> None:
    other_key = tmp_path / "other.key"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    ssl_config = {"ssl_certfile": certificate["server.crt"], "ssl_keyfile": str(other_key)}
    with pytest.raises(ValueError, match="ssl: cannot load the certificate"):
        KyoukaiComponent(app, ssl=ssl_config)


# -- start without a server --------------------------------------------------------------------


async def test_start_publishes_and_finalizes_the_app(app: Kyoukai) -> None:
    component = KyoukaiComponent(app, run_server=False)
    async with Context() as ctx:
        await component.start(ctx)
        assert ctx.require_resource(Kyoukai) is app
        assert app.root.finalized
        assert component.base_context is ctx
        assert component.server is None


async def test_subclass_of_kyoukai_is_published_under_both_types() -> None:
    app = TestKyoukai("tests")
    async with Context() as ctx:
        await KyoukaiComponent(app, run_server=False, resource_name="web").start(ctx)
        assert ctx.require_resource(Kyoukai, "web") is app
        assert ctx.require_resource(TestKyoukai, "web") is app
        assert ctx.get_resource(Kyoukai) is None


async def test_base_component_publishes_without_serving(app: Kyoukai) -> None:
    component = KyoukaiBaseComponent(app)
    async with Context() as ctx:
        await component.start(ctx)
        assert ctx.require_resource(Kyoukai) is app
        assert component.server is None


async def test_access_log_can_be_turned_off_per_application(
    app: Kyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kyoukai")
    async with Context() as ctx:
        await KyoukaiComponent(app, run_server=False, access_log=False).start(ctx)
        await app.process_request(make_request("/"), ctx)
        assert not [r for r in caplog.records if "GET / -> 200" in r.getMessage()]
    # The application logs again once the component is gone.
    await app.process_request(make_request("/"), Context())
    assert [r for r in caplog.records if "GET / -> 200" in r.getMessage()]


async def test_requests_are_children_of_the_component_context(app: Kyoukai) -> None:
    seen: list[HTTPRequestContext] = []

    @app.before_request
    async def remember(request_ctx: HTTPRequestContext) -> None:
        seen.append(request_ctx)

    component = KyoukaiComponent(app, run_server=False)
    async with Context() as ctx:
        await DatabaseComponent().start(ctx)
        await component.start(ctx)
        response = await app.process_request(make_request("/db"), component.base_context)
        assert response.status_code == 200
        assert response.get_data() == b"main"
        assert seen and seen[0].parent is ctx


async def test_request_scoped_resource_is_torn_down_after_the_request(app: Kyoukai) -> None:
    torn_down: list[BaseException | None] = []

    def session_factory(ctx: Context) -> list[str]:
        ctx.add_teardown_callback(torn_down.append, pass_exception=True)
        return ["session"]

    @app.route("/ok")
    async def ok(ctx: HTTPRequestContext) -> str:
        return ctx.require_resource(list)[0]

    @app.route("/fails")
    async def fails(ctx: HTTPRequestContext) -> str:
        ctx.require_resource(list)
        raise RuntimeError("handler bug")

    @app.route("/bad")
    async def bad(ctx: HTTPRequestContext) -> str:
        ctx.require_resource(list)
        raise BadRequest()

    component = KyoukaiComponent(app, run_server=False)
    async with Context() as ctx:
        ctx.add_resource_factory(session_factory, [list])
        await component.start(ctx)
        response = await app.process_request(make_request("/ok"), ctx)
        assert (response.status_code, torn_down) == (200, [None])
        response = await app.process_request(make_request("/fails"), ctx)
        assert response.status_code == 500
        assert isinstance(torn_down[1], RuntimeError)
        response = await app.process_request(make_request("/bad"), ctx)
        assert response.status_code == 400
        assert isinstance(torn_down[2], BadRequest)
        # Each request had a resource of its own, torn down with it.
        assert len(torn_down) == 3


async def test_container_configuration_overrides_address(app: Kyoukai) -> None:
    container = ContainerComponent(
        {"kyoukai": {"type": KyoukaiComponent, "app": app, "ip": "127.0.0.1", "port": 0}}
    )
    async with Context() as ctx:
        await container.start(ctx)
        component = container.child_components["kyoukai"]
        assert isinstance(component, KyoukaiComponent)
        assert component.port == 0 and component.server.port > 0
    assert component.server is None


# -- serving ------------------------------------------------------------------------------------


async def test_component_serves_with_resources_of_other_components(
    served: tuple[KyoukaiComponent, Context],
) -> None:
    component, _ = served
    async with client() as http:
        response = await http.get(url(component, "/db"))
    assert (response.status_code, response.text) == (200, "main")
    assert response.headers["server"].startswith("Kyoukai/")


async def test_address_in_use_is_named(app: Kyoukai) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with Context() as ctx:
            with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
                await KyoukaiComponent(app, port=port).start(ctx)


async def test_teardown_stops_the_server(served: tuple[KyoukaiComponent, Context]) -> None:
    component, ctx = served
    address = url(component)
    await ctx.close()
    assert component.server is None
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(address)


async def test_teardown_lets_the_request_in_flight_finish() -> None:
    app = Kyoukai("slow")
    entered, release = asyncio.Event(), asyncio.Event()

    @app.route("/slow")
    async def slow(request_ctx: HTTPRequestContext) -> str:
        entered.set()
        await release.wait()
        return "finished"

    ctx = Context()
    component = KyoukaiComponent(app, port=0)
    await component.start(ctx)
    address = url(component, "/slow")
    async with client() as http:
        request = asyncio.create_task(http.get(address))
        async with asyncio.timeout(TIMEOUT):
            await entered.wait()
        closing = asyncio.create_task(ctx.close())
        done, _ = await asyncio.wait({closing}, timeout=0.2)
        assert not done, "the server must wait for the request in flight"
        release.set()
        async with asyncio.timeout(TIMEOUT):
            response = await request
            await closing
    assert (response.status_code, response.text) == (200, "finished")
    assert response.headers.get("connection") == "close"


async def test_https_with_the_ssl_section(app: Kyoukai, certificate: dict[str, str]) -> None:
    ssl_config = {
        "enabled": True,
        "ssl_certfile": certificate["server.crt"],
        "ssl_keyfile": certificate["server.key"],
    }
    component = KyoukaiComponent(app, port=0, ssl=ssl_config)
    trust = ssl.create_default_context(cafile=certificate["ca.pem"])
    async with Context() as ctx:
        await component.start(ctx)
        async with client(verify=trust) as http:
            response = await http.get(url(component, scheme="https"))
        assert (response.status_code, response.text) == (200, "hello")
        assert response.extensions["network_stream"].get_extra_info("ssl_object").version() in (
            "TLSv1.2",
            "TLSv1.3",
        )
        # A client that does not trust the CA is refused.
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(url(component, scheme="https"))


async def test_app_start_with_a_component_serves_its_https(
    app: Kyoukai, certificate: dict[str, str]
) -> None:
    ssl_config = {
        "enabled": True,
        "ssl_certfile": certificate["server.crt"],
        "ssl_keyfile": certificate["server.key"],
    }
    component = KyoukaiComponent(app, port=0, ssl=ssl_config, run_server=False)
    trust = ssl.create_default_context(cafile=certificate["ca.pem"])
    server = await app.start("127.0.0.1", 0, component=component)
    try:
        async with client(verify=trust) as http:
            response = await http.get(f"https://127.0.0.1:{server.port}/")
        assert (response.status_code, response.text) == (200, "hello")
    finally:
        await server.stop()


# -- events -------------------------------------------------------------------------------------


async def test_route_events_reach_connected_listeners(app: Kyoukai) -> None:
    received: dict[str, Any] = {}
    all_seen = asyncio.Event()

    def listener(event: Any) -> None:
        received[event.topic] = event
        if len(received) == 3:
            all_seen.set()

    for signal in (app.route_matched, app.route_invoked, app.route_returned):
        signal.connect(listener)

    @app.route("/items/<int:item>")
    async def item(ctx: HTTPRequestContext, item: int) -> str:
        return f"item {item}"

    app.finalize()
    response = await app.process_request(make_request("/items/7"), Context())
    assert response.status_code == 200
    async with asyncio.timeout(TIMEOUT):
        await all_seen.wait()
    matched = received["route_matched"]
    assert isinstance(matched, RouteMatchedEvent)
    assert matched.source is app
    assert matched.ctx.route is item and matched.ctx.params == {"item": 7}
    invoked = received["route_invoked"]
    assert isinstance(invoked, RouteInvokedEvent) and invoked.ctx is matched.ctx
    returned = received["route_returned"]
    assert isinstance(returned, RouteReturnedEvent) and returned.ctx is matched.ctx
    assert returned.result is response


async def test_route_events_can_be_streamed(app: Kyoukai) -> None:
    app.finalize()
    events = app.route_returned.stream_events()
    for path in ("/", "/"):
        await app.process_request(make_request(path), Context())
    async with asyncio.timeout(TIMEOUT):
        first = await anext(events)
        second = await anext(events)
    await events.aclose()  # type: ignore[attr-defined]  # it is an async generator
    assert [first.result.status_code, second.result.status_code] == [200, 200]
    assert first.ctx is not second.ctx
    assert not app.route_returned.listeners


async def test_no_event_is_built_without_listeners(
    app: Kyoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dispatch(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("dispatched without a listener")

    app.finalize()
    monkeypatch.setattr(Signal, "dispatch", dispatch)
    response = await app.process_request(make_request("/"), Context())
    assert response.status_code == 200


async def test_no_connection_event_is_built_without_listeners(
    served: tuple[KyoukaiComponent, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    component, ctx = served
    dispatched: list[Any] = []
    monkeypatch.setattr(Signal, "dispatch", lambda *args, **kwargs: dispatched.append(args))
    async with client() as http:
        response = await http.get(url(component))
    assert response.status_code == 200
    await ctx.close()  # the server stops once every connection is gone
    assert dispatched == []


async def test_connection_events_reach_connected_listeners(
    app: Kyoukai, served: tuple[KyoukaiComponent, Context]
) -> None:
    component, _ = served
    made: list[ConnectionMadeEvent] = []
    lost: list[ConnectionLostEvent] = []
    closed = asyncio.Event()
    app.connection_made.connect(made.append)

    @app.connection_lost.connect
    def on_lost(event: ConnectionLostEvent) -> None:
        lost.append(event)
        closed.set()

    async with client() as http:
        response = await http.get(url(component))
    assert response.status_code == 200
    async with asyncio.timeout(TIMEOUT):
        await closed.wait()
    assert len(made) == 1 and len(lost) == 1
    assert isinstance(made[0], ConnectionMadeEvent)
    assert isinstance(lost[0], ConnectionLostEvent)
    assert made[0].source is app and made[0].topic == "connection_made"
    assert lost[0].topic == "connection_lost"
    assert isinstance(made[0].protocol, KyoukaiProtocol)
    assert lost[0].protocol is made[0].protocol
    assert made[0].protocol.component is component


def test_kyoukai_is_an_asphalt_component_entry_point() -> None:
    # Lets a configuration say ``type: kyoukai``.
    from asphalt.core.component import component_types

    assert component_types.resolve("kyoukai") is KyoukaiComponent


async def test_debug_key_turns_on_debug_mode_with_a_warning(
    app: Kyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    from asphalt.core import Context

    assert KyoukaiComponent(app).debug is False
    component = KyoukaiComponent(app, debug=True, run_server=False)
    async with Context() as ctx:
        await component.start(ctx)
        assert app.debug is True
    assert any("debug" in record.getMessage().lower() for record in caplog.records)
    with pytest.raises(TypeError, match="debug must be true or false"):
        KyoukaiComponent(app, debug="yes")
