"""HTTP/2 with real clients nobody here wrote: curl, nghttp, h2load, httpx and Chromium.

``.ci/run`` installs the Debian packages (curl, nghttp2-client, chromium; a test whose client
is missing skips, as the suite's other real-client tests do); each client runs as a
subprocess against a server in this process, under a timeout.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
from pathlib import Path

import httpx
import pytest
import trustme
from werkzeug.wrappers import Response

from conftest import StartServer
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends._server import KyoukaiServer

pytestmark = pytest.mark.conformance

TIMEOUT = 30.0


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it)")
    return path


async def run(*command: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def page_app(server_app: Kyoukai) -> Kyoukai:
    @server_app.route("/page")
    async def page(ctx: HTTPRequestContext) -> Response:
        script = (
            "<script>document.body.setAttribute('data-protocol', "
            "performance.getEntriesByType('navigation')[0].nextHopProtocol);</script>"
        )
        return Response(f"<html><body>{script}</body></html>", mimetype="text/html")

    @server_app.route("/proto")
    async def proto(ctx: HTTPRequestContext) -> str:
        return ctx.request.environ["SERVER_PROTOCOL"]

    return server_app


@pytest.fixture
async def tls_server(start: StartServer, ca: trustme.CA, page_app: Kyoukai) -> KyoukaiServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return await start(http2=True, ssl=context)


@pytest.fixture
async def h2c_server(start: StartServer, page_app: Kyoukai) -> KyoukaiServer:
    return await start(http2=True)


async def test_curl_over_tls_negotiates_h2(tls_server: KyoukaiServer, ca_file: str) -> None:
    url = f"https://127.0.0.1:{tls_server.port}/proto"
    code, out, err = await run(
        need("curl"), "-sS", "--http2", "--cacert", ca_file, "-w", " %{http_version}", url
    )
    assert code == 0, err
    assert out == "HTTP/2 2"
    code, out, _ = await run("curl", "-sS", "--http1.1", "--cacert", ca_file, url)
    assert out == "HTTP/1.1"


async def test_curl_prior_knowledge_and_post(h2c_server: KyoukaiServer) -> None:
    base = f"http://127.0.0.1:{h2c_server.port}"
    code, out, err = await run(need("curl"), "-sS", "--http2-prior-knowledge", f"{base}/proto")
    assert (code, out) == (0, "HTTP/2"), err
    code, out, err = await run(
        "curl", "-sS", "--http2-prior-knowledge", "--data-binary", "x" * 100_000, f"{base}/echo"
    )
    assert (code, len(out)) == (0, 100_000), err


async def test_curl_h2c_upgrade(h2c_server: KyoukaiServer) -> None:
    url = f"http://127.0.0.1:{h2c_server.port}/proto"
    code, out, err = await run(need("curl"), "-sS", "-v", "--http2", url)
    assert code == 0, err
    assert "101 Switching Protocols" in err
    assert out == "HTTP/2"


async def test_nghttp_gets_pages_and_streams(h2c_server: KyoukaiServer) -> None:
    base = f"http://127.0.0.1:{h2c_server.port}"
    code, out, err = await run(
        need("nghttp"), "-n", "-s", f"{base}/", f"{base}/stream", f"{base}/astream"
    )
    assert code == 0, out + err
    # The statistics table: one row per request, "... code size path".
    rows = re.findall(r"\s(\d{3})\s+(\d+) (/\S*)$", out, re.MULTILINE)
    assert sorted(rows) == [("200", "21", "/stream"), ("200", "27", "/astream"), ("200", "5", "/")]


async def test_h2load_has_no_errors(h2c_server: KyoukaiServer, tls_server: KyoukaiServer) -> None:
    for url in (f"http://127.0.0.1:{h2c_server.port}/", f"https://127.0.0.1:{tls_server.port}/"):
        code, out, err = await run(need("h2load"), "-n", "2000", "-c", "4", "-m", "10", url)
        assert code == 0, err
        assert re.search(r"2000 succeeded, 0 failed, 0 errored, 0 timeout", out), out
        assert "2000 2xx" in out


async def test_httpx_http2(tls_server: KyoukaiServer, ca_file: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    async with httpx.AsyncClient(http2=True, verify=context, trust_env=False) as client:
        base = f"https://127.0.0.1:{tls_server.port}"
        responses = await asyncio.gather(*(client.get(f"{base}/proto") for _ in range(10)))
        assert {r.http_version for r in responses} == {"HTTP/2"}
        assert {r.text for r in responses} == {"HTTP/2"}
        echoed = await client.post(f"{base}/echo", content=b"y" * 50_000)
        assert echoed.content == b"y" * 50_000
        headers = (await client.get(f"{base}/headers", headers={"Cookie": "a=1"})).json()
        assert headers["cookie"] == "a=1" and headers["host"] == f"127.0.0.1:{tls_server.port}"


async def test_chromium_loads_a_page_over_h2(tls_server: KyoukaiServer, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or need("chromium-browser")
    code, out, err = await run(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--ignore-certificate-errors",
        "--virtual-time-budget=5000",
        "--dump-dom",
        f"https://127.0.0.1:{tls_server.port}/page",
    )
    assert code == 0, err[-2000:]
    assert 'data-protocol="h2"' in out, out[-2000:]
