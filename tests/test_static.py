"""Static files through the test client: add_static, send_file and their HTTP semantics."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Response

from kyoukai import Blueprint, HTTPRequestContext, TestKyoukai
from kyoukai.util import send_file
from static_helpers import CANARY, CSS, JS, TRAVERSALS, make_tree


def read(response: Response) -> bytes:
    """The whole body of a (possibly file-backed) response; closes it, as a server does."""
    try:
        return b"".join(response.iter_encoded())
    finally:
        response.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def static_app(root: Path) -> TestKyoukai:
    app = TestKyoukai("site")
    app.add_static("/static", root, index="index.html")
    return app


async def get(app: TestKyoukai, url: str, **headers: str) -> Response:
    return await app.get(url, headers={k.replace("_", "-"): v for k, v in headers.items()})


# -- what a file response carries ---------------------------------------------------------------


async def test_file_has_type_with_charset_validators_and_no_cache(static_app: TestKyoukai) -> None:
    response = await get(static_app, "/static/css/site.css")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(CSS))
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert read(response) == CSS


async def test_max_age_sets_public_cache_control(root: Path) -> None:
    app = TestKyoukai("site")
    app.add_static("/static", root, max_age=3600)
    response = await get(app, "/static/css/site.css")
    read(response)
    assert response.cache_control.max_age == 3600 and response.cache_control.public
    assert response.expires is not None


async def test_binary_and_compressed_files_are_not_content_encoded(
    static_app: TestKyoukai,
) -> None:
    response = await get(static_app, "/static/data.bin")
    assert response.mimetype == "application/octet-stream"
    assert read(response) == bytes(range(256))
    response = await get(static_app, "/static/archive.tar.gz", accept_encoding="gzip")
    assert response.mimetype == "application/gzip"
    assert "Content-Encoding" not in response.headers
    read(response)


async def test_head_has_the_headers_of_get(static_app: TestKyoukai) -> None:
    response = await static_app.head("/static/css/site.css")
    response.close()
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(CSS))
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"


# -- conditional requests ----------------------------------------------------------------------


async def test_if_none_match_gives_304_without_body(static_app: TestKyoukai) -> None:
    first = await get(static_app, "/static/css/site.css")
    read(first)
    response = await get(static_app, "/static/css/site.css", if_none_match=first.headers["ETag"])
    assert response.status_code == 304
    assert response.response == []  # the file is closed already
    assert response.headers["ETag"] == first.headers["ETag"]


async def test_if_modified_since_gives_304(static_app: TestKyoukai) -> None:
    first = await get(static_app, "/static/css/site.css")
    read(first)
    since = first.headers["Last-Modified"]
    response = await get(static_app, "/static/css/site.css", if_modified_since=since)
    assert response.status_code == 304
    stale = await get(static_app, "/static/css/site.css", if_none_match='"other"')
    assert stale.status_code == 200
    read(stale)


# -- ranges --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=-16", 240, 255), ("bytes=250-", 250, 255), ("bytes=5-5", 5, 5)],
    ids=["single", "suffix", "open", "one-byte"],
)
async def test_range_gives_206_with_content_range(
    static_app: TestKyoukai, spec: str, start: int, end: int
) -> None:
    response = await get(static_app, "/static/data.bin", range=spec)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/256"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert read(response) == bytes(range(start, end + 1))


async def test_unsatisfiable_range_gives_416(static_app: TestKyoukai) -> None:
    response = await get(static_app, "/static/data.bin", range="bytes=300-400")
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */256"


async def test_several_ranges_get_the_whole_file(static_app: TestKyoukai) -> None:
    response = await get(static_app, "/static/data.bin", range="bytes=0-1,10-11")
    assert response.status_code == 200
    assert read(response) == bytes(range(256))


async def test_if_range_honoured_only_when_it_matches(static_app: TestKyoukai) -> None:
    first = await get(static_app, "/static/data.bin")
    read(first)
    etag = first.headers["ETag"]
    response = await get(static_app, "/static/data.bin", range="bytes=0-3", if_range=etag)
    assert response.status_code == 206
    assert read(response) == bytes(range(4))
    response = await get(static_app, "/static/data.bin", range="bytes=0-3", if_range='"old"')
    assert response.status_code == 200
    assert read(response) == bytes(range(256))


# -- directories and index files ----------------------------------------------------------------


async def test_directory_redirects_to_slash_then_serves_index(static_app: TestKyoukai) -> None:
    response = await get(static_app, "/static/docs?lang=en")
    assert response.status_code == 308
    assert response.headers["Location"] == "/static/docs/?lang=en"
    response = await get(static_app, "/static/docs/")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert read(response) == b"<h1>docs</h1>"


async def test_directory_without_index_is_404(static_app: TestKyoukai, root: Path) -> None:
    assert (await get(static_app, "/static/empty/")).status_code == 404
    assert (await get(static_app, "/static/")).status_code == 404  # no index.html at the root
    (root / "index.html").write_bytes(b"home")
    assert read(await get(static_app, "/static/")) == b"home"


async def test_directories_are_404_without_index(root: Path) -> None:
    app = TestKyoukai("site")
    app.add_static("/static", root)
    for url in ("/static/docs", "/static/docs/", "/static/"):
        assert (await get(app, url)).status_code == 404, url


async def test_trailing_slash_on_a_file_is_404(static_app: TestKyoukai) -> None:
    assert (await get(static_app, "/static/app.js/")).status_code == 404


# -- precompressed siblings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "body", "coding"),
    [
        ("br, gzip", b"brotli bytes", "br"),
        ("gzip", b"gzip bytes", "gzip"),
        ("gzip;q=1.0, br;q=0.5", b"gzip bytes", "gzip"),
        ("*", b"brotli bytes", "br"),
        ("br;q=0, *", b"gzip bytes", "gzip"),
        ("identity", JS, None),
        ("", JS, None),
    ],
)
async def test_precompressed_sibling_chosen_by_accept_encoding(
    static_app: TestKyoukai, accept: str, body: bytes, coding: str | None
) -> None:
    response = await get(static_app, "/static/app.js", accept_encoding=accept)
    assert response.status_code == 200
    assert read(response) == body
    assert response.headers.get("Content-Encoding") == coding
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.headers["Vary"] == "Accept-Encoding"


async def test_precompressed_variants_have_their_own_etags(static_app: TestKyoukai) -> None:
    etags = set()
    for accept in ("br", "gzip", "identity"):
        response = await get(static_app, "/static/app.js", accept_encoding=accept)
        read(response)
        etags.add(response.headers["ETag"])
    assert len(etags) == 3


async def test_precompressed_off_and_files_without_siblings_do_not_vary(root: Path) -> None:
    app = TestKyoukai("site")
    app.add_static("/static", root, precompressed=False)
    response = await get(app, "/static/app.js", accept_encoding="br, gzip")
    assert read(response) == JS and "Vary" not in response.headers
    response = await get(app, "/static/css/site.css", accept_encoding="br")
    assert read(response) == CSS and "Vary" not in response.headers


# -- what is never served ------------------------------------------------------------------------


_opened: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], str | bytes):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # records only while a test sets _opened


def real_paths(paths: list[str] | list[Path | str]) -> set[str]:
    return {os.path.realpath(path) for path in paths}


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """The paths the process opens while the test runs (from the ``open`` audit event)."""
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


async def test_traversal_catalogue_is_404_and_reads_nothing_outside(
    static_app: TestKyoukai, root: Path, opened: list[str]
) -> None:
    assert len(TRAVERSALS) >= 30
    for url in TRAVERSALS:
        response = await get(static_app, url)
        assert response.status_code == 404, url
        assert CANARY not in response.get_data(), url
        read(await get(static_app, "/static/app.js"))  # a file that may be opened
    real = real_paths(opened)
    assert real_paths([root.parent / "canary.txt", "/etc/passwd"]).isdisjoint(real)
    assert real_paths([root / "app.js"]) <= real  # the hook sees what is opened


async def test_symlinks_inside_always_served_outside_only_when_followed(root: Path) -> None:
    app = TestKyoukai("site")
    app.add_static("/static", root, follow_symlinks=True)
    assert read(await get(app, "/static/inside-link.css")) == CSS
    assert read(await get(app, "/static/outside-link.txt")) == CANARY
    assert read(await get(app, "/static/outside-dir/canary.txt")) == CANARY
    assert (await get(app, "/static/../canary.txt")).status_code == 404


async def test_inside_symlink_served_without_following(static_app: TestKyoukai) -> None:
    assert read(await get(static_app, "/static/inside-link.css")) == CSS


async def test_dotfiles_served_only_when_asked_for(root: Path) -> None:
    app = TestKyoukai("site")
    app.add_static("/static", root, dotfiles=True)
    assert read(await get(app, "/static/.env")) == b"SECRET=1\n"
    assert (await get(app, "/static/%2e%2e/canary.txt")).status_code == 404


async def test_fifo_is_never_opened(static_app: TestKyoukai, root: Path) -> None:
    os.mkfifo(root / "pipe")  # opening it would block the loop
    assert (await get(static_app, "/static/pipe")).status_code == 404


async def test_unreadable_file_is_404_not_500(
    static_app: TestKyoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("werkzeug.utils.open", refuse, raising=False)  # as for mode 000
    assert (await get(static_app, "/static/app.js")).status_code == 404


def test_missing_directory_is_refused_with_advice(tmp_path: Path) -> None:
    app = TestKyoukai("site")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        app.add_static("/static", tmp_path / "missing")


# -- URL building --------------------------------------------------------------------------------


async def test_url_for_static_carries_blueprint_prefix_and_host(root: Path) -> None:
    app = TestKyoukai("site", host_matching=True)
    assets = Blueprint("assets", prefix="/assets", host="cdn.example.com")
    assets.add_static("/files", root, endpoint="cdn")
    app.register_blueprint(assets)
    app.add_static("/static", root)

    @app.route("/")
    async def index(ctx: HTTPRequestContext) -> dict[str, str]:
        return {
            "local": ctx.url_for("static", filename="css/site.css"),
            "cdn": ctx.url_for("cdn", filename="app.js"),
        }

    response = await app.inject_request({"Host": "www.example.com"}, "/")
    assert response.json == {
        "local": "/static/css/site.css",
        "cdn": "http://cdn.example.com/assets/files/app.js",
    }
    response = await app.inject_request({"Host": "cdn.example.com"}, "/assets/files/app.js")
    assert read(response) == JS


async def test_static_routes_run_blueprint_hooks(root: Path) -> None:
    app = TestKyoukai("site")
    bp = Blueprint("assets", prefix="/assets")
    bp.add_static("/", root)
    app.register_blueprint(bp)

    @bp.after_request
    def mark(ctx: HTTPRequestContext, response: Response) -> Response:
        response.headers["X-Hook"] = "ran"
        return response

    response = await get(app, "/assets/app.js")
    assert read(response) == JS and response.headers["X-Hook"] == "ran"


# -- send_file -----------------------------------------------------------------------------------


async def test_send_file_from_a_handler(root: Path, app: TestKyoukai) -> None:
    @app.route("/report")
    async def report(ctx: HTTPRequestContext) -> Response:
        return send_file(ctx, root / "data.bin", as_attachment=True, download_name="r.bin")

    @app.route("/memory")
    async def memory(ctx: HTTPRequestContext) -> Response:
        return send_file(ctx, io.BytesIO(b"in memory"), mimetype="text/plain", max_age=60)

    response = await app.get("/report")
    assert response.headers["Content-Disposition"] == "attachment; filename=r.bin"
    assert read(response) == bytes(range(256))
    response = await app.get("/memory", headers={"Range": "bytes=3-"})
    assert response.status_code == 206 and read(response) == b"memory"
    assert response.cache_control.max_age == 60


async def test_send_file_unconditional_ignores_validators(root: Path, app: TestKyoukai) -> None:
    @app.route("/always")
    async def always(ctx: HTTPRequestContext) -> Response:
        return send_file(ctx, root / "data.bin", conditional=False)

    response = await app.get("/always", headers={"Range": "bytes=0-0", "If-None-Match": "*"})
    assert response.status_code == 200 and len(read(response)) == 256
