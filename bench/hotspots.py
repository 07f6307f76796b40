"""Profile one benchmark server under wrk load with py-spy and print where the time goes.

``bench/.venv/bin/python bench/hotspots.py kyoukai --path /json`` starts the server pinned
to CPU 0, loads it with wrk pinned to CPU 1, samples it with ``py-spy record`` and prints
the functions with the largest cumulative and own share of the samples. py-spy needs to
ptrace the server: run as root, or allow it (``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from _measure import HOST, SERVERS, check_responses, running, wrk_argv

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")
_PREFIXES = re.compile(r"^.*/(?:site-packages|src|lib/python3\.\d+)/")


def _frame_name(frame: str) -> str:
    m = _FRAME.match(frame)
    if m is None:
        return frame
    return f"{m['func']} ({_PREFIXES.sub('', m['file'])})"


def summarise(collapsed: Iterable[str], top: int = 25) -> str:
    """Summarise py-spy's collapsed stacks (``frame;frame;... count`` lines).

    Cumulative share counts a function once per sample wherever it is on the stack; own
    share counts it only as the innermost frame.
    """
    cumulative: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            cumulative[name] += n
        own[frames[-1]] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "cumulative:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in cumulative.most_common(top)]
    out += ["", "own:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("server", choices=[s.name for s in SERVERS])
    p.add_argument("--path", default="/", help="request path (default /)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--seconds", type=int, default=15, help="sampling time (default 15)")
    p.add_argument("--rate", type=int, default=500, help="samples per second (default 500)")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--native", action="store_true", help="include C frames (slower sampling)")
    opts = p.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    server = next(s for s in SERVERS if s.name == opts.server)
    with tempfile.TemporaryDirectory(prefix="kyoukai-profile-") as tmp:
        raw = Path(tmp, "stacks.txt")
        with open(Path(tmp, "server.log"), "wb") as log, running(server, log) as (proc, port):
            check_responses(port, server)
            load = opts.seconds + 4
            url = f"http://{HOST}:{port}{opts.path}"
            wrk = subprocess.Popen(
                wrk_argv(url, opts.connections, load, None), stdout=subprocess.DEVNULL
            )
            try:
                time.sleep(2)
                # Native unwinding needs the process paused; otherwise sample without pausing.
                mode = "--native" if opts.native else "--nonblocking"
                argv = [py_spy, "record", mode, "-d", str(opts.seconds), "-r", str(opts.rate)]
                argv += ["-f", "raw", "-o", str(raw), "--pid", str(proc.pid)]
                out = subprocess.run(
                    argv, timeout=opts.seconds + 30, capture_output=True, text=True
                )
                if out.returncode != 0:
                    raise SystemExit(f"py-spy failed: {out.stderr.strip()[-500:]}")
            finally:
                wrk.kill()
                wrk.wait()
        print(f"{server.name}: {opts.path} at {opts.connections} connections")
        print(summarise(raw.read_text().splitlines(), opts.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
