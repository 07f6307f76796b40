"""Response compression (kyoukai.compression): negotiation, what is skipped, streamed bodies."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import brotli
import pytest
import zstandard
from werkzeug.wrappers import Response

from kyoukai import Blueprint, HTTPRequestContext, TestKyoukai
from kyoukai.compression import Compress, negotiate

TEXT = ("Kyoukai compresses what is worth compressing. " * 40).encode()


def decompressor(coding: str) -> Callable[[bytes], bytes]:
    """An incremental decoder: each call returns what the bytes so far decode to."""
    if coding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if coding == "br":
        return brotli.Decompressor().process  # type: ignore[no-any-return]
    return zstandard.ZstdDecompressor().decompressobj().decompress


def decode(coding: str, data: bytes) -> bytes:
    return decompressor(coding)(data)


# -- negotiation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "coding", "identity_ok"),
    [
        (None, None, True),
        ("", None, True),
        ("gzip", "gzip", True),
        ("gzip, br", "br", True),
        ("gzip, br, zstd", "br", True),
        ("zstd, gzip", "zstd", True),
        ("br;q=0.5, gzip;q=0.9", "gzip", True),
        ("br;q=0.5, zstd;q=0.5, gzip;q=0.5", "br", True),
        ("GZIP", "gzip", True),
        ("deflate, compress", None, True),
        ("*", "br", True),
        ("br;q=0, *", "zstd", True),
        ("br;q=0, zstd;q=0, *;q=0.1", "gzip", True),
        ("gzip;q=0", None, True),
        ("identity", None, True),
        ("identity;q=0", None, False),
        ("gzip, identity;q=0", "gzip", False),
        ("*;q=0", None, False),
        ("*;q=0, identity", None, True),
        ("gzip, *;q=0", "gzip", False),
    ],
)
def test_negotiate(header: str | None, coding: str | None, identity_ok: bool) -> None:
    assert negotiate(header) == (coding, identity_ok)


def test_negotiate_follows_the_servers_codings() -> None:
    assert negotiate("br, gzip", ("gzip",)) == ("gzip", True)


def test_unknown_coding_level_is_refused() -> None:
    with pytest.raises(ValueError, match="br, zstd or gzip"):
        Compress(level={"deflate": 5})


# -- in-memory bodies -----------------------------------------------------------------------------


@pytest.fixture
def compressed_app(app: TestKyoukai) -> TestKyoukai:
    app.after_request(Compress())

    @app.route("/text")
    async def text(ctx: HTTPRequestContext) -> Response:
        return Response(TEXT, mimetype="text/plain", headers={"ETag": '"v1"'})

    @app.route("/small")
    async def small(ctx: HTTPRequestContext) -> str:
        return "tiny"

    @app.route("/json")
    async def json(ctx: HTTPRequestContext) -> list[str]:
        return ["item"] * 200

    @app.route("/png")
    async def png(ctx: HTTPRequestContext) -> Response:
        return Response(TEXT, mimetype="image/png")

    @app.route("/encoded")
    async def encoded(ctx: HTTPRequestContext) -> Response:
        body = gzip.compress(TEXT)
        return Response(body, mimetype="text/plain", headers={"Content-Encoding": "gzip"})

    @app.route("/no-transform")
    async def no_transform(ctx: HTTPRequestContext) -> Response:
        return Response(TEXT, mimetype="text/plain", headers={"Cache-Control": "no-transform"})

    @app.route("/status/<int:code>")
    async def status(ctx: HTTPRequestContext, code: int) -> Response:
        return Response(TEXT if code != 204 else b"", status=code, mimetype="text/plain")

    return app


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_body_in_memory_is_compressed(compressed_app: TestKyoukai, coding: str) -> None:
    response = await compressed_app.get("/text", headers={"Accept-Encoding": coding})
    body = response.get_data()
    assert response.headers["Content-Encoding"] == coding
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Content-Length"] == str(len(body)) and len(body) < len(TEXT)
    assert response.headers["ETag"] == 'W/"v1"'
    assert decode(coding, body) == TEXT


async def test_json_is_compressed(compressed_app: TestKyoukai) -> None:
    response = await compressed_app.get("/json", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.get_data()).startswith(b'["item"')


async def test_level_is_used(compressed_app: TestKyoukai) -> None:
    fast, best = TestKyoukai("a"), TestKyoukai("b")
    for app, level in ((fast, 1), (best, 9)):
        app.after_request(Compress(level=level))
        app.route("/")(lambda ctx: Response(TEXT + bytes(range(256)) * 8, mimetype="text/plain"))
    one = (await fast.get("/", headers={"Accept-Encoding": "gzip"})).get_data()
    nine = (await best.get("/", headers={"Accept-Encoding": "gzip"})).get_data()
    assert one != nine and gzip.decompress(one) == gzip.decompress(nine)


async def test_no_accept_encoding_is_identity_but_varies(compressed_app: TestKyoukai) -> None:
    response = await compressed_app.get("/text")
    assert "Content-Encoding" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.get_data() == TEXT and response.headers["ETag"] == '"v1"'


async def test_small_body_is_sent_as_it_is(compressed_app: TestKyoukai) -> None:
    response = await compressed_app.get("/small", headers={"Accept-Encoding": "gzip"})
    assert response.get_data() == b"tiny" and "Content-Encoding" not in response.headers


async def test_small_body_compressed_when_identity_is_refused(
    compressed_app: TestKyoukai,
) -> None:
    headers = {"Accept-Encoding": "gzip, identity;q=0"}
    response = await compressed_app.get("/small", headers=headers)
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.get_data()) == b"tiny"


@pytest.mark.parametrize("url", ["/png", "/encoded", "/no-transform", "/status/204"])
async def test_left_alone(compressed_app: TestKyoukai, url: str) -> None:
    response = await compressed_app.get(url, headers={"Accept-Encoding": "gzip, br"})
    assert response.headers.get("Content-Encoding") in (None, "gzip")
    assert "Vary" not in response.headers
    if url == "/encoded":
        assert gzip.decompress(response.get_data()) == TEXT  # not compressed twice


async def test_not_modified_and_head_are_left_alone(compressed_app: TestKyoukai) -> None:
    response = await compressed_app.get("/status/304", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers
    response = await compressed_app.head("/text", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding"


async def test_error_pages_from_handlers_are_compressed(compressed_app: TestKyoukai) -> None:
    response = await compressed_app.get("/status/503", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 503 and response.headers["Content-Encoding"] == "gzip"


async def test_compress_on_a_blueprint_covers_its_subtree_only(app: TestKyoukai) -> None:
    api = Blueprint("api", prefix="/api")
    api.after_request(Compress())
    app.register_blueprint(api)
    inner = Blueprint("inner", api, prefix="/inner")

    for bp in (app.root, api, inner):
        bp.route("/text")(lambda ctx: Response(TEXT, mimetype="text/plain"))

    headers = {"Accept-Encoding": "gzip"}
    encodings = [
        (await app.get(url, headers=headers)).headers.get("Content-Encoding")
        for url in ("/text", "/api/text", "/api/inner/text")
    ]
    assert encodings == [None, "gzip", "gzip"]


# -- streamed bodies ------------------------------------------------------------------------------

PIECES = [f"piece {index}: ".encode() + b"x" * 300 for index in range(5)]


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_streamed_body_is_flushed_after_every_piece(app: TestKyoukai, coding: str) -> None:
    closed = []
    app.after_request(Compress())

    @app.route("/stream")
    async def stream(ctx: HTTPRequestContext) -> Response:
        def generate() -> Iterator[bytes]:
            try:
                yield from PIECES
            finally:
                closed.append(True)

        return Response(generate(), mimetype="text/plain", headers={"Content-Length": "1525"})

    response = await app.get("/stream", headers={"Accept-Encoding": coding})
    assert response.headers["Content-Encoding"] == coding
    assert "Content-Length" not in response.headers  # stale once compressed
    decoded = decompressor(coding)
    body = iter(response.response)
    for piece in PIECES:
        assert decoded(next(body)) == piece  # each piece decodes on its own, at once
    assert decoded(b"".join(body)) == b""
    response.close()
    assert closed == [True]


async def test_async_stream_is_flushed_and_closed(app: TestKyoukai) -> None:
    closed = []
    app.after_request(Compress())

    @app.route("/astream")
    async def astream(ctx: HTTPRequestContext) -> Response:
        async def generate() -> AsyncIterator[str | bytes]:
            try:
                yield PIECES[0].decode()
                yield b""
                yield PIECES[1]
                yield PIECES[2]
            finally:
                closed.append(True)

        return Response(generate(), mimetype="text/plain")  # type: ignore[arg-type]

    response = await app.get("/astream", headers={"Accept-Encoding": "gzip"})
    body: Any = response.response
    decoded = decompressor("gzip")
    assert decoded(await anext(body)) == PIECES[0]
    assert decoded(await anext(body)) == PIECES[1]
    await body.aclose()
    assert closed == [True]


async def test_never_started_stream_is_still_closed(app: TestKyoukai) -> None:
    closed = []
    app.after_request(Compress())

    @app.route("/stream")
    async def stream(ctx: HTTPRequestContext) -> Response:
        def generate() -> Iterator[bytes]:
            closed.append("started")
            yield b"never read"

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                return generate()

            def close(self) -> None:
                closed.append("closed")

        return Response(Body(), mimetype="text/plain")

    response = await app.get("/stream", headers={"Accept-Encoding": "gzip"})
    response.close()
    assert closed == ["closed"]


async def test_static_files_are_compressed_as_streams(app: TestKyoukai, tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(TEXT)
    (tmp_path / "small.txt").write_bytes(b"small")
    app.add_static("/static", tmp_path)
    app.after_request(Compress())
    response = await app.get("/static/big.txt", headers={"Accept-Encoding": "br"})
    assert response.headers["Content-Encoding"] == "br"
    assert "Accept-Ranges" not in response.headers and "Content-Length" not in response.headers
    assert response.headers["ETag"].startswith('W/"')
    assert decode("br", b"".join(response.response)) == TEXT
    response.close()
    response = await app.get("/static/small.txt", headers={"Accept-Encoding": "br"})
    assert "Content-Encoding" not in response.headers  # its Content-Length says it is small
    response.close()
    ranged = await app.get(
        "/static/big.txt", headers={"Accept-Encoding": "br", "Range": "bytes=0-9"}
    )
    assert ranged.status_code == 206 and "Content-Encoding" not in ranged.headers
    assert b"".join(ranged.response) == TEXT[:10]
    ranged.close()
