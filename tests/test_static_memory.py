"""A 1 GiB file served by the built-in server in its own process, with flat memory."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GIB = 1 << 30
SERVER = """
import asyncio, sys
import uvloop
from kyoukai import Kyoukai

async def main():
    app = Kyoukai("memory")
    app.add_static("/files", sys.argv[1])
    server = await app.start("127.0.0.1", 0)
    print(server.port, flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (resident at most, so far) of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def download(port: int, target: str, pid: int) -> tuple[int, int]:
    """Read the whole response, discarding it; return its body size and the peak RSS seen."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        buffer = bytearray(1 << 20)
        received = bytearray()
        while b"\r\n\r\n" not in received:
            received += buffer[: sock.recv_into(buffer)]
        head, _, rest = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK"), head
        size, peak, next_sample = len(rest), 0, 0
        while count := sock.recv_into(buffer):
            size += count
            if size >= next_sample:
                peak = max(peak, memory_kib(pid, "VmRSS"))
                next_sample += 64 << 20
        return size, peak


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Path]:
    """A directory with a sparse 1 GiB file, in memory when the machine has a tmpfs.

    Reading the holes of a sparse file on tmpfs costs no page cache (the kernel hands out
    its zero page); on a disk file system the first read fills 1 GiB of cache.
    """
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    with tempfile.TemporaryDirectory(dir=base) as directory:
        path = Path(directory)
        with (path / "huge.bin").open("wb") as file:
            file.truncate(GIB)
        (path / "small.bin").write_bytes(b"x" * 65536)
        yield path


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_1gib_sparse_file_is_streamed_with_flat_rss(files: Path) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, str(files), stdout=asyncio.subprocess.PIPE
    )
    assert server.stdout is not None
    try:
        async with asyncio.timeout(120):
            port = int(await server.stdout.readline())
            await asyncio.to_thread(download, port, "/files/small.bin", server.pid)  # warm
            before = memory_kib(server.pid, "VmRSS")
            size, peak = await asyncio.to_thread(download, port, "/files/huge.bin", server.pid)
        assert size == GIB
        grown = max(peak, memory_kib(server.pid, "VmHWM")) - before
        assert grown < 64 * 1024, f"the server grew by {grown} KiB serving 1 GiB"
    finally:
        server.kill()
        await server.wait()
