"""Route groups: classes whose methods are routes, hooks and error handlers.

A route group keeps shared state on ``self`` instead of in globals. Mark methods with
:func:`route` (or :func:`get`, :func:`post`, :func:`put`, :func:`patch`, :func:`delete`;
:func:`websocket` for WebSocket routes),
:func:`errorhandler`, :func:`before_request`/:func:`after_request` (or
:func:`hook`); each instance builds its own :class:`~kyoukai.blueprint.Blueprint` from them.
Keyword arguments in the class statement (``class Api(RouteGroup, prefix="/api")``) are passed
to that blueprint.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from kyoukai._hooks import check_hook_type
from kyoukai._types import F
from kyoukai.blueprint import ROUTE_GROUP_ATTRIBUTE, Blueprint, errorhandler_keys, get_rg_bp
from kyoukai.route import DEFAULT_METHODS, Route

__all__ = [
    "RouteGroup",
    "RouteGroupType",
    "after_request",
    "before_request",
    "delete",
    "errorhandler",
    "get",
    "get_rg_bp",
    "hook",
    "patch",
    "post",
    "put",
    "route",
    "websocket",
]


class RouteGroupType(type):
    """The metaclass of route groups: stores the class keyword arguments for the blueprint
    and builds the blueprint when the group is instantiated."""

    # The class statement's own arguments are positional-only, so that the blueprint's
    # keywords (``name=`` among them) never clash with them.
    def __new__(
        mcs, name: str, bases: tuple[type, ...], class_body: dict[str, Any], /, **kwargs: Any
    ) -> RouteGroupType:
        return super().__new__(mcs, name, bases, class_body)

    def __init__(
        cls, name: str, bases: tuple[type, ...], class_body: dict[str, Any], /, **kwargs: Any
    ) -> None:
        super().__init__(name, bases, class_body)
        inherited: dict[str, Any] = {}
        for base in reversed(cls.__mro__[1:]):
            inherited.update(getattr(base, "_bp_kwargs", {}))
        #: Keyword arguments for the group's blueprint.
        cls._bp_kwargs = {**inherited, **kwargs}

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        group = super().__call__(*args, **kwargs)
        cls._init_blueprint(group)
        return group

    def _init_blueprint(cls, obb: Any) -> None:
        """Build the blueprint of the route group instance ``obb`` from its marked methods."""
        bp_kwargs = dict(cls._bp_kwargs)
        bp = Blueprint(bp_kwargs.pop("name", cls.__name__), **bp_kwargs)
        # Definition order, bases first (a subclass's override keeps its base's place), so
        # hooks run in the order they were written.
        members: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            members.update(vars(klass))
        for attribute, member in members.items():
            kind = getattr(member, "rg_delegate", None)
            if kind is None:
                continue
            bound = getattr(obb, attribute)
            if kind == "route":
                new_route = bp.wrap_route(bound, **member.route_kwargs)
                for url, methods in member.route_paths:
                    bp.add_route(new_route, url, methods)
                for type_, hooks in member.route_hooks.items():
                    for route_hook in hooks:
                        new_route.add_hook(type_, route_hook.__get__(obb, cls))
            elif kind == "errorhandler":
                handler = Route(bound, should_invoke_hooks=False, do_argument_checking=False)
                for startcode, endcode, step in member.errorhandler_codes:
                    bp.add_errorhandler(handler, startcode, endcode, step)
            elif kind == "hook":
                bp.add_hook(member.hook_type, bound)
        setattr(obb, ROUTE_GROUP_ATTRIBUTE, bp)


class RouteGroup(metaclass=RouteGroupType):
    """Base class of route groups (a shorter way to write ``metaclass=RouteGroupType``).

    Define ``__init__`` freely; the group's blueprint is built after it ran.
    """


def route(url: str, methods: Iterable[str] = DEFAULT_METHODS, **kwargs: Any) -> Callable[[F], F]:
    """Mark a route group method as a route under ``url`` (see :meth:`.Blueprint.route`).

    Returns the function itself, with these attributes: ``in_group``, ``rg_delegate``,
    ``route_url``, ``route_methods``, ``route_kwargs``, ``route_hooks`` and the decorators
    ``hook(type_)``, ``before_request`` and ``after_request`` for route-specific hooks.
    Stack it to add more paths.
    """

    def decorator(func: F) -> F:
        marked: Any = func
        if getattr(marked, "rg_delegate", None) == "route":
            marked.route_paths.append((url, tuple(methods)))
            return func
        marked.in_group = True
        marked.rg_delegate = "route"
        marked.route_url = url
        marked.route_methods = tuple(methods)
        marked.route_paths = [(url, tuple(methods))]
        marked.route_kwargs = kwargs
        marked.route_hooks = defaultdict(list)

        def add_route_hook(type_: str) -> Callable[[F], F]:
            check_hook_type(type_)

            def inner(hook_func: F) -> F:
                marked.route_hooks[type_].append(hook_func)
                return hook_func

            return inner

        marked.hook = add_route_hook
        marked.before_request = add_route_hook("pre")
        marked.after_request = add_route_hook("post")
        return func

    return decorator


def get(url: str, **kwargs: Any) -> Callable[[F], F]:
    """Mark a route group method as a ``GET`` route (it answers ``HEAD`` too); as
    ``route(url, methods=["GET"])``."""
    return route(url, ("GET",), **kwargs)


def post(url: str, **kwargs: Any) -> Callable[[F], F]:
    """Mark a route group method as a ``POST`` route: ``route(url, methods=["POST"])``."""
    return route(url, ("POST",), **kwargs)


def put(url: str, **kwargs: Any) -> Callable[[F], F]:
    """Mark a route group method as a ``PUT`` route: ``route(url, methods=["PUT"])``."""
    return route(url, ("PUT",), **kwargs)


def patch(url: str, **kwargs: Any) -> Callable[[F], F]:
    """Mark a route group method as a ``PATCH`` route: ``route(url, methods=["PATCH"])``."""
    return route(url, ("PATCH",), **kwargs)


def delete(url: str, **kwargs: Any) -> Callable[[F], F]:
    """Mark a route group method as a ``DELETE`` route: ``route(url, methods=["DELETE"])``."""
    return route(url, ("DELETE",), **kwargs)


def websocket(url: str, **kwargs: Any) -> Callable[[F], F]:
    """Mark a route group method as a WebSocket route under ``url``: ``self.handler(ctx, ws,
    **params)`` (see :meth:`.Blueprint.websocket`)."""
    return route(url, ("GET",), websocket=True, **kwargs)


def errorhandler(
    startcode: int | type[Exception], endcode: int | None = None, step: int | None = None
) -> Callable[[F], F]:
    """Mark a route group method as the group's handler for a status code, a range of codes
    or an exception class (see :meth:`.Blueprint.errorhandler`). Stack it for several."""

    errorhandler_keys(startcode, endcode, step)  # refuse a bad key now, not per instance

    def decorator(func: F) -> F:
        marked: Any = func
        if getattr(marked, "rg_delegate", None) != "errorhandler":
            marked.in_group = True
            marked.rg_delegate = "errorhandler"
            marked.errorhandler_codes = []
        marked.errorhandler_codes.append((startcode, endcode, step))
        return func

    return decorator


def hook(type_: str) -> Callable[[F], F]:
    """Mark a route group method as a hook of the group's blueprint.

    :param type_: ``"pre"`` or ``"post"``.
    """
    check_hook_type(type_)

    def decorator(func: F) -> F:
        marked: Any = func
        marked.in_group = True
        marked.rg_delegate = "hook"
        marked.hook_type = type_
        return func

    return decorator


def before_request(func: F) -> F:
    """Mark a route group method as a pre-request hook of the group."""
    return hook("pre")(func)


def after_request(func: F) -> F:
    """Mark a route group method as a post-request hook of the group."""
    return hook("post")(func)
