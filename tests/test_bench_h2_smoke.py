"""Smoke tests of the HTTP/2 part of the benchmark (``bench/_h2.py``); no timing asserted."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"


def load() -> ModuleType:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        return importlib.import_module("_h2")
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_raw_h2_and_kyoukai_hold_idle_http2_connections(tmp_path: Path) -> None:
    h2 = load()
    for server in (s for s in h2.SERVERS if s.name in ("raw-h2", "kyoukai")):
        with h2.running(server, server.args, tmp_path / "log") as (pid, port):
            per_connection, held = h2.idle_connections(pid, port, 20)
        assert held == 20
        assert per_connection < 256


def test_report_renders_ratios_and_failures() -> None:
    h2 = load()
    by_name = {s.name: s for s in h2.SERVERS}
    ky = h2.H2Result(by_name["kyoukai"], idle_kib=[20.0], held=100)
    raw = h2.H2Result(by_name["raw-h2"])
    hyper = h2.H2Result(by_name["starlette-hypercorn"])
    for key in (("h2c", "root"), ("tls", "root")):
        ky.samples[key] = [(0, 12000.0, 70.0, 0)]
        raw.samples[key] = [(0, 15000.0, 60.0, 0)]
        hyper.samples[key] = [(0, 4000.0, 250.0, 0)]
    broken = h2.H2Result(by_name["starlette-granian"], failure="did not start")
    text = h2.render_h2([ky, raw, hyper, broken], "cmd", 1, 1000)
    assert "| h2c `GET /`: req/s ≥ 2.5x Hypercorn | 3.00x | pass | 3.57x |" in text
    assert "| h2c `GET /`: req/s ≥ 0.75x raw h2 | 0.80x | pass | 0.86x |" in text
    assert "20.0 KiB (100 held) | pass" in text
    assert "did not run: did not start" in text
