"""Real programs for end-to-end tests: servers, gunicorn, ``kyoukai run``, nginx, PostgreSQL.

A :class:`Program` runs in a process group of its own, and its output (stdout and stderr
merged) is collected line by line as it comes, so a test waits for a log line or for a port
that accepts connections (never a fixed time) and a failing test shows what the program said.
On the way out of :func:`run_program` the program is told to stop, then its whole group is
killed: the workers of a master that died or lingers go with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
#: Seconds a program may take to start serving, and to exit once told to.
STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 15.0
#: Seconds any one exchange may take.
TIMEOUT = 10.0


def free_port() -> int:
    """A port that was free a moment ago (the program binds it again: a tiny race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Program:
    """A running program and everything it printed so far (stdout and stderr merged)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        #: The index in :attr:`lines` of the line :meth:`wait_for_line` matched last.
        self.matched_at = 0
        self._changed = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip())
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(
        self, pattern: str, *, after: int = 0, count: int = 1, within: float = STARTUP_TIMEOUT
    ) -> re.Match[str]:
        """Wait until ``count`` lines (from index ``after`` on) match ``pattern``; return the
        last match (its index is then :attr:`matched_at`).

        :param pattern: A regular expression, searched for in each line.
        :raises AssertionError: If the program exits first, or the time runs out.
        """
        regex = re.compile(pattern)
        seen = after
        found = 0
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    while True:
                        for index, line in enumerate(self.lines[seen:], seen):
                            match = regex.search(line)
                            found += match is not None
                            if match and found == count:
                                self.matched_at = index
                                return match
                        seen = len(self.lines)
                        if self._reader.done():
                            raise AssertionError(
                                f"the program exited before printing {pattern!r}:\n{self.output}"
                            )
                        await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no line matched {pattern!r} in time:\n{self.output}") from None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the program itself (not to its group)."""
        self.process.send_signal(signum)

    async def wait_for_port(self, port: int, within: float = STARTUP_TIMEOUT) -> None:
        """Wait until ``127.0.0.1:port`` accepts connections.

        :raises AssertionError: If the program exits first.
        """
        async with asyncio.timeout(within):
            while True:
                if self.process.returncode is not None:
                    await self.wait_exit()
                    raise AssertionError(f"the program exited before serving:\n{self.output}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)  # between connection attempts
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def terminate(self) -> int:
        """Send SIGTERM and return the exit status."""
        self.signal(signal.SIGTERM)
        return await self.wait_exit()

    async def wait_exit(self, within: float = EXIT_TIMEOUT) -> int:
        """Wait until the program exited and all its output is read; return the exit status."""
        async with asyncio.timeout(within):
            code = await self.process.wait()
            await self._reader
        return code

    async def stop(self) -> None:
        """End the program: SIGTERM if it still runs, then SIGKILL for its whole group."""
        if self.process.returncode is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await self.wait_exit()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # what the program left running
        await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@asynccontextmanager
async def run_program(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> AsyncIterator[Program]:
    """Start a program in a process group of its own; it is ended on the way out.

    :param env: Variables added to this process's environment. That is passed on without its
        ``PYTHON*`` variables (they would change the program's imports and warnings), with
        unbuffered Python output and no bytecode files: a test that rewrites a module within
        a second, at the same size, must not get the old module from a stale ``.pyc``.
    :param user: The user (and group) to run it as (the program may refuse to run as root).
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environment.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
    process = await asyncio.create_subprocess_exec(
        *map(str, args),
        cwd=cwd,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        user=user,
        group=user,
    )
    program = Program(process)
    try:
        yield program
    finally:
        await program.stop()


async def wait_until_serving(url: str, program: Program, **client: object) -> None:
    """Poll ``url`` until it answers (each try waits for the connection, not a fixed time).

    :param client: Options of the :class:`httpx.AsyncClient` that polls (``verify=``).
    :raises AssertionError: If the program exits first.
    """
    async with asyncio.timeout(STARTUP_TIMEOUT):
        options = {"timeout": TIMEOUT, "trust_env": False, **client}
        async with httpx.AsyncClient(**options) as http:  # type: ignore[arg-type]
            while True:
                if program.process.returncode is not None:
                    await program.wait_exit()
                    raise AssertionError(f"the program exited:\n{program.output}")
                try:
                    await http.get(url)
                    return
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # polling interval while the port opens
