"""The HTTP/2 part of the benchmark: h2load against Kyoukai, Hypercorn, granian and raw h2.

Each server runs pinned to CPU 0, h2load (``-c16 -m10``) pinned to CPU 1, over cleartext
(prior knowledge) and TLS (ALPN ``h2``), on ``/``, ``/json`` and ``/user/<id>``. Servers take
turns within each round, the order rotating, so the ratios pair samples seconds apart.
Reported: median req/s, server CPU per request, h2load errors, memory per idle HTTP/2
connection, and Kyoukai's ratios to Hypercorn and to the raw h2 ceiling. Standard library
only, like the rest of the harness.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _measure import (
    APPS_DIR,
    CLIENT_CPU,
    CLK_TCK,
    HOST,
    SERVER_CPU,
    ServerFailed,
    free_port,
    stop,
    tree_cpu_ticks,
    tree_kib,
    tree_sockets,
    wait_for_quiet_sockets,
)

PATHS = (("root", "/"), ("json", "/json"), ("user", "/user/12345"))
LABELS = {"root": "`GET /`", "json": "`GET /json`", "user": "`GET /user/<id>`"}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: SETTINGS (empty), SETTINGS ACK, then HEADERS on stream 1: GET http://127.0.0.1/.
HANDSHAKE = (
    PREFACE
    + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
    + b"\x00\x00\x0e\x01\x05\x00\x00\x00\x01"
    + b"\x82\x86\x84\x41\x09127.0.0.1"
)


@dataclass(frozen=True)
class H2Server:
    """A server of the HTTP/2 run: a script in ``bench/apps`` with its arguments."""

    name: str
    description: str
    script: str
    args: tuple[str, ...] = ()
    tls_args: tuple[str, ...] = ()


SERVERS = (
    H2Server("kyoukai", "Kyoukai, built-in server, http2=True, uvloop", "kyoukai_app.py",
             ("--http2",), ("--http2", "--tls")),
    H2Server("raw-h2", "h2 + uvloop answering fixed bytes: the ceiling", "raw_h2.py",
             (), ("--tls",)),
    H2Server("starlette-hypercorn", "Starlette on Hypercorn (h2, uvloop)", "hypercorn_app.py",
             (), ("--tls",)),
    H2Server("starlette-granian", "Starlette on granian (Rust h2, ASGI, 1 worker)",
             "granian_app.py", ("--http2",), ("--http2", "--tls")),
)  # fmt: skip


@dataclass
class H2Result:
    server: H2Server
    failure: str | None = None
    #: (transport, path key) -> [(round, req/s, CPU µs per request, errors)]
    samples: dict[tuple[str, str], list[tuple[int, float, float, int]]] = field(
        default_factory=dict
    )
    idle_kib: list[float] = field(default_factory=list)
    held: int = 0

    def median(self, key: tuple[str, str], index: int) -> float | None:
        values = [s[index] for s in self.samples.get(key, ())]
        return statistics.median(values) if values else None


def make_certificate(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (h2load does not verify it)."""
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _h2_exchange(sock: socket.socket) -> None:
    """Send :data:`HANDSHAKE` and read frames until stream 1's response ends."""
    sock.sendall(HANDSHAKE)
    buffer = b""
    while True:
        while len(buffer) < 9:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response")
            buffer += chunk
        length = int.from_bytes(buffer[:3])
        while len(buffer) < 9 + length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in a frame")
            buffer += chunk
        kind, flags, stream = buffer[3], buffer[4], int.from_bytes(buffer[5:9]) & 0x7FFFFFFF
        buffer = buffer[9 + length :]
        if stream == 1 and kind in (0x0, 0x1) and flags & 0x1:
            return


