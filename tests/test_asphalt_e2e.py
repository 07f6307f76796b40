"""``asphalt run`` end to end: real processes, real sockets, configuration files and signals.

Each test starts ``asphalt run`` on a free port of 127.0.0.1, waits until the port answers,
talks HTTP to it, and stops it with SIGTERM (or kills it if the test failed first).
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from processes import BIN, EXAMPLES, TIMEOUT, Program, free_port, run_program

pytestmark = pytest.mark.slow

TUTORIAL = EXAMPLES / "tutorial"
NOTES = EXAMPLES / "notes"
ASPHALT = BIN / "asphalt"

#: An application that shows which loop it runs on, and a request that is in flight when the
#: process is told to stop: it finishes only once the shutdown has begun.
E2E_APP = """
import asyncio

from asphalt.core import Component, ContainerComponent, Context, context_teardown

from kyoukai import Kyoukai, KyoukaiComponent

app = Kyoukai("e2e")
shutdown_begun = asyncio.Event()


@app.route("/info")
async def info(ctx):
    return {"loop": type(asyncio.get_running_loop()).__module__, "debug": __debug__}


@app.route("/slow")
async def slow(ctx):
    print("slow request started", flush=True)
    await shutdown_begun.wait()
    return "finished during shutdown"


class ShutdownWatcher(Component):
    @context_teardown
    async def start(self, ctx: Context):
        yield
        print("shutdown begun", flush=True)
        shutdown_begun.set()


class Root(ContainerComponent):
    async def start(self, ctx: Context) -> None:
        self.add_component("kyoukai", KyoukaiComponent, app=app)
        await super().start(ctx)
        # Started after the server, so torn down before it: the server then waits for /slow.
        await ShutdownWatcher().start(ctx)
"""


def asphalt_run(
    args: Sequence[str], cwd: Path, *, python_args: Sequence[str] | None = None, **env: str
) -> AbstractAsyncContextManager[Program]:
    """Start ``asphalt run ARGS`` (or ``python PYTHON_ARGS -m asphalt run ARGS``) in ``cwd``."""
    if python_args is None:
        command = [str(ASPHALT), "run", *args]
    else:
        command = [sys.executable, *python_args, "-m", "asphalt", "run", *args]
    return run_program(command, cwd=cwd, env=env)


def http(port: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT, trust_env=False)


@pytest.fixture
def e2e_app(tmp_path: Path) -> Path:
    """A directory holding :data:`E2E_APP` as ``e2e_app.py`` and its ``config.yml``."""
    (tmp_path / "e2e_app.py").write_text(E2E_APP)
    (tmp_path / "config.yml").write_text("component:\n  type: e2e_app:Root\n")
    return tmp_path


# -- the tutorial: the spec's two configurations ------------------------------------------------


async def test_single_component_config_from_the_spec() -> None:
    port = free_port()
    # No PYTHONPATH: "app: app:kyk" is found in the working directory.
    async with asphalt_run(["config.yml", "--set", f"component.port={port}"], TUTORIAL) as proc:
        await proc.wait_for_port(port)
        async with http(port) as client:
            page = await client.get("/")
            style = await client.get("/static/style.css")
        assert page.status_code == 200 and "Hello from Kyoukai" in page.text
        assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
        assert await proc.terminate() == 0
    # The logging section's format, with the access log of the kyoukai logger.
    assert "INFO kyoukai: GET / -> 200" in proc.output


async def test_container_config_from_the_spec_overrides_the_address() -> None:
    port = free_port()
    args = ["container.yml", "--set", f"component.components.kyoukai.port={port}"]
    async with asphalt_run(args, TUTORIAL, PYTHONPATH=str(TUTORIAL)) as proc:
        await proc.wait_for_port(port)
        async with http(port) as client:
            response = await client.get("/")
        assert response.status_code == 200 and "Hello from Kyoukai" in response.text
        assert await proc.terminate() == 0


async def test_optimized_python_with_the_uvloop_policy(e2e_app: Path) -> None:
    port = free_port()
    args = ["-l", "uvloop", "config.yml", "--set", f"component.components.kyoukai.port={port}"]
    async with asphalt_run(args, e2e_app, python_args=["-O"]) as proc:
        await proc.wait_for_port(port)
        async with http(port) as client:
            info = (await client.get("/info")).json()
        assert info == {"loop": "uvloop", "debug": False}
        assert await proc.terminate() == 0
    assert "Running in production mode" in proc.output


async def test_bad_configuration_stops_start_up_naming_the_key() -> None:
    args = ["config.yml", "--set", "component.max_bdy_size=10"]
    async with asphalt_run(args, TUTORIAL) as proc:
        assert await proc.wait_exit() != 0
    assert "unknown Kyoukai configuration key 'max_bdy_size'" in proc.output
    assert "did you mean 'max_body_size'?" in proc.output


async def test_https_from_the_ssl_section(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (tmp_path / name for name in ("ca.pem", "srv.crt", "srv.key"))
    ca.cert_pem.write_to_path(str(ca_file))
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    issued.private_key_pem.write_to_path(str(key_file))
    port = free_port()
    args = [
        "config.yml",
        *("--set", f"component.port={port}"),
        *("--set", f"component.ssl.ssl_certfile={cert_file}"),
        *("--set", f"component.ssl.ssl_keyfile={key_file}"),
    ]
    trust = ssl.create_default_context(cafile=str(ca_file))
    async with asphalt_run(args, TUTORIAL) as proc:
        await proc.wait_for_port(port)
        async with httpx.AsyncClient(verify=trust, timeout=TIMEOUT, trust_env=False) as client:
            response = await client.get(f"https://127.0.0.1:{port}/")
        assert response.status_code == 200 and "Hello from Kyoukai" in response.text
        assert await proc.terminate() == 0
    assert f"on https://127.0.0.1:{port}" in proc.output


# -- graceful shutdown --------------------------------------------------------------------------


async def test_sigterm_completes_the_request_in_flight(e2e_app: Path) -> None:
    port = free_port()
    args = ["config.yml", "--set", f"component.components.kyoukai.port={port}"]
    async with asphalt_run(args, e2e_app, PYTHONPATH=str(e2e_app)) as proc:
        await proc.wait_for_port(port)
        async with http(port) as client:
            slow = asyncio.create_task(client.get("/slow"))
            await proc.wait_for_line("slow request started")
            proc.signal(signal.SIGTERM)
            async with asyncio.timeout(TIMEOUT):
                response = await slow
            assert await proc.wait_exit() == 0
    assert (response.status_code, response.text) == (200, "finished during shutdown")
    assert response.headers["connection"] == "close"
    output = proc.output
    assert output.index("Received SIGTERM") < output.index("shutdown begun")
    assert output.index("GET /slow -> 200") < output.index("Application stopped")


# -- the notes application ----------------------------------------------------------------------


def notes_overlay(tmp_path: Path, database: Path) -> Path:
    """A second configuration file, merged over ``examples/notes/config.yml``."""
    overlay = tmp_path / "test.yml"
    overlay.write_text(
        f"component:\n  database: {json.dumps(str(database))}\nlogging:\n  root:\n    level: INFO\n"
    )
    return overlay


def check_notes_order(output: str) -> None:
    """The server serves after the database is ready and stops before it is closed."""
    assert output.index("Configured SQLAlchemy resources") < output.index("Kyoukai serving")
    assert output.index("Kyoukai server stopped") < output.index("SQLAlchemy resources (default)")


@asynccontextmanager
async def notes_process(tmp_path: Path, database: Path) -> AsyncIterator[tuple[Program, int]]:
    """``examples/notes`` under ``asphalt run``, serving on a free port: (process, port)."""
    port = free_port()
    args = [
        "config.yml",
        str(notes_overlay(tmp_path, database)),
        "--set",
        f"component.components.kyoukai.port={port}",
    ]
    async with asphalt_run(args, NOTES, PYTHONPATH=str(NOTES)) as proc:
        await proc.wait_for_port(port)
        yield proc, port


@asynccontextmanager
async def notes_server(tmp_path: Path, database: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``examples/notes``; the process is stopped with SIGTERM afterwards."""
    async with notes_process(tmp_path, database) as (proc, port):
        async with http(port) as client:
            yield client
        assert await proc.terminate() == 0, proc.output
    check_notes_order(proc.output)


