"""A faster walk of Werkzeug's routing state machine, for the requests that match a rule.

Werkzeug's :class:`~werkzeug.routing.MapAdapter` matches a path by walking the state machine
its :class:`~werkzeug.routing.Map` builds from the rules: one state per path segment, static
transitions first, then the dynamic ones by weight, backtracking on failure. It pays for that
generality on every request (a closure per call, a regex compile lookup per dynamic
transition, a list copy per segment), which costs more than the rest of a request's routing.

:class:`FastMatcher` walks the *same* states, already sorted by Werkzeug, in the same order,
with the same method, WebSocket and trailing-slash checks, but with the transitions' regexes
compiled once and without copying the path. It answers only what it can answer exactly: a
match of a plain rule (no defaults, alias or redirect). Everything else (redirects, 404,
405, converters that reject a value, rules with defaults) is reported as :data:`UNSURE`, and
the caller asks the map adapter, which stays the authority and builds the exceptions.
A walk starts at the state the path's static prefix leads to when no other state could be
tried on the way there, so its cost depends on the path's parameters, not on the number of
routes.

The most common dynamic rule, a static prefix and one parameter in the last segment
(``/user/<int:id>``), does not need a walk at all: :meth:`FastMatcher.match_leaf` looks the
prefix up, runs the one transition's regex on the last segment and picks the rule by method
from a table built once, with no list, recursion or second lookup of the converters. It
answers only when the walk would end exactly there, and leaves everything else to
:meth:`FastMatcher.match`.

:class:`MapMatchers` applies this to a blueprint tree's two maps (hosted routes first, then
those for any host) as :meth:`Blueprint.match <kyoukai.Blueprint.match>` does with the
adapters, whose answer :func:`adapter_match` gives, and :class:`MatchCache` remembers the
matches of paths that repeat.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import IntegerConverter, Map, MapAdapter, Rule, ValidationError
from werkzeug.routing.exceptions import NoMatch, RequestAliasRedirect, RequestPath
from werkzeug.routing.matcher import State, StateMachineMatcher
from werkzeug.routing.rules import RulePart

__all__ = [
    "NO_MATCH",
    "UNSURE",
    "FastMatcher",
    "MapMatchers",
    "MatchCache",
    "adapter_match",
    "is_websocket_upgrade",
]


class _Outcome:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: No rule answers the path, for any method: Werkzeug would raise a plain ``NotFound``.
NO_MATCH: Final = _Outcome("NO_MATCH")
#: The fast walk cannot give Werkzeug's exact answer; ask the map adapter.
UNSURE: Final = _Outcome("UNSURE")

Match = tuple[Rule, dict[str, Any]]

# Werkzeug's own converters are pure functions of the path, so their results can be cached.
_PURE_CONVERTERS = tuple(Map.default_converters.values())
_HTTP_SCHEMES = frozenset({"http", "https"})

# What a suffixed (``path``-like, slash-ending) transition leaves to match: the empty part
# that stands for a trailing slash.
_SLASH_TAIL: Final = ("",)


class _SlashRequired(Exception):
    """The path matches a strict-slashes rule once a slash is added: a redirect."""


def _first_accepting(rules: list[Rule]) -> tuple[dict[str, Rule], Rule | None]:
    """The rule of ``rules`` Werkzeug picks for each method of an HTTP (not WebSocket) request.

    :return: The first accepting rule per method the rules name, and the first rule that
        takes any method (for the other methods).
    """
    http_rules = [rule for rule in rules if not rule.websocket]
    named = {method for rule in http_rules for method in rule.methods or ()}
    by_method: dict[str, Rule] = {}
    for method in named:
        for rule in http_rules:
            if rule.methods is None or method in rule.methods:
                by_method[method] = rule
                break
    any_method = next((rule for rule in http_rules if rule.methods is None), None)
    return by_method, any_method


class _Node:
    """One state of Werkzeug's state machine, with its transitions ready to use.

    Werkzeug checks a state's rules one by one against the method; here the rule each method
    gets is worked out once, for HTTP requests (WebSocket ones go to Werkzeug).
    """

    __slots__ = (
        "any",
        "dynamic",
        "loose",
        "loose_any",
        "rules",
        "single",
        "slash",
        "slash_any",
        "static",
    )

    def __init__(self, state: State) -> None:
        #: The rule that ends here, by method.
        self.rules, self.any = _first_accepting(state.rules)
        #: The same for rules that also match with a trailing slash too many.
        loose = [rule for rule in state.rules if not rule.strict_slashes]
        self.loose, self.loose_any = _first_accepting(loose)
        #: The same for the rules a trailing slash away, which may call for a redirect.
        slash = state.static.get("")
        self.slash, self.slash_any = _first_accepting(slash.rules if slash is not None else [])
        self.static = {content: _Node(child) for content, child in state.static.items()}
        self.dynamic = tuple(_Transition(part, _Node(child)) for part, child in state.dynamic)
        #: The only dynamic transition, when it takes one segment and has one converter.
        self.single: _Transition | None = None
        if len(self.dynamic) == 1:
            only = self.dynamic[0]
            if not only.final and not only.suffixed and len(only.groups) == 1:
                self.single = only


class _Transition:
    """A dynamic transition: the part's regex, compiled once, and its converter groups."""

    __slots__ = ("final", "group_index", "groups", "match", "suffixed", "target")

    def __init__(self, part: RulePart, target: _Node) -> None:
        pattern = re.compile(part.content)
        self.match: Callable[[str], re.Match[str] | None] = pattern.match
        #: Consumes every remaining segment (a converter that matches slashes).
        self.final = part.final
        #: Ends in an optional slash group that tells whether the path had a trailing slash.
        self.suffixed = part.suffixed
        # Werkzeug names a part's converter groups __werkzeug_0, __werkzeug_1, ...; a custom
        # converter's regex may add groups of its own, which are not values.
        self.groups = tuple(
            sorted(
                (name for name in pattern.groupindex if name.startswith("__werkzeug_")),
                key=lambda name: int(name[11:]),
            )
        )
        #: The number of the first converter group (``m[n]`` is cheaper than by name).
        self.group_index = pattern.groupindex[self.groups[0]] if self.groups else 0
        self.target = target


