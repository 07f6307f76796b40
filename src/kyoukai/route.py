"""Routes: a handler wrapped with its paths, its hooks and its argument conversion."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from types import GenericAlias, UnionType
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import BadRequest
from werkzeug.routing import Rule, Submount
from werkzeug.wrappers import Response

from kyoukai._body import load_body
from kyoukai._context import HTTPRequestContext
from kyoukai._hooks import HookHolder, check_hook_type
from kyoukai._types import Handler, HookType
from kyoukai.util import wrap_response

if TYPE_CHECKING:
    from kyoukai.blueprint import Blueprint

__all__ = ["DEFAULT_METHODS", "Route", "RouteRule"]

#: The methods a path answers when none are given. Werkzeug adds ``HEAD`` to any ``GET`` rule.
DEFAULT_METHODS: tuple[str, ...] = ("GET", "HEAD")

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _to_bool(value: Any) -> bool:
    text = str(value).lower()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a boolean")


class _Signature:
    """What argument checking needs to know about a handler, computed once."""

    __slots__ = ("accepts_any", "converters", "names", "required")

    def __init__(self, function: Callable[..., Any], skip: int) -> None:
        try:
            signature = inspect.signature(function, eval_str=True)
        except (NameError, TypeError, ValueError):
            signature = inspect.signature(function)
        params = list(signature.parameters.values())[skip:]
        kinds = inspect.Parameter
        #: ``True`` when the handler takes ``**kwargs``.
        self.accepts_any = any(p.kind is kinds.VAR_KEYWORD for p in params)
        named = [p for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
        self.names = frozenset(p.name for p in named)
        self.required = frozenset(p.name for p in named if p.default is kinds.empty)
        self.converters: dict[str, Callable[[Any], Any]] = {}
        for param in named:
            converter = self._converter_for(param.annotation)
            if converter is not None:
                self.converters[param.name] = converter

    @staticmethod
    def _converter_for(annotation: Any) -> Callable[[Any], Any] | None:
        if annotation is inspect.Parameter.empty or annotation is bool:
            return _to_bool if annotation is bool else None
        if isinstance(annotation, type):
            return annotation
        if isinstance(annotation, GenericAlias | UnionType) or (
            type(annotation).__module__ == "typing"
        ):
            return None  # typing constructs (list[int], X | None, Any) only document
        if callable(annotation):
            converter: Callable[[Any], Any] = annotation  # a function or object, maybe async
            return converter
        return None


class RouteRule(Rule):
    """A Werkzeug rule that knows the :class:`Route` it leads to."""

    def __init__(self, string: str, *, route: Route | None = None, **kwargs: Any) -> None:
        super().__init__(string, **kwargs)
        #: The route this rule leads to.
        self.route = route


class Route(HookHolder):
    """A handler function wrapped for routing.

    A route remembers the paths it is reachable under (each with its own methods), its
    route-level hooks, and how to check and convert the path parameters passed to it.
    Create one with :meth:`.Blueprint.route` or :meth:`.Blueprint.wrap_route`.

    :param function: The handler: ``handler(ctx, **path_params)``, a coroutine function or a
        plain function.
    :param reverse_hooks: Run the blueprint hooks child-to-parent instead of parent-to-child.
    :param should_invoke_hooks: Run request hooks at all (``False`` for error handlers).
    :param do_argument_checking: Check that path parameters fit the handler's signature, and
        convert them to the handler's annotations.
    :param endpoint: A custom endpoint name for URL building, instead of ``blueprint.function``.
    :param stream_body: Let the handler read the request body as it arrives
        (``ctx.request.iter_body()``, ``ctx.request.read_async()``) instead of having it
        loaded before it runs.
    :param max_body_size: The largest request body this route takes, in bytes (on the wire
        and decoded); ``None`` inherits its blueprint's. A larger body gets **413**.
    :param websocket: A WebSocket route: the handler is ``handler(ctx, ws, **path_params)``
        and its paths answer WebSocket handshakes only (see :mod:`kyoukai.websocket`).
    """

    def __init__(
        self,
        function: Handler,
        *,
        reverse_hooks: bool = False,
        should_invoke_hooks: bool = True,
        do_argument_checking: bool = True,
        endpoint: str | None = None,
        stream_body: bool = False,
        max_body_size: int | None = None,
        websocket: bool = False,
    ) -> None:
        if not callable(function):
            raise TypeError(f"a route needs a callable, not {function!r}")
        super().__init__(max_body_size)
        self._callable = function
        #: Run the blueprint hooks child-to-parent instead of parent-to-child.
        self.reverse_hooks = reverse_hooks
        #: Run request hooks for this route.
        self.should_invoke_hooks = should_invoke_hooks
        #: Check and convert path parameters against the handler's signature.
        self.do_argument_checking = do_argument_checking
        #: The custom endpoint name, if one was given.
        self.endpoint = endpoint
        #: The handler reads the request body itself, as it arrives.
        self.stream_body = stream_body
        #: ``True`` for a WebSocket route (its handler also takes the ``ws`` session).
        self.websocket = websocket
        #: ``(routing_url, methods)`` pairs this route is reachable under.
        self.routes: list[tuple[str, tuple[str, ...]]] = []
        #: The blueprint this route was added to.
        self.bp: Blueprint | None = None
        self._signature: _Signature | None = None
        # Coroutine functions skip the isawaitable() check (other awaitables still work).
        self._is_async = inspect.iscoroutinefunction(function)
        self._hook_cache: tuple[list[Callable[..., Any]], list[Callable[..., Any]]] | None = None
        self.__name__ = getattr(function, "__name__", type(function).__name__)
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__doc__ = getattr(function, "__doc__", None)
        self.__wrapped__ = function

    def __repr__(self) -> str:
        paths = ", ".join(url for url, _ in self.routes) or "no paths"
        return f"<Route {self.__qualname__} ({paths})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped handler directly, bypassing hooks and checking."""
        return self._callable(*args, **kwargs)

    @property
    def callable(self) -> Handler:
        """The wrapped handler."""
        return self._callable

    # -- paths ------------------------------------------------------------------------------

    def add_path(self, url: str, methods: Iterable[str] = DEFAULT_METHODS) -> Route:
        """Make this route reachable under another routing URL, with its own methods.

        :param url: A Werkzeug routing URL, e.g. ``"/users/<int:id>"``.
        :param methods: The methods this path answers (``GET`` and ``HEAD`` by default).
        :raises RuntimeError: If the application was already finalized.
        """
        if self.bp is not None:
            self.bp.check_not_finalized(f"add the path {url!r} to {self!r}")
        if isinstance(methods, str):
            methods = (methods,)
        self.routes.append((url, tuple(m.upper() for m in methods)))
        return self

    def get_endpoint_name(self, bp: Blueprint | None = None) -> str:
        """The endpoint used for URL building: ``blueprint_name.function_name`` by default.

        :param bp: The blueprint to name the endpoint after (this route's blueprint if omitted).
        """
        if self.endpoint is not None:
            return self.endpoint
        bp = bp if bp is not None else self.bp
        if bp is None:
            return self.__name__
        return f"{bp.name}.{self.__name__}"

    def get_rules(self, prefix: str = "", host: str | None = None) -> list[RouteRule]:
        """Werkzeug rules for every path of this route, under ``prefix``."""
        endpoint = self.get_endpoint_name()
        return [
            RouteRule(
                prefix + url,
                methods=methods,
                endpoint=endpoint,
                host=host,
                route=self,
                websocket=self.websocket,
            )
            for url, methods in self.routes
        ]

    def body_limit(self) -> int | None:
        """The body limit of this route: its own ``max_body_size``, else that of the nearest
        blueprint above that sets one; ``None`` leaves the server's."""
        if self.max_body_size is not None:
            return self.max_body_size
        bp = self.bp
        while bp is not None and bp.max_body_size is None:
            bp = bp.parent
        return bp.max_body_size if bp is not None else None

    def get_submount(self) -> Submount:
        """A :class:`~werkzeug.routing.Submount` holding this route's rules (no prefix)."""
        return Submount("", self.get_rules())

    # -- hooks ------------------------------------------------------------------------------

    def get_hooks(self, type_: HookType | str) -> list[Callable[..., Any]]:
        """The route-level hooks of one type, in the order they were added."""
        check_hook_type(type_)
        return self.hooks[type_]

    def resolved_hooks(self) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        """The pre and post hooks a request to this route runs: blueprint hooks (parent to
        child) then route hooks, all of it reversed with ``reverse_hooks``, none without
        ``should_invoke_hooks``. Cached until a hook is added."""
        if self._hook_cache is None:
            if not self.should_invoke_hooks:
                self._hook_cache = ([], [])
                return self._hook_cache
            chains: list[list[Callable[..., Any]]] = []
            for type_ in ("pre", "post"):
                inherited = self.bp.get_hooks(type_) if self.bp is not None else []
                chain = inherited + self.hooks[type_]
                if self.reverse_hooks:
                    chain.reverse()  # innermost first: the route's, then child to parent
                chains.append(chain)
            self._hook_cache = (chains[0], chains[1])
        return self._hook_cache

    def clear_hook_cache(self) -> None:
        """Forget the resolved hook chain (called when a blueprint above gains a hook)."""
        self._hook_cache = None

    _hooks_changed = clear_hook_cache

    # -- arguments --------------------------------------------------------------------------

    def _get_signature(self) -> _Signature:
        if self._signature is None:
            # A WebSocket handler takes the session after the context.
            self._signature = _Signature(self._callable, skip=2 if self.websocket else 1)
        return self._signature

    def check_route_args(self, params: Mapping[str, Any] | None = None) -> None:
        """Check that the path parameters fit the handler's signature.

        :param params: The parameters the route matched with.
        :raises TypeError: If a required handler argument has no parameter, or a parameter
            has no handler argument to go to.
        """
        if not self.do_argument_checking:
            return
        signature = self._get_signature()
        given = set(params or ())
        missing = signature.required - given
        if missing:
            raise TypeError(
                f"{self!r} needs the argument(s) {', '.join(sorted(missing))}, but its paths "
                f"give only {', '.join(sorted(given)) or 'none'}: add them to the routing URL "
                "or give them defaults"
            )
        if not signature.accepts_any:
            unexpected = given - signature.names
            if unexpected:
                raise TypeError(
                    f"{self!r} gets the path parameter(s) {', '.join(sorted(unexpected))} "
                    "but its handler does not accept them: add them to its signature"
                )

    def _needs_conversion(self, params: Mapping[str, Any]) -> bool:
        """Whether a parameter is not yet of its annotation's type (an ``int`` route value
        for ``id: int`` is not converted again, and no coroutine is made for it)."""
        for name, converter in self._get_signature().converters.items():
            if name in params and not (
                isinstance(converter, type) and isinstance(params[name], converter)
            ):
                return True
        return False

    async def _convert_params(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Convert parameters to the handler's annotations; a failure is a 400."""
        converters = self._get_signature().converters
        converted = dict(params)
        for name, converter in converters.items():
            if name not in converted:
                continue
            value = converted[name]
            if isinstance(converter, type) and isinstance(value, converter):
                continue
            try:
                result = converter(value)
                if inspect.isawaitable(result):
                    result = await result
            except (ValueError, TypeError) as exc:
                raise BadRequest(f"Invalid value for {name!r}: {exc}") from exc
            converted[name] = result
        return converted

    # -- invocation -------------------------------------------------------------------------

    async def invoke(
        self,
        ctx: HTTPRequestContext,
        args: Iterable[Any] = (),
        params: Mapping[str, Any] | None = None,
    ) -> Response:
        """Run the route: pre hooks, the handler, response wrapping, post hooks.

        :param ctx: The request context.
        :param args: Extra positional arguments after ``ctx`` (error handlers get the exception).
        :param params: The path parameters, passed as keyword arguments.
        :return: The response, after the post hooks.
        """
        pre_hooks, post_hooks = self.resolved_hooks()
        return await self.invoke_function(ctx, pre_hooks, post_hooks, params or {}, args)

    async def invoke_function(
        self,
        ctx: HTTPRequestContext,
        pre_hooks: list[Callable[..., Any]],
        post_hooks: list[Callable[..., Any]],
        params: Mapping[str, Any],
        args: Iterable[Any] = (),
        default_status: int | None = None,
        load: bool = False,
    ) -> Response:
        """Run the hooks given and the handler.

        :param ctx: The request context.
        :param pre_hooks: Hooks run before the handler; one may return a replacement context.
        :param post_hooks: Hooks run after; one may return a replacement response.
        :param params: Keyword arguments for the handler.
        :param args: Positional arguments for the handler after ``ctx``.
        :param default_status: The status of a response built from a bare body (error handlers
            use the error's code).
        :param load: Load a streamed request body after the pre hooks, before the handler
            (see :func:`kyoukai._body.load_body`).
        """
        for hook in pre_hooks:
            new_ctx = hook(ctx)
            if inspect.isawaitable(new_ctx):
                new_ctx = await new_ctx
            if new_ctx is not None:
                if not isinstance(new_ctx, HTTPRequestContext):
                    raise TypeError(
                        f"the pre-request hook {hook!r} returned {new_ctx!r}; a pre-request hook "
                        "returns the HTTPRequestContext to use, or None to keep the current one"
                    )
                _adopt_context(ctx, new_ctx)
                ctx = new_ctx
        if load:
            await load_body(ctx.request.environ)
        if params:
            kwargs = params
            if self.do_argument_checking and self._needs_conversion(params):
                kwargs = await self._convert_params(params)
            result = self._callable(ctx, *args, **kwargs)
        elif args:
            result = self._callable(ctx, *args)
        else:
            result = self._callable(ctx)
        if self._is_async or inspect.isawaitable(result):
            result = await result
        app = ctx.app
        response_class = app.response_class if app is not None else Response
        response = wrap_response(result, response_class)
        if default_status is not None and _is_bare_body(result):
            response.status_code = default_status
        for hook in post_hooks:
            new_response = hook(ctx, response)
            if inspect.isawaitable(new_response):
                new_response = await new_response
            if new_response is not None:
                response = wrap_response(new_response, response_class)
        return response


def _adopt_context(old: HTTPRequestContext, new: HTTPRequestContext) -> None:
    """Let a context returned by a pre-request hook take over from ``old``.

    A fresh context gets the request's match information, and one created under ``old``
    is closed with it, so whatever the handler adds to it is torn down with the request.
    """
    if new is old:
        return
    if new.app is None:
        new.app, new.params, new.route, new.bp, new.rule = (
            old.app,
            old.params,
            old.route,
            old.bp,
            old.rule,
        )
    if not new.closed and old in new.context_chain:
        old.add_teardown_callback(new.close, pass_exception=True)


def _is_bare_body(result: Any) -> bool:
    """True when ``result`` carries no status of its own."""
    if isinstance(result, Response):
        return False
    return not (isinstance(result, tuple) and len(result) > 1 and result[1] is not None)
