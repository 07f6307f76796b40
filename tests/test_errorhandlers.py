"""Error handlers by exception class, the lookup order, and handlers that fail."""

from __future__ import annotations

import logging

import pytest
from werkzeug.exceptions import HTTPException, NotFound, abort

from kyoukai import Blueprint, TestKyoukai
from kyoukai.routegroup import RouteGroup, errorhandler, route


class DomainError(Exception):
    pass


class OutOfStock(DomainError):
    pass


class PaymentRequired(HTTPException):
    """Werkzeug has no class for 402: an application defines its own."""

    code = 402
    description = "Pay first."


class PlainPaymentError(HTTPException):
    """Carries 402 without being a PaymentRequired."""

    code = 402


@pytest.fixture
def inner(app: TestKyoukai) -> Blueprint:
    """A blueprint under ``/inner``, child of the root."""
    bp = Blueprint("inner", prefix="/inner")
    app.register_blueprint(bp)
    return bp


def kyoukai_errors(caplog: pytest.LogCaptureFixture, start: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "kyoukai" and r.levelno >= logging.ERROR and r.getMessage().startswith(start)
    ]


async def test_failing_500_handler_runs_once_and_is_logged_once(
    app: TestKyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Exception] = []

    @app.route("/")
    async def index(ctx):
        raise RuntimeError("first")

    @app.errorhandler(500)
    async def handle_500(ctx, exc):
        calls.append(exc)
        raise RuntimeError("the 500 page is broken")

    resp = await app.get("/")
    assert resp.status_code == 500
    assert len(calls) == 1
    assert len(kyoukai_errors(caplog, "Error handler")) == 1
    assert len(kyoukai_errors(caplog, "Unhandled exception")) == 1


