"""The response helpers and the conversion of handler return values (kyoukai.util)."""

from __future__ import annotations

import datetime
import json

import pytest
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from kyoukai import TestKyoukai
from kyoukai.util import as_html, as_json, as_plaintext, wrap_response


class DateEncoder(json.JSONEncoder):
    def default(self, o: object) -> object:
        if isinstance(o, datetime.date):
            return o.isoformat()
        return super().default(o)


class CustomResponse(Response):
    pass


def test_as_html_defaults() -> None:
    resp = as_html("<h1>hi</h1>")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.get_data() == b"<h1>hi</h1>"


def test_as_html_with_code_and_headers() -> None:
    resp = as_html("<h1>Hel Na</h1>", code=403, headers={"X-Extra": "1"})
    assert resp.status_code == 403
    assert resp.headers["X-Extra"] == "1"
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"


def test_as_plaintext_with_code() -> None:
    resp = as_plaintext("hel yea", code=201)
    assert resp.status_code == 201
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.get_data() == b"hel yea"


def test_as_plaintext_non_ascii_is_utf8() -> None:
    resp = as_plaintext("境界")
    assert resp.get_data() == "境界".encode()


def test_as_json_with_code() -> None:
    resp = as_json({"response": "yes", "code": 201}, code=201)
    assert resp.status_code == 201
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.get_data()) == {"response": "yes", "code": 201}


def test_as_json_list_with_headers() -> None:
    resp = as_json([1, 2, 3], headers=Headers([("X-Count", "3")]))
    assert resp.headers["X-Count"] == "3"
    assert resp.get_data() == b"[1, 2, 3]"


def test_as_json_uses_json_encoder() -> None:
    resp = as_json({"when": datetime.date(2017, 1, 2)}, json_encoder=DateEncoder)
    assert json.loads(resp.get_data()) == {"when": "2017-01-02"}


def test_as_json_without_encoder_rejects_unknown_types() -> None:
    with pytest.raises(TypeError):
        as_json({"when": datetime.date(2017, 1, 2)})


def test_as_json_passes_dumps_kwargs() -> None:
    resp = as_json({"b": 1, "a": 2}, sort_keys=True, separators=(",", ":"))
    assert resp.get_data() == b'{"a":2,"b":1}'


def test_wrap_response_returns_response_unchanged() -> None:
    original = Response("x", status=202)
    assert wrap_response(original) is original


def test_wrap_response_str() -> None:
    resp = wrap_response("hello")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.get_data() == b"hello"


def test_wrap_response_bytes() -> None:
    resp = wrap_response(b"\x00\x01")
    assert resp.status_code == 200
    assert resp.get_data() == b"\x00\x01"


def test_wrap_response_dict_is_json() -> None:
    resp = wrap_response({"a": 1})
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.get_data()) == {"a": 1}


def test_wrap_response_list_is_json() -> None:
    resp = wrap_response([1, "two"])
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.get_data()) == [1, "two"]


def test_wrap_response_none_is_empty_204() -> None:
    resp = wrap_response(None)
    assert resp.status_code == 204
    assert resp.get_data() == b""
    assert "Content-Type" not in resp.headers


def test_wrap_response_other_types_are_stringified() -> None:
    assert wrap_response(42).get_data() == b"42"


def test_wrap_response_one_tuple() -> None:
    resp = wrap_response(("only body",))
    assert resp.status_code == 200
    assert resp.get_data() == b"only body"


def test_wrap_response_tuple_with_status() -> None:
    resp = wrap_response(("created", 201))
    assert resp.status_code == 201
    assert resp.get_data() == b"created"


def test_wrap_response_tuple_with_status_and_headers() -> None:
    resp = wrap_response(("body", 418, {"X-Tea": "pot"}))
    assert resp.status_code == 418
    assert resp.headers["X-Tea"] == "pot"
    assert resp.get_data() == b"body"


def test_wrap_response_tuple_with_none_status_keeps_200() -> None:
    resp = wrap_response(("body", None, {"X-A": "b"}))
    assert resp.status_code == 200
    assert resp.headers["X-A"] == "b"


def test_wrap_response_tuple_with_dict_body_is_json() -> None:
    resp = wrap_response(({"error": "nope"}, 404))
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.get_data()) == {"error": "nope"}


@pytest.mark.parametrize("value", [(), ("a", 200, {}, "extra")])
def test_wrap_response_tuple_of_wrong_length_raises(value: tuple[object, ...]) -> None:
    with pytest.raises(TypeError, match=r"body\[, status\[, headers\]\]"):
        wrap_response(value)


def test_wrap_response_uses_response_class() -> None:
    resp = wrap_response("x", response_class=CustomResponse)
    assert type(resp) is CustomResponse


async def test_handler_returning_tuple_becomes_response(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return "made", 201, {"X-Made": "yes"}

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 201
    assert resp.headers["X-Made"] == "yes"
    assert resp.get_data() == b"made"


async def test_handler_returning_dict_becomes_json(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return {"a": [1, 2]}

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.get_data()) == {"a": [1, 2]}


async def test_handler_returning_list_becomes_json(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return [1, 2]

    resp = await app.inject_request({}, "/")
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.get_data()) == [1, 2]


async def test_handler_returning_bytes(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return b"raw"

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 200
    assert resp.get_data() == b"raw"


async def test_handler_returning_as_json_with_encoder(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return as_json({"d": datetime.date(2020, 2, 29)}, code=201, json_encoder=DateEncoder)

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 201
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.get_data() == b'{"d": "2020-02-29"}'


def test_plain_values_take_the_fast_response_path() -> None:
    # The fast constructor is only used while it builds exactly what Response() builds.
    from kyoukai import util

    assert util._FAST_RESPONSES
    fast = wrap_response("héllo")
    slow = Response("héllo")
    assert vars(fast).keys() == vars(slow).keys()
    assert list(fast.headers.items()) == list(slow.headers.items())
    assert (fast.status, fast.get_data()) == (slow.status, slow.get_data())
    fast.status_code = 201
    fast.headers["X-Extra"] = "1"
    assert fast.status == "201 CREATED"
    assert fast.headers["X-Extra"] == "1"


@pytest.mark.parametrize(
    "data",
    [
        {"message": "Hello, world!"},
        [1, 2.5, -0.0, float("nan"), None, True, "ünïcode \u2603", {"nested": [[]]}],
        {"1": {"2": {"3": [{"4": '\x00\n\t"'}]}}},
        [],
    ],
)
def test_dict_and_list_bodies_encode_like_json_dumps(data) -> None:
    assert wrap_response(data).get_data(as_text=True) == json.dumps(data)


def test_unencodable_and_circular_bodies_raise() -> None:
    with pytest.raises(TypeError):
        wrap_response({"when": datetime.date(2026, 1, 1)})
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises((ValueError, RecursionError)):
        wrap_response(circular)


async def test_circular_json_body_is_a_500(app: TestKyoukai) -> None:
    @app.route("/loop")
    async def loop(ctx):
        data: dict[str, object] = {}
        data["self"] = data
        return data

    assert (await app.get("/loop")).status_code == 500