@contextlib.contextmanager
def running(server: H2Server, args: Sequence[str], log: Path) -> Iterator[tuple[int, int]]:
    """Start a server pinned to CPU 0; yield ``(pid, port)`` once it answers over HTTP/2."""
    port = free_port()
    argv = ["taskset", "-c", SERVER_CPU, sys.executable,
            str(APPS_DIR / server.script), str(port), *args]  # fmt: skip
    env = {**os.environ, "BENCH_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=APPS_DIR, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"exited with code {proc.returncode}")
            try:
                with socket.create_connection((HOST, port), timeout=2) as sock:
                    if "--tls" not in args:
                        _h2_exchange(sock)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerFailed("did not answer within 30 s") from None
                time.sleep(0.1)
        yield proc.pid, port
    finally:
        stop(proc)


def h2load(url: str, requests: int) -> tuple[float, int, str]:
    """Run h2load -c16 -m10 on CPU 1; return (req/s, failed + errored requests, output)."""
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "-n", str(requests), "-c", "16", "-m", "10",
            url]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300).stdout
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    counts = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if rate is None or counts is None:
        raise ServerFailed(f"h2load gave no result: {out[-300:]}")
    return float(rate.group(1)), int(counts.group(2)) + int(counts.group(3)), out


def idle_connections(pid: int, port: int, count: int) -> tuple[float, int]:
    """RSS per idle HTTP/2 connection (one request each, then held), and how many are held."""
    before_sockets = wait_for_quiet_sockets(pid)
    before = tree_kib(pid, "VmRSS")
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection((HOST, port), timeout=5)
            socks.append(sock)
            _h2_exchange(sock)
        time.sleep(0.3)
        after = tree_kib(pid, "VmRSS")
        held = tree_sockets(pid) - before_sockets
    finally:
        for sock in socks:
            sock.close()
    return (after - before) / count, held


def run_h2(rounds: int, requests: int, idle: int, only: Sequence[str] = ()) -> list[H2Result]:
    """Measure every server for ``rounds`` rounds; h2c and TLS, each path once per round."""
    servers = [s for s in SERVERS if not only or s.name in only]
    results = {s.name: H2Result(s) for s in servers}
    with tempfile.TemporaryDirectory(prefix="kyoukai-h2bench-") as tmp:
        cert, key = make_certificate(Path(tmp))
        for round_no in range(rounds):
            k = round_no % len(servers)
            order = [*servers[k:], *servers[:k]]
            print(f"HTTP/2 round {round_no + 1}/{rounds}: {', '.join(s.name for s in order)}")
            for server in order:
                result = results[server.name]
                if result.failure:
                    continue
                log = Path(tmp, f"{server.name}.log")
                try:
                    _round(result, round_no, requests, idle, (cert, key), log)
                except (ServerFailed, OSError, subprocess.SubprocessError) as exc:
                    lines = log.read_text(errors="replace").strip().splitlines()
                    result.failure = f"{exc} ({lines[-1][:160] if lines else 'no output'})"
                    print(f"  {server.name}: failed: {result.failure}", flush=True)
    return list(results.values())


def _round(
    result: H2Result, round_no: int, requests: int, idle: int, tls: tuple[str, str], log: Path
) -> None:
    server = result.server
    for transport, args in (("h2c", server.args), ("tls", (*server.tls_args, *tls))):
        with running(server, args, log) as (pid, port):
            scheme = "https" if transport == "tls" else "http"
            if transport == "h2c" and idle:
                per, held = idle_connections(pid, port, idle)
                result.idle_kib.append(per)
                result.held = held
            h2load(f"{scheme}://{HOST}:{port}/", 2000)  # warm-up
            for key, path in PATHS:
                ticks_before, _ = tree_cpu_ticks(pid)
                rps, errors, _ = h2load(f"{scheme}://{HOST}:{port}{path}", requests)
                ticks_after, _ = tree_cpu_ticks(pid)
                cpu = (ticks_after - ticks_before) * 1e6 / CLK_TCK / requests
                result.samples.setdefault((transport, key), []).append((round_no, rps, cpu, errors))
                print(
                    f"  {server.name:<20} {transport:<4} {path:<12} {rps:>9.0f} req/s  "
                    f"{cpu:6.1f} µs CPU/req  errors {errors}",
                    flush=True,
                )


