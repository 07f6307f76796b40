"""gunicorn with ``-k kyoukai.backends.gunicorn.KyoukaiWorker``: real arbiters, real workers.

Each test starts gunicorn on a free port of 127.0.0.1 and waits for log lines or answers, never
for a fixed time. The application (:data:`APP`) says which process answered.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from gunicorn.config import Config

from kyoukai import Kyoukai
from kyoukai.backends._settings import ServerSettings
from kyoukai.backends.gunicorn import UNLIMITED, GunicornAdapter, KyoukaiWorker, as_adapter
from processes import BIN, EXAMPLES, TIMEOUT, Program, free_port, run_program, wait_until_serving

pytestmark = pytest.mark.slow

WORKER = "kyoukai.backends.gunicorn.KyoukaiWorker"

APP = """
import asyncio, os, sys, time

from asphalt.core import Context

from kyoukai import Kyoukai
from kyoukai.backends.gunicorn import GunicornAdapter

VERSION = "v1"
kyk = Kyoukai("gunicorn-test")


@kyk.route("/")
async def index(ctx):
    return {"pid": os.getpid(), "version": VERSION, "context": type(ctx.parent).__name__}


@kyk.route("/busy")
async def busy(ctx):
    time.sleep(0.2)  # holds this worker's loop, so the other worker takes new connections
    return {"pid": os.getpid()}


@kyk.route("/slow")
async def slow(ctx):
    print("slow request started", os.getpid(), file=sys.stderr, flush=True)
    await asyncio.sleep(1.5)  # simulated work, still running when TERM arrives
    return "slow request finished"


@kyk.route("/stuck")
async def stuck(ctx):
    print("stuck request started", os.getpid(), file=sys.stderr, flush=True)
    time.sleep(120)  # a handler that blocks its worker's loop: no heartbeat
    return "unreachable"


application = GunicornAdapter(kyk).run_application
"""


def gunicorn_args(port: int, *extra: str) -> list[str]:
    args = [str(BIN / "gunicorn"), "-k", WORKER, "-b", f"127.0.0.1:{port}", *extra]
    if "control_socket_disable" in Config().settings:
        args.append("--no-control-socket")  # each test's arbiter needs no control socket
    return args


@asynccontextmanager
async def serve_gunicorn(
    directory: Path, target: str, *extra: str, scheme: str = "http", **client: Any
) -> AsyncIterator[tuple[Program, str]]:
    port = free_port()
    args = gunicorn_args(port, *extra, target)
    async with run_program(args, cwd=directory, env={"PYTHONPATH": str(directory)}) as program:
        url = f"{scheme}://127.0.0.1:{port}"
        await wait_until_serving(url + "/", program, **client)
        yield program, url


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


async def pids_serving(url: str, expected: int) -> set[int]:
    """Send concurrent requests on new connections until ``expected`` processes answered."""
    seen: set[int] = set()
    async with asyncio.timeout(TIMEOUT), client() as http:
        while len(seen) < expected:
            answers = await asyncio.gather(*(http.get(f"{url}/busy") for _ in range(4)))
            seen.update(answer.json()["pid"] for answer in answers)
    return seen


def client(**options: Any) -> httpx.AsyncClient:
    limits = httpx.Limits(max_keepalive_connections=0)  # every request on a new connection
    return httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, limits=limits, **options)


async def test_two_workers_serve_and_hup_reloads_the_code(project: Path) -> None:
    async with serve_gunicorn(project, "app:kyk", "--workers", "2") as (program, url):
        before = await pids_serving(url, 2)
        async with client() as http:
            answer = (await http.get(url + "/")).json()
        assert answer["version"] == "v1"
        assert answer["context"] == "Context"  # each worker's own Asphalt context

        (project / "app.py").write_text(APP.replace('VERSION = "v1"', 'VERSION = "v2"'))
        mark = len(program.lines)
        program.signal(signal.SIGHUP)
        await program.wait_for_line("Handling signal: hup", after=mark)
        await program.wait_for_line(r"Worker exiting", after=mark, count=2)
        after = await pids_serving(url, 2)
        assert not after & before  # the old workers are gone
        async with client() as http:
            assert (await http.get(url + "/")).json()["version"] == "v2"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT])
async def test_term_or_quit_lets_an_in_flight_request_finish(
    project: Path, signum: signal.Signals
) -> None:
    extra = ("--graceful-timeout", "10")
    async with serve_gunicorn(project, "app:application", *extra) as (program, url):
        async with client() as http:
            slow = asyncio.ensure_future(http.get(url + "/slow"))
            await program.wait_for_line("slow request started")
            program.signal(signum)
            answer = await slow
        assert (answer.status_code, answer.text) == (200, "slow request finished")
        assert await program.wait_exit() == 0


async def test_a_worker_stuck_past_the_timeout_is_replaced(project: Path) -> None:
    async with serve_gunicorn(project, "app:kyk", "--timeout", "2") as (program, url):
        async with client() as http:
            first = (await http.get(url + "/")).json()["pid"]
            stuck = asyncio.ensure_future(http.get(url + "/stuck"))
            await program.wait_for_line("stuck request started")
            await program.wait_for_line(rf"WORKER TIMEOUT \(pid:{first}\)", within=TIMEOUT)
            with pytest.raises(httpx.TransportError):
                await stuck
            await program.wait_for_line("Booting worker", after=program.matched_at + 1)
            await wait_until_serving(url + "/", program)
            assert (await http.get(url + "/")).json()["pid"] != first


async def test_max_requests_restarts_the_worker_and_access_log_is_gunicorns(
    project: Path,
) -> None:
    extra = ("--max-requests", "3", "--access-logfile", "-", "--access-logformat", "%(r)s %(s)s")
    async with serve_gunicorn(project, "app:kyk", *extra) as (program, url):
        async with client() as http:
            pids = [(await http.get(url + "/")).json()["pid"] for _ in range(2)]
            await program.wait_for_line("Autorestarting worker after current request.")
            await program.wait_for_line("Booting worker", after=program.matched_at + 1)
            await wait_until_serving(url + "/", program)
            later = (await http.get(url + "/")).json()["pid"]
        # The poll of wait_until_serving was the third request of the first worker.
        assert pids[0] == pids[1] != later
        await program.wait_for_line(r"^GET / HTTP/1.1 200$")


async def test_gunicorn_limits_and_keep_alive_reach_the_server(project: Path) -> None:
    extra = ("--limit-request-line", "64", "--limit-request-fields", "5")
    async with serve_gunicorn(project, "app:kyk", *extra) as (_, url), client() as http:
        assert (await http.get(url + "/" + "x" * 80)).status_code == 414
        headers = {f"X-{n}": "1" for n in range(8)}
        assert (await http.get(url + "/", headers=headers)).status_code == 431


async def test_certfile_and_keyfile_serve_https(project: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certificate.private_key_and_cert_chain_pem.write_to_path(str(project / "server.pem"))
    authority.cert_pem.write_to_path(str(project / "ca.pem"))
    verify = ssl.create_default_context(cafile=str(project / "ca.pem"))
    extra = ("--certfile", "server.pem", "--keyfile", "server.pem")
    async with serve_gunicorn(project, "app:kyk", *extra, scheme="https", verify=verify) as (
        _,
        url,
    ):
        async with client(verify=verify) as http:
            assert (await http.get(url + "/")).status_code == 200


# -- the examples: a configuration's components started in each worker ------------------------

SERVE_CONFIG = """
from kyoukai.backends.gunicorn import GunicornAdapter

