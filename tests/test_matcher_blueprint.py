"""Blueprint.match answers as the map adapters do, with the fast matchers on or off."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter, RequestRedirect, Rule
from werkzeug.test import EnvironBuilder

from kyoukai import Blueprint, TestKyoukai
from kyoukai._matcher import MatchCache
from kyoukai.blueprint import MATCH_CACHE_SIZE

_URLS = [
    "/",
    "/user/<int:id>",
    "/user/<int:id>/",
    "/user/me",
    "/files/<path:rest>",
    "/<thing>",
    "/a/<any(x,y):which>/<float:f>",
    "/u/<uuid:id>",
    "/page/<string(length=2):code>",
]
_PATHS = [
    "/",
    "/user/12",
    "/user/12/",
    "/user/me",
    "/user/x",
    "/files/a/b",
    "/files/",
    "/thing",
    "/thing/",
    "/a/x/1.5",
    "/a/z/1.5",
    "/u/12345678-1234-5678-1234-567812345678",
    "/page/ab",
    "/page/abc",
    "/user//12",
    "/nothing/here",
]
_METHODS = ["GET", "POST", "HEAD", "OPTIONS"]


async def _handler(ctx: Any, **params: Any) -> str:
    return "ok"


@st.composite
def apps(draw: st.DrawFn) -> TestKyoukai:
    app = TestKyoukai("prop")
    blueprints = [app.root]
    for n in range(draw(st.integers(0, 3))):
        host = draw(st.sampled_from([None, None, "a.example", "b.example"]))
        prefix = draw(st.sampled_from(["", "/api", "/user"]))
        bp = Blueprint(f"bp{n}", prefix=prefix, host=host)
        app.register_blueprint(bp)
        blueprints.append(bp)
    for n in range(draw(st.integers(1, 8))):
        bp = draw(st.sampled_from(blueprints))
        url = draw(st.sampled_from(_URLS))
        methods = draw(st.sets(st.sampled_from(["GET", "POST", "PUT"]), min_size=1))
        route = bp.wrap_route(_handler, endpoint=f"r{n}")
        bp.add_route(route, url, sorted(methods))
    app.finalize()
    return app


def answer(app: TestKyoukai, environ: dict[str, Any]) -> tuple[Any, ...]:
    try:
        route, params, rule = app.root.match(environ)
    except RequestRedirect as exc:
        return ("redirect", exc.new_url)
    except HTTPException as exc:
        return ("error", type(exc), frozenset(getattr(exc, "valid_methods", None) or ()))
    return ("match", route, rule, dict(params))


def slow_answer(
    app: TestKyoukai, environ: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, ...]:
    with monkeypatch.context() as patch:
        patch.setattr(app.root, "_matchers", None)
        patch.setattr(app.root, "_match_cache", MatchCache(MATCH_CACHE_SIZE))
        return answer(app, environ)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    apps(),
    st.lists(
        st.tuples(
            st.sampled_from(_PATHS),
            st.sampled_from(_METHODS),
            st.sampled_from(["a.example", "b.example", "other.example"]),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_blueprint_match_is_werkzeugs(
    monkeypatch: pytest.MonkeyPatch, built: TestKyoukai, requests: list[tuple[str, str, str]]
) -> None:
    for path, method, host in requests:
        environ = EnvironBuilder(path=path, method=method, base_url=f"http://{host}/").get_environ()
        expected = slow_answer(built, environ, monkeypatch)
        assert answer(built, environ) == expected, (path, method, host)
        assert answer(built, environ) == expected  # a second time: now remembered
        assert answer(built, environ) == expected  # a third time, from the match cache


def _count_adapter_matches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = MapAdapter.match

    def counting(self: MapAdapter, path_info: Any = None, *args: Any, **kwargs: Any) -> Any:
        calls.append(path_info)
        return original(self, path_info, *args, **kwargs)

    monkeypatch.setattr(MapAdapter, "match", counting)
    return calls


async def test_spec_multiple_paths_match_without_the_adapter(
    app: TestKyoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spec's stacked paths, each with its methods; the annotation converts ``id``."""
    bp = Blueprint("something")

    @bp.route("/users/<id>", methods=["POST"])
    @bp.route("/users/<id>/profile")
    async def handler(ctx: Any, id: int) -> str:
        return f"{type(id).__name__} {id}"

    app.register_blueprint(bp)
    app.finalize()
    calls = _count_adapter_matches(monkeypatch)
    for n in range(3):
        resp = await app.inject_request({}, f"/users/{n}/profile")
        assert (resp.status_code, resp.get_data()) == (200, f"int {n}".encode())
    resp = await app.inject_request({}, "/users/7", method="POST")
    assert (resp.status_code, resp.get_data()) == (200, b"int 7")
    assert calls == []
    # What only Werkzeug answers still reaches it: 405 with its Allow set, 404.
    resp = await app.inject_request({}, "/users/7")
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"POST"}
    assert (await app.inject_request({}, "/users/7/nothing")).status_code == 404
    assert calls


