"""Count the CPU instructions one request costs Kyoukai's built-in HTTP/1.1 server.

``.venv/bin/python bench/instructions.py`` runs the bench app (``apps/kyoukai_app.py``, 50
filler routes first) on :class:`~kyoukai.backends.httptools_.KyoukaiProtocol` over a fake
transport on uvloop, under ``valgrind --tool=callgrind``, once with 1000 and once with 4000
sequential keep-alive requests per scenario, and prints ``(I(4000) - I(1000)) / 3000``: the
instructions of one request, start-up and imports cancelled out. Unlike wall-clock figures
these do not depend on what else the machine runs, so a change to a hot path can be judged
by them alone, to a fraction of a percent.

Each request is fed to the protocol in one read; the next is fed once the response was
written. No socket, no system call: what is counted is parsing, the application and
rendering the response, plus the few hundred instructions of the driver loop.

``--profile SCENARIO`` writes ``callgrind.out.SCENARIO`` (4000 requests) for
``callgrind_annotate`` or KCachegrind. ``--serve SCENARIO N`` is the child process itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COUNTS = (1000, 4000)
#: Requests prepared in every run, whatever it serves, so preparing them cancels out too.
PREPARED = max(COUNTS)

_HEAD = "Host: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
_UPLOAD = b"x" * 4096


def _requests(scenario: str) -> list[bytes]:
    if scenario == "root":
        return [f"GET / HTTP/1.1\r\n{_HEAD}\r\n".encode()] * PREPARED
    if scenario == "user-fixed":
        return [f"GET /user/12345 HTTP/1.1\r\n{_HEAD}\r\n".encode()] * PREPARED
    if scenario == "user-distinct":
        ids = random.Random(0).sample(range(1, 10_000_001), PREPARED)
        return [f"GET /user/{i} HTTP/1.1\r\n{_HEAD}\r\n".encode() for i in ids]
    if scenario == "upload":
        head = f"POST /upload HTTP/1.1\r\n{_HEAD}Content-Length: {len(_UPLOAD)}\r\n\r\n"
        return [head.encode() + _UPLOAD] * PREPARED
    raise SystemExit(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")


SCENARIOS = {
    "root": "GET /",
    "user-fixed": "GET /user/12345",
    "user-distinct": "GET /user/<distinct ids>",
    "upload": "POST /upload 4 KiB",
}


class _Transport(asyncio.Transport):
    """Takes the server's writes; the end of a response wakes the driver."""

    def __init__(self) -> None:
        super().__init__()
        self.waiter: asyncio.Future[None] | None = None
        self.written = 0

    def write(self, data: Any) -> None:
        self.written += len(data)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        raise AssertionError("the server closed the connection")

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _serve(scenario: str, count: int) -> None:
    from asphalt.core import Context
    from kyoukai_app import app  # type: ignore[import-not-found]

    from kyoukai.backends._server import _Holder
    from kyoukai.backends._settings import ServerSettings
    from kyoukai.backends._state import ServerState
    from kyoukai.backends.httptools_ import KyoukaiProtocol

    requests = _requests(scenario)[:count]
    loop = asyncio.get_running_loop()
    async with Context() as context:
        settings = ServerSettings()
        state = ServerState(app, settings, context)
        protocol = KyoukaiProtocol(
            _Holder(app, settings, None), context, "127.0.0.1", 8000, state=state
        )
        transport = _Transport()
        protocol.connection_made(transport)
        for request in requests:
            transport.waiter = waiter = loop.create_future()
            protocol.data_received(request)
            await waiter
        protocol.connection_lost(None)
    if transport.written < 100 * count:
        raise SystemExit(f"only {transport.written} bytes written for {count} requests")


def _child(scenario: str, count: int) -> None:
    import uvloop

    sys.path.insert(0, str(HERE / "apps"))
    uvloop.run(_serve(scenario, count))


_COLLECTED = re.compile(rb"Collected : (\d+)")


def _instructions(scenario: str, count: int, out_file: str) -> int:
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_file}",
        sys.executable,
        __file__,
        "--serve",
        scenario,
        str(count),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(argv, capture_output=True, env=env, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise SystemExit(f"{scenario} with {count} requests failed")
    return int(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--profile", metavar="SCENARIO", help="write callgrind.out.SCENARIO")
    parser.add_argument("--serve", nargs=2, metavar=("SCENARIO", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _child(args.serve[0], int(args.serve[1]))
        return
    if args.profile:
        _instructions(args.profile, max(COUNTS), f"callgrind.out.{args.profile}")
        print(f"wrote callgrind.out.{args.profile}")
        return
    names = args.only.split(",") if args.only else list(SCENARIOS)
    for name in names:
        _requests(name)  # an unknown name fails before valgrind runs
    low, high = COUNTS
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(os.cpu_count()) as pool:
        runs = {
            (name, count): pool.submit(
                _instructions, name, count, os.path.join(tmp, f"{name}.{count}")
            )
            for name in names
            for count in COUNTS
        }
        print("| scenario | instructions per request |\n|---|---:|")
        for name in names:
            per_request = (runs[name, high].result() - runs[name, low].result()) / (high - low)
            print(f"| {SCENARIOS[name]} | {per_request:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
