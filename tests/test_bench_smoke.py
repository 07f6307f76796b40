"""Smoke tests of the benchmark harness in ``bench/``, so that it does not rot unseen.

The pure parts (wrk output, ``/proc`` parsing, the report) run everywhere. One test starts
the raw httptools server with this interpreter and holds idle connections against it; it
needs neither wrk nor the benchmark's own virtualenv. No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"


def _load_harness() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """Import the harness modules: ``_measure``, ``_report``, ``run`` and ``hotspots``."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        measure = importlib.import_module("_measure")
        report = importlib.import_module("_report")
        spec = importlib.util.spec_from_file_location("bench_run", BENCH_DIR / "run.py")
        assert spec is not None and spec.loader is not None
        run = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = run  # dataclasses look their module up by name
        spec.loader.exec_module(run)
        hotspots = importlib.import_module("hotspots")
    finally:
        sys.path.remove(str(BENCH_DIR))
    return measure, report, run, hotspots


measure, report, run, hotspots = _load_harness()

LUA_OUTPUT = """Running 1s test @ http://127.0.0.1:8000/
  1 threads and 64 connections
BENCH_JSON {"requests":12000,"duration_us":1000000,"p50_us":900,"p99_us":2500,\
"max_us":9000,"connect":0,"read":1,"write":0,"status":2,"timeout":0}
"""

WRK_TEXT_OUTPUT = """Running 3s test @ http://127.0.0.1:8000/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.01ms  200.00us   5.00ms   90.00%
    Req/Sec    60.00k     1.00k   62.00k    80.00%
  Latency Distribution
     50%  0.98ms
     75%    1.10ms
     90%    1.20ms
     99%    2.50ms
  180000 requests in 3.00s, 20.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  60000.00
Transfer/sec:      6.67MB
"""


def test_parse_wrk_output_reads_the_lua_summary() -> None:
    res = measure.parse_wrk_output(LUA_OUTPUT)
    assert (res.requests, res.duration_s, res.p99_us, res.errors) == (12000, 1.0, 2500.0, 3)
    assert res.rps == 12000.0


def test_parse_wrk_output_falls_back_to_wrk_text() -> None:
    res = measure.parse_wrk_output(WRK_TEXT_OUTPUT)
    assert res.requests == 180000
    assert res.duration_s == pytest.approx(3.0)
    assert res.p50_us == pytest.approx(980.0)
    assert res.p99_us == pytest.approx(2500.0)
    assert res.errors == 9


def test_parse_wrk_output_without_summary_raises() -> None:
    with pytest.raises(ValueError, match="no wrk summary"):
        measure.parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_wrk_script_sets_method_and_body_only_for_post() -> None:
    get, post = (measure.wrk_script(sc) for sc in measure.SCENARIOS if sc.key in ("root", "post"))
    assert "wrk.method" not in get and "done = function" in get
    assert 'wrk.method = "POST"' in post and 'string.rep("x", 4096)' in post


def test_wrk_script_draws_a_random_id_per_request() -> None:
    (ids,) = (measure.wrk_script(sc) for sc in measure.SCENARIOS if sc.random_ids)
    assert "request = function()" in ids and "math.random(1, 10000000)" in ids
    assert '"/user/" .. math.random' in ids and "done = function" in ids


def test_scale_variants_register_more_routes_and_run_the_routing_scenarios() -> None:
    scale = [s for s in measure.SERVERS if s.role == "scale"]
    assert [s.args for s in scale] == [("--routes", "1000"), ("--routes", "10000")]
    assert all(s.runs("user-ids") and not s.runs("post") for s in scale)
    sys.path.insert(0, str(BENCH_DIR / "apps"))
    try:
        import _routes
    finally:
        sys.path.remove(str(BENCH_DIR / "apps"))
    assert len(_routes.filler_routes(_routes.routes_from_argv(["1", "--routes", "1000"]))) == 1000
    assert _routes.port_from_argv(["8123", "--routes", "1000"]) == 8123


def test_distinct_id_and_scale_targets() -> None:
    results = [
        _result("kyoukai", [300.0, 300.0], cpu=20.0),
        _result("aiohttp", [200.0, 200.0]),
        _result("kyoukai-1k-routes", [280.0, 280.0]),
        _result("kyoukai-10k-routes", [250.0, 250.0]),
    ]
    text = report.render_markdown(results, _info())
    assert "`GET /user/<random id>`: req/s ≥ 1.2x fastest peer (aiohttp) | 1.50x | pass |" in text
    assert "`GET /user/<random id>`: CPU/request ≤ 1.3x `GET /`'s | 1.00x | pass |" in text
    assert "with kyoukai-1k-routes: req/s ≥ 0.9x 50 routes | 0.93x | pass |" in text
    assert "with kyoukai-10k-routes: req/s ≥ 0.9x 50 routes | 0.83x | **FAIL** |" in text


def test_wrk_argv_pins_the_client_cpu() -> None:
    argv = measure.wrk_argv("http://127.0.0.1:1/", 64, 3, Path("root.lua"))
    assert argv[:3] == ["taskset", "-c", measure.CLIENT_CPU]
    assert "-c64" in argv and "-d3s" in argv and argv[-1] == "http://127.0.0.1:1/"


