"""Results of a run and the markdown report: medians, per-round ratios, the targets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from _measure import CLIENT_CPU, SCENARIOS, SERVER_CPU, TARGET_SCENARIOS, IdleResult, Server

#: How far ahead of the fastest peer Kyoukai's req/s must be, where it is not 1.0x.
PEER_TARGETS = {"user-ids": 1.2}
#: The scenarios whose req/s must hold (within 10 %) with thousands of routes registered.
SCALE_SCENARIOS = ("user", "user-ids")


@dataclass
class Sample:
    """One scenario measured once, in one round."""

    round: int
    rps: float
    p99_us: float
    cpu_us_per_request: float
    errors: int
    #: The system (kernel) part of ``cpu_us_per_request``: mostly socket reads and writes.
    sys_us_per_request: float = float("nan")


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


def paired_ratio(a: ServerResult, b: ServerResult, key: str, attr: str = "rps") -> float | None:
    """Median over rounds of ``a / b``, pairing the samples made in the same round."""
    b_by_round = {s.round: getattr(s, attr) for s in b.samples.get(key, ())}
    ratios = [
        getattr(s, attr) / b_by_round[s.round]
        for s in a.samples.get(key, ())
        if b_by_round.get(s.round)
    ]
    return statistics.median(ratios) if ratios else None


def scenario_ratio(
    result: ServerResult, key: str, base_key: str, attr: str = "cpu_us_per_request"
) -> float | None:
    """Median over rounds of one server's ``key`` ÷ its ``base_key``, in the same round."""
    base = {s.round: getattr(s, attr) for s in result.samples.get(base_key, ())}
    ratios = [
        getattr(s, attr) / base[s.round] for s in result.samples.get(key, ()) if base.get(s.round)
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
        lead = PEER_TARGETS.get(key, 1.0)
        rows.append(
            (
                f"{t}: req/s ≥ {lead:.1f}x fastest peer ({name})",
                _fmt(r, ".2f", "x"),
                _verdict(None if r is None else r >= lead),
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
    r = scenario_ratio(ky, "user-ids", "root")
    rows.append(
        (
            f"{titles['user-ids']}: CPU/request ≤ 1.3x {titles['root']}'s",
            _fmt(r, ".2f", "x"),
            _verdict(None if r is None else r <= 1.3),
        )
    )
    for scale in (r for r in results if r.server.role == "scale" and r.samples):
        for key in SCALE_SCENARIOS:
            r = paired_ratio(scale, ky, key)
            rows.append(
                (
                    f"{titles[key]} with {scale.server.name}: req/s ≥ 0.9x 50 routes",
                    _fmt(r, ".2f", "x"),
                    _verdict(None if r is None else r >= 0.9),
                )
            )
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


#: The ASGI servers Kyoukai's application is measured on, beside Starlette on each.
ASGI_SERVERS = ("uvicorn", "granian")
#: The scenarios the ASGI targets apply to: every endpoint.
ASGI_SCENARIOS = ("root", "json", "user", "post")


def asgi_rows(results: Sequence[ServerResult]) -> list[list[str]]:
    """The ASGI targets, per server and endpoint: Kyoukai's application costs less per
    request than Starlette's on the same server, and the built-in server beats both."""
    ky = _by_name(results, "kyoukai")
    rows: list[list[str]] = []
    for host in ASGI_SERVERS:
        mine, starlette = (
            _by_name(results, f"kyoukai-{host}"),
            _by_name(results, f"starlette-{host}"),
        )
        for label, a, b in (
            (f"Kyoukai ÷ Starlette on {host}", mine, starlette),
            (f"built-in ÷ Kyoukai on {host}", ky, mine),
            (f"built-in ÷ Starlette on {host}", ky, starlette),
        ):
            cells = [f"{label} ≥ 1.0x"]
            for key in ASGI_SCENARIOS:
                r = paired_ratio(a, b, key) if a and b else None
                cells.append(f"{_fmt(r, '.2f', 'x')} {_verdict(None if r is None else r >= 1.0)}")
            rows.append(cells)
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
        f"Measured {info.date} with `{info.command}`: {info.rounds} round(s) of {info.duration} s "
        f"per scenario, server pinned to CPU {SERVER_CPU}, wrk to CPU {CLIENT_CPU}. Values are "
        "medians over rounds; ratios pair the servers measured in the same round. Absolute "
        "numbers drift from run to run on shared machines; compare ratios.",
        "",
        "## Targets for Kyoukai's built-in server",
        "",
        *_table(("target", "measured", "result"), target_rows(results), "lrl"),
        "",
        "## Kyoukai as an ASGI application",
        "",
        "req/s ratios on the same ASGI server (median of per-round ratios); `built-in` is "
        "Kyoukai's own server.",
        "",
        *_table(
            ("target", *(f"`{sc.label}`" for sc in SCENARIOS if sc.key in ASGI_SCENARIOS)),
            asgi_rows(results),
        ),
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
                    f"{_fmt(cpu, '.1f')} ({_fmt(r.median(sc.key, 'sys_us_per_request'), '.1f')})",
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
            "CPU µs/req (sys)",
            "CPU ÷ raw",
            "peak RSS",
            "Kyoukai ÷ this",
            "errors",
        )
        out += [f"## {sc.heading}", "", *_table(header, rows), ""]

    out += [
        "CPU µs/req is the user and system time of the server's process tree per request; in "
        "parentheses its system (kernel) part, mostly the socket reads and writes, which costs "
        "every server about the same. Peak RSS is `VmHWM` of the server's process tree after "
        "the 64-connection scenarios.",
        "",
        "## Idle keep-alive connections",
        "",
        "Connections opened by the harness to a freshly started instance, one `GET /` each, "
        "then held idle; RSS of the server's process tree before and after.",
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