def _ratio(a: H2Result, b: H2Result | None, key: tuple[str, str], index: int = 1) -> float | None:
    """Median over rounds of ``a ÷ b`` for req/s (``index`` 1), or of ``b ÷ a`` for CPU per
    request (``index`` 2): above 1 means ``a`` is faster either way."""
    if b is None:
        return None
    theirs = {s[0]: s[index] for s in b.samples.get(key, ())}
    mine = [(s[0], s[index]) for s in a.samples.get(key, ()) if theirs.get(s[0]) and s[index]]
    ratios = [v / theirs[r] if index == 1 else theirs[r] / v for r, v in mine]
    return statistics.median(ratios) if ratios else None


def _f(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def render_h2(results: Sequence[H2Result], command: str, rounds: int, requests: int) -> str:
    """The HTTP/2 section of ``RESULTS.md``."""
    by = {r.server.name: r for r in results}
    ky, raw, hyper = by.get("kyoukai"), by.get("raw-h2"), by.get("starlette-hypercorn")
    keys = [(t, k) for t in ("h2c", "tls") for k, _ in PATHS]
    lines = [
        "## HTTP/2 (h2load)",
        "",
        f"Measured with `{command}`: {rounds} round(s), `h2load -n{requests} -c16 -m10` per "
        "path, server pinned to CPU 0, h2load to CPU 1; medians over rounds, ratios paired "
        "by round. `h2c` is cleartext with prior knowledge, `tls` is TLS with ALPN `h2`.",
        "",
        "### Targets",
        "",
        "The CPU column is the same ratio from CPU time per request (theirs ÷ Kyoukai's):",
        "what a request costs, the figure least moved by other load on a shared machine.",
        "",
        "| target | measured (req/s) | result | by CPU per request |",
        "| :--- | ---: | :--- | ---: |",
    ]
    if ky is not None:
        for transport, key in keys:
            title = f"{transport} {LABELS[key]}"
            for peer, need, name in ((hyper, 2.5, "Hypercorn"), (raw, 0.75, "raw h2")):
                r = _ratio(ky, peer, (transport, key))
                verdict = "-" if r is None else ("pass" if r >= need else "**FAIL**")
                measured = _f(r, ".2f", "x")
                cpu = _f(_ratio(ky, peer, (transport, key), 2), ".2f", "x")
                lines.append(
                    f"| {title}: req/s ≥ {need}x {name} | {measured} | {verdict} | {cpu} |"
                )
        per = statistics.median(ky.idle_kib) if ky.idle_kib else None
        verdict = "-" if per is None else ("pass" if per <= 64 else "**FAIL**")
        lines.append(
            f"| RSS per idle HTTP/2 connection ≤ 64 KiB | {_f(per, '.1f', ' KiB')} "
            f"({ky.held} held) | {verdict} | |"
        )
    lines += ["", "### req/s, CPU per request (µs), errors", ""]
    header = " | ".join(f"{t} {LABELS[k]}" for t, k in keys)
    lines += [f"| server | {header} | idle KiB/conn |", "| :--- |" + " ---: |" * (len(keys) + 1)]
    for result in results:
        if result.failure:
            lines.append(f"| {result.server.name} | did not run: {result.failure} |")
            continue
        cells = []
        for key in keys:
            rps, cpu = result.median(key, 1), result.median(key, 2)
            errors = sum(s[3] for s in result.samples.get(key, ()))
            cells.append(f"{_f(rps, '.0f')} / {_f(cpu, '.1f')} / {errors}")
        idle_kib = statistics.median(result.idle_kib) if result.idle_kib else None
        lines.append(f"| {result.server.name} | {' | '.join(cells)} | {_f(idle_kib, '.1f')} |")
    lines += ["", "| server | what runs |", "| :--- | :--- |"]
    lines += [f"| {s.server.name} | {s.server.description} |" for s in results]
    return "\n".join(lines) + "\n"
