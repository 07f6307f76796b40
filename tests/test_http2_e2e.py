"""Both HTTP/2 configurations of the spec under ``asphalt run``: ``http2: true`` on
``KyoukaiComponent`` (one port, both protocols) and ``H2KyoukaiComponent`` (HTTP/2 only)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from processes import TIMEOUT, free_port
from test_asphalt_e2e import TUTORIAL, asphalt_run

pytestmark = pytest.mark.slow


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    paths = {name: str(tmp_path / name) for name in ("ca.pem", "srv.crt", "srv.key")}
    ca.cert_pem.write_to_path(paths["ca.pem"])
    issued.cert_chain_pems[0].write_to_path(paths["srv.crt"])
    issued.private_key_pem.write_to_path(paths["srv.key"])
    return paths


async def get(port: int, ca: str, *, http2: bool, http1: bool = True) -> httpx.Response:
    trust = ssl.create_default_context(cafile=ca)
    async with httpx.AsyncClient(
        http1=http1, http2=http2, verify=trust, timeout=TIMEOUT, trust_env=False
    ) as client:
        return await client.get(f"https://127.0.0.1:{port}/")


async def test_http2_key_serves_both_protocols_on_one_port(tls_files: dict[str, str]) -> None:
    port = free_port()
    args = [
        "config.yml",
        *("--set", f"component.port={port}"),
        *("--set", "component.http2=true"),
        *("--set", f"component.ssl.ssl_certfile={tls_files['srv.crt']}"),
        *("--set", f"component.ssl.ssl_keyfile={tls_files['srv.key']}"),
    ]
    async with asphalt_run(args, TUTORIAL) as proc:
        await proc.wait_for_port(port)
        h2 = await get(port, tls_files["ca.pem"], http2=True, http1=False)
        h1 = await get(port, tls_files["ca.pem"], http2=False)
        assert await proc.terminate() == 0
    assert (h2.http_version, h2.status_code) == ("HTTP/2", 200)
    assert (h1.http_version, h1.status_code) == ("HTTP/1.1", 200)
    assert h2.text == h1.text and "Hello from Kyoukai" in h2.text


async def test_h2_component_serves_http2_only(tls_files: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "config.yml").write_text(
        "component:\n"
        "  type: kyoukai.backends.http2:H2KyoukaiComponent\n"
        "  app: app:kyk\n"
        f"  port: {port}\n"
        f"  ssl_certfile: {tls_files['srv.crt']}\n"
        f"  ssl_keyfile: {tls_files['srv.key']}\n"
    )
    async with asphalt_run([str(tmp_path / "config.yml")], TUTORIAL) as proc:
        await proc.wait_for_port(port)
        h2 = await get(port, tls_files["ca.pem"], http2=True, http1=False)
        with pytest.raises(httpx.HTTPError):
            await get(port, tls_files["ca.pem"], http2=False)
        assert await proc.terminate() == 0
    assert (h2.http_version, h2.status_code) == ("HTTP/2", 200)
    assert "Hello from Kyoukai" in h2.text
