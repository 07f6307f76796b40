"""Kyoukai's benchmark: its built-in server against peers and a raw httptools ceiling.

Each server runs alone, pinned to CPU 0; ``wrk`` runs pinned to CPU 1. Servers take turns
for several short rounds, the order rotating each round so drift on a shared machine hits
everyone alike. Reported per server and scenario: median req/s, median p99 latency, server
CPU microseconds per request (``/proc/<pid>/stat`` utime+stime over the server's process
tree), peak RSS (``VmHWM``), and, above all, Kyoukai's ratios to the other servers measured
in the same round. Standard library only; run it with the ``bench/.venv`` interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "apps"
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 30.0
NOFILE_WANTED = 8192
POST_BODY_SIZE = 4096
PACKAGES = (
    "kyoukai",
    "werkzeug",
    "asphalt",
    "httptools",
    "uvloop",
    "sanic",
    "aiohttp",
    "starlette",
    "uvicorn",
    "blacksheep",
    "granian",
)


@dataclass(frozen=True)
class Server:
    """A server under test: a script in ``bench/apps`` started with the port as argument."""

    name: str
    description: str
    script: str
    args: tuple[str, ...] = ()
    #: ``kyoukai``, ``variant`` (Kyoukai in another configuration), ``ceiling`` or ``peer``.
    role: str = "peer"

    def argv(self, port: int | str, python: str = sys.executable) -> list[str]:
        return [python, str(APPS_DIR / self.script), str(port), *self.args]


SERVERS = (
    Server("kyoukai", "Kyoukai, built-in server, uvloop", "kyoukai_app.py", role="kyoukai"),
    Server(
        "kyoukai-asyncio",
        "Kyoukai, built-in server, plain asyncio loop",
        "kyoukai_app.py",
        ("--no-uvloop",),
        role="variant",
    ),
    Server(
        "raw-httptools",
        "httptools + uvloop, fixed response (ceiling)",
        "raw_httptools.py",
        role="ceiling",
    ),
    Server("sanic", "Sanic, single process", "sanic_app.py"),
    Server("aiohttp", "aiohttp web, uvloop", "aiohttp_app.py"),
    Server("starlette-uvicorn", "Starlette on uvicorn (httptools, uvloop)", "starlette_app.py"),
    Server("blacksheep-uvicorn", "BlackSheep on uvicorn (httptools, uvloop)", "blacksheep_app.py"),
    Server("starlette-granian", "Starlette on granian (1 worker, uvloop)", "granian_app.py"),
)


@dataclass(frozen=True)
class Scenario:
    """One wrk load: a request and a number of keep-alive connections."""

    key: str
    #: Short name, for columns and progress lines.
    label: str
    path: str
    connections: int
    method: str = "GET"
    body_size: int = 0

    @property
    def heading(self) -> str:
        body = f" with a {self.body_size // 1024} KiB body" if self.body_size else ""
        return f"`{self.label.split(',')[0]}`{body}, {self.connections} connections"


SCENARIOS = (
    Scenario("root", "GET /", "/", 64),
    Scenario("json", "GET /json", "/json", 64),
    Scenario("user", "GET /user/<id>", "/user/12345", 64),
    Scenario("post", "POST /upload, 4 KiB", "/upload", 64, "POST", POST_BODY_SIZE),
    Scenario("c1000", "GET /, c=1000", "/", 1000),
)
#: The scenarios the issue's targets apply to.
TARGET_SCENARIOS = ("root", "json", "user")


# -- wrk -------------------------------------------------------------------------------------

_LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p99_us":%.0f,'
    .. '"max_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_script(scenario: Scenario) -> str:
    """Return the Lua script for ``scenario``: its method and body, and a JSON summary."""
    lines = []
    if scenario.method != "GET":
        lines.append(f'wrk.method = "{scenario.method}"')
    if scenario.body_size:
        lines.append(f'wrk.body = string.rep("x", {scenario.body_size})')
        lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
    return "\n".join(lines) + _LUA_DONE


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests: int
    duration_s: float
    p50_us: float
    p99_us: float
    #: Socket errors plus non-2xx/3xx responses.
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 6e7}


def _to_us(value: str, unit: str) -> float:
    return float(value) * _UNITS_US[unit]


def parse_wrk_output(text: str) -> WrkResult:
    """Parse wrk's output: the ``BENCH_JSON`` line of our Lua script, else wrk's own text.

    :raises ValueError: if neither form is found.
    """
    for line in text.splitlines():
        if line.startswith("BENCH_JSON "):
            d = json.loads(line[len("BENCH_JSON ") :])
            errors = sum(int(d[k]) for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                int(d["requests"]),
                d["duration_us"] / 1e6,
                float(d["p50_us"]),
                float(d["p99_us"]),
                errors,
            )
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", text)
    if m is None:
        raise ValueError(f"no wrk summary in output: {text[-300:]!r}")
    percentiles = {
        p: _to_us(v, u)
        for p, v, u in re.findall(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    }
    errors = 0
    if s := re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors += sum(int(x) for x in s.groups())
    if s := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(s.group(1))
    return WrkResult(
        int(m.group(1)),
        _to_us(m.group(2), m.group(3)) / 1e6,
        percentiles.get("50", float("nan")),
        percentiles.get("99", float("nan")),
        errors,
    )


def wrk_argv(url: str, connections: int, seconds: int, script: Path | None) -> list[str]:
    """Return the wrk command line, pinned to the client CPU."""
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--timeout", "5s"]
    if script is not None:
        argv += ["-s", str(script)]
    return [*argv, url]


def run_wrk(argv: list[str], seconds: int) -> WrkResult:
    """Run wrk, bounded in time, and parse what it printed."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited {out.returncode}: {out.stderr.strip()[-300:]}")
    return parse_wrk_output(out.stdout)


