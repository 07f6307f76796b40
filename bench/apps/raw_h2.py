"""A minimal HTTP/2 server on h2 and uvloop answering every request with fixed bytes.

The ceiling a pure-Python h2 stack reaches here: no routing, no request object, no
application, one write per read. Cleartext (prior knowledge) by default; ``--tls CERT KEY``
serves TLS with ALPN ``h2``.
"""

from __future__ import annotations

import asyncio
import ssl
import sys

import _routes
import uvloop
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived

BODY = _routes.HELLO.encode()
HEADERS = [
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode()),
]


class RawH2(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        config = H2Configuration(client_side=False, header_encoding=None)
        self.conn = H2Connection(config=config)
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        try:
            events = conn.receive_data(data)
        except Exception:
            self.transport.close()
            return
        for event in events:
            if type(event) is RequestReceived:
                conn.send_headers(event.stream_id, HEADERS)
                conn.send_data(event.stream_id, BODY, end_stream=True)
        self.transport.write(conn.data_to_send())


async def main(port: int, tls: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RawH2, _routes.HOST, port, ssl=tls, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    context = None
    if "--tls" in sys.argv:
        cert, key = sys.argv[sys.argv.index("--tls") + 1 : sys.argv.index("--tls") + 3]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(["h2"])
    uvloop.run(main(_routes.port_from_argv(), context))
