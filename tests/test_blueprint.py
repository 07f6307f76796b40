"""The Blueprint tree: prefixes, inheritance of hooks and error handlers, matching, url_for."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import NotFound, abort
from werkzeug.routing import Rule, Submount
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from kyoukai import Blueprint, Route, TestKyoukai
from kyoukai.routegroup import RouteGroup, route


def allowed(resp: Response) -> set[str]:
    """The methods of an ``Allow`` header, without ``OPTIONS`` (which may or may not be listed)."""
    return {m.strip() for m in resp.headers["Allow"].split(",")} - {"OPTIONS"}


def three_deep(app: TestKyoukai) -> tuple[Blueprint, Blueprint, Blueprint]:
    """root -> a (/a) -> b (/b) -> c (/c)."""
    a = Blueprint("a", prefix="/a")
    b = Blueprint("b", prefix="/b")
    c = Blueprint("c", prefix="/c")
    app.register_blueprint(a)
    a.add_child(b)
    b.add_child(c)
    return a, b, c


async def test_unregistered_blueprint_is_404(app: TestKyoukai) -> None:
    bp = Blueprint("bp")

    @bp.route("/some/route")
    async def some_route(ctx):
        return "Some route"

    resp = await app.inject_request({}, "/some/route")
    assert resp.status_code == 404


async def test_nested_prefixes_combine(app: TestKyoukai) -> None:
    _, _, c = three_deep(app)

    @c.route("/x")
    async def x(ctx):
        return "deep"

    resp = await app.inject_request({}, "/a/b/c/x")
    assert (resp.status_code, resp.get_data()) == (200, b"deep")
    assert (await app.inject_request({}, "/c/x")).status_code == 404
    assert (await app.inject_request({}, "/x")).status_code == 404


async def test_tree_properties(app: TestKyoukai) -> None:
    a, b, c = three_deep(app)
    assert a.parent is app.root
    assert b.parent is a
    assert c.parent is b
    assert (app.root.depth, a.depth, b.depth, c.depth) == (0, 1, 2, 3)
    assert c.prefix == "/c"
    assert c.computed_prefix == "/a/b/c"
    assert a.computed_prefix == "/a"
    assert set(app.root.traverse_tree()) - {app.root} == {a, b, c}
    assert set(b.traverse_tree()) - {b} == {c}


async def test_parent_argument_adds_child(app: TestKyoukai) -> None:
    parent = Blueprint("parent", prefix="/p")
    child = Blueprint("child", parent=parent, prefix="/c")
    app.register_blueprint(parent)
    assert child.parent is parent
    assert child in set(parent.traverse_tree())

    @child.route("/")
    async def index(ctx):
        return "child"

    resp = await app.inject_request({}, "/p/c/")
    assert (resp.status_code, resp.get_data()) == (200, b"child")


async def test_add_child_returns_child(app: TestKyoukai) -> None:
    parent = Blueprint("parent")
    child = Blueprint("child")
    assert parent.add_child(child) is child


async def test_tree_routes_yields_every_route(app: TestKyoukai) -> None:
    a, b, c = three_deep(app)

    @app.route("/")
    async def r0(ctx):
        return ""

    @a.route("/")
    async def r1(ctx):
        return ""

    @c.route("/")
    async def r3(ctx):
        return ""

    routes = list(app.root.tree_routes)
    assert set(routes) == {r0, r1, r3}
    assert routes.index(r0) < routes.index(r1) < routes.index(r3)
    assert list(b.tree_routes) == [r3]


async def test_get_route_by_endpoint(app: TestKyoukai) -> None:
    _, _, c = three_deep(app)

    @c.route("/users")
    async def get_all_users(ctx):
        return ""

    assert app.root.get_route("c.get_all_users") is get_all_users
    assert app.root.get_route("c.nothing") is None


async def test_tree_path_and_map(app: TestKyoukai) -> None:
    a, b, c = three_deep(app)

    @c.route("/x")
    async def x(ctx):
        return ""

    assert c.tree_path == [app.root, a, b, c]
    routing_map = app.finalize()
    assert app.root.map is routing_map
    assert [rule.rule for rule in routing_map.iter_rules()] == ["/a/b/c/x"]


async def test_get_submount(app: TestKyoukai) -> None:
    a, _, _ = three_deep(app)

    @a.route("/x")
    async def x(ctx):
        return ""

    assert isinstance(a.get_submount(), Submount)


async def test_match_returns_route_params_rule(app: TestKyoukai) -> None:
    a, _, _ = three_deep(app)

    @a.route("/users/<int:id>")
    async def user(ctx, id):
        return ""

    app.finalize()
    environ = EnvironBuilder(path="/a/users/5").get_environ()
    route, params, rule = app.root.match(environ)
    assert route is user
    assert params == {"id": 5}
    assert isinstance(rule, Rule)
    assert rule.rule == "/a/users/<int:id>"


async def test_match_unknown_raises_not_found(app: TestKyoukai) -> None:
    app.finalize()
    with pytest.raises(NotFound):
        app.root.match(EnvironBuilder(path="/none").get_environ())


async def test_error_handler_inherited_by_children(app: TestKyoukai) -> None:
    _, _, c = three_deep(app)

    @c.route("/x")
    async def x(ctx):
        abort(404)

    @app.root.errorhandler(404)
    async def root_404(ctx, exc):
        return "root 404", 404

    resp = await app.inject_request({}, "/a/b/c/x")
    assert (resp.status_code, resp.get_data()) == (404, b"root 404")


async def test_error_handler_overridden_on_child(app: TestKyoukai) -> None:
    a, b, c = three_deep(app)

    @a.route("/x")
    async def ax(ctx):
        abort(404)

    @c.route("/x")
    async def cx(ctx):
        abort(404)

    @app.root.errorhandler(404)
    async def root_404(ctx, exc):
        return "root 404", 404

    @b.errorhandler(404)
    async def b_404(ctx, exc):
        return "b 404", 404

    resp = await app.inject_request({}, "/a/b/c/x")
    assert (resp.status_code, resp.get_data()) == (404, b"b 404")
    resp = await app.inject_request({}, "/a/x")
    assert (resp.status_code, resp.get_data()) == (404, b"root 404")


async def test_error_handler_is_local_to_blueprint(app: TestKyoukai) -> None:
    bp = Blueprint("bp", prefix="/bp")
    app.register_blueprint(bp)

    @app.route("/boom")
    async def root_boom(ctx):
        raise RuntimeError

    @bp.route("/boom")
    async def bp_boom(ctx):
        raise RuntimeError

    @bp.errorhandler(500)
    async def e500(ctx, err):
        return "Handled an error", 500

    resp = await app.inject_request({}, "/bp/boom")
    assert (resp.status_code, resp.get_data()) == (500, b"Handled an error")
    resp = await app.inject_request({}, "/boom")
    assert resp.status_code == 500
    assert resp.get_data() != b"Handled an error"


async def test_get_errorhandler_walks_up(app: TestKyoukai) -> None:
    a, b, c = three_deep(app)

    @a.errorhandler(404)
    async def a_404(ctx, exc):
        return ""

    @c.errorhandler(403)
    async def c_403(ctx, exc):
        return ""

    assert isinstance(c.get_errorhandler(404), Route)
    assert c.get_errorhandler(404) is a.get_errorhandler(404)
    assert c.get_errorhandler(NotFound()) is a.get_errorhandler(404)
    assert b.get_errorhandler(403) is None
    assert app.root.get_errorhandler(404) is None
    assert c.get_errorhandler(403) is not None


async def test_add_errorhandler_directly(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        abort(409)

    async def handler(ctx, exc):
        return "conflict", 409

    app.root.add_errorhandler(handler, 409)
    resp = await app.inject_request({}, "/")
    assert (resp.status_code, resp.get_data()) == (409, b"conflict")


async def test_hooks_run_parent_to_child(app: TestKyoukai) -> None:
    a, b, c = three_deep(app)
    order: list[str] = []

    def make(name: str):
        async def pre(ctx):
            order.append(f"pre {name}")

        async def post(ctx, response):
            order.append(f"post {name}")

        return pre, post

    for name, bp in (("root", app.root), ("a", a), ("b", b), ("c", c)):
        pre, post = make(name)
        bp.add_hook("pre", pre)
        bp.add_hook("post", post)

    @c.route("/x")
    async def x(ctx):
        order.append("handler")
        return "x"

    resp = await app.inject_request({}, "/a/b/c/x")
    assert resp.get_data() == b"x"
    assert order == [
        "pre root",
        "pre a",
        "pre b",
        "pre c",
        "handler",
        "post root",
        "post a",
        "post b",
        "post c",
    ]


async def test_reverse_hooks_run_child_to_parent(app: TestKyoukai) -> None:
    a, b, c = three_deep(app)
    order: list[str] = []

    for name, bp in (("root", app.root), ("a", a), ("b", b), ("c", c)):
        bp.add_hook("pre", lambda ctx, name=name: order.append(f"pre {name}"))
        bp.add_hook("post", lambda ctx, response, name=name: order.append(f"post {name}"))

    @c.route("/x", reverse_hooks=True)
    async def x(ctx):
        order.append("handler")
        return "x"

    await app.inject_request({}, "/a/b/c/x")
    assert order == [
        "pre c",
        "pre b",
        "pre a",
        "pre root",
        "handler",
        "post c",
        "post b",
        "post a",
        "post root",
    ]


async def test_hook_added_after_first_request_runs(app: TestKyoukai) -> None:
    bp = Blueprint("bp", prefix="/bp")
    app.register_blueprint(bp)

    @bp.route("/")
    async def index(ctx):
        return getattr(ctx, "tag", "untagged")

    assert (await app.inject_request({}, "/bp/")).get_data() == b"untagged"

    @app.root.before_request
    async def tag(ctx):
        ctx.tag = "tagged"

    assert (await app.inject_request({}, "/bp/")).get_data() == b"tagged"

    @index.after_request
    async def shout(ctx, response):
        return response.get_data(as_text=True).upper()

    assert (await app.inject_request({}, "/bp/")).get_data() == b"TAGGED"


async def test_404_under_prefix_uses_that_blueprints_handler(app: TestKyoukai) -> None:
    api = Blueprint("api", prefix="/api")
    app.register_blueprint(api)

    @api.route("/users")
    async def users(ctx):
        return ""

    @api.errorhandler(404)
    async def api_404(ctx, exc):
        return {"error": "not found"}, 404

    @app.root.errorhandler(404)
    async def root_404(ctx, exc):
        return "page not found", 404

    resp = await app.inject_request({}, "/api/nothing")
    assert (resp.status_code, resp.get_data()) == (404, b'{"error": "not found"}')
    resp = await app.inject_request({}, "/nothing")
    assert (resp.status_code, resp.get_data()) == (404, b"page not found")


async def test_blueprint_get_hooks_parent_to_child(app: TestKyoukai) -> None:
    a, _, c = three_deep(app)

    @app.root.before_request
    async def root_pre(ctx):
        pass

    @a.before_request
    async def a_pre(ctx):
        pass

    @c.after_request
    async def c_post(ctx, response):
        pass

    assert list(c.get_hooks("pre")) == [root_pre, a_pre]
    assert list(c.get_hooks("post")) == [c_post]
    assert list(app.root.get_hooks("post")) == []


async def test_hooks_on_sibling_blueprint_not_run(app: TestKyoukai) -> None:
    left = Blueprint("left", prefix="/left")
    right = Blueprint("right", prefix="/right")
    app.register_blueprint(left)
    app.register_blueprint(right)
    order: list[str] = []

    @left.before_request
    async def left_pre(ctx):
        order.append("left")

    @right.route("/")
    async def index(ctx):
        return "right"

    await app.inject_request({}, "/right/")
    assert order == []


async def test_url_for_inside_handler(app: TestKyoukai) -> None:
    api = Blueprint("api", prefix="/api")
    app.register_blueprint(api)

    @api.route("/users")
    async def get_all_users(ctx):
        return ctx.url_for("api.get_user", user_id=3)

    @api.route("/users/<int:user_id>")
    async def get_user(ctx, user_id):
        return ctx.url_for("api.get_all_users", force_external=True)

    resp = await app.inject_request({"Host": "example.com"}, "/api/users")
    assert resp.get_data() == b"/api/users/3"
    resp = await app.inject_request({"Host": "example.com"}, "/api/users/3")
    assert resp.get_data() == b"http://example.com/api/users"


async def test_url_for_with_method(app: TestKyoukai) -> None:
    @app.route("/users/<int:id>", methods=["POST"])
    @app.route("/users/<int:id>/profile")
    async def user(ctx, id):
        return (
            ctx.url_for("test.user", method="POST", id=id)
            + " "
            + ctx.url_for("test.user", method="GET", id=id)
        )

    resp = await app.inject_request({}, "/users/4/profile")
    assert resp.get_data() == b"/users/4 /users/4/profile"


async def test_blueprint_url_for_with_environ(app: TestKyoukai) -> None:
    api = Blueprint("api", prefix="/api")
    app.register_blueprint(api)

    @api.route("/users/<int:user_id>")
    async def get_user(ctx, user_id):
        return ""

    app.finalize()
    environ = EnvironBuilder(path="/", base_url="http://example.com/").get_environ()
    assert app.root.url_for(environ, "api.get_user", user_id=9) == "/api/users/9"
    external = app.root.url_for(environ, "api.get_user", user_id=9, force_external=True)
    assert external == "http://example.com/api/users/9"


async def test_endpoint_override(app: TestKyoukai) -> None:
    api = Blueprint("api")
    app.register_blueprint(api)

    @api.route("/users", endpoint="users_list")
    async def get_all_users(ctx):
        return ctx.url_for("users_list")

    assert get_all_users.get_endpoint_name() == "users_list"
    resp = await app.inject_request({}, "/users")
    assert resp.get_data() == b"/users"


async def test_endpoint_is_blueprint_and_function_name(app: TestKyoukai) -> None:
    api = Blueprint("api")
    app.register_blueprint(api)

    @api.route("/users")
    async def get_all_users(ctx):
        return ""

    assert get_all_users.get_endpoint_name() == "api.get_all_users"
    assert get_all_users.get_endpoint_name(Blueprint("other")) == "other.get_all_users"


async def test_multi_path_route_methods_are_per_path(app: TestKyoukai) -> None:
    bp = Blueprint("something")
    app.register_blueprint(bp)

    @bp.route("/users/<int:id>", methods=["POST"])
    @bp.route("/users/<int:id>/profile")
    async def handler(ctx, id):
        return f"{ctx.request.method} {id}"

    resp = await app.inject_request({}, "/users/1", method="POST")
    assert (resp.status_code, resp.get_data()) == (200, b"POST 1")
    resp = await app.inject_request({}, "/users/1/profile")
    assert (resp.status_code, resp.get_data()) == (200, b"GET 1")

    resp = await app.inject_request({}, "/users/1")
    assert resp.status_code == 405
    assert allowed(resp) == {"POST"}
    resp = await app.inject_request({}, "/users/1/profile", method="POST")
    assert resp.status_code == 405
    assert allowed(resp) == {"GET", "HEAD"}

    resp = await app.inject_request({}, "/users/1", method="OPTIONS")
    assert resp.status_code == 200
    assert allowed(resp) == {"POST"}
    resp = await app.inject_request({}, "/users/1/profile", method="OPTIONS")
    assert resp.status_code == 200
    assert allowed(resp) == {"GET", "HEAD"}


async def test_same_path_in_two_blueprints_different_methods(app: TestKyoukai) -> None:
    reader = Blueprint("reader")
    writer = Blueprint("writer")
    app.register_blueprint(reader)
    app.register_blueprint(writer)

    @reader.route("/doc")
    async def read(ctx):
        return "read"

    @writer.route("/doc", methods=["PUT"])
    async def write(ctx):
        return "write"

    assert (await app.inject_request({}, "/doc")).get_data() == b"read"
    assert (await app.inject_request({}, "/doc", method="PUT")).get_data() == b"write"
    resp = await app.inject_request({}, "/doc", method="DELETE")
    assert resp.status_code == 405
    assert allowed(resp) == {"GET", "HEAD", "PUT"}


async def test_wrap_route_and_add_route(app: TestKyoukai) -> None:
    async def handler(ctx):
        return "manual"

    route = app.root.wrap_route(handler)
    assert isinstance(route, Route)
    assert app.root.add_route(route, "/manual", methods=["GET"]) is route
    resp = await app.inject_request({}, "/manual")
    assert (resp.status_code, resp.get_data()) == (200, b"manual")


async def test_blueprint_route_accepts_route(app: TestKyoukai) -> None:
    @app.route("/one")
    async def handler(ctx):
        return ctx.request.path

    again = app.route("/two")(handler)
    assert again is handler
    assert (await app.inject_request({}, "/two")).get_data() == b"/two"
    assert (await app.inject_request({}, "/one")).get_data() == b"/one"


# Host matching


async def test_host_matching_blueprint_host() -> None:
    app = TestKyoukai("my_website", host_matching=True)
    api = Blueprint("api", host="api.example.com")
    app.register_blueprint(api)

    @app.route("/")
    async def index(ctx):
        return "any host"

    @api.route("/users")
    async def users(ctx):
        return "api users"

    resp = await app.inject_request({"Host": "api.example.com"}, "/users")
    assert (resp.status_code, resp.get_data()) == (200, b"api users")
    resp = await app.inject_request({"Host": "www.example.com"}, "/users")
    assert resp.status_code == 404
    resp = await app.inject_request({"Host": "www.example.com"}, "/")
    assert (resp.status_code, resp.get_data()) == (200, b"any host")


async def test_host_inherited_and_overridden() -> None:
    app = TestKyoukai("my_website", host="myname.me")
    bp1 = Blueprint("something")
    app.register_blueprint(bp1)
    bp2 = Blueprint("something_else", host="something.myname.me")
    app.register_blueprint(bp2)
    bp3 = Blueprint("something_finally", prefix="/3")
    bp2.add_child(bp3)

    assert bp1.host == "myname.me"
    assert bp2.host == "something.myname.me"
    assert bp3.host == "something.myname.me"

    @bp1.route("/one")
    async def one(ctx):
        return "one"

    @bp3.route("/three")
    async def three(ctx):
        return "three"

    assert (await app.inject_request({"Host": "myname.me"}, "/one")).status_code == 200
    assert (await app.inject_request({"Host": "other.me"}, "/one")).status_code == 404
    assert (await app.inject_request({"Host": "something.myname.me"}, "/one")).status_code == 404
    resp = await app.inject_request({"Host": "something.myname.me"}, "/3/three")
    assert (resp.status_code, resp.get_data()) == (200, b"three")
    assert (await app.inject_request({"Host": "myname.me"}, "/3/three")).status_code == 404


async def test_blueprint_without_host_has_none(app: TestKyoukai) -> None:
    bp = Blueprint("plain")
    app.register_blueprint(bp)
    assert bp.host is None


async def test_url_for_hosted_endpoint_from_other_host() -> None:
    app = TestKyoukai("site", host_matching=True)
    api = Blueprint("api", host="api.example.com")
    app.register_blueprint(api)

    @api.route("/users")
    async def users(ctx):
        return ""

    @app.route("/")
    async def index(ctx):
        return ctx.url_for("api.users")

    resp = await app.inject_request({"Host": "www.example.com"}, "/")
    assert resp.get_data() == b"http://api.example.com/users"


async def test_add_route_group_class_with_arguments(app: TestKyoukai) -> None:
    class Greeter(RouteGroup, prefix="/greet"):
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        @route("/")
        async def greet(self, ctx):
            return self.greeting

    bp = app.root.add_route_group(Greeter, "hello")
    assert isinstance(bp, Blueprint)
    assert bp.parent is app.root
    assert (await app.inject_request({}, "/greet/")).get_data() == b"hello"


async def test_add_path_after_finalize_raises(app: TestKyoukai) -> None:
    @app.route("/a")
    async def handler(ctx):
        return ""

    app.finalize()
    with pytest.raises(RuntimeError, match="finalize"):
        handler.add_path("/b")


async def test_child_route_after_finalize_raises(app: TestKyoukai) -> None:
    bp = Blueprint("bp")
    app.register_blueprint(bp)
    app.finalize()
    with pytest.raises(RuntimeError, match=r"before\s+finalize\(\)"):

        @bp.route("/late")
        async def late(ctx):
            return ""


async def test_same_named_blueprints_keep_their_own_routes(app: TestKyoukai) -> None:
    first = Blueprint("same")
    second = Blueprint("same", prefix="/2")
    app.register_blueprint(first)
    app.register_blueprint(second)

    @first.route("/")
    async def index(ctx):
        return "first"

    @second.route("/")
    async def index(ctx):  # noqa: F811
        return "second"

    assert (await app.inject_request({}, "/")).get_data() == b"first"
    assert (await app.inject_request({}, "/2/")).get_data() == b"second"


async def test_blueprint_with_second_parent_rejected(app: TestKyoukai) -> None:
    child = Blueprint("child")
    Blueprint("one").add_child(child)
    with pytest.raises(ValueError, match="one parent"):
        Blueprint("two").add_child(child)


async def test_host_route_with_other_method_does_not_hide_any_host_route() -> None:
    # Host Matching: routes of blueprints without a host "will match on any hosts".
    app = TestKyoukai("site", host_matching=True)
    api = Blueprint("api", host="api.example.com")
    app.register_blueprint(api)

    @api.route("/items", methods=["POST"])
    async def create(ctx):
        return "created"

    @app.route("/items")
    async def listing(ctx):
        return "listing"

    resp = await app.inject_request({"Host": "api.example.com"}, "/items")
    assert (resp.status_code, resp.get_data()) == (200, b"listing")
    resp = await app.inject_request({"Host": "api.example.com"}, "/items", method="DELETE")
    assert resp.status_code == 405
    allow = {m.strip() for m in resp.headers["Allow"].split(",")} - {"OPTIONS"}
    assert allow == {"GET", "HEAD", "POST"}
