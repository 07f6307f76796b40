"""Blueprints: the tree that holds routes, prefixes, hosts, hooks and error handlers.

Every application has a root blueprint; other blueprints are its children (or their
children), and inherit their parent's URL prefix, host, request hooks and error handlers.
Finalizing the root builds one Werkzeug :class:`~werkzeug.routing.Map` for the whole tree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError, Map, MapAdapter, Rule, Submount

from kyoukai._hooks import HookHolder, check_hook_type
from kyoukai._matcher import MapMatchers, MatchCache, adapter_match, is_websocket_upgrade
from kyoukai._shortcuts import MethodShortcuts
from kyoukai._types import Handler, HookType
from kyoukai.route import DEFAULT_METHODS, Route
from kyoukai.static import add_static

if TYPE_CHECKING:
    from kyoukai.routegroup import RouteGroup

__all__ = ["Blueprint", "get_rg_bp"]

#: The attribute of a route group instance that holds its blueprint.
ROUTE_GROUP_ATTRIBUTE = "_route_group_bp"

#: How many bound map adapters (per host, scheme and WebSocket upgrade) the root keeps.
ADAPTER_CACHE_SIZE = 128
#: How many ``(path, method)`` match results for parametrised routes are remembered (see
#: :class:`~kyoukai._matcher.MatchCache`).
MATCH_CACHE_SIZE = 1024


class Blueprint(MethodShortcuts, HookHolder):
    """A container of routes, and a node in the application's blueprint tree.

    :param name: The name of the blueprint; endpoints are named ``name.function``.
    :param parent: The parent blueprint. The child is added to it.
    :param prefix: A URL prefix for every route of this blueprint and its children,
        added after the parents' prefixes.
    :param host_matching: Match routes on the ``Host`` header (set it on the root).
        Implied when any blueprint in the tree has a ``host``.
    :param host: The host this blueprint's routes answer; inherited by children that do not
        set their own. ``None`` answers every host.
    :param max_body_size: Bytes of request body its routes take; ``None`` inherits the parent's.
    """

    def __init__(
        self,
        name: str,
        parent: Blueprint | None = None,
        prefix: str = "",
        *,
        host_matching: bool = False,
        host: str | None = None,
        max_body_size: int | None = None,
    ) -> None:
        super().__init__(max_body_size)
        #: The name of the blueprint.
        self.name = name
        self._prefix = prefix
        self._host = host
        #: Whether the routing map matches on the ``Host`` header.
        self.host_matching = host_matching or host is not None
        self._parent: Blueprint | None = None
        #: Child blueprints, in the order they were added.
        self.children: list[Blueprint] = []
        #: Routes added to this blueprint.
        self.routes: list[Route] = []
        #: Error handlers by status code and by exception class.
        self.errorhandlers: dict[int | type[Exception], Route] = {}
        #: ``True`` once the tree was finalized; routes can no longer be added.
        self.finalized = False
        #: The routing map built by :meth:`finalize` (the root's covers the whole tree).
        self.map: Map | None = None
        self._host_map: Map | None = None
        self._endpoints: dict[str, Route] = {}
        self._adapters: dict[tuple[str, str, str, bool], tuple[MapAdapter, MapAdapter | None]] = {}
        self._static_rules: dict[str, list[tuple[Rule, Route]]] = {}
        self._match_cache = MatchCache(MATCH_CACHE_SIZE)
        self._matchers: MapMatchers | None = None
        if parent is not None:
            parent.add_child(self)

    def __repr__(self) -> str:
        return f"<Blueprint {self.name!r} prefix={self.computed_prefix!r}>"

    # -- the tree ---------------------------------------------------------------------------

    @property
    def parent(self) -> Blueprint | None:
        """The parent blueprint, or ``None`` for a root."""
        return self._parent

    @parent.setter
    def parent(self, parent: Blueprint | None) -> None:
        self._parent = parent

    def add_child(self, blueprint: Blueprint) -> Blueprint:
        """Add ``blueprint`` as a child of this one; it inherits prefix, host, hooks and errors.

        :return: The child.
        :raises RuntimeError: If this tree was already finalized.
        :raises ValueError: If the child already has another parent.
        """
        self.check_not_finalized(f"add the blueprint {blueprint.name!r}")
        if blueprint._parent is not None and blueprint._parent is not self:
            raise ValueError(
                f"{blueprint!r} already belongs to {blueprint._parent!r}; "
                "a blueprint has one parent"
            )
        if blueprint not in self.children:
            self.children.append(blueprint)
        blueprint._parent = self
        blueprint._hooks_changed()
        return blueprint

    def traverse_tree(self) -> Generator[Blueprint, None, None]:
        """Yield this blueprint and every descendant, parents before children."""
        yield self
        for child in self.children:
            yield from child.traverse_tree()

    @property
    def tree_routes(self) -> Generator[Route, None, None]:
        """Yield every route of the tree, parents' routes before children's."""
        for bp in self.traverse_tree():
            yield from bp.routes

    @property
    def depth(self) -> int:
        """How deep this blueprint is in the tree (the root is 0)."""
        return 0 if self._parent is None else self._parent.depth + 1

    @property
    def tree_path(self) -> list[Blueprint]:
        """The blueprints from the root down to this one."""
        return [*self._parent.tree_path, self] if self._parent is not None else [self]

    @property
    def prefix(self) -> str:
        """This blueprint's own URL prefix."""
        return self._prefix

    @property
    def computed_prefix(self) -> str:
        """The full URL prefix: the parents' prefixes followed by this one's."""
        if self._parent is None:
            return self._prefix
        return self._parent.computed_prefix + self._prefix

    @property
    def host(self) -> str | None:
        """The host of this blueprint, or of the nearest parent that has one."""
        if self._host is not None or self._parent is None:
            return self._host
        return self._parent.host

    def _root(self) -> Blueprint:
        bp = self
        while bp._parent is not None:
            bp = bp._parent
        return bp

    def check_not_finalized(self, action: str) -> None:
        """Raise a :exc:`RuntimeError` explaining why ``action`` is too late."""
        if self.finalized:
            raise RuntimeError(
                f"cannot {action}: the application was already finalized (it finalizes when "
                "it starts serving). Register every route, blueprint and route group before "
                "finalize() or the server starts."
            )

    # -- routes -----------------------------------------------------------------------------

    def wrap_route(self, cbl: Handler, *args: Any, **kwargs: Any) -> Route:
        """Wrap a callable in a :class:`.Route` (keyword arguments go to :class:`.Route`)."""
        return Route(cbl, *args, **kwargs)

    def add_route(
        self, route: Route, routing_url: str, methods: Iterable[str] = DEFAULT_METHODS
    ) -> Route:
        """Add ``route`` under ``routing_url`` to this blueprint.

        :param route: A route from :meth:`wrap_route` (or a :class:`.Route` made directly).
        :param routing_url: A Werkzeug routing URL, e.g. ``"/users/<int:id>"``.
        :param methods: The methods this path answers.
        :return: The route, unchanged.
        :raises ValueError: If the route already belongs to another blueprint.
        """
        self.check_not_finalized(f"add the route {routing_url!r}")
        if route.bp is not None and route.bp is not self:
            raise ValueError(f"{route!r} already belongs to {route.bp!r}; wrap the function again")
        route.bp = self
        route.add_path(routing_url, methods)
        if route not in self.routes:
            self.routes.append(route)
        return route

    def route(
        self, routing_url: str, methods: Iterable[str] = DEFAULT_METHODS, **kwargs: Any
    ) -> Callable[[Handler | Route], Route]:
        """Decorator: add the function (or an existing :class:`.Route`) under ``routing_url``.

        Stacking the decorator adds each path, with its own methods, to the same route.
        Keyword arguments (``endpoint``, ``reverse_hooks``, ...) go to :class:`.Route`.
        """

        def decorator(func: Handler | Route) -> Route:
            route = func if isinstance(func, Route) else self.wrap_route(func, **kwargs)
            return self.add_route(route, routing_url, methods)

        return decorator

    def add_route_group(
        self, group: RouteGroup | type[RouteGroup], *args: Any, **kwargs: Any
    ) -> Blueprint:
        """Add a route group's blueprint as a child of this one.

        :param group: A route group instance, or a route group class to instantiate with
            ``args`` and ``kwargs``.
        :return: The group's blueprint.
        """
        if isinstance(group, type):
            group = group(*args, **kwargs)
        return self.add_child(get_rg_bp(group))

    def add_static(
        self, url_prefix: str, directory: str | os.PathLike[str], **options: Any
    ) -> Route:
        """Serve ``directory`` under ``url_prefix`` (see ``kyoukai.static.add_static``)."""
        return add_static(self, url_prefix, directory, **options)

    def get_route(self, endpoint: str) -> Route | None:
        """The route of the tree with the endpoint ``endpoint``, or ``None``."""
        for route in self.tree_routes:
            if route.get_endpoint_name() == endpoint:
                return route
        return None

    # -- hooks ------------------------------------------------------------------------------

    def get_hooks(self, type_: HookType | str) -> list[Callable[..., Any]]:
        """Hooks of one type for this blueprint, the parents' first (root to here)."""
        check_hook_type(type_)
        inherited = self._parent.get_hooks(type_) if self._parent is not None else []
        return inherited + self.hooks[type_]

    def _hooks_changed(self) -> None:
        # Routes below cache their hook chains; a new hook here is part of them.
        for route in self.tree_routes:
            route.clear_hook_cache()

    # -- error handlers ---------------------------------------------------------------------

    def add_errorhandler(
        self,
        cbl: Callable[..., Any] | Route,
        startcode: int | type[Exception],
        endcode: int | None = None,
        step: int | None = None,
    ) -> Route:
        """Handle the status ``startcode`` (or the range ``startcode`` to ``endcode``, exclusive),
        or the exception class ``startcode`` and its subclasses.

        The handler is called as ``handler(ctx, exception)``; its return value becomes the
        response, with the error's status (500 for an exception that is not an
        :class:`~werkzeug.exceptions.HTTPException`) unless it sets one. Error handlers run no
        hooks and convert no arguments. One blueprint has one handler per code and per class.
        :meth:`get_errorhandler` tells which handler an error goes to.

        :return: The error handler's :class:`.Route`.
        :raises TypeError: If ``startcode`` is neither a status code nor an
            :class:`Exception` subclass, or a class comes with a range.
        """
        keys = errorhandler_keys(startcode, endcode, step)
        if isinstance(cbl, Route):
            route = cbl
        else:
            route = Route(cbl, should_invoke_hooks=False, do_argument_checking=False)
        if route.bp is None:
            route.bp = self
        for key in keys:
            self.errorhandlers[key] = route
        return route

    def errorhandler(
        self, code: int | type[Exception], endcode: int | None = None, step: int | None = None
    ) -> Callable[[Callable[..., Any] | Route], Route]:
        """Decorator: handle the status ``code`` (or a range up to ``endcode``, exclusive), or
        the exception class ``code`` and its subclasses (see :meth:`add_errorhandler`).

        Stack it to handle several codes or classes with one function.
        """

        def decorator(func: Callable[..., Any] | Route) -> Route:
            return self.add_errorhandler(func, code, endcode, step)

        return decorator

    def get_errorhandler(self, exc: BaseException | int) -> Route | None:
        """The handler an error goes to, from this blueprint out to the root.

        The lookup order is Flask's:

        1. By status code, for an :class:`~werkzeug.exceptions.HTTPException` (or a code):
           from this blueprint out to the root, the first blueprint that has a handler for
           the code wins. A handler registered for an ``HTTPException`` subclass that
           carries that code (``errorhandler(PaymentRequired)``) counts here, before the
           plain code, for instances of the class.
        2. By class: from this blueprint out to the root, the first blueprint that has a
           handler for a class of the exception's MRO (the most derived first) wins.

        Codes come first across the whole chain so that a broad class handler
        (``errorhandler(HTTPException)`` or ``errorhandler(Exception)``) in an inner
        blueprint does not shadow a precise status handler further out.

        :param exc: An exception, or a status code (step 1 only).
        :return: The handler's :class:`.Route`, or ``None`` if nothing handles the error.
        """
        if isinstance(exc, int):
            code: int | None = exc
            mro: tuple[type, ...] = ()
        else:
            code = exc.code if isinstance(exc, HTTPException) else None
            mro = type(exc).__mro__
        chain = self.tree_path[::-1]
        if code is not None:
            for bp in chain:
                for cls in mro:
                    handler = bp.errorhandlers.get(cls) if _has_code(cls, code) else None
                    if handler is not None:
                        return handler
                handler = bp.errorhandlers.get(code)
                if handler is not None:
                    return handler
        for bp in chain:
            for cls in mro:
                handler = bp.errorhandlers.get(cls)
                if handler is not None:
                    return handler
        return None

    def find_blueprint_for_path(self, path: str) -> Blueprint:
        """The deepest blueprint whose prefix starts ``path`` (this one if none does).

        Used to pick the error handlers of a request that matched no route.
        """
        best = self
        best_length = len(self.computed_prefix)
        for bp in self.traverse_tree():
            prefix = bp.computed_prefix
            if prefix and len(prefix) > best_length and path.startswith(prefix):
                best, best_length = bp, len(prefix)
        return best

    # -- routing ----------------------------------------------------------------------------

    def get_submount(self) -> Submount:
        """A :class:`~werkzeug.routing.Submount` of this blueprint's routes and children."""
        rules: list[Any] = [route.get_submount() for route in self.routes]
        rules.extend(child.get_submount() for child in self.children)
        return Submount(self._prefix, rules)

    def _rules(self, hosted: bool) -> list[Rule]:
        rules: list[Rule] = []
        for bp in self.traverse_tree():
            host = bp.host
            if (host is not None) != hosted:
                continue
            prefix = bp.computed_prefix
            for route in bp.routes:
                rules.extend(route.get_rules(prefix, host))
        return rules

    def finalize(self, **map_options: Any) -> Map:
        """Build the routing map of the tree under this blueprint and freeze the tree.

        Routes of blueprints with a host go into a host-matching map that is tried first;
        every other route answers any host.

        :param map_options: Passed to :class:`~werkzeug.routing.Map` (``strict_slashes``,
            ``converters``, ...).
        :return: The routing map.
        :raises TypeError: If a route's handler does not fit the parameters of its paths.
        """
        endpoints: dict[str, Route] = {}
        for route in self.tree_routes:
            # Two instances of one route group share endpoint names; URLs are built for
            # the first, and matching does not depend on names at all.
            endpoints.setdefault(route.get_endpoint_name(), route)
            for url, _ in route.routes:
                route.check_route_args(dict.fromkeys(_rule_args(url)))
        hosted_rules = self._rules(hosted=True)
        self.map = Map(self._rules(hosted=False), **map_options)
        self._host_map = (
            Map(hosted_rules, host_matching=True, **map_options) if hosted_rules else None
        )
        self._endpoints = endpoints
        self._adapters = {}
        self._static_rules = {}
        self._match_cache = MatchCache(MATCH_CACHE_SIZE)
        self._matchers = MapMatchers(self.map, self._host_map)
        if self._host_map is None:
            # Paths without parameters are looked up directly; Werkzeug ranks a static rule
            # above any dynamic rule matching the same path, so the answer is the same.
            for rule in self.map.iter_rules():
                if _is_static(rule):
                    self._static_rules.setdefault(rule.rule, []).append((rule, _route_of(rule)))
        for bp in self.traverse_tree():
            bp.finalized = True
        return self.map

    def _bind(self, environ: dict[str, Any]) -> tuple[MapAdapter, MapAdapter | None]:
        """Map adapters for this request's host and scheme, cached (bounded)."""
        key = (
            environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""),
            environ.get("wsgi.url_scheme", "http"),
            environ.get("SCRIPT_NAME", ""),
            # Werkzeug binds a WebSocket upgrade with a ws/wss scheme: another adapter.
            "HTTP_UPGRADE" in environ and is_websocket_upgrade(environ),
        )
        adapters = self._adapters.get(key)
        if adapters is None:
            if self.map is None:
                raise RuntimeError("the routing map is not built yet: call app.finalize() first")
            if "HTTP_UPGRADE" in environ:  # the cached adapters are for HTTP, not WebSocket
                environ = {**environ, "HTTP_UPGRADE": ""}
            host_adapter = None
            if self._host_map is not None:
                host_adapter = self._host_map.bind_to_environ(environ)
            adapters = (self.map.bind_to_environ(environ), host_adapter)
            if len(self._adapters) >= ADAPTER_CACHE_SIZE:
                self._adapters.clear()
            self._adapters[key] = adapters
        return adapters

    def match(self, environment: dict[str, Any]) -> tuple[Route, Mapping[str, Any], Rule]:
        """Match a WSGI environ against the routing map.

        :return: ``(route, params, rule)``.
        :raises werkzeug.exceptions.NotFound: If nothing matches.
        :raises werkzeug.exceptions.MethodNotAllowed: If the path matches but not the method.
        :raises werkzeug.routing.RequestRedirect: If the path needs a trailing slash.
        """
        path = environment.get("PATH_INFO") or "/"
        if not path.isascii():
            # PEP 3333 carries the path as latin-1; the rules are UTF-8 text.
            path = path.encode("latin-1").decode("utf-8", "replace")
        method = environment.get("REQUEST_METHOD", "GET")
        static = self._static_rules.get(path)
        if static is not None:
            for rule, route in static:
                if rule.methods is None or method in rule.methods:
                    return route, {}, rule
        key = (path, method)
        cached = self._match_cache.get(key)
        if cached is not None:
            cached_route, cached_params, cached_rule = cached
            return cached_route, cached_params.copy(), cached_rule  # handlers may change theirs
        matchers = self._matchers
        found: tuple[Rule, Mapping[str, Any]] | None = None
        if matchers is not None:
            found = matchers.match_plain(path, method, environment)
        host_adapter = None
        if found is None:
            adapter, host_adapter = self._bind(environment)
            found = matchers.match_bound(path, method, adapter, host_adapter) if matchers else None
            if found is None:
                query = environment.get("QUERY_STRING", "")
                found = adapter_match(path, method, adapter, host_adapter, query)
        rule, params = found
        route = _route_of(rule)
        if host_adapter is None and matchers is not None and id(rule) in matchers.cacheable:
            self._match_cache.remember(key, route, params, rule)
        return route, params, rule

    def url_for(
        self,
        environment: dict[str, Any],
        endpoint: str,
        *,
        method: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Build the URL of ``endpoint``, Flask style.

        Prefer :meth:`.HTTPRequestContext.url_for`, which passes the request's environ.

        :param environment: The WSGI environ to build relative to.
        :param endpoint: ``blueprint.function`` or a custom endpoint name.
        :param method: The method the URL is for, when paths differ by method
            (``methods=[...]`` is accepted too: the first that has a path is used).
        :param kwargs: Path parameters; ``force_external=True`` builds an absolute URL.
            Other unknown keys become the query string.
        :raises werkzeug.routing.BuildError: If the URL cannot be built.
        """
        root = self._root()
        if root.map is None:
            raise RuntimeError("the routing map is not built yet: call app.finalize() first")
        force_external = bool(kwargs.pop("force_external", False))
        # The guides spell it ``methods=[...]``: build for the first method that has a path.
        candidates = [method] if method is not None else list(kwargs.pop("methods", None) or [None])
        adapter, host_adapter = root._bind(environment)
        if host_adapter is not None:
            route = root._endpoints.get(endpoint)
            if route is not None and route.bp is not None and route.bp.host is not None:
                adapter = host_adapter
        for candidate in candidates[:-1]:
            try:
                return adapter.build(endpoint, kwargs, candidate, force_external=force_external)
            except BuildError:
                continue
        return adapter.build(endpoint, kwargs, candidates[-1], force_external=force_external)


def get_rg_bp(group: RouteGroup) -> Blueprint:
    """The blueprint built for the route group instance ``group``.

    Its public path is :func:`kyoukai.routegroup.get_rg_bp`; it lives here so that blueprints
    can mount route groups without importing them.

    :raises TypeError: If ``group`` is not a route group instance.
    """
    bp = getattr(group, ROUTE_GROUP_ATTRIBUTE, None)
    if not isinstance(bp, Blueprint):
        raise TypeError(f"{group!r} is not a route group instance")
    return bp


def errorhandler_keys(
    startcode: int | type[Exception], endcode: int | None = None, step: int | None = None
) -> Iterable[int | type[Exception]]:
    """The keys of :attr:`Blueprint.errorhandlers` an ``errorhandler()`` call stands for.

    :raises TypeError: If ``startcode`` is neither a status code nor an :class:`Exception`
        subclass, or a class comes with a range.
    """
    given: object = startcode  # checked at run time: the annotation is not enforced
    if isinstance(given, type) and issubclass(given, Exception):
        if endcode is not None or step is not None:
            raise TypeError(
                f"a range of codes needs status codes, not {given.__name__}: register "
                "the class on its own, or give the range's first status code"
            )
        return (given,)
    if isinstance(given, int) and not isinstance(given, bool):
        return range(given, endcode, step or 1) if endcode is not None else (given,)
    raise TypeError(
        "error handlers are registered for a status code or an Exception subclass, "
        f"not {startcode!r}"
    )


def _has_code(cls: type, code: int) -> bool:
    """True for an :class:`HTTPException` subclass whose status is ``code``."""
    return issubclass(cls, HTTPException) and cls.code == code


_RULE_ARGUMENT = re.compile(r"<(?:[^<>]*:)?([A-Za-z_][A-Za-z0-9_]*)>")


def _rule_args(url: str) -> list[str]:
    """The parameter names of a routing URL, e.g. ``["id"]`` for ``/users/<int:id>``."""
    return _RULE_ARGUMENT.findall(url)


def _is_static(rule: Rule) -> bool:
    """True for a rule that matches exactly one path and redirects nowhere."""
    return (
        not rule.arguments and not rule.defaults and not rule.websocket and rule.redirect_to is None
    )


def _route_of(rule: Rule) -> Route:
    route: Route | None = getattr(rule, "route", None)
    if route is None:
        raise LookupError(f"{rule!r} was not built from a route")
    return route
