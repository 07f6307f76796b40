"""File bodies on the built-in server: the kernel sends them on asyncio's loop, large reads
carry them on uvloop (and small ones are one read), and every range arrives byte for byte."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from conftest import StartServer
from kyoukai import Kyoukai
from kyoukai.backends import _flow

SIZE = 3 * 1024 * 1024 + 12345  # several sendfile pieces, and a last one that is not whole
DATA = bytes(range(256)) * (SIZE // 256) + bytes(SIZE % 256)


async def fetch(port: int, target: str, headers: str = "") -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode()
        )
        raw = await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    ("range_header", "expected"),
    [
        ("", DATA),
        ("Range: bytes=1000-2000999\r\n", DATA[1000:2001000]),
        ("Range: bytes=-5000\r\n", DATA[-5000:]),
        ("Range: bytes=3000000-\r\n", DATA[3000000:]),
    ],
)
async def test_file_bodies_go_out_whole_by_sendfile_or_large_reads(
    start: StartServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    range_header: str,
    expected: bytes,
) -> None:
    (tmp_path / "big.bin").write_bytes(DATA)
    app = Kyoukai("files")
    app.add_static("/static", tmp_path)
    loop = asyncio.get_running_loop()
    native: list[int] = []
    reads: list[int] = []
    original_sendfile = loop.sendfile

    async def sendfile(transport: Any, file: Any, offset: int, count: int, **kw: Any) -> int:
        sent: int = await original_sendfile(transport, file, offset, count, **kw)
        native.append(sent)
        return sent

    monkeypatch.setattr(loop, "sendfile", sendfile)
    original_piece = _flow._write_piece

    def write_piece(transport: Any, flow: Any, data: bytes, chunked: bool) -> None:
        reads.append(len(data))
        original_piece(transport, flow, data, chunked)

    monkeypatch.setattr(_flow, "_write_piece", write_piece)
    server = await start(app=app)
    head, body = await fetch(server.port, "/static/big.bin", range_header)
    assert head.startswith(b"HTTP/1.1 206" if range_header else b"HTTP/1.1 200")
    assert body == expected
    if len(expected) <= _flow.READ_PIECE:
        assert not native and reads == [len(expected)]  # one read beats the kernel's round trips
    elif type(loop).__module__.startswith("uvloop"):
        assert not native and sum(reads) == len(expected)
        assert max(reads) == _flow.READ_PIECE  # large reads, not Werkzeug's small pieces
    else:
        assert sum(native) == len(expected) and not reads
