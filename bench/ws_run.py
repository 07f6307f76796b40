"""WebSocket echo benchmark: Kyoukai against uvicorn (websockets), Sanic and aiohttp.

Each server runs an echo endpoint at ``/ws`` (``apps/ws_*.py``) pinned to one core; the load
generator (this file, uvloop, raw sockets, pre-masked frames, no compression offered) runs
on the other. Two scenarios, each timed for ``--duration`` seconds per server and round:

- ``small``: many clients (``--clients``), each keeping a window of 32-byte text messages in
  flight (32 at a time);
- ``large``: one client echoing 256 KiB binary messages, four in flight.

The figures are messages echoed per second and the server's CPU time per message (user and
system, from ``/proc``), the best round of each. Run it under the benchmark lock::

    flock /tmp/kyoukai-bench.lock bench/.venv/bin/python bench/ws_run.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import struct
import sys
import time
from dataclasses import dataclass

import uvloop
from _measure import CLIENT_CPU, CLK_TCK, HOST, Server, ServerFailed, running, tree_cpu_ticks

SERVERS = (
    Server("kyoukai", "Kyoukai, built-in server, uvloop", "ws_kyoukai.py", role="kyoukai"),
    Server("uvicorn-websockets", "bare ASGI app on uvicorn, ws=websockets", "ws_uvicorn.py"),
    Server("sanic", "Sanic, single process", "ws_sanic.py"),
    Server("aiohttp", "aiohttp web server, uvloop", "ws_aiohttp.py"),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    window: int
    payload: bytes
    opcode: int


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (the server unmasks every byte, as it would any client's)."""
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", length)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", length)
    mask = (key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(length, "big")
    return head + key + masked


def echo_size(payload: bytes) -> int:
    """The size of the server's unmasked echo frame of ``payload``."""
    length = len(payload)
    return length + (2 if length < 126 else 4 if length < 1 << 16 else 10)


async def open_session(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(head.encode())
    answer = await reader.readuntil(b"\r\n\r\n")
    if not answer.startswith(b"HTTP/1.1 101"):
        raise ServerFailed(f"handshake refused: {answer[:60]!r}")
    return reader, writer


async def drive(port: int, scenario: Scenario, seconds: float, pid: int) -> tuple[float, float]:
    """Echo for ``seconds``; return messages per second and server CPU µs per message."""
    sessions = [await open_session(port) for _ in range(scenario.clients)]
    batch = client_frame(scenario.opcode, scenario.payload) * scenario.window
    expected = echo_size(scenario.payload) * scenario.window
    first_byte = 0x80 | scenario.opcode
    counts = [0] * len(sessions)
    stop = False

    async def loop(index: int) -> None:
        reader, writer = sessions[index]
        while not stop:
            writer.write(batch)
            data = await reader.readexactly(expected)
            if data[0] != first_byte:
                raise ServerFailed(f"unexpected frame {data[:8]!r}")
            counts[index] += scenario.window

    tasks = [asyncio.ensure_future(loop(i)) for i in range(len(sessions))]
    await asyncio.sleep(0.5)  # warm-up: connections busy, caches filled
    start_count, start_ticks, start = sum(counts), tree_cpu_ticks(pid)[0], time.monotonic()
    await asyncio.sleep(seconds)
    count, ticks, elapsed = sum(counts), tree_cpu_ticks(pid)[0], time.monotonic() - start
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, writer in sessions:
        writer.close()
    messages = count - start_count
    cpu_us = (ticks - start_ticks) / CLK_TCK * 1e6 / max(messages, 1)
    return messages / elapsed, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--only", default="", help="comma-separated server names")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    scenarios = (
        Scenario("small", args.clients, 32, b"x" * 32, 0x1),
        Scenario("large", 1, 4, bytes(range(256)) * 1024, 0x2),
    )
    servers = [s for s in SERVERS if not args.only or s.name in args.only.split(",")]
    best: dict[tuple[str, str], tuple[float, float]] = {}
    with open(os.devnull, "wb") as log:
        for round_ in range(args.rounds):
            order = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
            for server in order:
                try:
                    with running(server, log) as (proc, port):
                        for scenario in scenarios:
                            rate, cpu = uvloop.run(drive(port, scenario, args.duration, proc.pid))
                            key = (server.name, scenario.name)
                            if rate > best.get(key, (0.0, 0.0))[0]:
                                best[key] = (rate, cpu)
                            print(
                                f"round {round_ + 1} {server.name:20} {scenario.name:6} "
                                f"{rate:9.0f} msg/s {cpu:7.1f} µs CPU/msg",
                                flush=True,
                            )
                except ServerFailed as exc:
                    print(f"{server.name}: {exc}", file=sys.stderr)
    print()
    for scenario in scenarios:
        rows = [
            (name, *best[(name, scenario.name)])
            for name in [s.name for s in servers]
            if (name, scenario.name) in best
        ]
        fastest_peer = max((r for n, r, _ in rows if n != "kyoukai"), default=0.0)
        print(f"{scenario.name}: best of {args.rounds} rounds of {args.duration:.0f} s")
        for name, rate, cpu in sorted(rows, key=lambda row: -row[1]):
            print(f"  {name:20} {rate:9.0f} msg/s  {cpu:6.1f} µs CPU/msg")
        kyoukai = best.get(("kyoukai", scenario.name))
        if kyoukai and fastest_peer:
            print(f"  kyoukai ÷ fastest peer: {kyoukai[0] / fastest_peer:.2f} times")


if __name__ == "__main__":
    main()
