"""``kyoukai run`` behind a real nginx: over a Unix socket and over TCP, with proxy headers.

nginx terminates TLS and sets ``X-Forwarded-For``/``-Proto``/``-Host`` itself; the client
connects from another loopback address (127.0.0.3) and sends forged values of the same
headers, which must never reach the application's view of the request.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from nginx import run_nginx
from processes import BIN, TIMEOUT, free_port, run_program, wait_until_serving

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="loopback")]

APP = """
from kyoukai import Kyoukai

kyk = Kyoukai("proxied")


@kyk.route("/whoami")
async def whoami(ctx):
    return {
        "remote_addr": ctx.request.remote_addr,
        "scheme": ctx.request.scheme,
        "url": ctx.url_for("proxied.whoami", force_external=True),
        "connection": id(ctx.proto),
    }
"""

FORGED = {
    "X-Forwarded-For": "198.51.100.1",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Host": "evil.example",
    "Forwarded": "for=198.51.100.1;proto=http",
}
CLIENT_ADDRESS = "127.0.0.3"


def client_from(address: str, verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address, verify=verify)
    return httpx.AsyncClient(transport=transport, timeout=TIMEOUT, trust_env=False)


async def whoami(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(url + "/whoami", headers=FORGED)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


async def test_unix_socket_behind_nginx_with_keep_alive(project: Path) -> None:
    socket_path = project / "kyoukai.sock"
    # Over a Unix socket the peer has no address: its permissions decide who may connect,
    # so the proxy's headers are trusted with '*'.
    args = [BIN / "kyoukai", "run", "app:kyk", "--uds", socket_path, "--uds-mode", "600"]
    args += ["--forwarded-allow-ips", "*"]
    async with run_program(args, cwd=project) as kyoukai:
        await kyoukai.wait_for_line(r"serving proxied on http://unix:")
        upstream = f"unix:{socket_path}"
        async with run_nginx(project / "nginx", upstream) as (nginx, url, verify):
            await wait_until_serving(url + "/whoami", nginx, verify=verify)
            async with client_from(CLIENT_ADDRESS, verify) as http:
                answers = [await whoami(http, url) for _ in range(3)]
        assert {answer["connection"] for answer in answers[1:]} == {answers[0]["connection"]}
        assert answers[0] == {
            "remote_addr": CLIENT_ADDRESS,
            "scheme": "https",
            "url": f"{url}/whoami",
            "connection": answers[0]["connection"],
        }
    assert not socket_path.exists()  # removed on shutdown


async def test_tcp_behind_nginx_and_direct_clients_cannot_forge(project: Path) -> None:
    port = free_port()
    args = [BIN / "kyoukai", "run", "app:kyk", "--port", str(port)]  # trusts 127.0.0.1
    async with run_program(args, cwd=project) as kyoukai:
        direct = f"http://127.0.0.1:{port}"
        await wait_until_serving(direct + "/whoami", kyoukai)
        async with run_nginx(project / "nginx", f"127.0.0.1:{port}") as (nginx, url, verify):
            await wait_until_serving(url + "/whoami", nginx, verify=verify)
            async with client_from(CLIENT_ADDRESS, verify) as http:
                proxied = await whoami(http, url)
        async with client_from("127.0.0.2") as http:
            forged = await whoami(http, direct)
    assert (proxied["remote_addr"], proxied["scheme"]) == (CLIENT_ADDRESS, "https")
    assert proxied["url"] == f"{url}/whoami"
    assert (forged["remote_addr"], forged["scheme"]) == ("127.0.0.2", "http")
    assert forged["url"] == f"{direct}/whoami"