async def test_handler_for_a_plain_exception_class(
    app: TestKyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    @app.route("/")
    async def index(ctx):
        raise DomainError("no")

    @app.errorhandler(DomainError)
    async def domain(ctx, exc):
        return {"error": str(exc), "type": type(exc).__name__}, 409

    @app.errorhandler(500)
    async def handle_500(ctx, exc):
        return "the 500 handler", 500

    resp = await app.get("/")
    assert (resp.status_code, resp.json) == (409, {"error": "no", "type": "DomainError"})
    assert not kyoukai_errors(caplog, "Unhandled exception")


async def test_subclass_goes_to_the_most_derived_handler(app: TestKyoukai) -> None:
    @app.route("/stock")
    async def stock(ctx):
        raise OutOfStock

    @app.route("/domain")
    async def domain_route(ctx):
        raise DomainError

    @app.errorhandler(DomainError)
    async def domain(ctx, exc):
        return "domain", 409

    assert (await app.get("/stock")).get_data() == b"domain"

    @app.errorhandler(OutOfStock)
    async def out_of_stock(ctx, exc):
        return "out of stock", 410

    assert (await app.get("/stock")).get_data() == b"out of stock"
    assert (await app.get("/domain")).get_data() == b"domain"


async def test_bare_body_from_a_plain_exception_handler_is_500(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        raise DomainError

    @app.errorhandler(DomainError)
    async def domain(ctx, exc):
        return "sorry"

    resp = await app.get("/")
    assert (resp.status_code, resp.get_data()) == (500, b"sorry")


async def test_handler_for_an_http_exception_class(app: TestKyoukai) -> None:
    shop = Blueprint("shop", prefix="/shop")
    app.register_blueprint(shop)

    @shop.route("/buy")
    async def buy(ctx):
        raise PaymentRequired

    @shop.errorhandler(PaymentRequired)
    async def pay(ctx, exc):
        return {"error": "pay first"}

    resp = await app.get("/shop/buy")
    assert (resp.status_code, resp.json) == (402, {"error": "pay first"})


async def test_innermost_blueprint_first(app: TestKyoukai, inner: Blueprint) -> None:
    @inner.route("/")
    async def in_inner(ctx):
        raise DomainError

    @app.route("/")
    async def at_root(ctx):
        raise OutOfStock

    @inner.errorhandler(DomainError)
    async def inner_domain(ctx, exc):
        return "inner", 409

    @app.errorhandler(DomainError)
    async def root_domain(ctx, exc):
        return "root", 409

    assert (await app.get("/inner/")).get_data() == b"inner"
    assert (await app.get("/")).get_data() == b"root"


async def test_blueprint_chain_before_class_specificity(app: TestKyoukai, inner: Blueprint) -> None:
    # The innermost blueprint with any handler on the MRO wins over a closer match further out.
    @inner.route("/")
    async def in_inner(ctx):
        raise OutOfStock

    @inner.errorhandler(DomainError)
    async def inner_domain(ctx, exc):
        return "inner domain"

    @app.errorhandler(OutOfStock)
    async def root_stock(ctx, exc):
        return "root out of stock"

    assert (await app.get("/inner/")).get_data() == b"inner domain"


async def test_codes_across_the_chain_before_classes(app: TestKyoukai, inner: Blueprint) -> None:
    @inner.route("/<int:code>")
    async def fail(ctx, code):
        abort(code)

    @inner.errorhandler(HTTPException)
    async def any_http(ctx, exc):
        return "inner catch-all"

    @app.errorhandler(404)
    async def root_404(ctx, exc):
        return "root 404"

    assert (await app.get("/inner/404")).get_data() == b"root 404"
    resp = await app.get("/inner/403")
    assert (resp.status_code, resp.get_data()) == (403, b"inner catch-all")


async def test_http_exception_class_counts_as_its_code(app: TestKyoukai, inner: Blueprint) -> None:
    @inner.route("/<kind>")
    async def fail(ctx, kind):
        raise PaymentRequired if kind == "werkzeug" else PlainPaymentError

    @inner.errorhandler(PaymentRequired)
    async def inner_payment(ctx, exc):
        return "inner PaymentRequired"

    @app.errorhandler(402)
    async def root_402(ctx, exc):
        return "root 402"

    assert (await app.get("/inner/werkzeug")).get_data() == b"inner PaymentRequired"
    # Not a PaymentRequired: only the code handler takes it.
    assert (await app.get("/inner/plain")).get_data() == b"root 402"

    @inner.errorhandler(402)
    async def inner_402(ctx, exc):
        return "inner 402"

    assert (await app.get("/inner/werkzeug")).get_data() == b"inner PaymentRequired"
    assert (await app.get("/inner/plain")).get_data() == b"inner 402"


async def test_exception_catch_all_takes_what_no_code_handler_takes(app: TestKyoukai) -> None:
    @app.route("/<kind>")
    async def fail(ctx, kind):
        if kind == "crash":
            raise KeyError(kind)
        abort(404)

    @app.errorhandler(Exception)
    async def everything(ctx, exc):
        return type(exc).__name__, 418

    assert (await app.get("/crash")).get_data() == b"KeyError"
    assert (await app.get("/missing")).get_data() == b"NotFound"
    assert (await app.get("/a/b")).get_data() == b"NotFound"  # matched no route at all


async def test_unmatched_request_uses_class_handler_of_prefix_blueprint(app: TestKyoukai) -> None:
    api = Blueprint("api", prefix="/api")
    app.register_blueprint(api)

    @api.errorhandler(NotFound)
    async def api_404(ctx, exc):
        return {"error": "no such endpoint"}

    resp = await app.get("/api/missing")
    assert (resp.status_code, resp.json) == (404, {"error": "no such endpoint"})
    assert (await app.get("/elsewhere")).json is None


async def test_failing_class_handler_goes_to_500_handler_once(app: TestKyoukai) -> None:
    calls: list[str] = []

    @app.route("/")
    async def index(ctx):
        raise DomainError

    @app.errorhandler(DomainError)
    async def domain(ctx, exc):
        calls.append("domain")
        raise RuntimeError("broken")

    @app.errorhandler(500)
    async def handle_500(ctx, exc):
        calls.append("500")
        assert isinstance(exc.original_exception, RuntimeError)
        return "500 page"

    resp = await app.get("/")
    assert (resp.status_code, resp.get_data(), calls) == (500, b"500 page", ["domain", "500"])


async def test_failing_catch_all_is_not_called_again(app: TestKyoukai) -> None:
    calls: list[Exception] = []

    @app.route("/")
    async def index(ctx):
        raise DomainError

    @app.errorhandler(Exception)
    async def everything(ctx, exc):
        calls.append(exc)
        raise RuntimeError("broken")

    resp = await app.get("/")
    assert resp.status_code == 500
    assert len(calls) == 1


async def test_stacking_classes_and_codes(app: TestKyoukai) -> None:
    @app.route("/<kind>")
    async def fail(ctx, kind):
        if kind == "domain":
            raise DomainError
        abort(int(kind))

    @app.errorhandler(DomainError)
    @app.errorhandler(400, 404, 3)
    async def handler(ctx, exc):
        return type(exc).__name__

    assert (await app.get("/domain")).get_data() == b"DomainError"
    assert (await app.get("/403")).get_data() == b"Forbidden"
    assert (await app.get("/401")).status_code == 401
    assert (await app.get("/401")).get_data() != b"Unauthorized"


async def test_route_group_handler_for_a_class(app: TestKyoukai) -> None:
    class Shop(RouteGroup, prefix="/shop"):
        @route("/buy")
        async def buy(self, ctx):
            raise OutOfStock

        @errorhandler(DomainError)
        @errorhandler(404)
        async def problem(self, ctx, exc):
            return {"problem": type(exc).__name__}

    app.add_route_group(Shop())
    assert (await app.get("/shop/buy")).json == {"problem": "OutOfStock"}
    assert (await app.get("/shop/nothing")).json == {"problem": "NotFound"}


def test_get_errorhandler_by_class_and_by_code() -> None:
    root = Blueprint("root")
    child = Blueprint("child", parent=root)
    domain = root.add_errorhandler(lambda ctx, exc: "domain", DomainError)
    payment = child.add_errorhandler(lambda ctx, exc: "payment", PaymentRequired)
    assert child.get_errorhandler(OutOfStock()) is domain
    assert child.get_errorhandler(PaymentRequired()) is payment
    assert child.get_errorhandler(402) is None  # a code alone matches code handlers only
    assert root.get_errorhandler(PaymentRequired()) is None
    assert root.errorhandlers == {DomainError: domain}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((DomainError, 500), "a range of codes needs status codes"),
        ((DomainError, None, 2), "a range of codes needs status codes"),
        (("404",), "status code or an Exception subclass"),
        ((KeyboardInterrupt,), "status code or an Exception subclass"),
        ((object,), "status code or an Exception subclass"),
        ((True,), "status code or an Exception subclass"),
    ],
)
def test_errorhandler_refuses_what_it_cannot_handle(args: tuple, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Blueprint("bp").errorhandler(*args)(lambda ctx, exc: None)


def test_route_group_errorhandler_refuses_a_bad_key_when_decorating() -> None:
    with pytest.raises(TypeError, match="a range of codes needs status codes"):
        errorhandler(DomainError, 500)