adapter = GunicornAdapter.from_asphalt_config({sources})
application = adapter.run_application
"""


def serve_module(directory: Path, *sources: object) -> None:
    (directory / "serve.py").write_text(SERVE_CONFIG.format(sources=", ".join(map(repr, sources))))


async def test_notes_example_on_two_workers(tmp_path: Path) -> None:
    notes = EXAMPLES / "notes"
    overlay = {"component": {"database": str(tmp_path / "notes.sqlite")}}
    serve_module(tmp_path, str(notes / "config.yml"), overlay)
    (tmp_path / "notes").symlink_to(notes / "notes")
    async with serve_gunicorn(tmp_path, "serve:application", "--workers", "2") as (_, url):
        async with client() as http:
            created = await http.post(url + "/notes", json={"title": "t", "body": "b"})
            assert created.status_code == 201, created.text
            for _ in range(4):  # whichever worker answers reads the same database
                listed = (await http.get(url + "/notes")).json()
                assert [note["title"] for note in listed["notes"]] == ["t"]
            page = await http.get(url + "/")
            assert page.status_code == 200 and "<html" in page.text.lower()  # the renderer


async def test_tutorial_configuration_on_two_workers(tmp_path: Path) -> None:
    tutorial = EXAMPLES / "tutorial"
    serve_module(tmp_path, str(tutorial / "config.yml"))
    environment = f"{tmp_path}:{tutorial}"
    port = free_port()
    args = gunicorn_args(port, "--workers", "2", "--chdir", str(tutorial), "serve:application")
    async with run_program(args, cwd=tmp_path, env={"PYTHONPATH": environment}) as program:
        url = f"http://127.0.0.1:{port}"
        await wait_until_serving(url + "/", program)
        async with client() as http:
            page = await http.get(url + "/")
            assert page.status_code == 200 and "<html" in page.text.lower()
            style = await http.get(url + "/static/style.css")
            assert style.status_code == 200


# -- in process: the adapter and the settings mapping -----------------------------------------


def test_adapter_accepts_an_app_an_adapter_or_run_application() -> None:
    app = Kyoukai("a")
    adapter = GunicornAdapter(app)
    assert as_adapter(adapter) is adapter
    assert as_adapter(adapter.run_application) is adapter
    assert as_adapter(app).app is app
    with pytest.raises(TypeError, match="KyoukaiWorker serves a Kyoukai application"):
        as_adapter(object())
    with pytest.raises(RuntimeError, match=r"-k kyoukai\.backends\.gunicorn\.KyoukaiWorker"):
        adapter.run_application({}, None)
    with pytest.raises(TypeError, match="unknown server option"):
        GunicornAdapter(app, max_body=1)


def test_gunicorn_settings_map_onto_the_server_settings() -> None:
    cfg = Config()
    for name, value in [
        ("keepalive", 7),
        ("limit_request_line", 0),
        ("limit_request_fields", 20),
        ("limit_request_field_size", 1000),
        ("graceful_timeout", 10),
        ("forwarded_allow_ips", "10.0.0.1,127.0.0.1"),
    ]:
        cfg.set(name, value)
    worker = KyoukaiWorker(0, 0, [], None, 30, cfg, None)
    try:
        settings = worker._settings(ServerSettings(max_body_size=99))
    finally:
        worker.tmp.close()
    assert settings.keep_alive_timeout == 7
    assert settings.max_request_line_size == UNLIMITED  # gunicorn's 0 is "no limit"
    assert settings.max_header_count == 20
    assert settings.max_header_line_size == 1000
    assert settings.shutdown_timeout == pytest.approx(9)
    assert settings.forwarded_allow_ips == "10.0.0.1,127.0.0.1"
    assert settings.max_body_size == 99  # the configured rest stays
