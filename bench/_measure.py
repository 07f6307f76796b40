"""Measuring one server: its definition, wrk runs, /proc readings, start and stop.

Standard library only, like the rest of the harness; Linux only (``/proc``, ``taskset``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "apps"
HOST = "127.0.0.1"
SERVER_CPU = "0"
#: The filler route counts of the routing-scale variants (the others register 50).
SCALE_ROUTES = (1000, 10000)
#: The ids the distinct-id scenario draws from, uniformly, one per request.
ID_RANGE = (1, 10_000_000)
CLIENT_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 30.0
POST_BODY_SIZE = 4096


@dataclass(frozen=True)
class Server:
    """A server under test: a script in ``bench/apps`` started with the port as argument."""

    name: str
    description: str
    script: str
    args: tuple[str, ...] = ()
    #: ``kyoukai``, ``variant`` (Kyoukai in another configuration), ``asgi`` (Kyoukai's
    #: application on an ASGI server, set against Starlette on it), ``ceiling`` or ``peer``.
    role: str = "peer"
    #: Directories put first on the server's ``PYTHONPATH`` (a Kyoukai exported from git).
    pythonpath: tuple[str, ...] = ()
    #: The keys of the scenarios it runs; empty for all of them.
    scenarios: tuple[str, ...] = ()

    def runs(self, scenario_key: str) -> bool:
        return not self.scenarios or scenario_key in self.scenarios

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
        "kyoukai-uvicorn",
        "Kyoukai's application as an ASGI app on uvicorn (httptools, uvloop)",
        "uvicorn_app.py",
        ("kyoukai_app:app",),
        role="asgi",
    ),
    Server(
        "kyoukai-granian",
        "Kyoukai's application as an ASGI app on granian (1 worker, uvloop)",
        "granian_app.py",
        ("kyoukai_app:app",),
        role="asgi",
    ),
    Server(
        "raw-httptools",
        "httptools + uvloop, fixed response (ceiling)",
        "raw_httptools.py",
        role="ceiling",
    ),
    Server("sanic", "Sanic, single process", "sanic_app.py"),
    Server("aiohttp", "aiohttp web, uvloop", "aiohttp_app.py"),
    Server(
        "starlette-uvicorn",
        "Starlette on uvicorn (httptools, uvloop)",
        "uvicorn_app.py",
        ("starlette_app:app",),
    ),
    Server("blacksheep-uvicorn", "BlackSheep on uvicorn (httptools, uvloop)", "blacksheep_app.py"),
    Server("starlette-granian", "Starlette on granian (1 worker, uvloop)", "granian_app.py"),
    *(
        Server(
            f"kyoukai-{routes // 1000}k-routes",
            f"Kyoukai, built-in server, uvloop, {routes:,} filler routes",
            "kyoukai_app.py",
            ("--routes", str(routes)),
            role="scale",
            scenarios=("root", "user", "user-ids"),
        )
        for routes in SCALE_ROUTES
    ),
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
    #: Replace the path's ``<id>`` with a random id for every request.
    random_ids: bool = False

    @property
    def url_path(self) -> str:
        """The path wrk is started with (the script draws the ids of a random-id scenario)."""
        return self.path.replace("<id>", "1") if self.random_ids else self.path

    @property
    def heading(self) -> str:
        body = f" with a {self.body_size // 1024} KiB body" if self.body_size else ""
        return f"`{self.label.split(',')[0]}`{body}, {self.connections} connections"


SCENARIOS = (
    Scenario("root", "GET /", "/", 64),
    Scenario("json", "GET /json", "/json", 64),
    Scenario("user", "GET /user/12345", "/user/12345", 64),
    Scenario("user-ids", "GET /user/<random id>", "/user/<id>", 64, random_ids=True),
    Scenario("post", "POST /upload, 4 KiB", "/upload", 64, "POST", POST_BODY_SIZE),
    Scenario("c1000", "GET /, c=1000", "/", 1000),
)
#: The scenarios the issue's targets apply to.
TARGET_SCENARIOS = ("root", "json", "user", "user-ids")


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
    if scenario.random_ids:
        head, _, tail = scenario.path.partition("<id>")
        low, high = ID_RANGE
        lines += [
            "math.randomseed(os.time())",
            "request = function()",
            f'  return wrk.format(nil, "{head}" .. math.random({low}, {high}) .. "{tail}")',
            "end",
        ]
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
    #: The system (kernel) part of ``cpu_ticks`` and ``children_cpu_ticks``.
    sys_ticks: int = 0
    children_sys_ticks: int = 0


def parse_proc_stat(text: str) -> ProcStat:
    """Parse ``/proc/<pid>/stat``; the command name may hold spaces and parentheses."""
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ProcStat(int(fields[1]), utime + stime, cutime + cstime, stime, cstime)


def parse_status_kib(text: str, key: str) -> int:
    """Return a ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status``, 0 if absent."""
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def read_or_none(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its live descendants (servers may run workers as children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (text := read_or_none(f"/proc/{entry}/stat")):
            children.setdefault(parse_proc_stat(text).ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def tree_cpu_ticks(pid: int) -> tuple[int, int]:
    """CPU ticks used by the tree (live processes plus the children they have reaped).

    :return: All ticks, and the system (kernel) part of them.
    """
    total = system = 0
    for p in process_tree(pid):
        if text := read_or_none(f"/proc/{p}/stat"):
            st = parse_proc_stat(text)
            total += st.cpu_ticks + st.children_cpu_ticks
            system += st.sys_ticks + st.children_sys_ticks
    return total, system


def tree_kib(pid: int, key: str) -> int:
    """Sum a ``/proc/<pid>/status`` memory field over the process tree."""
    return sum(
        parse_status_kib(read_or_none(f"/proc/{p}/status") or "", key) for p in process_tree(pid)
    )


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
    if server.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*server.pythonpath, env.get("PYTHONPATH", "")])
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