def test_parse_proc_stat_handles_spaces_and_parentheses_in_the_name() -> None:
    text = "4242 (we (ird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0"
    st = measure.parse_proc_stat(text)
    assert (st.ppid, st.cpu_ticks, st.children_cpu_ticks) == (17, 300, 10)
    assert (st.sys_ticks, st.children_sys_ticks) == (50, 3)


def test_parse_status_kib() -> None:
    text = "Name:\tpython\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n"
    assert measure.parse_status_kib(text, "VmHWM") == 51200
    assert measure.parse_status_kib(text, "VmSwap") == 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_proc_readers_see_this_process() -> None:
    assert os.getpid() in measure.process_tree(os.getpid())
    total, system = measure.tree_cpu_ticks(os.getpid())
    assert total > 0 and 0 <= system <= total
    assert measure.tree_kib(os.getpid(), "VmHWM") > 0


def _result(name: str, rps: list[float], cpu: float = 10.0, p99: float = 1000.0) -> Any:
    server = next(s for s in measure.SERVERS if s.name == name)
    samples = {
        sc.key: [report.Sample(i, v, p99, cpu, 0) for i, v in enumerate(rps)]
        for sc in measure.SCENARIOS
    }
    idle = [measure.IdleResult(1000, 1000, 10_000, 30_000)]
    return report.ServerResult(server, samples=samples, peak_rss_kib=40_960, idle=idle)


def _info() -> Any:
    return report.RunInfo(
        date="2026-01-01 00:00 UTC",
        command="bench/.venv/bin/python bench/run.py",
        duration=3,
        rounds=2,
        versions={"python": "3.11.7"},
        machine={"CPUs": "2"},
        server_commands={},
        wrk_commands={},
    )


def test_paired_ratio_pairs_samples_of_the_same_round() -> None:
    ky = _result("kyoukai", [200.0, 100.0])
    sanic = _result("sanic", [100.0, 100.0])
    assert report.paired_ratio(ky, sanic, "root") == pytest.approx(1.5)


def test_render_markdown_shows_ratios_targets_and_failures() -> None:
    results = [
        _result("kyoukai", [300.0, 300.0], cpu=20.0, p99=900.0),
        _result("raw-httptools", [600.0, 600.0], cpu=5.0),
        _result("sanic", [200.0, 200.0]),
        _result("aiohttp", [100.0, 100.0]),
        _result("kyoukai-uvicorn", [150.0, 150.0]),
        _result("starlette-uvicorn", [100.0, 100.0]),
        report.ServerResult(
            next(s for s in measure.SERVERS if s.name == "starlette-granian"),
            failure="exited with code 1",
        ),
    ]
    text = report.render_markdown(results, _info())
    assert "| Kyoukai ÷ Starlette on uvicorn ≥ 1.0x | 1.50x pass |" in text
    assert "| built-in ÷ Kyoukai on uvicorn ≥ 1.0x | 2.00x pass |" in text
    assert "| Kyoukai ÷ Starlette on granian ≥ 1.0x | - - |" in text
    assert "| sanic | 1.50x | 1.50x |" in text
    assert "1.50x (sanic)" in text  # the fastest peer
    assert "| starlette-granian | did not start |" in text
    assert "req/s ≥ 1.3x Sanic | 1.50x | pass |" in text
    assert "CPU/request ≤ 3x raw httptools | 4.00x | **FAIL** |" in text
    assert "20.0 KiB (1000/1000 held) | pass |" in text
    assert text.startswith("# Benchmark results")


def test_render_markdown_without_kyoukai_says_so() -> None:
    results = [
        report.ServerResult(measure.SERVERS[0], failure="exited with code 1"),
        _result("sanic", [200.0]),
    ]
    text = report.render_markdown(results, _info())
    assert "Kyoukai not available: exited with code 1" in text


def test_quick_runs_are_not_saved_unless_asked() -> None:
    assert run.parse_args(["--quick"]).output is None
    assert run.parse_args([]).output == run.RESULTS_PATH
    assert [s.name for s in run.select_servers("sanic,kyoukai")] == ["kyoukai", "sanic"]
    with pytest.raises(SystemExit):
        run.select_servers("nginx")


def test_hotspots_summarise_counts_cumulative_and_own_samples() -> None:
    stacks = [
        "<module> (app.py:1);serve (/x/site-packages/srv.py:5);handle (srv.py:9) 3",
        "<module> (app.py:1);serve (/x/site-packages/srv.py:5) 1",
    ]
    text = hotspots.summarise(stacks, top=5)
    assert text.startswith("4 samples")
    assert "100.0%  serve (srv.py)" in text
    assert " 75.0%  handle (srv.py)" in text.split("own:")[1]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_raw_server_starts_holds_idle_connections_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    pytest.importorskip("httptools")
    server = next(s for s in measure.SERVERS if s.role == "ceiling")
    with open(tmp_path / "server.log", "wb") as log:
        with measure.running(server, log, pin=False, timeout=10.0) as (proc, port):
            measure.check_responses(port, server)
            idle = measure.measure_idle_connections(proc.pid, port, 20, settle=0.0)
            assert idle.held == 20
            assert idle.rss_after_kib > 0
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):  # nothing left in the server's process group
        os.killpg(proc.pid, 0)
