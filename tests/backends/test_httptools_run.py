"""``Kyoukai.run()`` end to end: a real process, served until a signal, shut down gracefully."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import pytest

from helpers import IO_TIMEOUT, RawClient

SCRIPT = """
import asyncio, logging, sys
from kyoukai import Kyoukai

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
app = Kyoukai("runner")

@app.route("/slow")
async def slow(ctx):
    print("loop", type(asyncio.get_running_loop()).__module__, file=sys.stderr, flush=True)
    print("slow started", file=sys.stderr, flush=True)
    await asyncio.sleep(0.3)  # simulated work, still running when the signal arrives
    return "finished"

app.run("127.0.0.1", 0, use_uvloop=sys.argv[1] == "uvloop", shutdown_timeout=5)
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


async def read_line_matching(stream: asyncio.StreamReader, pattern: str) -> re.Match[str]:
    async with asyncio.timeout(IO_TIMEOUT):
        while True:
            line = (await stream.readline()).decode()
            assert line, f"the server exited before logging {pattern!r}"
            match = re.search(pattern, line)
            if match:
                return match


@pytest.mark.parametrize(
    ("loop_name", "signum"),
    [("uvloop", signal.SIGINT), ("asyncio", signal.SIGTERM)],
)
async def test_run_serves_until_signal_and_finishes_in_flight(
    loop_name: str, signum: signal.Signals
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, loop_name, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        match = await read_line_matching(process.stderr, r"on http://127\.0\.0\.1:(\d+)")
        port = int(match.group(1))
        async with await RawClient.connect(port) as client:
            await client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            loop_line = await read_line_matching(process.stderr, r"^loop (\S+)")
            await read_line_matching(process.stderr, "slow started")
            process.send_signal(signum)
            response = await client.read_response()
            assert response.status_line == b"HTTP/1.1 200 OK"
            assert response.body == b"finished"
            assert response.header("connection") == "close"
        async with asyncio.timeout(IO_TIMEOUT):
            rest = (await process.stderr.read()).decode()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert loop_line.group(1) == ("uvloop" if loop_name == "uvloop" else "asyncio.unix_events")
    assert "Traceback" not in rest
    assert "Kyoukai server stopped" in rest
