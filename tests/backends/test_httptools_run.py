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


PLAIN_SCRIPT = """
import sys
from kyoukai import Kyoukai

app = Kyoukai("plain")

@app.route("/")
async def index(ctx):
    return "hi"

app.run("127.0.0.1", int(sys.argv[1]))
"""


async def run_plain(port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", PLAIN_SCRIPT, str(port), stderr=asyncio.subprocess.PIPE
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_run_without_logging_config_prints_address_and_access_log() -> None:
    process = await run_plain(0)
    assert process.stderr is not None
    try:
        match = await read_line_matching(
            process.stderr, r"serving plain on http://127\.0\.0\.1:(\d+)"
        )
        await read_line_matching(process.stderr, "Ctrl\\+C to quit")
        async with await RawClient.connect(int(match.group(1))) as client:
            await client.send(b"GET /?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await client.read_response()).body == b"hi"
        await read_line_matching(process.stderr, r"INFO GET /\?q=1 -> 200")
    finally:
        await stop(process)


async def test_run_on_a_busy_port_exits_with_one_line() -> None:
    busy = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = busy.sockets[0].getsockname()[1]
    try:
        process = await run_plain(port)
        assert process.stderr is not None
        try:
            async with asyncio.timeout(IO_TIMEOUT):
                err = (await process.stderr.read()).decode()
                code = await process.wait()
        finally:
            await stop(process)
    finally:
        busy.close()
        await busy.wait_closed()
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "cannot listen" in line]
    assert lines == [
        f"Kyoukai cannot listen on 127.0.0.1:{port}: the address is already in use; "
        "stop what uses it or pick another port"
    ]