async def test_slash_redirect_is_still_a_307(
    app: TestKyoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.route("/items/<int:n>/")
    async def item(ctx: Any, n: int) -> str:
        return str(n)

    app.finalize()
    resp = await app.inject_request({}, "/items/3")
    assert resp.status_code == 307
    assert resp.headers["Location"].endswith("/items/3/")
    calls = _count_adapter_matches(monkeypatch)
    resp = await app.inject_request({}, "/items/4/")
    assert (resp.status_code, resp.get_data(), calls) == (200, b"4", [])


async def test_host_routes_match_without_the_adapter(
    app: TestKyoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Blueprint("api", host="api.example")

    @api.route("/user/<int:id>")
    async def api_user(ctx: Any, id: int) -> str:
        return f"api {id}"

    @app.route("/user/<int:id>")
    async def user(ctx: Any, id: int) -> str:
        return f"any {id}"

    app.register_blueprint(api)
    app.finalize()
    calls = _count_adapter_matches(monkeypatch)
    for host, body in (("api.example", b"api 5"), ("www.example", b"any 5")):
        resp = await app.inject_request({"Host": host}, "/user/5")
        assert (resp.status_code, resp.get_data()) == (200, body)
    assert calls == []


def test_a_path_is_cached_when_it_repeats() -> None:
    cache = MatchCache(4)
    rule = Rule("/user/<int:id>")
    cache.remember(("/user/1", "GET"), "route", {"id": 1}, rule)
    assert cache.get(("/user/1", "GET")) is None  # seen once: only its hash is kept
    cache.remember(("/user/1", "GET"), "route", {"id": 1}, rule)
    assert cache.get(("/user/1", "GET")) == ("route", {"id": 1}, rule)
    assert cache.get(("/user/1", "POST")) is None


def test_the_cache_and_its_candidates_stay_bounded() -> None:
    cache = MatchCache(4)
    rule = Rule("/user/<int:id>")
    for n in range(10):
        for _ in range(2):
            cache.remember((f"/user/{n}", "GET"), "route", {"id": n}, rule)
    assert len(cache._results) <= 4
    assert len(cache._seen_once) <= 4
    assert cache.get(("/user/9", "GET")) is not None


def test_paths_that_never_repeat_leave_no_tracked_objects(app: TestKyoukai) -> None:
    """An id per request: nothing survives the request for the collector to promote, so the
    oldest generation does not grow and no full collection walks the routing tables."""

    @app.route("/user/<int:id>")
    async def user(ctx: Any, id: int) -> str:
        return str(id)

    app.finalize()
    root = app.root
    base = EnvironBuilder(path="/user/0").get_environ()
    gc.collect()
    before = len(gc.get_objects())
    for n in range(3 * MATCH_CACHE_SIZE):
        root.match({**base, "PATH_INFO": f"/user/{n}"})
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # it was two per path, up to the bound
