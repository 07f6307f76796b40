"""Every public name of the documented modules has a docstring that matches its signature.

The API reference is generated from these docstrings, so this is what keeps it complete:

- every module, and every name in its ``__all__``, has a docstring of its own;
- so do the public methods and properties of those classes, including what they inherit
  from Kyoukai's private base classes (the reference lists those too);
- a docstring that documents parameters (``:param name:``) documents exactly the
  signature's parameters: none missing (``*args``/``**kwargs`` may be left out), none that
  the signature does not have. A class documents its constructor's parameters.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

#: The modules of the API reference (docs/api/), at their public import paths.
DOCUMENTED_MODULES = [
    "kyoukai",
    "kyoukai.app",
    "kyoukai.blueprint",
    "kyoukai.route",
    "kyoukai.routegroup",
    "kyoukai.asphalt",
    "kyoukai.util",
    "kyoukai.static",
    "kyoukai.compression",
    "kyoukai.sse",
    "kyoukai.testing",
    "kyoukai.websocket",
    "kyoukai.wsgi",
    "kyoukai.backends.httptools_",
    "kyoukai.backends.asgi",
    "kyoukai.backends.uwsgi",
    "kyoukai.backends.gunicorn",
    "kyoukai.cli",
    "kyoukai.backends.http2",
]

_PARAM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+):", re.MULTILINE)
_OPTIONAL_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _own_members(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties of ``cls`` and of its bases defined in Kyoukai."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("kyoukai"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(value, staticmethod | classmethod):
                value = value.__func__
            if isinstance(value, property):
                yield f"{klass.__qualname__}.{name}", value.fget
            elif inspect.isfunction(value):
                yield f"{klass.__qualname__}.{name}", value


def _public_objects(module_name: str) -> Iterator[tuple[str, Any]]:
    module = importlib.import_module(module_name)
    yield module_name, module
    if module_name == "kyoukai":
        return  # re-exports only; each name is checked in its own module
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            yield f"{module_name}.{name}", obj
            for qualname, member in _own_members(obj):
                yield f"{module_name}.{qualname}", member
        elif callable(obj):
            yield f"{module_name}.{name}", obj


def docstring_problems(qualname: str, obj: Any) -> list[str]:
    """What is wrong with the docstring of ``obj`` (an empty list if nothing)."""
    doc = obj.__doc__
    if not doc or not doc.strip():
        return [f"{qualname}: no docstring"]
    if not callable(obj) or inspect.ismodule(obj):
        return []
    documented = _PARAM.findall(doc)
    if not documented:
        return []
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return []
    names = {p.name for p in parameters if p.name not in ("self", "cls")}
    required = {p.name for p in parameters if p.name in names and p.kind not in _OPTIONAL_KINDS}
    problems = []
    if unknown := sorted(set(documented) - names):
        problems.append(f"{qualname}: documents {unknown}, which the signature does not have")
    if missing := sorted(required - set(documented)):
        problems.append(f"{qualname}: does not document the parameters {missing}")
    return problems


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_every_public_name_has_a_matching_docstring(module_name: str) -> None:
    problems = [
        problem
        for name, obj in _public_objects(module_name)
        for problem in docstring_problems(name, obj)
    ]
    assert not problems, "\n".join(problems)


def _f_documented(a: int, *args: int, **kwargs: int) -> None:
    """Documented.

    :param a: Something.
    """


def _f_stale(a: int) -> None:
    """Stale.

    :param b: Not a parameter any more.
    """


def _f_partial(a: int, b: int) -> None:
    """Partial.

    :param a: Something.
    """


def _f_bare(a: int) -> None:
    """No parameter list: a one-line description is enough."""


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (_f_documented, []),
        (_f_bare, []),
        (
            _f_stale,
            [
                "x: documents ['b'], which the signature does not have",
                "x: does not document the parameters ['a']",
            ],
        ),
        (_f_partial, ["x: does not document the parameters ['b']"]),
        (lambda: None, ["x: no docstring"]),
    ],
)
def test_the_check_finds_each_kind_of_gap(func: Callable[..., Any], expected: list[str]) -> None:
    assert docstring_problems("x", func) == expected