async def test_notes_api_and_data_surviving_a_restart(tmp_path: Path) -> None:
    database = tmp_path / "notes.sqlite"
    async with notes_server(tmp_path, database) as client:
        created = await client.post("/notes", json={"title": "Groceries", "body": "tea"})
        assert created.status_code == 201, created.text
        note: dict[str, Any] = created.json()
        assert created.headers["location"] == f"/notes/{note['id']}"
        other = await client.post("/notes", json={"title": "Keep me"})
        assert other.status_code == 201

        listed = await client.get("/notes")
        assert [n["title"] for n in listed.json()["notes"]] == ["Groceries", "Keep me"]

        updated = await client.put(f"/notes/{note['id']}", json={"title": "Shopping"})
        assert updated.status_code == 200
        assert (updated.json()["title"], updated.json()["body"]) == ("Shopping", "")
        patched = await client.patch(f"/notes/{note['id']}", json={"body": "green tea"})
        assert patched.json()["body"] == "green tea"

        invalid = await client.post("/notes", json={"title": "", "colour": "red"})
        assert invalid.status_code == 400
        assert invalid.headers["content-type"] == "application/json"
        assert set(invalid.json()["fields"]) == {"title", "colour"}

        deleted = await client.delete(f"/notes/{note['id']}")
        assert deleted.status_code == 204
        missing = await client.get(f"/notes/{note['id']}")
        assert missing.status_code == 404 and "error" in missing.json()

        page = await client.get("/")
        assert page.status_code == 200 and "Keep me" in page.text

    assert database.exists()
    async with notes_server(tmp_path, database) as client:
        listed = await client.get("/notes")
        assert [n["title"] for n in listed.json()["notes"]] == ["Keep me"]


async def test_notes_sigterm_completes_a_request_in_flight(tmp_path: Path) -> None:
    database = tmp_path / "notes.sqlite"
    body = json.dumps({"title": "Written during shutdown"}).encode()
    head = (
        b"POST /notes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
    )
    async with notes_process(tmp_path, database) as (proc, port):
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head)
            # The server has parsed the head and waits for the body: the request is in flight.
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        proc.signal(signal.SIGTERM)
        await proc.wait_for_line("Stopping application")
        writer.write(body)
        async with asyncio.timeout(TIMEOUT):
            raw = await reader.read()  # the whole response: the server closes after it
            writer.close()
            await writer.wait_closed()
        assert await proc.wait_exit() == 0, proc.output
    status_line, _, rest = raw.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 201 Created", raw
    assert b"\r\nconnection: close\r\n" in rest.lower()
    assert rest.endswith(b"}") and b'"title": "Written during shutdown"' in rest
    check_notes_order(proc.output)
    # Committed before the process exited.
    async with notes_server(tmp_path, database) as client:
        listed = (await client.get("/notes")).json()["notes"]
    assert [note["title"] for note in listed] == ["Written during shutdown"]
