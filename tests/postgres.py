"""A real PostgreSQL server for tests: a fresh cluster in a temporary directory.

``initdb`` and ``postgres`` refuse to run as root, so as root they run as the ``postgres``
user of the Debian package, in a directory that user owns. The server listens on a free
loopback port, trusts local connections (the test's only clients) and keeps no data safe
across a crash (``fsync=off``): it lives as long as one test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from processes import free_port, run_program


def find_binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres``; skip the test if there is none."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if versions:
        return versions[0].parent
    pytest.skip("PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)")


@contextmanager
def cluster_directory() -> Iterator[tuple[Path, str | None]]:
    """A directory for the cluster, owned by the user the server runs as (``None``: us)."""
    user = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="kyoukai-pg-"))
    try:
        if user is not None:
            shutil.chown(directory, user, user)
        yield directory, user
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def run_postgres() -> AsyncIterator[str]:
    """Run PostgreSQL until the end of the block.

    :return: The SQLAlchemy URL of its ``postgres`` database for asyncpg.
    """
    binaries = find_binaries()
    with cluster_directory() as (directory, user):
        data = directory / "data"
        initdb = await asyncio.create_subprocess_exec(
            *map(str, [binaries / "initdb", "-D", data, "-U", "notes", "--auth=trust"]),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            user=user,
            group=user,
            cwd=directory,
        )
        async with asyncio.timeout(120):
            output, _ = await initdb.communicate()
        assert initdb.returncode == 0, output.decode(errors="replace")
        port = free_port()
        args = [binaries / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port)]
        args += ["-k", directory, "-c", "fsync=off", "-c", "logging_collector=off"]
        async with run_program(args, cwd=directory, user=user) as server:
            await server.wait_for_line("database system is ready to accept connections")
            yield f"postgresql+asyncpg://notes@127.0.0.1:{port}/postgres"
            server.signal(2)  # fast shutdown: clients are disconnected, data is kept
            await server.wait_exit()
