"""The tutorial application: one page from a template, and the files under ``static/``.

Run it with Asphalt from this directory (``asphalt run config.yml``), or directly with
``python app.py``.
"""

from __future__ import annotations

from pathlib import Path

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


# /static/style.css and the rest of static/, cached for an hour; build their URLs with
# ctx.url_for("static", filename="style.css"). Names leaving the directory are a 404.
kyk.add_static("/static", HERE / "static", max_age=3600)


if __name__ == "__main__":
    kyk.run(ip="127.0.0.1", port=4444)
