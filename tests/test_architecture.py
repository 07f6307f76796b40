"""The layering of ``src/kyoukai``, read from its imports with ``ast`` (no module is run).

The rules (``DESIGN.md``): the core imports no backend, no component module and not
``kyoukai.asphalt``; the bridge (``wsgi``, ``testing``, ``_head``) imports only the core; backends
import the core and the bridge, never the components; the components sit on top. The one
upward arrow allowed is the lazy import of the server inside ``Kyoukai.run``/``start``, and it
is the only import circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "kyoukai"

BRIDGE = {"kyoukai.wsgi", "kyoukai.testing", "kyoukai._testing_ws", "kyoukai._head"}
COMPONENTS = {
    "kyoukai",
    "kyoukai.asphalt",
    "kyoukai._component",
    "kyoukai._config",
    "kyoukai._deploy",
    "kyoukai._workers",
    "kyoukai.cli",
    "kyoukai.__main__",
    "kyoukai._h2component",
}
#: Modules that must stay I/O-free: they import no asyncio at run time.
PURE = {
    "kyoukai.wsgi",
    "kyoukai.websocket",
    "kyoukai._head",
    "kyoukai.backends._settings",
    "kyoukai.backends._http1",
    "kyoukai.backends._decode",
    "kyoukai.backends._proxy",
}
#: The sanctioned upward arrows: (importer, function it is inside, imported module).
LAZY_ALLOWED = {
    ("kyoukai.app", "run", "kyoukai.backends._server"),
    ("kyoukai.app", "start", "kyoukai.backends._server"),
    # The application is an ASGI application: its __call__ makes the adapter on first use.
    ("kyoukai.app", "__call__", "kyoukai.backends.asgi"),
    # Serving an Asphalt configuration behind another server starts it the one shared way.
    ("kyoukai.backends._lifecycle", "from_config", "kyoukai._deploy"),
    # The spec's GunicornAdapter.from_asphalt_config lives in the backend module the spec
    # names; only that constructor needs the configuration loader, so it imports it when called.
    ("kyoukai.backends.gunicorn", "from_asphalt_config", "kyoukai._deploy"),
    # The spec's path of H2KyoukaiComponent is kyoukai.backends.http2, but the class is a
    # component: the module re-exports it on first access, from the components layer.
    ("kyoukai.backends.http2", "__getattr__", "kyoukai._h2component"),
}
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> str:
    if name in COMPONENTS:
        return "components"
    if name in BRIDGE:
        return "bridge"
    if name.startswith("kyoukai.backends"):
        return "backends"
    return "core"


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path, package: str | None = None) -> list[tuple[str, str | None]]:
    """``(imported module, enclosing function or None)`` for each run-time import."""
    tree = ast.parse(path.read_text())
    if package is None:
        package = module_name(path)
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking(child.test):
                for other in child.orelse:
                    visit(other, function)
                continue
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    if (SRC.parent / Path(*candidate.split("."))).with_suffix(".py").exists():
                        found.append((candidate, function))
                    else:
                        found.append((base, function))
            visit(child, function)

    visit(tree, None)
    return found


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}
GRAPH = {
    name: [(target, fn) for target, fn in runtime_imports(path) if target.startswith("kyoukai")]
    for name, path in MODULES.items()
}
ALLOWED_LAYERS = {
    "core": {"core"},
    "bridge": {"core", "bridge"},
    "backends": {"core", "bridge", "backends"},
    "components": {"core", "bridge", "backends", "components"},
}


def test_every_import_points_down_the_layers() -> None:
    wrong = []
    for name, imports in GRAPH.items():
        for target, function in imports:
            if (name, function, target) in LAZY_ALLOWED:
                continue
            if layer(target) not in ALLOWED_LAYERS[layer(name)]:
                wrong.append(f"{name} ({layer(name)}) imports {target} ({layer(target)})")
    assert wrong == []


def test_no_import_circle_but_the_lazy_server_start() -> None:
    edges = {
        name: {t for t, fn in imports if (name, fn, t) not in LAZY_ALLOWED and t != name}
        for name, imports in GRAPH.items()
    }
    circles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                circles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                walk(target, [*trail, target])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert circles == []


def test_the_lazy_server_start_is_really_lazy() -> None:
    # The allowed arrows exist, and only inside those two methods.
    lazy = {(n, fn, t) for n, imports in GRAPH.items() for t, fn in imports if fn is not None}
    assert LAZY_ALLOWED <= lazy
    assert not any(t == "kyoukai.backends._server" for t, fn in GRAPH["kyoukai.app"] if fn is None)


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_modules_import_no_asyncio(name: str) -> None:
    imported = {target for target, _ in runtime_imports(MODULES[name])}
    assert not any(target == "asyncio" or target.startswith("asyncio.") for target in imported)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # The walker must see through relative, aliased and function-level imports.
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import kyoukai.backends._server\n"
        "if TYPE_CHECKING:\n    from kyoukai.asphalt import KyoukaiComponent\n"
        "def f():\n    from .._component import KyoukaiComponent\n"
    )
    found = runtime_imports(source, package="kyoukai.backends")
    assert ("kyoukai.backends._server", None) in found
    assert ("kyoukai._component", "f") in found
    assert not any(target == "kyoukai.asphalt" for target, _ in found)
