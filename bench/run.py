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
import importlib.util
import io
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType

from _h2 import SERVERS as H2_SERVERS
from _h2 import render_h2, run_h2
from _measure import (
    BENCH_DIR,
    CLK_TCK,
    HOST,
    SCENARIOS,
    SERVER_CPU,
    SERVERS,
    Scenario,
    Server,
    ServerFailed,
    check_responses,
    measure_idle_connections,
    parse_status_kib,
    read_or_none,
    run_wrk,
    running,
    tree_cpu_ticks,
    tree_kib,
    wrk_argv,
    wrk_script,
)
from _report import RunInfo, Sample, ServerResult, render_markdown

RESULTS_PATH = BENCH_DIR / "RESULTS.md"
NOFILE_WANTED = 8192
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


@dataclass
class Live:
    """A server started for this round."""

    result: ServerResult
    pid: int
    port: int
    log_path: Path


def start_server(
    server: Server,
    result: ServerResult,
    opts: argparse.Namespace,
    scripts: dict[str, Path],
    stack: contextlib.ExitStack,
    log_path: Path,
) -> Live:
    """Measure idle connections on a fresh instance, then start, check and warm up another.

    A fresh instance has no memory freed by earlier load to reuse, so what the idle
    connections add to its RSS is their own cost. The second instance stays up until
    ``stack`` closes, at the end of the round.
    """
    log = stack.enter_context(open(log_path, "ab"))
    with running(server, log) as (proc, port):
        check_responses(port, server)
        result.idle.append(measure_idle_connections(proc.pid, port, opts.idle_connections))
    proc, port = stack.enter_context(running(server, log))
    check_responses(port, server)
    run_wrk(wrk_argv(f"http://{HOST}:{port}/", 64, opts.warmup, scripts["root"]), opts.warmup)
    return Live(result, proc.pid, port, log_path)


def measure(
    live: Live, sc: Scenario, round_no: int, opts: argparse.Namespace, script: Path
) -> None:
    """Run wrk for one scenario against one server and record the sample."""
    total_before, sys_before = tree_cpu_ticks(live.pid)
    url = f"http://{HOST}:{live.port}{sc.url_path}"
    res = run_wrk(wrk_argv(url, sc.connections, opts.duration, script), opts.duration)
    total_after, sys_after = tree_cpu_ticks(live.pid)
    us_per_tick = 1e6 / CLK_TCK / res.requests if res.requests else float("nan")
    cpu_us = (total_after - total_before) * us_per_tick
    sys_us = (sys_after - sys_before) * us_per_tick
    sample = Sample(round_no, res.rps, res.p99_us, cpu_us, res.errors, sys_us)
    live.result.samples.setdefault(sc.key, []).append(sample)
    print(
        f"  {live.result.server.name:<20} {sc.label:<22} {res.rps:>9.0f} req/s  "
        f"p99 {res.p99_us / 1e3:6.2f} ms  {cpu_us:5.1f} µs CPU/req ({sys_us:4.1f} sys)  "
        f"errors {res.errors}",
        flush=True,
    )


_FAILURES = (ServerFailed, RuntimeError, OSError, subprocess.SubprocessError)


def _fail(result: ServerResult, error: Exception, log_path: Path) -> None:
    result.failure = f"{error}{_last_line(log_path)}"
    print(f"  {result.server.name}: did not start or failed: {result.failure}", flush=True)


def run(opts: argparse.Namespace, servers: Sequence[Server]) -> list[ServerResult]:
    """Measure ``servers`` for ``opts.rounds`` rounds.

    Each round starts every server (idle ones cost nothing on CPU 0), then runs each
    scenario against the servers back to back, so the samples a ratio pairs are seconds
    apart. The server order rotates by one each round.
    """
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
            with contextlib.ExitStack() as stack:
                live: list[Live] = []
                for server in order:
                    result = results[server.name]
                    if result.failure:
                        continue
                    log_path = Path(tmp, f"{server.name}.log")
                    try:
                        live.append(start_server(server, result, opts, scripts, stack, log_path))
                    except _FAILURES as e:
                        _fail(result, e, log_path)
                for sc in SCENARIOS:
                    for lv in live:
                        if lv.result.failure or not lv.result.server.runs(sc.key):
                            continue
                        try:
                            if sc.key == "c1000":
                                rss = tree_kib(lv.pid, "VmHWM")
                                lv.result.peak_rss_kib = max(lv.result.peak_rss_kib, rss)
                            measure(lv, sc, round_no, opts, scripts[sc.key])
                        except _FAILURES as e:
                            _fail(lv.result, e, lv.log_path)
    return list(results.values())


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return f" ({lines[-1].strip()[:160]})" if lines else ""


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