#: A rule that ends a leaf, its one parameter's name and converter.
_LeafRule = tuple[Rule, str, Callable[[str], Any]]
#: A leaf: the prefix state's static transitions, the parameter's regex and group number,
#: the rule by method and for any other method (``None``: ask :meth:`FastMatcher.match`).
_Leaf = tuple[
    dict[str, _Node],
    Callable[[str], "re.Match[str] | None"],
    int,
    dict[str, _LeafRule | None],
    _LeafRule | None,
]


class FastMatcher:
    """Matches paths against one routing map's rules, as the map's adapter would.

    Build it after the map is complete; rules added to the map later are not seen.

    :param map: The routing map. Its matcher must be Werkzeug's state machine (see
        :meth:`supports`).
    :raises TypeError: If the map uses another matcher.
    """

    def __init__(self, map: Map) -> None:
        if not self.supports(map):
            raise TypeError(f"{map!r} does not use Werkzeug's state machine matcher")
        map.update()
        self._werkzeug: StateMachineMatcher = map._matcher
        self._root = _Node(self._werkzeug._root)
        #: States reached by static parts alone with no other way to try, by domain and path
        #: up to the last slash: a path's walk can start there, at its last segment.
        self._chains: dict[str, dict[str, _Node]] = {}
        if not self._root.dynamic:
            for domain, node in self._root.static.items():
                self._index_chains(domain, node, [])
        # With defaults (or an alias, or a redirect) Werkzeug may redirect a matched rule;
        # those rules are left to it. Rules compare by value and do not hash: use identities.
        endpoints_with_defaults = {r.endpoint for r in map.iter_rules() if r.defaults is not None}
        self._converters: dict[int, tuple[tuple[str, Callable[[str], Any]], ...]] = {
            id(rule): tuple((str(name), conv.to_python) for name, conv in rule._converters.items())
            for rule in map.iter_rules()
            if rule.redirect_to is None
            and not rule.alias
            and rule.endpoint not in endpoints_with_defaults
        }

        #: The one-parameter last segments after a static prefix, by prefix (see match_leaf).
        self._leaves = {
            prefix: leaf
            for prefix, node in self._chains.get("", {}).items()
            # A path with an empty segment is normalised or redirected first: not a leaf.
            if "" not in prefix.split("/")[1:] and (leaf := self._leaf(node)) is not None
        }

    def _leaf(self, node: _Node) -> _Leaf | None:
        """What :meth:`match_leaf` needs of ``node``, if its only way on is one parameter."""
        single = node.single
        if single is None:
            return None
        target = single.target

        def answer(rule: Rule | None) -> _LeafRule | None:
            converters = self._converters.get(id(rule))
            if rule is None or converters is None:
                return None
            ((name, to_python),) = converters
            converter = rule._converters[name]
            if type(converter) is IntegerConverter and not (
                converter.fixed_digits or converter.min is not None or converter.max is not None
            ):
                # Its to_python, less the checks it would skip: the regex allowed the digits.
                to_python = int
            return rule, name, to_python

        by_method = {method: answer(rule) for method, rule in target.rules.items()}
        group = single.group_index
        return node.static, single.match, group, by_method, answer(target.any)

    def _index_chains(self, domain: str, node: _Node, segments: list[str]) -> None:
        # ``node`` was reached by ``domain`` then ``segments``; from a state with dynamic
        # transitions the walk may have to come back, so no chain goes through it.
        if segments:
            self._chains.setdefault(domain, {})["/".join(segments)] = node
        if not node.dynamic:
            for content, child in node.static.items():
                self._index_chains(domain, child, [*segments, content])

    @staticmethod
    def supports(map: Map) -> bool:
        """Whether ``map`` matches with the state machine this class knows how to walk."""
        return type(map._matcher) is StateMachineMatcher

    def match(self, domain: str, path: str, method: str, websocket: bool) -> Match | _Outcome:
        """Match like :meth:`MapAdapter.match <werkzeug.routing.MapAdapter.match>` would.

        :param domain: The adapter's domain part: its subdomain, or with host matching its
            server name.
        :param path: The path, already decoded (``PATH_INFO`` as text).
        :param method: The request method, upper case.
        :param websocket: Whether the request is a WebSocket one.
        :return: ``(rule, values)`` with converted values, :data:`NO_MATCH` when no rule
            answers the path with any method, else :data:`UNSURE`.
        """
        if websocket:
            return UNSURE
        if path[:1] != "/" or path[1:2] == "/":
            path = "/" + path.lstrip("/") if path else ""
        cut = path.rfind("/")
        chains = self._chains.get(domain)
        start = chains.get(path[:cut]) if chains is not None and path else None
        try:
            if start is not None:
                found = _walk(start, (path[cut + 1 :],), 0, 1, method, [])
            else:
                parts = [domain, *path.split("/")]
                found = _walk(self._root, parts, 0, len(parts), method, [])
        except _SlashRequired:
            return UNSURE
        if found is None:
            return self._why_not(domain, path, method)
        rule, values = found
        converters = self._converters.get(id(rule))
        if converters is None:
            return UNSURE
        try:
            if len(converters) == 1:
                name, to_python = converters[0]
                return rule, {name: to_python(values[0])}
            return rule, {
                name: conv(value) for (name, conv), value in zip(converters, values, strict=True)
            }
        except ValidationError:
            return UNSURE

    def match_leaf(self, path: str, method: str) -> Match | None:
        """The match of a plain HTTP request whose path is a static prefix and one parameter.

        The walk of :meth:`match` from the prefix's state, for domain ``""``, without it:
        ``None`` wherever the walk would go further, backtrack, fail or be unsure.

        :param path: The path, already decoded.
        :param method: The request method, upper case.
        """
        cut = path.rfind("/")
        leaf = self._leaves.get(path[:cut])
        if leaf is None:
            return None
        static, match, group, by_method, any_method = leaf
        last = path[cut + 1 :]
        if not last or last in static:
            return None
        found = match(last)
        if found is None:
            return None
        answer = by_method.get(method, any_method)
        if answer is None:
            return None
        rule, name, to_python = answer
        try:
            return rule, {name: to_python(found[group])}
        except (ValidationError, ValueError):  # ValueError: too many digits for int()
            return None

    def _why_not(self, domain: str, path: str, method: str) -> _Outcome:
        """Ask Werkzeug's matcher why nothing matched: :data:`NO_MATCH` for a plain 404."""
        try:
            self._werkzeug.match(domain, path, method, False)
        except NoMatch as exc:
            if not exc.have_match_for and not exc.websocket_mismatch:
                return NO_MATCH
        except (RequestPath, RequestAliasRedirect):
            pass
        return UNSURE


