"""Static files: Kyoukai's ``add_static`` against Python peers and nginx, in the same rounds.

Each server serves one directory holding a 4 KiB and a 1 MiB file under ``/files/``; wrk
fetches each file over 64 keep-alive connections. The methods are ``run.py``'s (servers
pinned to CPU 0, wrk to CPU 1, rounds with the server order rotating, medians, CPU per
request from ``/proc``). Reported: req/s, CPU microseconds per request, and Kyoukai's ratios
to the fastest Python peer and to nginx. Targets: at least 1.5x the fastest Python peer
on each size, and at least half of nginx's req/s on the 1 MiB file.

    bench/.venv/bin/python bench/static_files.py [--rounds 3] [--duration 3] [--output F]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _measure import (
    BENCH_DIR,
    CLK_TCK,
    HOST,
    Server,
    ServerFailed,
    http_request,
    run_wrk,
    running,
    tree_cpu_ticks,
    wrk_argv,
)

RESULTS_PATH = BENCH_DIR / "STATIC_RESULTS.md"
SIZES = {"4 KiB": 4096, "1 MiB": 1024 * 1024}
CONNECTIONS = 64
#: Python peers; Kyoukai must beat the fastest of them by this factor on each size.
PEER_TARGET = 1.5
#: Kyoukai's req/s over nginx's, on the 1 MiB file, at least.
NGINX_TARGET = 0.5


def servers(directory: str) -> list[Server]:
    args = (directory,)
    return [
        Server("kyoukai", "Kyoukai add_static, built-in server", "static_kyoukai.py", args,
               role="kyoukai"),
        Server("starlette-uvicorn", "Starlette StaticFiles on uvicorn", "static_starlette.py",
               args),
        Server("sanic", "Sanic static, single process", "static_sanic.py", args),
        Server("aiohttp", "aiohttp add_static, uvloop", "static_aiohttp.py", args),
        Server("nginx", "nginx, sendfile on, 1 worker", "static_nginx.py", args,
               role="ceiling"),
    ]  # fmt: skip


def file_name(size: int) -> str:
    return f"file-{size}.bin"


def check(port: int, files: dict[int, bytes]) -> None:
    for size, data in files.items():
        status, _, body = http_request(port, "GET", f"/files/{file_name(size)}")
        if status != 200 or body != data:
            raise ServerFailed(f"wrong answer for the {size}-byte file: {status}, {len(body)} B")


def run(opts: argparse.Namespace) -> tuple[dict[str, dict[str, list[tuple[float, float]]]], str]:
    """Return ``{server: {size label: [(req/s, CPU µs per request), ...]}}`` and a note."""
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kyoukai-bench-static-") as tmp:
        files = {size: os.urandom(size) for size in SIZES.values()}
        for size, data in files.items():
            Path(tmp, file_name(size)).write_bytes(data)
        candidates = [s for s in servers(tmp) if not opts.only or s.name in opts.only]
        if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
            candidates = [s for s in candidates if s.name != "nginx"]
            failures.append("nginx: not installed (Debian package nginx)")
        for round_no in range(opts.rounds):
            k = round_no % len(candidates)
            order = [*candidates[k:], *candidates[:k]]
            print(f"round {round_no + 1}/{opts.rounds}: {', '.join(s.name for s in order)}")
            with contextlib.ExitStack() as stack:
                live = []
                for server in order:
                    log = stack.enter_context(open(Path(tmp, f"{server.name}.log"), "ab"))
                    try:
                        proc, port = stack.enter_context(running(server, log))
                        check(port, files)
                    except (ServerFailed, OSError, subprocess.SubprocessError) as error:
                        failures.append(f"{server.name}: {error}")
                        candidates.remove(server)
                        continue
                    live.append((server, proc.pid, port))
                for label, size in SIZES.items():
                    for server, pid, port in live:
                        url = f"http://{HOST}:{port}/files/{file_name(size)}"
                        run_wrk(wrk_argv(url, CONNECTIONS, 1, None), 1)  # warm-up
                        before, _ = tree_cpu_ticks(pid)
                        result = run_wrk(wrk_argv(url, CONNECTIONS, opts.duration, None), 60)
                        after, _ = tree_cpu_ticks(pid)
                        cpu_us = (after - before) * 1e6 / CLK_TCK / max(result.requests, 1)
                        samples.setdefault(server.name, {}).setdefault(label, []).append(
                            (result.rps, cpu_us)
                        )
                        print(
                            f"  {server.name:<18} {label:>6} {result.rps:>9.0f} req/s "
                            f"{cpu_us:7.1f} µs CPU/req  errors {result.errors}",
                            flush=True,
                        )
    return samples, "; ".join(failures)


def median(samples: list[tuple[float, float]], index: int) -> float:
    return statistics.median(sample[index] for sample in samples)


def render(samples: dict[str, dict[str, list[tuple[float, float]]]], note: str, rounds: int,
           duration: int, commit: str) -> str:  # fmt: skip
    lines = [
        "# Static-file benchmark results",
        "",
        f"Run of {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Kyoukai at `{commit}`, "
        f"{rounds} rounds of {duration} s per server and file, {CONNECTIONS} connections "
        "(`bench/static_files.py`; servers on CPU 0, wrk on CPU 1). Medians over rounds.",
        "",
        "| server | " + " | ".join(f"{label} req/s | {label} µs CPU/req" for label in SIZES) + " |",
        "|---|" + "---:|" * (2 * len(SIZES)),
    ]
    for name, by_size in samples.items():
        cells = []
        for label in SIZES:
            got = by_size.get(label)
            cells += [f"{median(got, 0):.0f}", f"{median(got, 1):.1f}"] if got else ["-", "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    kyoukai = samples.get("kyoukai", {})
    for label in SIZES:
        peers = [
            median(by_size[label], 0)
            for name, by_size in samples.items()
            if name not in ("kyoukai", "nginx") and label in by_size
        ]
        if label in kyoukai and peers:
            ratio = median(kyoukai[label], 0) / max(peers)
            met = "yes" if ratio >= PEER_TARGET else "no"
            lines.append(
                f"| {label}: ≥ {PEER_TARGET}x the fastest Python peer | {ratio:.2f}x | {met} |"
            )
    nginx = samples.get("nginx", {}).get("1 MiB")
    if "1 MiB" in kyoukai and nginx:
        ratio = median(kyoukai["1 MiB"], 0) / median(nginx, 0)
        met = "yes" if ratio >= NGINX_TARGET else "no"
        lines.append(f"| 1 MiB: ≥ {NGINX_TARGET}x nginx's req/s | {ratio:.2f}x | {met} |")
    if note:
        lines += ["", f"Not measured: {note}."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--only", type=lambda text: set(text.split(",")), default=set())
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    opts = parser.parse_args(argv)
    samples, note = run(opts)
    commit = subprocess.run(
        ["git", "-C", str(BENCH_DIR), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    text = render(samples, note, opts.rounds, opts.duration, commit or "unknown")
    opts.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
