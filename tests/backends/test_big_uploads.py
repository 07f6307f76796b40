"""Uploads of a gigabyte through the built-in server: streamed to the handler, or spooled to
disk for the form parser, with the process's memory flat; and refused before a byte of the
body is sent when the route does not take it (raw bytes and curl as the clients).

The server runs in this process, so its peak RSS is this process's, reset before each upload.
The body is generated as it is sent and never held. ``UPLOAD_SIZE`` is the size of every
upload here: a gigabyte takes a few seconds over loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conftest import StartServer
from helpers import RawClient
from kyoukai.backends._server import KyoukaiServer
from uploads import GiB, MiB, build_upload_app, head, reset_peak_rss, send_body, vm_status

#: The size of every upload in this module.
UPLOAD_SIZE = GiB
#: How much the process may grow while a gigabyte passes through it.
RSS_BOUND = 64 * MiB
#: The whole of one upload test, client and server.
UPLOAD_TIMEOUT = 60.0

pytestmark = [pytest.mark.one_loop, pytest.mark.timeout(120)]


@pytest.fixture
async def upload_server(start) -> KyoukaiServer:
    """A server whose own bound lets the upload routes take 2 GiB."""
    return await start(app=build_upload_app([]), max_body_size=2 * GiB)


async def test_gigabyte_streams_to_handler_with_flat_memory(upload_server: KyoukaiServer) -> None:
    async with (
        asyncio.timeout(UPLOAD_TIMEOUT),
        await RawClient.connect(upload_server.port) as client,
    ):
        before = vm_status()["VmRSS"]
        reset_peak_rss()
        await client.send(head("/hash", f"Content-Length: {UPLOAD_SIZE}"))
        sent = await send_body(client, UPLOAD_SIZE)
        response = await client.read_response()
        peak = vm_status()["VmHWM"]
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert json.loads(response.body) == {"size": UPLOAD_SIZE, "sha256": sent}
    assert peak - before < RSS_BOUND


async def test_chunked_gigabyte_streams_to_handler_with_flat_memory(
    upload_server: KyoukaiServer,
) -> None:
    async with (
        asyncio.timeout(UPLOAD_TIMEOUT),
        await RawClient.connect(upload_server.port) as client,
    ):
        before = vm_status()["VmRSS"]
        reset_peak_rss()
        await client.send(head("/hash", "Transfer-Encoding: chunked"))
        sent = await send_body(client, UPLOAD_SIZE, chunked=True)
        response = await client.read_response()
        peak = vm_status()["VmHWM"]
    assert json.loads(response.body) == {"size": UPLOAD_SIZE, "sha256": sent}
    assert peak - before < RSS_BOUND


async def test_gigabyte_multipart_file_spools_to_disk(upload_server: KyoukaiServer) -> None:
    boundary = "upload-boundary-7d1"
    prefix = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    suffix = f"\r\n--{boundary}--\r\n".encode()
    length = len(prefix) + UPLOAD_SIZE + len(suffix)
    fields = (
        f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {length}",
    )
    async with (
        asyncio.timeout(UPLOAD_TIMEOUT),
        await RawClient.connect(upload_server.port) as client,
    ):
        before = vm_status()["VmRSS"]
        reset_peak_rss()
        await client.send(head("/form", *fields))
        sent = await send_body(client, UPLOAD_SIZE, prefix=prefix, suffix=suffix)
        async with asyncio.timeout(UPLOAD_TIMEOUT):
            response = await client.reader.readuntil(b"\r\n\r\n")
            status, length_field = response.split(b"\r\n")[0], response.lower()
            assert status == b"HTTP/1.1 200 OK"
            size = int(length_field.split(b"content-length: ")[1].split(b"\r\n")[0])
            body = json.loads(await client.reader.readexactly(size))
        peak = vm_status()["VmHWM"]
    assert body == {"size": UPLOAD_SIZE, "sha256": sent, "name": "big.bin", "note": "hello"}
    assert peak - before < RSS_BOUND


async def test_gigabyte_to_small_route_gets_413_before_any_body(
    upload_server: KyoukaiServer,
) -> None:
    request = head("/small", f"Content-Length: {UPLOAD_SIZE}", "Expect: 100-continue")
    async with await RawClient.connect(upload_server.port) as client:
        await client.send(request)  # the head alone: the body waits for 100 Continue
        response = await client.read_response()
        await client.assert_closed()
    assert response.status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert response.header("connection") == "close"


@pytest.fixture
async def sparse_gigabyte(tmp_path: Path) -> AsyncIterator[Path]:
    """A gigabyte of zeros that takes no disk space."""
    path = tmp_path / "zeros.bin"
    with path.open("wb") as file:
        file.truncate(UPLOAD_SIZE)
    yield path
    path.unlink()


async def curl(*args: str) -> tuple[str, str]:
    """Run curl; return what it wrote to stdout and to stderr (its verbose trace)."""
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-v", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(UPLOAD_TIMEOUT):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return out.decode(), err.decode()


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@needs_curl
async def test_curl_upload_to_small_route_is_refused_before_the_body(
    upload_server: KyoukaiServer, sparse_gigabyte: Path
) -> None:
    url = f"http://127.0.0.1:{upload_server.port}/small"
    out, trace = await curl("-T", str(sparse_gigabyte), "-w", "\n%{http_code} %{size_upload}", url)
    assert "> Expect: 100-continue" in trace  # curl's own choice for a large upload
    assert "< HTTP/1.1 100" not in trace
    assert out.endswith("\n413 0")  # the answer, and not one byte of the body sent


@needs_curl
async def test_curl_upload_streams_after_100_continue(
    upload_server: KyoukaiServer, sparse_gigabyte: Path
) -> None:
    url = f"http://127.0.0.1:{upload_server.port}/hash"
    out, trace = await curl("-T", str(sparse_gigabyte), url)
    assert "< HTTP/1.1 100 Continue" in trace
    assert json.loads(out) == {"size": UPLOAD_SIZE, "sha256": sha256_of_zeros(UPLOAD_SIZE)}


@needs_curl
async def test_curl_gigabyte_over_http2_streams_with_flat_memory(
    start: StartServer, sparse_gigabyte: Path
) -> None:
    """DATA frames feed the handler as they come; the stream's window holds the rest back."""
    server = await start(app=build_upload_app([]), max_body_size=2 * GiB, http2=True)
    url = f"http://127.0.0.1:{server.port}/hash"
    before = vm_status()["VmRSS"]
    reset_peak_rss()
    out, trace = await curl("--http2-prior-knowledge", "-T", str(sparse_gigabyte), url)
    peak = vm_status()["VmHWM"]
    assert "< HTTP/2 200" in trace
    assert json.loads(out) == {"size": UPLOAD_SIZE, "sha256": sha256_of_zeros(UPLOAD_SIZE)}
    assert peak - before < RSS_BOUND


def sha256_of_zeros(size: int) -> str:
    digest = hashlib.sha256()
    piece = bytes(MiB)
    for _ in range(size // MiB):
        digest.update(piece)
    return digest.hexdigest()


@needs_curl
async def test_curl_data_binary_to_small_route_gets_413(
    upload_server: KyoukaiServer, tmp_path: Path
) -> None:
    path = tmp_path / "two-mib.bin"
    path.write_bytes(bytes(2 * MiB))
    url = f"http://127.0.0.1:{upload_server.port}/small"
    out, trace = await curl("--data-binary", f"@{path}", "-w", "\n%{http_code} %{size_upload}", url)
    assert "> Expect: 100-continue" in trace
    assert out.endswith("\n413 0")