def _walk(
    node: _Node, parts: Any, i: int, n: int, method: str, values: list[str]
) -> tuple[Rule, list[str]] | None:
    """Match ``parts[i:n]`` from ``node``, as ``StateMachineMatcher.match``'s ``_match`` does.

    :raises _SlashRequired: If the path matches a strict-slashes rule once a slash is added.
    """
    while True:
        if i == n:
            # Every part was consumed: a rule of this state, or one a slash away.
            rule = node.rules.get(method, node.any)
            if rule is not None:
                return rule, values
            rule = node.slash.get(method, node.slash_any)
            if rule is None:
                return None
            if rule.strict_slashes:
                raise _SlashRequired
            return rule, values
        part = parts[i]
        child = node.static.get(part)
        if i == n - 1 and part == "":
            break
        if not node.dynamic:
            # A single way on: nothing to come back to.
            if child is None:
                return None
            node, i = child, i + 1
        elif child is None and node.single is not None:
            # The same for a lone dynamic transition (the common ``/user/<int:id>``).
            m = node.single.match(part)
            if m is None:
                return None
            values = [*values, m.group(node.single.groups[0])]
            node, i = node.single.target, i + 1
        else:
            break
    if child is not None:
        found = _walk(child, parts, i + 1, n, method, values)
        if found is not None:
            return found
    for transition in node.dynamic:
        if transition.final:
            m = transition.match("/".join(parts[i:n]))
            rest, j, end = parts, n, n
        else:
            m = transition.match(part)
            rest, j, end = parts, i + 1, n
        if m is None:
            continue
        if transition.suffixed and m.groups()[-1] == "/":
            rest, j, end = _SLASH_TAIL, 0, 1
        groups = transition.groups
        if len(groups) == 1:
            found = _walk(transition.target, rest, j, end, method, [*values, m.group(groups[0])])
        else:
            found = _walk(transition.target, rest, j, end, method, [*values, *map(m.group, groups)])
        if found is not None:
            return found
    if i == n - 1 and part == "":
        # A trailing slash that this state's loose rules ignore.
        rule = node.loose.get(method, node.loose_any)
        if rule is not None:
            return rule, values
    return None


