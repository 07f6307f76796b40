"""Outgrowing one process: the notes example on PostgreSQL, two gunicorn workers, nginx.

Notes written through one worker are read through the other (both reach the same database
server, and the per-request context holds nothing process-local), and they survive a restart
of every worker. Which worker answered is read from gunicorn's access log (``%(p)s``).
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from nginx import run_nginx
from postgres import run_postgres
from processes import EXAMPLES, TIMEOUT, Program, free_port, run_program, wait_until_serving
from test_gunicorn import gunicorn_args, serve_module

pytestmark = pytest.mark.slow

NOTES = EXAMPLES / "notes"
ACCESS = ("--access-logfile", "-", "--access-logformat", "%(p)s %(m)s %(U)s %(s)s")


@asynccontextmanager
async def notes_workers(directory: Path, port: int, database: str) -> AsyncIterator[Program]:
    args = gunicorn_args(port, "--workers", "2", *ACCESS, "serve:application")
    environment = {"PYTHONPATH": f"{directory}:{NOTES}", "NOTES_DATABASE_URL": database}
    async with run_program(args, cwd=directory, env=environment) as program:
        await program.wait_for_line("Booting worker", count=2)
        yield program


def worker_of(program: Program, method: str, path: str, status: int, *, after: int) -> set[str]:
    """The pids of the workers that logged ``method path status`` since line ``after``."""
    pattern = re.compile(rf"^<(\d+)> {method} {re.escape(path)} {status}$")
    return {m.group(1) for line in program.lines[after:] if (m := pattern.match(line))}


async def answered(url: str, http: httpx.AsyncClient, program: Program) -> None:
    """Wait until the workers answer through nginx (they start their components first)."""
    async with asyncio.timeout(30):
        while (await http.get(url)).status_code != 200:
            if program.process.returncode is not None:
                raise AssertionError(program.output)
            await asyncio.sleep(0.1)  # polling while the workers start


async def test_notes_on_postgres_under_two_workers_behind_nginx(tmp_path: Path) -> None:
    serve_module(tmp_path, str(NOTES / "config.yml"), str(NOTES / "postgres.yml"))
    port = free_port()
    async with run_postgres() as database, notes_workers(tmp_path, port, database) as workers:
        async with run_nginx(tmp_path / "nginx", f"127.0.0.1:{port}") as (nginx, url, verify):
            await wait_until_serving(url + "/notes", nginx, verify=verify)  # 502 until workers
            async with httpx.AsyncClient(verify=verify, timeout=TIMEOUT) as http:
                await answered(url + "/notes", http, workers)
                mark = len(workers.lines)
                created = await http.post(url + "/notes", json={"title": "shared", "body": "b"})
                assert created.status_code == 201, created.text
                path = f"/notes/{created.json()['id']}"
                await workers.wait_for_line(r"POST /notes 201$", after=mark)
                (writer,) = worker_of(workers, "POST", "/notes", 201, after=mark)
                # Concurrent requests open several upstream connections, spread over both.
                async with asyncio.timeout(TIMEOUT):
                    while not worker_of(workers, "GET", path, 200, after=mark) - {writer}:
                        reads = await asyncio.gather(*(http.get(url + path) for _ in range(6)))
                        assert {read.json()["title"] for read in reads} == {"shared"}

            # Every worker restarts (a new arbiter): the note is still there.
            workers.signal(signal.SIGTERM)
            assert await workers.wait_exit() == 0
            async with notes_workers(tmp_path, port, database) as again:
                async with httpx.AsyncClient(verify=verify, timeout=TIMEOUT) as http:
                    await answered(url + "/notes", http, again)
                    listed = (await http.get(url + "/notes")).json()["notes"]
                    assert [note["title"] for note in listed] == ["shared"]
                    assert worker_of(again, "GET", "/notes", 200, after=0) - {writer}
