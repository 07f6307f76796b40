"""The tutorial application: one page from a template, and the files under ``static/``.

Run it with Asphalt from this directory (``asphalt run config.yml``), or directly with
``python app.py``.
"""

from __future__ import annotations

from pathlib import Path

from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Response

from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.util import as_html

HERE = Path(__file__).resolve().parent

#: The application; ``config.yml`` refers to it as ``app:kyk``.
kyk = Kyoukai("my_app")


@kyk.route("/")
async def index(ctx: HTTPRequestContext) -> Response:
    # The template is plain HTML, so it is sent as it is.
    return as_html((HERE / "templates" / "index.html").read_text(encoding="utf-8"))


@kyk.route("/static/<path:filename>")
async def static(ctx: HTTPRequestContext, filename: str) -> Response:
    # send_from_directory refuses paths that leave the directory (404).
    return send_from_directory(HERE / "static", filename, ctx.environ)


if __name__ == "__main__":
    kyk.run(ip="127.0.0.1", port=4444)
