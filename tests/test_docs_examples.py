"""Every Python example of the documentation runs, and every exchange it shows is checked.

Each page of ``docs/`` (the API reference aside) is one test. Its fenced blocks are taken
in order, as a reader meets them:

- A ```` ```python ```` block runs, in a namespace shared by the page's blocks (like a
  session at the Python prompt; ``await`` works at the top level). Functions it defines
  whose names start with ``test_`` are then called, and awaited if they are coroutines.
- A ```` ```http ```` block holds one or more exchanges: a request (request line, headers,
  a blank line, a body) followed by the response the text promises (status line, headers,
  a blank line, a body). Each request is sent with :class:`~kyoukai.testing.TestKyoukai`
  to ``app``: the page's ``app``, or, on a page that saves files, ``app`` of its module
  ``app``. The status, every header shown and the body are asserted (JSON bodies compare as
  JSON; a body that ends with a line ``...`` compares as a prefix; no body shown means an
  empty one). Headers that are not shown are not checked.
- A ```` ```{code-block} python ```` (or ``yaml``, ``toml``) block with ``:caption: name.py`` is a
  file of the reader's project: it is saved under that name in the page's project folder
  (a temporary directory, the working directory while the page runs, on ``sys.path``).
  Saved files named ``test_*.py`` are imported when the page ends and their ``test_*``
  functions run, as pytest would.
- A Python block that deliberately does not run (it serves forever, or needs a database
  server) is a ```` ```{code-block} python ```` with a caption that starts with
  ``Not run``, which the reader sees above the block, such as ``:caption: "Not run: serves
  until Ctrl+C"``. Any other Python block, or another spelling (``py``, ``pycon``), fails.
- ```` ```yaml ```` blocks are parsed, so they at least stay valid YAML.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt
from werkzeug.wrappers import Response

from kyoukai import Kyoukai, TestKyoukai

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(
    path.relative_to(DOCS).as_posix()
    for path in DOCS.rglob("*.md")
    if not path.relative_to(DOCS).parts[0].startswith(("_", "api"))
)

_REQUEST_LINE = re.compile(r"^([A-Z]+) (\S+) HTTP/1\.[01]$")
_STATUS_LINE = re.compile(r"^HTTP/1\.[01] (\d{3})(?: .*)?$")
_PYTHON_SPELLINGS = {"py", "python3", "pycon", "py3", "ipython"}


@dataclass
class Block:
    """A fenced block of a page: its language, MyST options, text and first line."""

    page: str
    line: int
    language: str
    directive: bool
    options: dict[str, str]
    text: str

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


@dataclass
class Exchange:
    """A request of an ``http`` block and the response the text shows for it."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: str = ""


def read_blocks(page: str) -> list[Block]:
    """The fenced blocks of ``page``, MyST directive options split from their text."""
    tokens = MarkdownIt("commonmark").parse((DOCS / page).read_text(encoding="utf-8"))
    blocks = []
    for token in tokens:
        if token.type != "fence" or token.map is None:
            continue
        info = token.info.strip()
        text, options = token.content, {}
        directive = info.startswith("{code-block}")
        if directive:
            info = info.removeprefix("{code-block}").strip()
            lines = text.splitlines(keepends=True)
            while lines and lines[0].startswith(":"):
                name, _, value = lines.pop(0)[1:].partition(":")
                options[name.strip()] = value.strip().strip('"')
            text = "".join(lines)
        elif info.startswith("{"):
            continue  # toctree, eval-rst and other directives
        language = info.split()[0] if info else ""
        blocks.append(Block(page, token.map[0] + 1, language, directive, options, text))
    return blocks


def _split_head(lines: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    headers = []
    while lines and lines[0].strip():
        name, _, value = lines.pop(0).partition(":")
        headers.append((name.strip(), value.strip()))
    if lines:
        lines.pop(0)
    return headers, lines


def parse_exchanges(text: str) -> list[Exchange]:
    """Split an ``http`` block into request/response pairs."""
    exchanges: list[Exchange] = []
    lines = text.splitlines()
    while lines:
        if not lines[0].strip():
            lines.pop(0)
            continue
        match = _REQUEST_LINE.match(lines.pop(0))
        assert match, f"an http block must start with a request line, not {text!r}"
        exchange = Exchange(match[1], match[2])
        exchange.headers, lines = _split_head(lines)
        body = []
        while lines and not _STATUS_LINE.match(lines[0]):
            body.append(lines.pop(0))
        exchange.body = "\n".join(body).strip()
        assert lines, f"the request {match[0]!r} is not followed by a response"
        status = _STATUS_LINE.match(lines.pop(0))
        assert status is not None
        exchange.status = int(status[1])
        exchange.response_headers, lines = _split_head(lines)
        body = []
        while lines and not (_REQUEST_LINE.match(lines[0]) and (not body or not body[-1])):
            body.append(lines.pop(0))
        exchange.response_body = "\n".join(body).strip()
        exchanges.append(exchange)
    return exchanges


async def read_body(response: Response) -> str:
    """The whole body of ``response``, streamed ones (async generators, files) included."""
    body = response.response
    if hasattr(body, "__aiter__"):
        chunks = [chunk async for chunk in body]
    elif response.direct_passthrough:
        chunks = list(body)
        response.close()  # a file sent by send_file, closed as a server does
    else:
        return response.get_data(as_text=True)
    return b"".join(c.encode() if isinstance(c, str) else c for c in chunks).decode()


def check_response(exchange: Exchange, response: Response, actual: str, where: str) -> None:
    """Assert that ``response``, whose body is ``actual``, is the one the page shows."""
    request = f"{where}: {exchange.method} {exchange.url}"
    assert response.status_code == exchange.status, (
        f"{request} answered {response.status} ({actual!r}), the page shows {exchange.status}"
    )
    for name, value in exchange.response_headers:
        assert response.headers.get(name) == value, (
            f"{request}: {name} is {response.headers.get(name)!r}, the page shows {value!r}"
        )
    shown = exchange.response_body
    if shown.endswith("..."):
        prefix = shown.removesuffix("...").strip()
        assert actual.startswith(prefix), f"{request}: the body is {actual!r}"
    elif shown and response.mimetype == "application/json":
        assert json.loads(actual) == json.loads(shown), f"{request}: the body is {actual!r}"
    else:
        assert actual.strip() == shown, f"{request}: the body is {actual!r}"


async def run_python(source: str, namespace: dict[str, Any], where: str) -> None:
    """Run ``source`` in ``namespace``, then the ``test_*`` functions it defined."""
    before = dict(namespace)
    code = compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value) and before.get(name) is not value:
            await call_test(value)


