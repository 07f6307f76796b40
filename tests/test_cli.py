"""The ``kyoukai`` command: its errors in process, and ``kyoukai run`` as a real program."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kyoukai.cli import main
from processes import BIN, EXAMPLES, TIMEOUT, free_port, run_program, wait_until_serving

APP = """
import logging
import os

from kyoukai import Kyoukai

VERSION = "v1"
kyk = Kyoukai("cli-test")


@kyk.route("/")
async def index(ctx):
    return {"pid": os.getpid(), "version": VERSION}


@kyk.route("/warn")
async def warn(ctx):
    logging.getLogger("cli-test").warning("careful")
    return "warned"
"""

KYOUKAI = str(BIN / "kyoukai")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("app", None)


def client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection for every request
    return httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, limits=limits)


# -- errors name what is wrong, without a traceback -------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nowhere:app"], "cannot import 'nowhere'"),
        (["run", "app:missing"], "has no attribute 'missing'"),
        (["run", "app:VERSION"], "is 'v1', not a Kyoukai application"),
        (["run", "app"], "not a 'module:attribute' reference"),
        (["run", "app:kyk", "--max-body-size", "0"], "'max_body_size' must be positive"),
        (["run", "app:kyk", "--forwarded-allow-ips", "proxy"], "'proxy' is not an IP address"),
        (["run", "app:kyk", "--uds-mode", "999"], "--uds-mode must be octal permissions"),
        (["run", "app:kyk", "--keyfile", "k.pem"], "--keyfile needs --certfile"),
        (["run", "app:kyk", "--certfile", "none.pem"], "no such file"),
        (["run", "app:kyk", "--http2", "--workers", "2"], "--http2 is served by one process"),
        (["run", "app:kyk", "--workers", "0"], "--workers must be at least 1"),
        (["run", "nowhere:app", "--workers", "2"], "cannot import 'nowhere'"),
        (["run", "app:VERSION", "--workers", "2"], "is 'v1', not a Kyoukai application"),
        (["run", "app:kyk", "--workers", "2", "--reload"], "--reload runs one process"),
        (["run", "missing.yml"], "no such configuration file"),
        (["run", "bad.yml"], "unknown Kyoukai configuration key 'prot'"),
        (
            ["run", "badlog.yml"],
            "badlog.yml: its logging section: dictionary doesn't specify a version",
        ),
        (["run", "listlog.yml"], "the logging section must be a mapping"),
    ],
)
def test_errors_name_what_is_wrong(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (project / "bad.yml").write_text(
        "component:\n  type: kyoukai.asphalt:KyoukaiComponent\n  app: app:kyk\n  prot: 1\n"
    )
    good = "component:\n  type: kyoukai.asphalt:KyoukaiComponent\n  app: app:kyk\n"
    (project / "badlog.yml").write_text(f"{good}logging: {{root: {{level: INFO}}}}\n")
    (project / "listlog.yml").write_text(f"{good}logging: [INFO]\n")
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.startswith("kyoukai: error: ") and error.count("\n") == 1
    assert "Traceback" not in error


def test_every_server_setting_is_an_option() -> None:
    from kyoukai.backends._settings import ServerSettings
    from kyoukai.cli import build_parser

    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    options = {option for action in run._actions for option in action.option_strings}
    for name in ServerSettings.field_names():
        assert "--" + name.replace("_", "-") in options


# -- kyoukai run, for real --------------------------------------------------------------------


@pytest.mark.slow
async def test_python_m_kyoukai_runs_an_app(project: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "kyoukai", "run", "app:kyk", "--port", str(port)]
    async with run_program(args, cwd=project) as program:
        url = f"http://127.0.0.1:{port}/"
        await wait_until_serving(url, program)
        async with client() as http:
            answer = await http.get(url)
        assert answer.json()["version"] == "v1", program.output
        await program.wait_for_line(r"GET / -> 200")  # the access log
        program.signal(2)
        assert await program.wait_exit() == 0


async def workers_answering(url: str, count: int, version: str) -> set[int]:
    """The processes that answer ``url``: concurrent requests on new connections until
    ``count`` answered, each of them with ``version``."""
    seen: set[int] = set()
    async with asyncio.timeout(TIMEOUT), client() as http:
        while len(seen) < count:
            answers = await asyncio.gather(*(http.get(url) for _ in range(8)))
            assert {answer.json()["version"] for answer in answers} == {version}
            seen.update(answer.json()["pid"] for answer in answers)
    return seen


def booted(lines: list[str]) -> list[int]:
    """The process ids of the workers gunicorn booted, in order."""
    return [int(line.rsplit(" ", 1)[1]) for line in lines if "Booting" in line]


@pytest.mark.slow
async def test_two_workers_and_hup_loads_edited_code(project: Path) -> None:
    port = free_port()
    args = [KYOUKAI, "run", "app:kyk", "--port", str(port), "--workers", "2"]
    async with run_program(args, cwd=project) as program:
        url = f"http://127.0.0.1:{port}/"
        await wait_until_serving(url, program)
        await program.wait_for_line("Kyoukai serving cli-test", count=2)
        assert await workers_answering(url, 2, "v1") == set(booted(program.lines))

        (project / "app.py").write_text(APP.replace('"v1"', '"v2"'))
        mark = len(program.lines)
        program.signal(signal.SIGHUP)
        await program.wait_for_line(r"Worker exiting", after=mark, count=2)  # the old ones
        await program.wait_for_line(r"Booting worker", after=mark, count=2)
        new_workers = booted(program.lines[mark:])
        assert await workers_answering(url, 2, "v2") == set(new_workers)


@pytest.mark.slow
async def test_reload_restarts_on_a_change(project: Path) -> None:
    port = free_port()
    args = [KYOUKAI, "run", "app:kyk", "--port", str(port), "--reload"]
    async with run_program(args, cwd=project) as program:
        url = f"http://127.0.0.1:{port}/"
        await wait_until_serving(url, program)
        async with client() as http:
            assert (await http.get(url)).json()["version"] == "v1"
            mark = len(program.lines)
            (project / "app.py").write_text(APP.replace('"v1"', '"v2"'))
            await program.wait_for_line(r"Restarting: app\.py changed", after=mark)
            await program.wait_for_line("Kyoukai serving cli-test", after=mark)
            assert (await http.get(url)).json()["version"] == "v2"


@pytest.mark.slow
async def test_configuration_served_even_with_run_server_false(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        "component:\n  type: kyoukai.asphalt:KyoukaiComponent\n  app: app:kyk\n"
        f"  port: {port}\n  run_server: false\n"
    )
    tutorial = EXAMPLES / "tutorial"
    async with run_program([KYOUKAI, "run", str(config)], cwd=tutorial) as program:
        await wait_until_serving(f"http://127.0.0.1:{port}/", program)
        async with client() as http:
            page = await http.get(f"http://127.0.0.1:{port}/static/style.css")
        assert page.status_code == 200


@pytest.mark.slow
async def test_notes_configuration_with_host_and_port_options(tmp_path: Path) -> None:
    port = free_port()
    notes = EXAMPLES / "notes"
    overlay = tmp_path / "overlay.yml"
    overlay.write_text("component:\n  components:\n    kyoukai:\n      port: 1\n")
    config = [str(notes / "config.yml"), str(overlay)]  # an overlay, as asphalt run takes
    args = [KYOUKAI, "run", *config, "--host", "127.0.0.1", "--port", str(port)]
    environment = {"PYTHONPATH": str(notes)}
    async with run_program(args, cwd=tmp_path, env=environment) as program:
        url = f"http://127.0.0.1:{port}"
        await wait_until_serving(url + "/notes", program)
        async with client() as http:
            created = await http.post(url + "/notes", json={"title": "cli", "body": "b"})
            assert created.status_code == 201, created.text
    assert (tmp_path / "notes.sqlite").exists()  # the configuration's, in the working directory


LOGGING = """
logging:
  version: 1
  formatters:
    custom:
      format: "CUSTOM %(levelname)s [%(name)s] %(message)s"
  handlers:
    file:
      class: logging.FileHandler
      filename: {log}
      formatter: custom
  root:
    level: INFO
    handlers: [file]
"""


@pytest.mark.slow
@pytest.mark.parametrize("log_level", [None, "warning"])
async def test_configuration_logging_section(project: Path, log_level: str | None) -> None:
    port = free_port()
    log = project / "kyoukai.log"
    config = project / "config.yml"
    config.write_text(
        "component:\n  type: kyoukai.asphalt:KyoukaiComponent\n  app: app:kyk\n"
        f"  port: {port}\n" + LOGGING.format(log=log)
    )
    args = [KYOUKAI, "run", str(config)]
    if log_level:
        args += ["--log-level", log_level]  # over the section's level
    async with run_program(args, cwd=project) as program:
        url = f"http://127.0.0.1:{port}"
        await wait_until_serving(url, program)
        async with client() as http:
            assert (await http.get(url + "/warn")).text == "warned"
        program.signal(2)
        assert await program.wait_exit() == 0
    lines = log.read_text().splitlines()
    assert "CUSTOM WARNING [cli-test] careful" in lines
    access = [line for line in lines if line.startswith("CUSTOM INFO [kyoukai] GET /warn -> 200")]
    assert len(access) == (1 if log_level is None else 0), lines
    assert "careful" not in program.output  # the section's handlers, not stderr
