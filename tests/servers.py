"""Real server programs for end-to-end tests: started on a free port of 127.0.0.1, polled
until they accept connections, their output collected, and always stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

#: Seconds a process may take to start serving, and to exit after SIGTERM.
STARTUP_TIMEOUT = 20.0
EXIT_TIMEOUT = 10.0
#: Seconds any one exchange may take.
TIMEOUT = 5.0


def free_port() -> int:
    """A port that was free a moment ago (the process binds it again: a tiny race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A running server program: its output, collected as it comes, and its lifetime."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._line_added = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())
            self._line_added.set()
        self._line_added.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, text: str) -> None:
        """Wait until the process printed a line containing ``text``."""
        async with asyncio.timeout(TIMEOUT):
            while not any(text in line for line in self.lines):
                if self._reader.done():
                    pytest.fail(f"the process ended without printing {text!r}:\n{self.output}")
                self._line_added.clear()
                await self._line_added.wait()

    async def wait_until_serving(self, port: int) -> None:
        """Wait until ``port`` accepts connections; fail early if the process died."""
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while True:
                if self.process.returncode is not None:
                    pytest.fail(
                        f"the server exited with {self.process.returncode} before serving:\n"
                        f"{self.output}"
                    )
                try:
                    _, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), TIMEOUT
                    )
                except OSError:
                    await asyncio.sleep(0.05)  # between connection attempts
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def wait(self) -> int:
        async with asyncio.timeout(EXIT_TIMEOUT):
            code = await self.process.wait()
            await self._reader
        return code

    async def terminate(self) -> int:
        """Send SIGTERM and return the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await self.wait()

    async def kill(self) -> None:
        """Kill the process and its workers (its process group), if still running."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # workers left by a dead master too
        except ProcessLookupError:
            pass
        await self.process.wait()
        self._reader.cancel()


@asynccontextmanager
async def spawn(
    command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """Start ``command`` in ``cwd`` (without the caller's ``PYTHON*`` variables, plus
    ``env``); it is killed at the end if it is still running."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environment.update(env or {})
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    running = ServerProcess(process)
    try:
        yield running
    finally:
        await running.kill()
