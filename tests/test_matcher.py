"""The fast matcher gives Werkzeug's answer: random rule sets, random paths, both compared."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import BaseConverter, Map, MapAdapter, RequestRedirect, Rule, ValidationError

from kyoukai._matcher import NO_MATCH, UNSURE, FastMatcher

UUID = "12345678-1234-5678-1234-567812345678"


class HexConverter(BaseConverter):
    """A custom converter: hexadecimal digits to an int."""

    regex = "[0-9a-f]+"

    def to_python(self, value: str) -> int:
        return int(value, 16)


class EvenConverter(BaseConverter):
    """A custom converter that rejects some values its regex accepts (odd numbers)."""

    regex = r"(\d+)"  # a group of its own, which is not a value

    def to_python(self, value: str) -> int:
        if int(value) % 2:
            raise ValidationError
        return int(value)


class RestConverter(BaseConverter):
    """A custom converter matching slashes, like ``path``."""

    regex = "[a-z0-9/]+?"
    part_isolating = False
    weight = 150


CONVERTERS = {"hex": HexConverter, "even": EvenConverter, "rest": RestConverter}

_STATIC = ["a", "b", "user", "12", "x.y"]
_VARIABLES = [
    "<int:{}>",
    "<int(min=3):{}>",
    "<{}>",
    "<string(length=2):{}>",
    "<path:{}>",
    "<uuid:{}>",
    "<any(a,b,ab):{}>",
    "<float:{}>",
    "<hex:{}>",
    "<even:{}>",
    "<rest:{}>",
    "x<int:{}>",
]
_METHODS = ["GET", "POST", "PUT", "DELETE"]
# Segments a path is made of: they hit the static parts and every converter, and miss them.
_PATH_SEGMENTS = ["a", "b", "ab", "user", "12", "3", "0", "7", "1.5", "x9", "x.y", "ff", "", UUID]


@st.composite
def rule_strings(draw: st.DrawFn) -> str:
    count = draw(st.integers(0, 4))
    segments = []
    for n in range(count):
        if draw(st.booleans()):
            segments.append(draw(st.sampled_from(_STATIC)))
        else:
            segments.append(draw(st.sampled_from(_VARIABLES)).format(f"v{n}"))
    trailing = "/" if segments and draw(st.booleans()) else ""
    return "/" + "/".join(segments) + trailing


@st.composite
def rules(draw: st.DrawFn, hosts: bool = False) -> list[Rule]:
    made = []
    for n in range(draw(st.integers(1, 12))):
        methods = draw(st.none() | st.sets(st.sampled_from(_METHODS), min_size=1))
        kwargs: dict[str, Any] = {
            "methods": methods,
            "strict_slashes": draw(st.booleans()),
            "endpoint": f"e{draw(st.integers(0, 6)) if draw(st.booleans()) else n + 100}",
        }
        if hosts:
            kwargs["host"] = draw(st.sampled_from(["a.example", "b.example", "<sub>.example"]))
        if draw(st.integers(0, 9)) == 0:
            kwargs["defaults"] = {"dflt": 3}
        if draw(st.integers(0, 19)) == 0:
            kwargs["redirect_to"] = "/a"
        made.append(Rule(draw(rule_strings()), **kwargs))
    return made


@st.composite
def paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(_PATH_SEGMENTS), max_size=5))
    path = "/" + "/".join(segments)
    if draw(st.integers(0, 9)) == 0:
        path = "/" + path  # merged-slashes redirects
    return path


def werkzeug_answer(adapter: MapAdapter, path: str, method: str) -> tuple[Any, ...]:
    try:
        rule, values = adapter.match(path, method, return_rule=True)
    except RequestRedirect as exc:
        return ("redirect", exc.new_url)
    except HTTPException as exc:
        return ("error", type(exc), frozenset(getattr(exc, "valid_methods", None) or ()))
    return ("match", rule, values)


def check(map_: Map, adapter: MapAdapter, domain: str, path: str, method: str) -> str:
    """Compare the two answers; return what Werkzeug said (for coverage counts)."""
    fast = _matcher_of(map_).match(domain, path, method, False)
    expected = werkzeug_answer(adapter, path, method)
    leaf = _matcher_of(map_).match_leaf(path, method) if domain == "" else None
    if leaf is not None:
        # The shortcut answers only with the walk's own match.
        assert fast == leaf, (path, method, leaf, fast)
        assert [type(v) for v in leaf[1].values()] == [type(v) for v in fast[1].values()]
    if isinstance(fast, tuple):
        assert expected[0] == "match", (path, method, fast, expected)
        assert fast[0] is expected[1]
        assert fast[1] == expected[2]
        assert [type(v) for v in fast[1].values()] == [type(v) for v in expected[2].values()]
    elif fast is NO_MATCH:
        assert expected[:2] == ("error", NotFound), (path, method, expected)
    else:
        assert fast is UNSURE
        if expected[0] == "match":
            # Only a rule Werkzeug may redirect is left to it.
            rule = expected[1]
            assert rule.redirect_to is not None or any(
                r.defaults is not None for r in map_.iter_rules() if r.endpoint == rule.endpoint
            ), (path, method, expected)
    return str(expected[0])


_MATCHERS: dict[int, tuple[Map, FastMatcher]] = {}


def _matcher_of(map_: Map) -> FastMatcher:
    """One fast matcher per map (the map is kept alive so its id is not reused)."""
    kept = _MATCHERS.get(id(map_))
    if kept is None or kept[0] is not map_:
        _MATCHERS.clear()
        kept = _MATCHERS[id(map_)] = (map_, FastMatcher(map_))
    return kept[1]


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    rules(),
    st.lists(st.tuples(paths(), st.sampled_from(_METHODS)), min_size=1, max_size=12),
    st.booleans(),
)
def test_same_answer_as_werkzeug(
    rule_set: list[Rule], requests: list[tuple[str, str]], merge_slashes: bool
) -> None:
    map_ = Map(rule_set, converters=CONVERTERS, merge_slashes=merge_slashes)
    adapter = map_.bind("example.com", "/")
    for path, method in requests:
        check(map_, adapter, adapter.subdomain or "", path, method)


@_SETTINGS
@given(
    rules(hosts=True),
    st.lists(
        st.tuples(
            st.sampled_from(["a.example", "b.example", "c.example", "x.y.example"]),
            paths(),
            st.sampled_from(_METHODS),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_same_answer_as_werkzeug_with_hosts(
    rule_set: list[Rule], requests: list[tuple[str, str, str]]
) -> None:
    map_ = Map(rule_set, converters=CONVERTERS, host_matching=True)
    for host, path, method in requests:
        adapter = map_.bind(host, "/")
        check(map_, adapter, adapter.server_name, path, method)


def test_the_random_paths_reach_every_kind_of_answer() -> None:
    """The generated paths do match rules, and also hit 404, 405 and redirects."""
    map_ = Map(
        [
            Rule("/user/<int:v0>", methods=["GET"], endpoint="user"),
            Rule("/a/", endpoint="a"),
            Rule("/b/<path:v0>", endpoint="b"),
        ]
    )
    adapter = map_.bind("example.com", "/")
    answers = {
        check(map_, adapter, "", path, method)
        for path in ("/user/12", "/user/12/", "/a", "/a/", "//a/", "/b/a/b", "/nothing")
        for method in ("GET", "POST")
    }
    assert answers == {"match", "error", "redirect"}


def test_converted_values_and_rules() -> None:
    rule_set = [
        Rule("/user/<int:id>", endpoint="user"),
        Rule("/user/me", endpoint="me"),
        Rule("/u/<uuid:id>", endpoint="uuid"),
        Rule("/files/<path:rest>/raw", endpoint="raw"),
        Rule("/f/<float:f>/<any(x,y):which>", endpoint="xy"),
        Rule("/h/<hex:n>", endpoint="hex"),
    ]
    map_ = Map(rule_set, converters=CONVERTERS)
    fast = FastMatcher(map_)
    assert fast.match("", "/user/42", "GET", False) == (rule_set[0], {"id": 42})
    assert fast.match("", "/user/me", "GET", False) == (rule_set[1], {})
    assert fast.match("", f"/u/{UUID}", "GET", False) == (rule_set[2], {"id": uuid.UUID(UUID)})
    assert fast.match("", "/files/a/b/raw", "GET", False) == (rule_set[3], {"rest": "a/b"})
    assert fast.match("", "/f/1.5/y", "GET", False) == (rule_set[4], {"f": 1.5, "which": "y"})
    assert fast.match("", "/h/ff", "GET", False) == (rule_set[5], {"n": 255})
    assert fast.match("", "/nothing", "GET", False) is NO_MATCH


def test_werkzeug_keeps_what_it_must_answer() -> None:
    map_ = Map(
        [
            Rule("/a/", endpoint="a"),
            Rule("/b", methods=["POST"], endpoint="b"),
            Rule("/e/<even:n>", endpoint="even"),
            Rule("/page/", defaults={"n": 1}, endpoint="page"),
            Rule("/page/<int:n>", endpoint="page"),
        ],
        converters=CONVERTERS,
    )
    fast = FastMatcher(map_)
    assert fast.match("", "/a", "GET", False) is UNSURE  # a slash redirect
    assert fast.match("", "/a//", "GET", False) is UNSURE  # a merged-slashes redirect
    assert fast.match("", "/b", "GET", False) is UNSURE  # 405
    assert fast.match("", "/e/3", "GET", False) is UNSURE  # the converter said no
    assert fast.match("", "/page/1", "GET", False) is UNSURE  # a redirect to the default
    assert fast.match("", "/a/", "GET", True) is UNSURE  # a WebSocket request
    assert fast.match("", "/e/4", "GET", False) == (map_._rules[2], {"n": 4})


def test_leaf_answers_one_parameter_after_a_static_prefix() -> None:
    rule_set = [
        Rule("/user/<int:id>", methods=["GET"], endpoint="user"),
        Rule("/user/<int:id>", methods=["POST"], endpoint="post"),
        Rule("/user/me", endpoint="me"),
        Rule("/page/<int(min=3):n>", endpoint="page"),
        Rule("/h/<hex:n>", endpoint="hex"),
        Rule("/a/<x>/<y>", endpoint="two"),
    ]
    map_ = Map(rule_set, converters=CONVERTERS)
    fast = FastMatcher(map_)
    assert fast.match_leaf("/user/42", "GET") == (rule_set[0], {"id": 42})
    assert fast.match_leaf("/user/42", "POST") == (rule_set[1], {"id": 42})
    assert fast.match_leaf("/page/4", "GET") == (rule_set[3], {"n": 4})
    assert fast.match_leaf("/h/ff", "GET") == (rule_set[4], {"n": 255})
    # Left to the walk: a static segment, a method with no rule, a trailing slash, a value
    # the converter refuses, an empty segment, more than one parameter, no rule at all.
    for path, method in [
        ("/user/me", "GET"),
        ("/user/42", "PUT"),
        ("/user/42/", "GET"),
        ("/user/", "GET"),
        ("/page/2", "GET"),
        ("//user/42", "GET"),
        ("/user//42", "GET"),
        ("/a/b/c", "GET"),
        ("/nothing/1", "GET"),
    ]:
        assert fast.match_leaf(path, method) is None, (path, method)


def test_an_id_too_long_for_int_is_werkzeugs_404() -> None:
    map_ = Map([Rule("/user/<int:id>", endpoint="user")])
    path = "/user/" + "1" * 5000  # past int()'s digit limit: Werkzeug's converter says no
    assert FastMatcher(map_).match_leaf(path, "GET") is None
    assert werkzeug_answer(map_.bind("example.com", "/"), path, "GET")[:2] == ("error", NotFound)
