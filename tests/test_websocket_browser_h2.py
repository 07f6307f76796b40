"""A real browser's WebSocket over HTTP/2 (RFC 8441): headless Chromium on a page served by
Kyoukai over TLS with ``h2``.

Chromium opens a WebSocket as an extended CONNECT stream when it already has an HTTP/2
connection to the origin and the server advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL``: the
page (``test_websocket_browser``'s) is loaded over ``https`` (ALPN ``h2``), then opens
``wss://`` to the same origin. The handler notes the ``SERVER_PROTOCOL`` its handshake came
with, so the test knows from the server's side that the session rode on HTTP/2. The
certificate is made for the test (``trustme``); Chromium is told to ignore that it does not
know its CA.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from browser import dump_dom, needs_chromium
from test_websocket_browser import build_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), needs_chromium]


async def test_chromium_websocket_rides_on_http2(tmp_path: Path) -> None:
    closes: list[tuple[int | None, str | None]] = []
    reports: list[str] = []
    protocols: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    server = await build_app(closes, reports, protocols).start(
        "127.0.0.1", 0, http2=True, ssl=context
    )
    try:
        text = await dump_dom(
            f"https://127.0.0.1:{server.port}/", tmp_path, flags=("--ignore-certificate-errors",)
        )
    finally:
        await server.stop(grace=1.0)
    assert protocols == ["HTTP/2"], text
    assert (
        "<li>open echo.v1 deflate</li><li>text 5 hello</li><li>text 1600 héllo ✓</li>"
        "<li>binary 0,1,2,255</li><li>close 4000 page done</li>"
    ) in text, text
    assert closes == [(4000, "page done")]