# -- /proc -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the benchmark uses; times in clock ticks."""

    ppid: int
    cpu_ticks: int
    children_cpu_ticks: int


def parse_proc_stat(text: str) -> ProcStat:
    """Parse ``/proc/<pid>/stat``; the command name may hold spaces and parentheses."""
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    return ProcStat(
        int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
    )


def parse_status_kib(text: str, key: str) -> int:
    """Return a ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status``, 0 if absent."""
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its live descendants (servers may run workers as children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (text := _read(f"/proc/{entry}/stat")):
            children.setdefault(parse_proc_stat(text).ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def tree_cpu_ticks(pid: int) -> int:
    """CPU ticks used by the tree: live processes plus the children they have reaped."""
    total = 0
    for p in process_tree(pid):
        if text := _read(f"/proc/{p}/stat"):
            st = parse_proc_stat(text)
            total += st.cpu_ticks + st.children_cpu_ticks
    return total


def tree_kib(pid: int, key: str) -> int:
    """Sum a ``/proc/<pid>/status`` memory field over the process tree."""
    return sum(parse_status_kib(_read(f"/proc/{p}/status") or "", key) for p in process_tree(pid))


def tree_sockets(pid: int) -> int:
    """Count the socket descriptors the process tree holds."""
    count = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{p}/fd"):
                with contextlib.suppress(OSError):
                    count += os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:")
    return count


# -- servers ---------------------------------------------------------------------------------


class ServerFailed(Exception):
    """The server did not start, or answered wrongly."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(
    server: Server, log: IO[bytes], *, pin: bool = True, timeout: float = START_TIMEOUT
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start ``server`` in its own process group, wait until it answers, always stop it.

    :raises ServerFailed: if it exits or does not answer within ``timeout`` seconds.
    """
    port = free_port()
    argv = server.argv(port)
    if pin:
        argv = ["taskset", "-c", SERVER_CPU, *argv]
    env = {**os.environ, "BENCH_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        argv, cwd=APPS_DIR, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        wait_until_ready(proc, port, timeout)
        yield proc, port
    finally:
        stop(proc)


def wait_until_ready(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Poll the port until a ``GET /`` is answered, the process exits, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with code {proc.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, _ = http_request(port, "GET", "/", timeout=1.0)
            if status:
                return
        time.sleep(0.05)
    raise ServerFailed(f"did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: SIGINT, then SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
            break
    # Workers left behind by a supervisor that exited first.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, str, bytes]:
    """Make one request; return status, content type and body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def check_responses(port: int, server: Server) -> None:
    """Check that the server answers the endpoints correctly before measuring it.

    :raises ServerFailed: naming the first wrong answer.
    """
    if server.role == "ceiling":
        return
    checks: list[tuple[str, str, bytes | None, str, bytes | dict[str, str]]] = [
        ("GET", "/", None, "text/plain", b"Hello, world!"),
        ("GET", "/json", None, "application/json", {"message": "Hello, world!"}),
        ("GET", "/user/12345", None, "text/plain", b"12345"),
        ("GET", "/filler/7/items/3", None, "text/plain", b"3"),
        ("POST", "/upload", b"x" * POST_BODY_SIZE, "text/plain", str(POST_BODY_SIZE).encode()),
    ]
    for method, path, body, ctype, expected in checks:
        status, got_ctype, got = http_request(port, method, path, body)
        ok = status == 200 and got_ctype.startswith(ctype)
        if isinstance(expected, dict):
            ok = ok and json.loads(got) == expected
        else:
            ok = ok and got == expected
        if not ok:
            raise ServerFailed(
                f"wrong answer to {method} {path}: {status} {got_ctype} {got[:60]!r}"
            )


@dataclass
class IdleResult:
    """Memory held for idle keep-alive connections."""

    opened: int
    held: int
    rss_before_kib: int
    rss_after_kib: int

    @property
    def per_connection_kib(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.opened if self.opened else 0.0


def _read_response(sock: socket.socket) -> None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(m.group(1)) if m else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the end of the body")
        body += chunk


def wait_for_quiet_sockets(pid: int, timeout: float = 3.0) -> int:
    """Wait until the server has closed the connections of the last run; return its count."""
    deadline = time.monotonic() + timeout
    count = tree_sockets(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = tree_sockets(pid)
        if now == count:
            break
        count = now
    return count


def measure_idle_connections(pid: int, port: int, count: int, settle: float = 0.3) -> IdleResult:
    """Open ``count`` connections, one request each, and hold them idle while reading RSS."""
    request = f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    socks: list[socket.socket] = []
    sockets_before = wait_for_quiet_sockets(pid)
    rss_before = tree_kib(pid, "VmRSS")
    try:
        for _ in range(count):
            s = socket.create_connection((HOST, port), timeout=5.0)
            socks.append(s)
            s.sendall(request)
            _read_response(s)
        time.sleep(settle)
        rss_after = tree_kib(pid, "VmRSS")
        held = tree_sockets(pid) - sockets_before
    finally:
        for s in socks:
            s.close()
    return IdleResult(count, held, rss_before, rss_after)


# -- a run -----------------------------------------------------------------------------------


@dataclass
class Sample:
    """One scenario measured once, in one round."""

    round: int
    rps: float
    p99_us: float
    cpu_us_per_request: float
    errors: int


@dataclass
class ServerResult:
    """Everything measured for one server over the run."""

    server: Server
    failure: str | None = None
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    peak_rss_kib: int = 0
    idle: list[IdleResult] = field(default_factory=list)

    def median(self, key: str, attr: str) -> float | None:
        values = [getattr(s, attr) for s in self.samples.get(key, ())]
        return statistics.median(values) if values else None


@dataclass
class RunInfo:
    """When, where and how the run was made."""

    date: str
    command: str
    duration: int
    rounds: int
    versions: dict[str, str]
    machine: dict[str, str]
    server_commands: dict[str, str]
    wrk_commands: dict[str, str]


def measure_slot(
    server: Server,
    result: ServerResult,
    round_no: int,
    opts: argparse.Namespace,
    scripts: dict[str, Path],
    log: IO[bytes],
) -> None:
    """Start one server, check it, warm it up, measure every scenario, stop it."""
    with running(server, log) as (proc, port):
        check_responses(port, server)
        base = f"http://{HOST}:{port}"
        run_wrk(wrk_argv(base + "/", 64, opts.warmup, scripts["root"]), opts.warmup)
        result.idle.append(measure_idle_connections(proc.pid, port, opts.idle_connections))
        for sc in SCENARIOS:
            if sc.key == "c1000":
                result.peak_rss_kib = max(result.peak_rss_kib, tree_kib(proc.pid, "VmHWM"))
            before = tree_cpu_ticks(proc.pid)
            res = run_wrk(
                wrk_argv(base + sc.path, sc.connections, opts.duration, scripts[sc.key]),
                opts.duration,
            )
            ticks = tree_cpu_ticks(proc.pid) - before
            cpu_us = ticks * 1e6 / CLK_TCK / res.requests if res.requests else float("nan")
            sample = Sample(round_no, res.rps, res.p99_us, cpu_us, res.errors)
            result.samples.setdefault(sc.key, []).append(sample)
            print(
                f"  {server.name:<20} {sc.label:<22} {res.rps:>9.0f} req/s  "
                f"p99 {res.p99_us / 1e3:6.2f} ms  {cpu_us:6.1f} µs CPU/req  errors {res.errors}",
                flush=True,
            )


def run(opts: argparse.Namespace, servers: Sequence[Server]) -> list[ServerResult]:
    """Measure ``servers`` for ``opts.rounds`` rounds, rotating their order each round."""
    results = {s.name: ServerResult(s) for s in servers}
    with tempfile.TemporaryDirectory(prefix="kyoukai-bench-") as tmp:
        scripts = {}
        for sc in SCENARIOS:
            scripts[sc.key] = Path(tmp, f"{sc.key}.lua")
            scripts[sc.key].write_text(wrk_script(sc))
        for round_no in range(opts.rounds):
            k = round_no % len(servers)
            order = [*servers[k:], *servers[:k]]
            print(f"round {round_no + 1}/{opts.rounds}: {', '.join(s.name for s in order)}")
            for server in order:
                result = results[server.name]
                if result.failure:
                    continue
                log_path = Path(tmp, f"{server.name}.log")
                with open(log_path, "ab") as log:
                    try:
                        measure_slot(server, result, round_no, opts, scripts, log)
                    except (ServerFailed, RuntimeError, OSError, subprocess.SubprocessError) as e:
                        result.failure = f"{e}{_last_line(log_path)}"
                        print(f"  {server.name}: did not start or failed: {result.failure}")
    return list(results.values())


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return f" ({lines[-1].strip()[:160]})" if lines else ""


# -- the report ------------------------------------------------------------------------------


def paired_ratio(a: ServerResult, b: ServerResult, key: str, attr: str = "rps") -> float | None:
    """Median over rounds of ``a / b``, pairing the samples made in the same round."""
    b_by_round = {s.round: getattr(s, attr) for s in b.samples.get(key, ())}
    ratios = [
        getattr(s, attr) / b_by_round[s.round]
        for s in a.samples.get(key, ())
        if b_by_round.get(s.round)
    ]
    return statistics.median(ratios) if ratios else None


def fastest_peer(results: Sequence[ServerResult], key: str) -> ServerResult | None:
    peers = [r for r in results if r.server.role == "peer" and r.samples.get(key)]
    return max(peers, key=lambda r: r.median(key, "rps") or 0.0, default=None)


def _by_name(results: Sequence[ServerResult], name: str) -> ServerResult | None:
    found = [r for r in results if r.server.name == name and r.samples]
    return found[0] if found else None


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None or value != value else f"{value:{spec}}{suffix}"


def _ms(us: float | None) -> str:
    return _fmt(None if us is None else us / 1e3, ".2f", " ms")


def _idle_kib(result: ServerResult) -> float | None:
    values = [i.per_connection_kib for i in result.idle]
    return statistics.median(values) if values else None


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("pass" if ok else "**FAIL**")


def target_rows(results: Sequence[ServerResult]) -> list[tuple[str, str, str]]:
    """The issue's targets for Kyoukai's built-in server: (target, measured, verdict)."""
    ky = _by_name(results, "kyoukai")
    if ky is None:
        failed = [r.failure for r in results if r.server.name == "kyoukai"]
        why = failed[0] if failed and failed[0] else "not measured"
        return [("all targets", f"Kyoukai not available: {why}", "-")]
    sanic, raw = _by_name(results, "sanic"), _by_name(results, "raw-httptools")
    titles = {sc.key: f"`{sc.label}`" for sc in SCENARIOS}
    rows: list[tuple[str, str, str]] = []
    for key in TARGET_SCENARIOS:
        t = titles[key]
        best = fastest_peer(results, key)
        r = paired_ratio(ky, best, key) if best else None
        name = best.server.name if best else "no peer"
        rows.append(
            (
                f"{t}: req/s ≥ 1.0x fastest peer ({name})",
                _fmt(r, ".2f", "x"),
                _verdict(None if r is None else r >= 1.0),
            )
        )
        r = paired_ratio(ky, sanic, key) if sanic else None
        rows.append(
            (
                f"{t}: req/s ≥ 1.3x Sanic",
                _fmt(r, ".2f", "x"),
                _verdict(None if r is None else r >= 1.3),
            )
        )
        r = paired_ratio(ky, raw, key, "cpu_us_per_request") if raw else None
        rows.append(
            (
                f"{t}: CPU/request ≤ 3x raw httptools",
                _fmt(r, ".2f", "x"),
                _verdict(None if r is None else r <= 3.0),
            )
        )
        peers = [p for p in results if p.server.role == "peer" and p.samples.get(key)]
        best_p99 = min((p.median(key, "p99_us") or float("inf") for p in peers), default=None)
        mine = ky.median(key, "p99_us")
        ok = None if best_p99 is None or mine is None else mine <= best_p99
        measured = f"{_ms(mine)} vs {_ms(best_p99)}"
        rows.append((f"{t}: p99 at 64 connections ≤ best peer's", measured, _verdict(ok)))
    idle = _idle_kib(ky)
    held = max((i.held for i in ky.idle), default=0)
    opened = max((i.opened for i in ky.idle), default=0)
    rows.append(
        (
            "RSS per idle keep-alive connection ≤ 64 KiB",
            f"{_fmt(idle, '.1f', ' KiB')} ({held}/{opened} held)",
            _verdict(None if idle is None else idle <= 64 and held >= opened),
        )
    )
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(marks) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _status(result: ServerResult) -> str | None:
    if result.samples:
        return None
    return "did not start" if result.failure else "not measured"


def render_markdown(results: Sequence[ServerResult], info: RunInfo) -> str:
    """Render the run as the markdown of ``bench/RESULTS.md``."""
    ky = _by_name(results, "kyoukai")
    raw = _by_name(results, "raw-httptools")
    out = [
        "# Benchmark results",
        "",
        f"Measured {info.date} with `{info.command}`: {info.rounds} rounds of {info.duration} s "
        f"per scenario, server pinned to CPU {SERVER_CPU}, wrk to CPU {CLIENT_CPU}. Values are "
        "medians over rounds; ratios pair the servers measured in the same round. Absolute "
        "numbers drift from run to run on shared machines; compare ratios.",
        "",
        "## Targets for Kyoukai's built-in server",
        "",
        *_table(("target", "measured", "result"), target_rows(results), "lrl"),
        "",
        "## Kyoukai's req/s relative to each server",
        "",
        "Kyoukai (built-in server, uvloop) req/s ÷ the server's, median of per-round ratios.",
        "",
    ]
    ratio_rows = []
    for r in results:
        if r.server.name == "kyoukai":
            continue
        cells = [r.server.name]
        for sc in SCENARIOS:
            value = paired_ratio(ky, r, sc.key) if ky and r.samples else None
            cells.append(_status(r) or _fmt(value, ".2f", "x"))
        ratio_rows.append(cells)
    fastest = []
    for sc in SCENARIOS:
        best = fastest_peer(results, sc.key)
        value = paired_ratio(ky, best, sc.key) if ky and best else None
        fastest.append(f"{_fmt(value, '.2f', 'x')} ({best.server.name})" if best else "-")
    ratio_rows.append(["**fastest peer**", *fastest])
    out += [*_table(("server", *(f"`{sc.label}`" for sc in SCENARIOS)), ratio_rows), ""]

    for sc in SCENARIOS:
        rows = []
        for r in results:
            if status := _status(r):
                rows.append([r.server.name, status, *["-"] * 6])
                continue
            cpu = r.median(sc.key, "cpu_us_per_request")
            vs_raw = paired_ratio(r, raw, sc.key, "cpu_us_per_request") if raw else None
            ky_ratio = paired_ratio(ky, r, sc.key) if ky and r is not ky else None
            errors = sum(s.errors for s in r.samples.get(sc.key, ()))
            p99 = r.median(sc.key, "p99_us")
            rows.append(
                [
                    r.server.name,
                    _fmt(r.median(sc.key, "rps"), ",.0f"),
                    _ms(p99),
                    _fmt(cpu, ".1f"),
                    _fmt(vs_raw, ".2f", "x"),
                    _fmt(r.peak_rss_kib / 1024 if r.peak_rss_kib else None, ".1f", " MiB"),
                    _fmt(ky_ratio, ".2f", "x"),
                    str(errors),
                ]
            )
        header = (
            "server",
            "req/s",
            "p99",
            "CPU µs/req",
            "CPU ÷ raw",
            "peak RSS",
            "Kyoukai ÷ this",
            "errors",
        )
        out += [f"## {sc.heading}", "", *_table(header, rows), ""]

    out += [
        "Peak RSS is `VmHWM` of the server's process tree after the 64-connection scenarios.",
        "",
        "## Idle keep-alive connections",
        "",
        "Connections opened by the harness, one `GET /` each, then held idle; RSS of the "
        "server's process tree before and after.",
        "",
    ]
    idle_rows = []
    for r in results:
        if (status := _status(r)) or not r.idle:
            idle_rows.append([r.server.name, status or "-", "-", "-", "-"])
            continue
        i = r.idle[-1]
        idle_rows.append(
            [
                r.server.name,
                f"{max(x.held for x in r.idle)}/{i.opened}",
                f"{i.rss_before_kib / 1024:.1f} MiB",
                f"{i.rss_after_kib / 1024:.1f} MiB",
                _fmt(_idle_kib(r), ".1f", " KiB"),
            ]
        )
    out += [*_table(("server", "held", "RSS before", "RSS after", "per connection"), idle_rows), ""]

    ky_asyncio = _by_name(results, "kyoukai-asyncio")
    if ky and ky_asyncio:
        rows = [
            [
                f"`{sc.label}`",
                _fmt(ky.median(sc.key, "rps"), ",.0f"),
                _fmt(ky_asyncio.median(sc.key, "rps"), ",.0f"),
                _fmt(paired_ratio(ky, ky_asyncio, sc.key), ".2f", "x"),
            ]
            for sc in SCENARIOS
        ]
        out += [
            "## Kyoukai: uvloop vs asyncio",
            "",
            *_table(("scenario", "uvloop req/s", "asyncio req/s", "uvloop ÷ asyncio"), rows),
            "",
        ]

    out += [
        "## Servers",
        "",
        *_table(
            ("server", "what", "status"),
            [[r.server.name, r.server.description, r.failure or "measured"] for r in results],
            "lll",
        ),
        "",
    ]
    out += [
        "## Versions and machine",
        "",
        *_table(("component", "version"), sorted(info.versions.items()), "ll"),
        "",
    ]
    out += [*(f"- {k}: {v}" for k, v in info.machine.items()), ""]
    out += ["## Commands", "", "```console", f"$ {info.command}"]
    out += [f"$ {cmd}  # {name}" for name, cmd in info.server_commands.items()]
    out += [f"$ {cmd}  # {name}" for name, cmd in info.wrk_commands.items()]
    out += ["```", ""]
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------------


def collect_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    for tool, argv in (("wrk", ["wrk", "-v"]), ("h2load", ["h2load", "--version"])):
        try:
            text = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
            versions[tool] = text.splitlines()[0].split(" [")[0] if text else "unknown"
        except (OSError, subprocess.SubprocessError):
            versions[tool] = "not installed"
    return versions


def collect_machine() -> dict[str, str]:
    cpuinfo = _read("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = parse_status_kib(_read("/proc/meminfo") or "", "MemTotal")
    return {
        "CPUs": f"{os.cpu_count()} x {m.group(1) if m else platform.processor() or 'unknown'}",
        "memory": f"{mem / 1024 / 1024:.0f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
    }


def raise_nofile(wanted: int = NOFILE_WANTED) -> int:
    """Raise RLIMIT_NOFILE (inherited by servers and wrk) for the 1000-connection runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=int, default=3, help="seconds per scenario (default 3)")
    p.add_argument("--rounds", type=int, default=5, help="rounds over all servers (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per server slot")
    p.add_argument("--idle-connections", type=int, default=1000, help="idle connections held")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated server names: " + ",".join(s.name for s in SERVERS),
    )
    p.add_argument("--quick", action="store_true", help="1 round of 1 s: a smoke run, not saved")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"markdown file to write (default {RESULTS_PATH.name}; none with --quick)",
    )
    opts = p.parse_args(argv)
    if opts.quick:
        opts.duration, opts.rounds, opts.warmup = 1, 1, 1
    if opts.output is None and not opts.quick:
        opts.output = RESULTS_PATH
    return opts


def select_servers(only: str) -> list[Server]:
    """Return the servers named in ``only`` (all when empty), in the table's order."""
    if not only:
        return list(SERVERS)
    names = {n.strip() for n in only.split(",") if n.strip()}
    unknown = names - {s.name for s in SERVERS}
    if unknown:
        raise SystemExit(f"unknown server(s): {', '.join(sorted(unknown))}")
    return [s for s in SERVERS if s.name in names]


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    servers = select_servers(opts.only)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run `bash bench/setup.sh` (or `make bench`)")
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; server and wrk will share one", file=sys.stderr)
    raise_nofile()
    signal.signal(signal.SIGTERM, _terminate)
    shown_argv = list(sys.argv[1:] if argv is None else argv)
    info = RunInfo(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=shlex.join(["bench/.venv/bin/python", "bench/run.py", *shown_argv]),
        duration=opts.duration,
        rounds=opts.rounds,
        versions=collect_versions(),
        machine=collect_machine(),
        server_commands={
            s.name: shlex.join(
                ["taskset", "-c", SERVER_CPU, "python", f"bench/apps/{s.script}", "PORT", *s.args]
            )
            for s in servers
        },
        wrk_commands={
            sc.label: shlex.join(
                wrk_argv(
                    f"http://{HOST}:PORT{sc.path}",
                    sc.connections,
                    opts.duration,
                    Path(f"{sc.key}.lua"),
                )
            )
            for sc in SCENARIOS
        },
    )
    results = run(opts, servers)
    text = render_markdown(results, info)
    print()
    print(text)
    if opts.output:
        opts.output.write_text(text)
        print(f"written to {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
