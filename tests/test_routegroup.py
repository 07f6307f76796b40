"""Route groups: classes whose decorated methods become the routes of a blueprint."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import abort
from werkzeug.wrappers import Response

from kyoukai import Blueprint, Route, RouteGroup, TestKyoukai
from kyoukai.routegroup import (
    RouteGroupType,
    after_request,
    before_request,
    errorhandler,
    get_rg_bp,
    hook,
    route,
)


def allowed(resp: Response) -> set[str]:
    return {m.strip() for m in resp.headers["Allow"].split(",")} - {"OPTIONS"}


class Counter(RouteGroup, prefix="/api/v1"):
    def __init__(self, start: int) -> None:
        self.count = start

    @route("/count", methods=["GET", "POST"])
    async def count_up(self, ctx):
        if ctx.request.method == "POST":
            self.count += 1
        return str(self.count)


async def test_subclass_form(app: TestKyoukai) -> None:
    class Group(RouteGroup):
        @route("/heck", methods=("GET", "POST"))
        async def heck_em_up(self, ctx):
            return "get hecked"

    app.add_route_group(Group())
    for method in ("GET", "POST"):
        resp = await app.inject_request({}, "/heck", method=method)
        assert (resp.status_code, resp.get_data()) == (200, b"get hecked")


async def test_metaclass_form(app: TestKyoukai) -> None:
    class Group(metaclass=RouteGroupType):
        @route("/meta")
        async def meta(self, ctx):
            return "meta"

    app.root.add_route_group(Group())
    resp = await app.inject_request({}, "/meta")
    assert (resp.status_code, resp.get_data()) == (200, b"meta")


async def test_routes_share_instance_state(app: TestKyoukai) -> None:
    app.add_route_group(Counter(10))
    assert (await app.inject_request({}, "/api/v1/count", method="POST")).get_data() == b"11"
    assert (await app.inject_request({}, "/api/v1/count", method="POST")).get_data() == b"12"
    assert (await app.inject_request({}, "/api/v1/count")).get_data() == b"12"


async def test_two_instances_are_independent() -> None:
    first, second = Counter(0), Counter(100)
    app1, app2 = TestKyoukai("one"), TestKyoukai("two")
    app1.add_route_group(first)
    app2.add_route_group(second)
    assert (await app1.inject_request({}, "/api/v1/count")).get_data() == b"0"
    assert (await app2.inject_request({}, "/api/v1/count")).get_data() == b"100"


async def test_class_kwargs_become_blueprint_params(app: TestKyoukai) -> None:
    group = Counter(0)
    bp = get_rg_bp(group)
    assert isinstance(bp, Blueprint)
    assert bp.prefix == "/api/v1"
    app.add_route_group(group)
    assert bp.parent is app.root
    assert bp.computed_prefix == "/api/v1"
    assert (await app.inject_request({}, "/count")).status_code == 404


async def test_route_returns_original_function() -> None:
    async def plain(self, ctx):
        return ""

    marked = route("/x")(plain)
    assert marked is plain
    assert marked.in_group is True
    assert marked.route_url == "/x"
    assert tuple(marked.route_methods) == ("GET", "HEAD")
    assert marked.route_kwargs == {}
    assert marked.rg_delegate is not None
    assert dict(marked.route_hooks) == {}
    assert callable(marked.hook)
    assert callable(marked.before_request)
    assert callable(marked.after_request)


async def test_blueprint_gets_routes(app: TestKyoukai) -> None:
    group = Counter(0)
    routes = list(get_rg_bp(group).tree_routes)
    assert len(routes) == 1
    assert isinstance(routes[0], Route)


async def test_stacked_routes_with_own_methods(app: TestKyoukai) -> None:
    class Users(RouteGroup):
        @route("/users/<int:id>", methods=["POST"])
        @route("/users/<int:id>/profile")
        async def user(self, ctx, id):
            return f"{ctx.request.method} {id}"

    app.add_route_group(Users())
    assert (await app.inject_request({}, "/users/1", method="POST")).get_data() == b"POST 1"
    assert (await app.inject_request({}, "/users/1/profile")).get_data() == b"GET 1"
    resp = await app.inject_request({}, "/users/1")
    assert resp.status_code == 405
    assert allowed(resp) == {"POST"}


async def test_route_kwargs_passed_to_route(app: TestKyoukai) -> None:
    class Named(RouteGroup):
        @route("/named", endpoint="named_endpoint")
        async def named(self, ctx):
            return ctx.url_for("named_endpoint")

        @route("/raw/<id>", do_argument_checking=False)
        async def raw(self, ctx, id: int):
            return type(id).__name__

    app.add_route_group(Named())
    assert (await app.inject_request({}, "/named")).get_data() == b"/named"
    assert (await app.inject_request({}, "/raw/5")).get_data() == b"str"


async def test_group_errorhandler(app: TestKyoukai) -> None:
    class Errors(RouteGroup, prefix="/g"):
        def __init__(self) -> None:
            self.name = "group"

        @route("/boom")
        async def boom(self, ctx):
            raise RuntimeError

        @route("/missing")
        async def missing(self, ctx):
            abort(404)

        @errorhandler(500)
        async def handle_errors(self, ctx, exc):
            return f"{self.name} handled {exc.code}", 500

        @errorhandler(400, 410)
        async def handle_4xx(self, ctx, exc):
            return f"{self.name} {exc.code}", exc.code

    app.add_route_group(Errors())
    resp = await app.inject_request({}, "/g/boom")
    assert (resp.status_code, resp.get_data()) == (500, b"group handled 500")
    resp = await app.inject_request({}, "/g/missing")
    assert (resp.status_code, resp.get_data()) == (404, b"group 404")


async def test_group_errorhandler_is_local(app: TestKyoukai) -> None:
    class Errors(RouteGroup, prefix="/g"):
        @errorhandler(500)
        async def handle_errors(self, ctx, exc):
            return "group", 500

    @app.route("/boom")
    async def boom(ctx):
        raise RuntimeError

    app.add_route_group(Errors())
    resp = await app.inject_request({}, "/boom")
    assert resp.status_code == 500
    assert resp.get_data() != b"group"


async def test_group_hooks(app: TestKyoukai) -> None:
    class Hooked(RouteGroup):
        def __init__(self) -> None:
            self.order: list[str] = []

        @route("/")
        async def index(self, ctx):
            self.order.append("handler")
            return ctx.tag

        @before_request
        async def pre(self, ctx):
            self.order.append("before_request")
            ctx.tag = "tagged"

        @hook("pre")
        async def pre_via_hook(self, ctx):
            self.order.append("hook pre")

        @after_request
        async def post(self, ctx, response):
            self.order.append("after_request")
            response.headers["X-Group"] = "yes"
            return response

    group = Hooked()
    app.add_route_group(group)
    resp = await app.inject_request({}, "/")
    assert resp.get_data() == b"tagged"
    assert resp.headers["X-Group"] == "yes"
    assert set(group.order[:2]) == {"before_request", "hook pre"}
    assert group.order[2:] == ["handler", "after_request"]


async def test_group_hooks_only_apply_to_group(app: TestKyoukai) -> None:
    class Hooked(RouteGroup, prefix="/g"):
        @route("/")
        async def index(self, ctx):
            return "group"

        @before_request
        async def pre(self, ctx):
            raise RuntimeError("only for the group")

    @app.route("/")
    async def index(ctx):
        return "root"

    app.add_route_group(Hooked())
    assert (await app.inject_request({}, "/")).get_data() == b"root"
    assert (await app.inject_request({}, "/g/")).status_code == 500


async def test_route_specific_hooks(app: TestKyoukai) -> None:
    class Specific(RouteGroup):
        def __init__(self) -> None:
            self.order: list[str] = []

        @route("/a")
        async def a(self, ctx):
            self.order.append("a")
            return "a"

        @route("/b")
        async def b(self, ctx):
            self.order.append("b")
            return "b"

        @a.before_request
        async def a_before(self, ctx):
            self.order.append("a before_request")

        @a.hook("pre")
        async def a_hook_pre(self, ctx):
            self.order.append("a hook pre")

        @a.after_request
        async def a_after(self, ctx, response):
            self.order.append("a after_request")
            return Response("a replaced")

    group = Specific()
    app.add_route_group(group)
    assert (await app.inject_request({}, "/b")).get_data() == b"b"
    assert group.order == ["b"]
    assert (await app.inject_request({}, "/a")).get_data() == b"a replaced"
    assert set(group.order[1:3]) == {"a before_request", "a hook pre"}
    assert group.order[3:] == ["a", "a after_request"]


async def test_group_on_child_blueprint(app: TestKyoukai) -> None:
    parent = Blueprint("parent", prefix="/parent")
    app.register_blueprint(parent)
    parent.add_route_group(Counter(5))
    assert (await app.inject_request({}, "/parent/api/v1/count")).get_data() == b"5"


async def test_get_rg_bp_rejects_non_groups() -> None:
    with pytest.raises(TypeError):
        get_rg_bp(object())


async def test_each_instance_gets_its_own_blueprint() -> None:
    first, second = Counter(1), Counter(2)
    assert get_rg_bp(first) is not get_rg_bp(second)
    assert get_rg_bp(first).prefix == get_rg_bp(second).prefix == "/api/v1"


async def test_group_with_host() -> None:
    class Api(RouteGroup, host="api.example.com"):
        @route("/")
        async def index(self, ctx):
            return "api"

    app = TestKyoukai("hosted", host_matching=True)
    app.add_route_group(Api())
    assert (await app.inject_request({"Host": "api.example.com"}, "/")).get_data() == b"api"
    assert (await app.inject_request({"Host": "www.example.com"}, "/")).status_code == 404


async def test_route_group_hooks_run_in_definition_order(app: TestKyoukai) -> None:
    # Request Hooks: "They are fired in the order they are added."
    class Ordered(RouteGroup):
        def __init__(self) -> None:
            self.order: list[str] = []

        @route("/")
        async def index(self, ctx):
            return ""

        @before_request
        async def zeta(self, ctx):
            self.order.append("zeta")

        @before_request
        async def alpha(self, ctx):
            self.order.append("alpha")

        @after_request
        async def omega(self, ctx, response):
            self.order.append("omega")

        @after_request
        async def beta(self, ctx, response):
            self.order.append("beta")

    group = Ordered()
    app.add_route_group(group)
    await app.inject_request({}, "/")
    assert group.order == ["zeta", "alpha", "omega", "beta"]


async def test_route_group_instances_under_two_parents(app: TestKyoukai) -> None:
    # Route groups "easily allow having route templates": one class, several instances.
    class Template(RouteGroup):
        def __init__(self, name: str) -> None:
            self.name = name

        @route("/name")
        async def get_name(self, ctx):
            return self.name

    first = Blueprint("first", prefix="/first")
    second = Blueprint("second", prefix="/second")
    app.register_blueprint(first)
    app.register_blueprint(second)
    first.add_route_group(Template("one"))
    second.add_route_group(Template("two"))

    assert (await app.inject_request({}, "/first/name")).get_data() == b"one"
    assert (await app.inject_request({}, "/second/name")).get_data() == b"two"


async def test_group_blueprint_name_can_be_given_in_the_class_statement() -> None:
    class Named(RouteGroup, name="other", prefix="/n"):
        @route("/")
        async def index(self, ctx):
            return "named"

    app = TestKyoukai("app")
    app.add_route_group(Named)
    assert (await app.get("/n/")).get_data() == b"named"
    assert app.root.children[0].name == "other"
