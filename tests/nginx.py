"""A real nginx for tests: a reverse proxy on a loopback port, with its files in a temp dir.

It runs in the foreground as one process (``master_process off``: no user switch, so it may
reach sockets in the test's private directory), terminates TLS with a ``trustme`` certificate,
and proxies to an upstream over HTTP/1.1 with keep-alive, overwriting the proxy headers the
way a deployment should (a client's own ``X-Forwarded-For`` never reaches the application).
"""

from __future__ import annotations

import shutil
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme

from processes import Program, free_port, run_program

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream kyoukai {{
        server {upstream};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {root}/server.pem;
        ssl_certificate_key {root}/server.pem;
        location / {{
            proxy_pass http://kyoukai;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
}}
"""


def need_nginx() -> None:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (Debian package nginx; .ci/run installs it)")


def configure(root: Path, upstream: str) -> tuple[list[str], str, ssl.SSLContext]:
    """Write nginx's configuration and certificate under ``root``.

    :return: The command line, nginx's ``https://`` URL and a TLS context that trusts it.
    """
    root.mkdir(exist_ok=True)
    authority = trustme.CA()
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(root / "server.pem")
    )
    verify = ssl.create_default_context(cadata=authority.cert_pem.bytes().decode())
    port = free_port()
    (root / "nginx.conf").write_text(CONFIG.format(root=root, upstream=upstream, port=port))
    args = [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    return args, f"https://127.0.0.1:{port}", verify


@asynccontextmanager
async def run_nginx(
    root: Path, upstream: str
) -> AsyncIterator[tuple[Program, str, ssl.SSLContext]]:
    """Run nginx proxying to ``upstream`` (``unix:/path`` or ``127.0.0.1:port``).

    :return: The program, its ``https://`` URL and a TLS context that trusts it.
    """
    need_nginx()
    args, url, verify = configure(root, upstream)
    async with run_program(args, cwd=root) as program:
        yield program, url, verify