class MapMatchers:
    """The fast matchers of a blueprint tree's maps: one for any host, one for hosted routes.

    :param map: The map of the routes that answer any host.
    :param host_map: The host-matching map of the hosted routes, tried first, if any.
    """

    def __init__(self, map: Map, host_map: Map | None) -> None:
        self._any_host = FastMatcher(map) if FastMatcher.supports(map) else None
        self._hosted = None
        if host_map is not None and FastMatcher.supports(host_map):
            self._hosted = FastMatcher(host_map)
        self._has_hosts = host_map is not None
        #: The identities of the rules whose match results may be cached (rules do not hash).
        self.cacheable = frozenset(id(rule) for rule in map.iter_rules() if _is_pure(rule))

    def match_plain(self, path: str, method: str, environ: Mapping[str, Any]) -> Match | None:
        """A match found without binding: a plain HTTP request, on a map without hosts.

        Such a request binds to the subdomain ``""`` and no WebSocket, whatever its host.
        """
        if (
            self._has_hosts
            or self._any_host is None
            or "HTTP_UPGRADE" in environ
            or environ.get("wsgi.url_scheme") not in _HTTP_SCHEMES
        ):
            return None
        leaf = self._any_host.match_leaf(path, method)
        if leaf is not None:
            return leaf
        found = self._any_host.match("", path, method, False)
        return found if isinstance(found, tuple) else None

    def match_bound(
        self, path: str, method: str, adapter: MapAdapter, host_adapter: MapAdapter | None
    ) -> Match | None:
        """The match the adapters would find, when the fast matchers are sure of it."""
        if self._any_host is None:
            return None
        found: Match | _Outcome = NO_MATCH
        if host_adapter is not None:
            if self._hosted is None:
                return None
            found = self._hosted.match(
                host_adapter.server_name, path, method, host_adapter.websocket
            )
        if found is NO_MATCH:
            # The host map has no rule for the path: the map for any host has the say.
            domain = adapter.subdomain if adapter.subdomain is not None else adapter.server_name
            found = self._any_host.match(domain, path, method, adapter.websocket)
        return found if isinstance(found, tuple) else None


