"""Proxy headers behind a trusted proxy (``forwarded_allow_ips``), and Unix sockets."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import StartServer
from helpers import IO_TIMEOUT
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends._proxy import TrustedProxies, apply_proxy_headers
from kyoukai.backends._settings import ServerSettings


def base_environ(**extra: str) -> dict[str, Any]:
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "backend:8000",
        "SERVER_NAME": "backend",
        "SERVER_PORT": "8000",
        "SCRIPT_NAME": "",
    }
    environ.update(extra)
    return environ


# -- which peers are trusted ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "peer", "trusted"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("127.0.0.1", "", False),  # a Unix socket
        ("127.0.0.1, 10.0.0.0/8", "10.20.30.40", True),
        ("10.0.0.0/8", "::ffff:10.1.2.3", True),
        ("::1", "::1", True),
        ("*", "203.0.113.9", True),
        ("*", "", True),
        ("127.0.0.1", "not an address", False),
    ],
)
def test_trusted_proxies(spec: str, peer: str, trusted: bool) -> None:
    assert TrustedProxies(spec).trusts(peer) is trusted


def test_bad_forwarded_allow_ips_names_the_entry() -> None:
    with pytest.raises(ValueError, match=r"'nginx' is not an IP address or network"):
        ServerSettings(forwarded_allow_ips="127.0.0.1,nginx")
    with pytest.raises(TypeError, match="must be a string"):
        ServerSettings(forwarded_allow_ips=["127.0.0.1"])  # type: ignore[arg-type]


# -- what the fields change -------------------------------------------------------------------


def test_x_forwarded_fields_replace_address_scheme_and_host() -> None:
    environ = base_environ(
        HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.5",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_HOST="example.org",
    )
    apply_proxy_headers(environ)
    # Only the last hop, the one the trusted proxy added, is believed.
    assert environ["REMOTE_ADDR"] == "203.0.113.5"
    assert environ["wsgi.url_scheme"] == "https"
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"]) == ("example.org", "example.org")
    assert environ["werkzeug.proxy_fix.orig"]["REMOTE_ADDR"] == "127.0.0.1"


def test_forwarded_field_last_element_wins() -> None:
    environ = base_environ(
        HTTP_FORWARDED='for=192.0.2.1;proto=http, for="[2001:db8::17]:4711";proto=https;'
        'host="example.org:8443"',
    )
    apply_proxy_headers(environ)
    assert environ["REMOTE_ADDR"] == "2001:db8::17"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "example.org:8443"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "8443")


def test_x_forwarded_fields_win_over_a_forwarded_field() -> None:
    # A proxy that sets X-Forwarded-* passes a client's Forwarded field through unchanged.
    environ = base_environ(
        HTTP_X_FORWARDED_FOR="203.0.113.5",
        HTTP_FORWARDED="for=198.51.100.1;proto=https;host=evil.example",
    )
    apply_proxy_headers(environ)
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("203.0.113.5", "http")
    assert environ["HTTP_HOST"] == "backend:8000"


@pytest.mark.parametrize("node", ["unknown", "_hidden", "for=garbage"])
def test_forwarded_for_without_an_address_keeps_the_peer(node: str) -> None:
    environ = base_environ(HTTP_FORWARDED=f"for={node}")
    apply_proxy_headers(environ)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize(
    "fields", [{"HTTP_X_FORWARDED_PROTO": "javascript"}, {"HTTP_FORWARDED": "proto=gopher"}]
)
def test_unknown_scheme_is_ignored(fields: dict[str, str]) -> None:
    environ = base_environ(**fields)
    apply_proxy_headers(environ)
    assert environ["wsgi.url_scheme"] == "http"


def test_no_proxy_field_changes_nothing() -> None:
    environ = base_environ(HTTP_USER_AGENT="x")
    before = dict(environ)
    apply_proxy_headers(environ)
    assert environ == before


# -- on a real server -------------------------------------------------------------------------

SPOOF = {
    "X-Forwarded-For": "198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "example.org",
}


def proxy_app() -> Kyoukai:
    app = Kyoukai("proxied")

    @app.route("/whoami")
    async def whoami(ctx: HTTPRequestContext) -> dict[str, Any]:
        return {
            "remote_addr": ctx.request.remote_addr,
            "scheme": ctx.request.scheme,
            "url": ctx.url_for("proxied.whoami", force_external=True),
        }

    return app


async def whoami(port: int, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=IO_TIMEOUT) as client:
        response = await client.get(f"http://127.0.0.1:{port}/whoami", headers=headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def test_trusted_peer_by_default_is_believed(start: StartServer) -> None:
    server = await start(app=proxy_app())
    assert await whoami(server.port, SPOOF) == {
        "remote_addr": "198.51.100.7",
        "scheme": "https",
        "url": "https://example.org/whoami",
    }


async def test_untrusted_peer_cannot_spoof(start: StartServer) -> None:
    server = await start(app=proxy_app(), forwarded_allow_ips="10.0.0.1")
    assert await whoami(server.port, SPOOF) == {
        "remote_addr": "127.0.0.1",
        "scheme": "http",
        "url": f"http://127.0.0.1:{server.port}/whoami",
    }


# -- Unix sockets -----------------------------------------------------------------------------


def exists(path: str) -> bool:
    return os.path.exists(path)


async def get_over_unix_socket(path: str, target: str, extra: bytes = b"") -> tuple[bytes, bytes]:
    async with asyncio.timeout(IO_TIMEOUT):
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n".encode()
                + extra
                + b"\r\n"
            )
            data = await reader.read()
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


@pytest.mark.parametrize(("trust", "believed"), [("127.0.0.1", False), ("*", True)])
async def test_unix_socket_serves_and_is_removed(
    tmp_path: Path, trust: str, believed: bool
) -> None:
    path = str(tmp_path / "kyoukai.sock")
    server = await proxy_app().start(uds=path, uds_mode=0o660, forwarded_allow_ips=trust)
    try:
        assert server.uds == path
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        spoof = b"X-Forwarded-For: 192.0.2.9\r\n"
        status, body = await get_over_unix_socket(path, "/whoami", spoof)
        assert status == b"HTTP/1.1 200 OK"
        expected = "192.0.2.9" if believed else ""
        assert json.loads(body)["remote_addr"] == expected
    finally:
        await server.stop(grace=1.0)
    assert not exists(path)


async def test_unix_socket_replaces_a_stale_file(tmp_path: Path) -> None:
    path = str(tmp_path / "kyoukai.sock")
    first = await proxy_app().start(uds=path)
    second = await proxy_app().start(uds=path)  # the first one's file is replaced
    try:
        await first.stop(grace=1.0)
        assert exists(path), "stopping the old server removed the new one's socket"
        status, _ = await get_over_unix_socket(path, "/whoami")
        assert status == b"HTTP/1.1 200 OK"
    finally:
        await second.stop(grace=1.0)
    assert not exists(path)