def kyoukai_source() -> str:
    """Say where the servers import Kyoukai from: the checkout, with its git state."""
    spec = importlib.util.find_spec("kyoukai")
    if spec is None or spec.origin is None:
        return "not installed"
    where = Path(spec.origin).parent
    argv = ["git", "-C", str(where), "describe", "--always", "--dirty", "--abbrev=10"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return f"{where} (git {out.stdout.strip()})"
    return str(where)


def export_kyoukai(rev: str, dest: Path, *, for_all: bool = True) -> str:
    """Export ``src/`` as committed at ``rev`` into ``dest``, and point servers at it.

    Servers inherit ``PYTHONPATH``, which comes before the checkout's editable install, so
    a run measures one fixed commit even while the working tree changes. With
    ``for_all=False`` nothing is pointed at it (the baseline variant names it itself).

    :return: The commit's full hash.
    """
    repo = str(BENCH_DIR.parent)
    sha = subprocess.run(
        ["git", "-C", repo, "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    archive = subprocess.run(
        ["git", "-C", repo, "archive", sha, "src"], capture_output=True, check=True, timeout=60
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    if not for_all:
        return sha
    paths = [str(dest / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    return sha


def collect_machine() -> dict[str, str]:
    cpuinfo = read_or_none("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = parse_status_kib(read_or_none("/proc/meminfo") or "", "MemTotal")
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
    p.add_argument(
        "--kyoukai-commit",
        metavar="REV",
        help="measure Kyoukai as committed at REV (exported from git) instead of the checkout",
    )
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure Kyoukai as committed at REV, as the variant kyoukai-baseline, in "
        "the same rounds: an A/B comparison of a change that does not depend on drift",
    )
    p.add_argument(
        "--h2",
        choices=("also", "only", "no"),
        default="also",
        help="the HTTP/2 part (h2load): after the HTTP/1.1 one (default), alone, or not",
    )
    p.add_argument("--h2-rounds", type=int, default=3, help="HTTP/2 rounds (default 3)")
    p.add_argument(
        "--h2-requests", type=int, default=30000, help="requests per h2load run (default 30000)"
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
        opts.h2_rounds, opts.h2_requests = 1, 5000
    if opts.output is None and not opts.quick:
        opts.output = RESULTS_PATH
    return opts


def select_servers(only: str) -> list[Server]:
    """Return the servers named in ``only`` (all when empty), in the table's order."""
    if not only:
        return list(SERVERS)
    names = {n.strip() for n in only.split(",") if n.strip()}
    unknown = names - {s.name for s in SERVERS} - {s.name for s in H2_SERVERS}
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
    with contextlib.ExitStack() as stack:
        source = kyoukai_source()
        if opts.kyoukai_commit:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kyoukai-src-")))
            source = f"git {export_kyoukai(opts.kyoukai_commit, tmp)[:10]} (exported from git)"
        if opts.baseline:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kyoukai-base-")))
            sha = export_kyoukai(opts.baseline, tmp, for_all=False)
            servers.insert(1, baseline_server(sha, tmp / "src"))
        return measure_and_report(opts, servers, shown_argv, source)


def baseline_server(sha: str, src: Path) -> Server:
    """Kyoukai's built-in server as committed at ``sha`` (exported to ``src``), as a variant."""
    return Server(
        "kyoukai-baseline",
        f"Kyoukai at {sha[:10]}, built-in server, uvloop (the --baseline)",
        "kyoukai_app.py",
        role="variant",
        pythonpath=(str(src),),
    )


def measure_and_report(
    opts: argparse.Namespace, servers: Sequence[Server], shown_argv: list[str], source: str
) -> int:
    """Run the benchmark, print the report and write it to ``opts.output``."""
    versions = collect_versions()
    versions["kyoukai source"] = source
    info = RunInfo(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=shlex.join(["bench/.venv/bin/python", "bench/run.py", *shown_argv]),
        duration=opts.duration,
        rounds=opts.rounds,
        versions=versions,
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
                    f"http://{HOST}:PORT{sc.url_path}",
                    sc.connections,
                    opts.duration,
                    Path(f"{sc.key}.lua"),
                )
            )
            for sc in SCENARIOS
        },
    )
    text = ""
    if opts.h2 != "only" and servers:
        text = render_markdown(run(opts, servers), info)
    if opts.h2 != "no":
        names = [n.strip() for n in opts.only.split(",") if n.strip()]
        h2_results = run_h2(opts.h2_rounds, opts.h2_requests, opts.idle_connections // 10, names)
        section = render_h2(h2_results, info.command, opts.h2_rounds, opts.h2_requests)
        if opts.h2 == "only":
            # Keep the HTTP/1.1 results of the last full run; replace its HTTP/2 section.
            old = opts.output.read_text() if opts.output and opts.output.exists() else ""
            text = old.split(H2_HEADING)[0].rstrip() + "\n\n" if old else ""
        text += ("\n" if text else "") + section
    print()
    print(text)
    if opts.output:
        opts.output.write_text(text)
        print(f"written to {opts.output}")
    return 0


H2_HEADING = "## HTTP/2 (h2load)"


if __name__ == "__main__":
    sys.exit(main())
