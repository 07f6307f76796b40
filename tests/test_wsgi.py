"""The WSGI bridge: environ building and response serialisation, with plain values."""

from __future__ import annotations

import io

import pytest
from werkzeug.wrappers import Request, Response

from kyoukai.backends import httptools_
from kyoukai.wsgi import check_header, get_formatted_response, to_wsgi_environment


def test_backend_reexports_the_bridge() -> None:
    assert httptools_.to_wsgi_environment is to_wsgi_environment
    assert httptools_.get_formatted_response is get_formatted_response


def test_environ_from_pairs() -> None:
    env = to_wsgi_environment(
        [
            (b"Host", b"example.org"),
            ("Content-Type", "text/plain"),
            ("Content-Length", "3"),
            ("X-Many", "a"),
            ("X-Many", "b"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ],
        "POST",
        "/caf%C3%A9/x?q=1&r=2",
        "1.1",
        b"abc",
    )
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/caf\xc3\xa9/x"  # latin-1 "bytes as str" (PEP 3333)
    assert env["QUERY_STRING"] == "q=1&r=2"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/caf%C3%A9/x?q=1&r=2"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "example.org"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["HTTP_X_MANY"] == "a,b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    request = Request(env)
    assert request.path == "/café/x"
    assert request.args["r"] == "2"
    assert request.get_data() == b"abc"


def test_environ_from_mapping_and_stream() -> None:
    stream = io.BytesIO(b"body")
    env = to_wsgi_environment({"Host": "h"}, "GET", "/", "1.0", stream)
    assert env["wsgi.input"] is stream
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert to_wsgi_environment({}, "GET", "/", "1.1")["wsgi.input"].read() == b""


def environ() -> dict[str, object]:
    return to_wsgi_environment([("Host", "example.org")], "GET", "/", "1.1")


def test_formatted_response_bytes() -> None:
    data = get_formatted_response(Response("hi", headers={"Date": "now"}), environ())
    assert data == (
        b"HTTP/1.1 200 OK\r\nDate: now\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 2\r\nServer: Kyoukai/3.0.0.dev0\r\n\r\nhi"
    )


def test_formatted_response_joins_a_stream() -> None:
    response = Response(iter([b"a", b"b"]), headers={"Date": "now"})
    data = get_formatted_response(response, environ())
    assert b"\r\nContent-Length: 2\r\n" in data
    assert data.endswith(b"\r\n\r\nab")
    assert b"Transfer-Encoding" not in data


def test_formatted_head_response_has_no_body() -> None:
    env = to_wsgi_environment([("Host", "h")], "HEAD", "/", "1.1")
    data = get_formatted_response(Response("hello"), env)
    assert data.endswith(b"\r\n\r\n")
    assert b"Content-Length: 5\r\n" in data


@pytest.mark.parametrize("code", [204, 304])
def test_formatted_bodyless_status(code: int) -> None:
    data = get_formatted_response(Response("ignored", status=code), environ())
    assert data.endswith(b"\r\n\r\n")
    assert b"Content-Length" not in data


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-A", "a\x00b"),
        ("Bad Name", "x"),
        ("X-A", "a\rb"),
        ("X:Y", "x"),
        ("X-Bad", "a\x07b"),
        ("X-Bad", "a\x7fb"),
        ("X-Bad", "a\x1bb"),
    ],
)
def test_unsafe_headers_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        check_header(name, value)
    response = Response("x")
    response.headers._list.append((name, value))
    with pytest.raises(ValueError):
        get_formatted_response(response, environ())


@pytest.mark.parametrize("value", ["a\tb", "caf\xe9", "a b ~"])
def test_tabs_spaces_and_obs_text_are_allowed_in_header_values(value: str) -> None:
    check_header("X-Fine", value)


def test_formatted_response_uses_the_server_head_serialiser() -> None:
    # One serialiser: the same head the built-in server writes for this response.
    from kyoukai._head import render_head

    response = Response("hi", headers={"Date": "now"})
    head, _, _, _ = render_head(200, response.headers.to_wsgi_list(), b"", True, False, 2)
    assert get_formatted_response(response, environ()) == head + b"hi"
