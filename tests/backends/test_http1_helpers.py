"""The I/O-free HTTP/1.1 helpers and the server settings, with plain values."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.wrappers import Request

from kyoukai import _head, wsgi
from kyoukai._head import ResponseHeadError, error_response, render_head, status_line
from kyoukai.backends._decode import ContentDecoder
from kyoukai.backends._http1 import (
    check_transfer_encoding,
    parse_content_length,
)
from kyoukai.backends._settings import STATUS_FOR, ProtocolError, ServerSettings
from kyoukai.wsgi import build_environ, environ_key, request_factory

DATE = b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
SERVER = b"Server: Kyoukai/3.0.0.dev0\r\n"


def head(code: int = 200, headers=(), **options) -> tuple[bytes, bool, bool, int | None]:
    options.setdefault("keep_alive", True)
    options.setdefault("http10", False)
    options.setdefault("body_length", None)
    return render_head(code, list(headers), DATE, **options)


# -- response heads -------------------------------------------------------------------------


def test_render_head_adds_length_server_and_date() -> None:
    data, chunked, keep_alive, length = head(
        headers=[("Content-Type", "text/plain")], body_length=5
    )
    assert (
        data
        == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n" + SERVER + DATE)
        + b"\r\n"
    )
    assert (chunked, keep_alive, length) == (False, True, 5)


def test_render_head_keeps_application_server_and_date() -> None:
    data, *_ = head(headers=[("Server", "custom"), ("Date", "yesterday")], body_length=0)
    assert (
        data == b"HTTP/1.1 200 OK\r\nServer: custom\r\nDate: yesterday\r\nContent-Length: 0\r\n\r\n"
    )


def test_render_head_chunks_a_stream_on_http11() -> None:
    data, chunked, keep_alive, length = head()
    assert b"Transfer-Encoding: chunked\r\n" in data
    assert (chunked, keep_alive, length) == (True, True, None)


def test_render_head_closes_a_stream_on_http10() -> None:
    data, chunked, keep_alive, _ = head(http10=True)
    assert b"Transfer-Encoding" not in data
    assert b"Connection: close\r\n" in data
    assert (chunked, keep_alive) == (False, False)


def test_render_head_says_keep_alive_to_http10() -> None:
    data, _, keep_alive, _ = head(http10=True, body_length=1)
    assert b"Connection: keep-alive\r\n" in data
    assert keep_alive


@pytest.mark.parametrize("code", [101, 204])
def test_render_head_drops_length_for_1xx_and_204(code: int) -> None:
    data, chunked, _, length = head(code, [("Content-Length", "3")], body_length=3)
    assert b"Content-Length" not in data
    assert b"Transfer-Encoding" not in data
    assert (chunked, length) == (False, None)


def test_render_head_304_keeps_given_length_and_adds_no_framing() -> None:
    data, chunked, _, _ = head(304, [("Content-Length", "10")])
    assert b"Content-Length: 10\r\n" in data
    data, chunked, _, _ = head(304)
    assert b"Content-Length" not in data and b"Transfer-Encoding" not in data
    assert not chunked


def test_render_head_honours_connection_close_and_drops_hop_by_hop() -> None:
    data, _, keep_alive, _ = head(
        headers=[("Connection", "close"), ("Transfer-Encoding", "gzip")], body_length=0
    )
    assert not keep_alive
    assert data.count(b"Connection") == 1
    assert b"Connection: close\r\n" in data
    assert b"gzip" not in data


def test_render_head_makes_location_ascii() -> None:
    data, *_ = head(302, [("Location", "/ünïcode path")], body_length=0)
    assert b"Location: /%C3%BCn%C3%AFcode%20path\r\n" in data


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Evil", "a\r\nSet-Cookie: x=1")],
        [("X-Evil", "a\nb")],
        [("X-Evil", "a\rb")],
        [("X-Evil", "a\x00b")],
        [("Bad Name", "x")],
        [("X-Split\r\nInjected", "x")],
        [("Colon:Name", "x")],
        [("X-Text", "snowman \u2603")],
        [("Content-Length", "12, 12")],
    ],
)
def test_render_head_refuses_unsafe_headers(headers) -> None:
    with pytest.raises(ResponseHeadError):
        head(headers=headers, body_length=0)


def test_render_head_checks_each_value_of_a_header_seen_before() -> None:
    # Plain header lines are cached once checked; a new value is checked again.
    first, *_ = head(headers=[("X-Tag", "safe")], body_length=0)
    again, *_ = head(headers=[("X-Tag", "safe")], body_length=0)
    assert first == again
    assert b"X-Tag: safe\r\n" in first
    with pytest.raises(ResponseHeadError):
        head(headers=[("X-Tag", "safe\r\nSet-Cookie: x=1")], body_length=0)


def test_render_head_from_the_cache_has_the_current_date() -> None:
    headers = [("Content-Type", "text/plain"), ("X-Cached", "yes")]
    first, *framing = head(headers=headers, body_length=3)
    later = b"Date: Fri, 02 Jan 2026 00:00:00 GMT\r\n"
    again, *framing_again = render_head(
        200, headers, later, keep_alive=True, http10=False, body_length=3
    )
    assert again == first.replace(DATE, later)
    assert framing_again == framing


def test_render_head_cache_tells_framing_apart() -> None:
    headers = [("Content-Type", "text/plain")]
    kept, *_ = head(headers=headers, body_length=3)
    closed, _, keep_alive, _ = head(headers=headers, body_length=3, keep_alive=False)
    old, *_ = head(headers=headers, body_length=3, http10=True)
    assert b"Connection" not in kept
    assert b"Connection: close\r\n" in closed and keep_alive is False
    assert b"Connection: keep-alive\r\n" in old


def test_render_head_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_head, "_HEADS", {})
    for n in range(_head._CACHE_CAP + 10):
        head(headers=[("Set-Cookie", f"session={n}")], body_length=0)
    assert len(_head._HEADS) <= _head._CACHE_CAP
    head(headers=[("X-Big", "x" * 2000)], body_length=0)
    assert not any(len(prefix) > 2000 for prefix, *_ in _head._HEADS.values())


def test_status_line_for_unknown_and_invalid_codes() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(599) == b"HTTP/1.1 599 Unknown\r\n"
    with pytest.raises(ResponseHeadError):
        status_line(1000)


def test_error_response_is_complete_and_closes() -> None:
    data = error_response(431, DATE, "head too large")
    body = b"431 Request Header Fields Too Large: head too large\n"
    assert data == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n" % len(body) + SERVER + DATE + b"\r\n" + body
    )


def test_every_problem_maps_to_one_status() -> None:
    assert set(STATUS_FOR.values()) == {400, 408, 413, 414, 415, 426, 431, 501, 503, 505}
    assert ProtocolError("head too large").status == 431


# -- request framing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (b"Content-Type", "CONTENT_TYPE"),
        (b"content-length", "CONTENT_LENGTH"),
        (b"X-Forwarded-For", "HTTP_X_FORWARDED_FOR"),
        (b"host", "HTTP_HOST"),
    ],
)
def test_environ_key(name: bytes, key: str) -> None:
    assert environ_key(name) == key
    assert environ_key(name) == key  # cached


@pytest.mark.parametrize("value", ["", "-1", "+1", " 1", "1 ", "1,1", "0x10", "١٢"])
def test_content_length_must_be_plain_digits(value: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_content_length(value)
    assert info.value.status == 400


def test_content_length_parses_digits() -> None:
    assert parse_content_length("0") == 0
    assert parse_content_length("16777216") == 16777216


def test_transfer_encoding_rules() -> None:
    check_transfer_encoding("chunked", "1.1")
    check_transfer_encoding(" Chunked ", "1.1")
    for value in ("gzip", "gzip, chunked", "chunked, chunked", "identity"):
        with pytest.raises(ProtocolError) as info:
            check_transfer_encoding(value, "1.1")
        assert info.value.status == 501
    with pytest.raises(ProtocolError) as info:
        check_transfer_encoding("chunked", "1.0")
    assert info.value.status == 400


# -- content decoding -----------------------------------------------------------------------

PAYLOAD = b"The quick brown fox jumps over the lazy dog. " * 200

ENCODED = {
    "gzip": gzip.compress(PAYLOAD),
    "x-gzip": gzip.compress(PAYLOAD),
    "deflate": zlib.compress(PAYLOAD),
    "identity, deflate": zlib.compress(PAYLOAD)[2:-4],  # raw deflate
    "gzip, deflate": zlib.compress(gzip.compress(PAYLOAD)),
}


def decode(coding: str, data: bytes, step: int | None = None, limit: int = 10**7) -> bytes:
    decoder = ContentDecoder(coding, limit, 2)
    step = step or len(data) or 1
    out = b"".join(decoder.feed(data[i : i + step]) for i in range(0, len(data), step))
    decoder.finish()
    return out


@pytest.mark.parametrize("coding", sorted(ENCODED))
def test_decoder_whole_and_byte_by_byte(coding: str) -> None:
    assert decode(coding, ENCODED[coding]) == PAYLOAD
    assert decode(coding, ENCODED[coding], step=1) == PAYLOAD


@given(st.sampled_from(sorted(ENCODED)), st.lists(st.integers(1, 400), min_size=1, max_size=20))
def test_decoder_any_split(coding: str, sizes: list[int]) -> None:
    data = ENCODED[coding]
    decoder = ContentDecoder(coding, 10**7, 2)
    out, pos = [], 0
    for size in sizes:
        out.append(decoder.feed(data[pos : pos + size]))
        pos += size
    out.append(decoder.feed(data[pos:]))
    decoder.finish()
    assert b"".join(out) == PAYLOAD


def test_decoder_identity_is_inactive() -> None:
    assert not ContentDecoder("identity", 10, 2).active
    assert ContentDecoder("gzip", 10, 2).active


def test_decoder_handles_multi_member_gzip() -> None:
    assert decode("gzip", gzip.compress(b"one ") + gzip.compress(b"two")) == b"one two"


def test_decoder_stops_a_bomb_at_the_limit() -> None:
    bomb = gzip.compress(gzip.compress(b"\0" * 50_000_000))
    assert len(bomb) < 60_000
    decoder = ContentDecoder("gzip, gzip", 1_000_000, 2)
    with pytest.raises(ProtocolError) as info:
        decoder.feed(bomb)
    assert info.value.status == 413


def test_decoder_allows_exactly_the_limit() -> None:
    assert decode("gzip", gzip.compress(b"x" * 1000), limit=1000) == b"x" * 1000
    with pytest.raises(ProtocolError):
        decode("gzip", gzip.compress(b"x" * 1001), limit=1000)


@pytest.mark.parametrize("coding", ["br", "compress", "gzip, gzip, gzip", "zstd, gzip"])
def test_decoder_refuses_unknown_or_too_many_codings(coding: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ContentDecoder(coding, 10, 2)
    assert info.value.status == 415


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", gzip.compress(PAYLOAD)[:-10]),
        ("gzip", b"not gzip at all"),
        ("deflate", zlib.compress(PAYLOAD) + b"trailing"),
        ("deflate", zlib.compress(PAYLOAD)[:50]),
    ],
)
def test_decoder_refuses_broken_data(coding: str, data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(coding, data)
    assert info.value.status == 400


# -- settings -------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = ServerSettings()
    assert settings.max_request_line_size == 8192
    assert settings.max_header_line_size == 8192
    assert settings.max_header_count == 100
    assert settings.max_head_size == 32768
    assert settings.max_body_size == 16 * 1024 * 1024
    assert settings.max_content_codings == 2
    assert settings.max_pipelined_requests == 32
    assert settings.request_timeout == 30.0
    assert settings.body_timeout == 60.0
    assert settings.keep_alive_timeout == 5.0
    assert settings.write_timeout == 60.0
    assert settings.handler_timeout is None
    assert settings.shutdown_timeout == 15.0


def test_settings_reject_unknown_names_listing_valid_ones() -> None:
    with pytest.raises(TypeError) as info:
        ServerSettings.from_options({"max_bodysize": 1, "keepalive": 2})
    message = str(info.value)
    assert "'keepalive', 'max_bodysize'" in message
    assert "max_body_size" in message and "keep_alive_timeout" in message


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("max_body_size", 0, ValueError),
        ("request_timeout", -1.0, ValueError),
        ("max_header_count", "100", TypeError),
        ("keep_alive_timeout", True, TypeError),
    ],
)
def test_settings_reject_bad_values(name: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=name):
        ServerSettings.from_options({name: value})


def test_settings_are_frozen() -> None:
    settings = ServerSettings()
    with pytest.raises(AttributeError):
        settings.max_body_size = 1  # type: ignore[misc]


# -- requests -------------------------------------------------------------------------------

BASE_ENVIRON = {
    "SCRIPT_NAME": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "4444",
    "REMOTE_ADDR": "127.0.0.9",
    "wsgi.url_scheme": "https",
}


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", b"/"),
        ("POST", b"/a/b?x=1&y=%20"),
        ("GET", b"/caf%C3%A9/%2F?q=%C3%A9"),
        ("GET", b"//double/slash"),
        ("OPTIONS", b"*"),
        ("M-SEARCH", b"/x"),
        ("GET", b"/\xc3\xa9"),
    ],
)
def test_request_factory_makes_what_werkzeug_makes(method: str, target: bytes) -> None:
    path = target.decode("latin-1")
    environ = build_environ(BASE_ENVIRON, method, "HTTP/1.1", path, [(b"Host", b"h")])
    made = request_factory(Request)(environ, ("127.0.0.1", 4444))
    built = Request(dict(environ), populate_request=False)
    for name in ("method", "scheme", "server", "root_path", "path", "query_string", "remote_addr"):
        assert getattr(made, name) == getattr(built, name), name
    assert made.environ is environ and made.shallow is False
    assert made.url == built.url and made.args == built.args
    assert dict(made.headers) == dict(built.headers) == {"Host": "h"}
    assert "werkzeug.request" not in environ  # no request <-> environ reference cycle
    assert wsgi._FILLED_REQUESTS  # Werkzeug still builds requests the way this expects


def test_request_factory_honours_a_root_path() -> None:
    environ = build_environ(BASE_ENVIRON, "GET", "HTTP/1.1", "/x", [(b"Host", b"h")])
    environ["SCRIPT_NAME"] = "/app/"
    made = request_factory(Request)(environ, ("127.0.0.1", 4444))
    assert (made.root_path, made.path, made.url) == ("/app", "/x", "https://h/app/x")


def test_request_factory_uses_a_custom_constructor() -> None:
    seen: list[dict[str, object]] = []

    class TracingRequest(Request):
        def __init__(self, environ: dict[str, object]) -> None:
            seen.append(environ)
            super().__init__(environ)

    class PlainSubclass(Request):
        pass

    environ = build_environ(BASE_ENVIRON, "GET", "HTTP/1.1", "/", [(b"Host", b"h")])
    assert type(request_factory(TracingRequest)(environ, None)) is TracingRequest
    assert seen == [environ]
    assert "werkzeug.request" not in environ  # the constructor's link is cut
    assert type(request_factory(PlainSubclass)(environ, None)) is PlainSubclass
