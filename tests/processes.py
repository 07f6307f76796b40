"""Helpers for end-to-end tests that run real programs (gunicorn, ``kyoukai run``, nginx).

A :class:`Program` is a subprocess whose output is collected line by line as it comes, so a
test waits for a log line (never a fixed time) and a failing test shows what the program said.
Every program is ended in the fixture's clean-up, killed if it does not exit in time.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
#: Seconds a program may take to start serving, and to exit once told to.
STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 15.0
#: Seconds any one HTTP exchange may take.
TIMEOUT = 10.0


def free_port() -> int:
    """A port that was free a moment ago (the program binds it again: a tiny race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Program:
    """A running subprocess and everything it printed so far (stdout and stderr merged)."""

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
        self.process.send_signal(signum)

    async def wait_for_port(self, port: int, within: float = STARTUP_TIMEOUT) -> None:
        """Wait until ``127.0.0.1:port`` accepts connections; fail early if the program died."""
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
        async with asyncio.timeout(within):
            code = await self.process.wait()
            await self._reader
        return code

    async def stop(self) -> None:
        """End the program: SIGTERM, then SIGKILL if it lingers."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await self.wait_exit()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()


@asynccontextmanager
async def run_program(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    inherit: bool = True,
) -> AsyncIterator[Program]:
    """Start a program; it is ended (and its output kept for failures) on the way out.

    :param env: Variables added to this process's environment (unbuffered Python output).
    :param user: The user to run it as (the program may refuse to run as root).
    :param inherit: ``False`` to give the program ``env`` alone as its environment.
    """
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})} if inherit else env
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
    """Poll ``url`` until it answers (each try waits for the connection, not a fixed time)."""
    async with asyncio.timeout(STARTUP_TIMEOUT):
        async with httpx.AsyncClient(timeout=TIMEOUT, **client) as http:  # type: ignore[arg-type]
            while True:
                if program.process.returncode is not None:
                    await program.wait_exit()
                    raise AssertionError(f"the program exited:\n{program.output}")
                try:
                    await http.get(url)
                    return
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # polling interval while the port opens