class MatchCache:
    """The match results of parametrised paths that repeat, bounded at ``size`` entries.

    A path is remembered the second time it is asked for. The first sighting keeps only the
    hash of ``(path, method)``, an int the garbage collector does not track, so traffic that
    never repeats a path (an id per request) leaves no objects behind: nothing to promote to
    the oldest generation, and no full collections walking the routing tables.

    :param size: How many results, and how many hashes of paths seen once, are kept; each
        set is emptied when full.
    """

    __slots__ = ("_results", "_seen_once", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._results: dict[tuple[str, str], tuple[Any, dict[str, Any], Rule]] = {}
        self._seen_once: set[int] = set()

    def get(self, key: tuple[str, str]) -> tuple[Any, dict[str, Any], Rule] | None:
        """The remembered ``(route, params, rule)`` of ``key`` (``(path, method)``), if any."""
        return self._results.get(key)

    def remember(
        self, key: tuple[str, str], route: Any, params: Mapping[str, Any], rule: Rule
    ) -> None:
        """Note a match of ``key``; keep it if ``key`` was asked for before."""
        seen = self._seen_once
        digest = hash(key)
        if digest not in seen:
            if len(seen) >= self._size:
                seen.clear()
            seen.add(digest)
            return
        results = self._results
        if len(results) >= self._size:
            results.clear()
        results[key] = (route, dict(params), rule)


def adapter_match(
    path: str, method: str, adapter: MapAdapter, host_adapter: MapAdapter | None, query: str
) -> tuple[Rule, Mapping[str, Any]]:
    """Match with the map adapters, the hosted one first; they raise the 404, 405 or redirect.

    :raises werkzeug.exceptions.MethodNotAllowed: Listing the methods of both maps.
    """
    host_methods: list[str] = []
    if host_adapter is not None:
        try:
            return host_adapter.match(path, method, return_rule=True, query_args=query)
        except NotFound:
            pass
        except MethodNotAllowed as exc:
            host_methods = list(exc.valid_methods or ())
    try:
        return adapter.match(path, method, return_rule=True, query_args=query)
    except MethodNotAllowed as exc:
        raise MethodNotAllowed([*host_methods, *(exc.valid_methods or ())]) from None
    except NotFound:
        if host_methods:
            raise MethodNotAllowed(host_methods) from None
        if method == "OPTIONS":
            # Automatic OPTIONS acts as if every route took it: redirect like GET would.
            with contextlib.suppress(NotFound, MethodNotAllowed):
                adapter.match(path, "GET", query_args=query)
        raise


def is_websocket_upgrade(environ: Mapping[str, Any]) -> bool:
    """Whether Werkzeug's ``bind_to_environ`` sees a WebSocket upgrade in ``environ``."""
    connection = environ.get("HTTP_CONNECTION", "").lower().split(",")
    return environ.get("HTTP_UPGRADE", "").lower() == "websocket" and any(
        token.strip(" \t") == "upgrade" for token in connection
    )


def _is_pure(rule: Rule) -> bool:
    """True when ``rule`` redirects nowhere and all its converters are Werkzeug's (pure)."""
    return rule.redirect_to is None and all(
        type(converter) in _PURE_CONVERTERS for converter in rule._converters.values()
    )