async def call_test(function: Any) -> None:
    """Call a test function of an example, awaiting it if it is a coroutine function."""
    result = function()
    if inspect.iscoroutine(result):
        await result


class PageRunner:
    """Runs the blocks of one page, in order, in one namespace and one project folder."""

    def __init__(self, page: str, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.namespace: dict[str, Any] = {"__name__": "docs_example"}
        self.saved: list[str] = []

    async def run(self) -> None:
        for block in read_blocks(self.page):
            await self.run_block(block)
        for name in self.saved:
            if Path(name).name.startswith("test_") and name.endswith(".py"):
                module = self.fresh_import(Path(name).stem)
                for attr, value in vars(module).items():
                    if attr.startswith("test_") and callable(value):
                        await call_test(value)

    async def run_block(self, block: Block) -> None:
        caption = block.options.get("caption", "")
        assert block.language not in _PYTHON_SPELLINGS, (
            f"{block.where}: write ```python, not ```{block.language}"
        )
        if block.directive and caption.lower().startswith("not run"):
            return
        if block.directive and block.language in ("python", "yaml", "toml"):
            assert re.fullmatch(r"[\w./-]+\.(py|ya?ml|toml)", caption), (
                f"{block.where}: a {{code-block}} {block.language} block is a file of the "
                'project (:caption: app.py) or marked ":caption: Not run: why"'
            )
            self.save(caption, block.text)
        elif block.language == "python":
            await run_python(block.text, self.namespace, block.where)
        elif block.language == "http":
            for exchange in parse_exchanges(block.text):
                response = await self.send(exchange)
                body = await read_body(response)
                check_response(exchange, response, body, block.where)
        elif block.language == "yaml":
            yaml.safe_load(block.text)

    def save(self, name: str, text: str) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.saved.append(name)
        # A changed file is imported afresh by whatever uses it next.
        for module_name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(str(self.folder)):
                del sys.modules[module_name]

    def fresh_import(self, module_name: str) -> Any:
        sys.modules.pop(module_name, None)
        return importlib.import_module(module_name)

    def target_app(self) -> Kyoukai:
        app = self.namespace.get("app")
        if app is None and self.saved:
            app = getattr(importlib.import_module("app"), "app", None)
        assert isinstance(app, Kyoukai), f"docs/{self.page}: an http block needs an app"
        return app

    async def send(self, exchange: Exchange) -> Response:
        client = TestKyoukai.wrap_existing_app(self.target_app())
        return await client.inject_request(
            exchange.headers, exchange.url, exchange.method, exchange.body or None
        )


@pytest.mark.parametrize("page", PAGES)
async def test_examples_of(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = PageRunner(page, tmp_path)
    try:
        await runner.run()
    finally:
        for module_name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
                del sys.modules[module_name]


def test_an_exchange_is_read_as_the_page_shows_it() -> None:
    text = (
        "POST /notes HTTP/1.1\nContent-Type: application/json\n\n"
        '{"title": "a"}\n\nHTTP/1.1 201 Created\nLocation: /notes/1\n\n{"id": 1}\n\n'
        "GET /missing HTTP/1.1\n\nHTTP/1.1 404 Not Found\n"
    )
    first, second = parse_exchanges(text)
    assert (first.method, first.url, first.body) == ("POST", "/notes", '{"title": "a"}')
    assert first.headers == [("Content-Type", "application/json")]
    assert (first.status, first.response_headers) == (201, [("Location", "/notes/1")])
    assert first.response_body == '{"id": 1}'
    assert (second.method, second.status, second.response_body) == ("GET", 404, "")


@pytest.mark.parametrize(
    ("shown", "fails"),
    [('{"id": 1}', False), ('{"id": 2}', True), ("...", False), ("", True)],
)
def test_a_response_that_differs_from_the_page_fails(shown: str, fails: bool) -> None:
    exchange = Exchange("GET", "/", status=200, response_body=shown)
    response = Response('{"id":1}', mimetype="application/json")
    if fails:
        with pytest.raises(AssertionError):
            check_response(exchange, response, '{"id":1}', "page")
    else:
        check_response(exchange, response, '{"id":1}', "page")
