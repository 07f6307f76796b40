"""Sphinx configuration of the Kyoukai documentation (``make docs`` builds it).

The guides are Markdown (MyST); the API reference is generated from the docstrings.
``make docs`` runs ``sphinx-build -W --keep-going -n``: every warning, and every
cross-reference that does not resolve, fails the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import kyoukai

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "Kyoukai"
author = "The Kyoukai developers"
copyright = "the Kyoukai developers"
release = kyoukai.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "http_exchanges",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# "## Routes" gets the anchor "#routes", so pages link to each other's sections by name.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# The reference documents what the docstrings say, in source order, with the types in the
# signatures as the code writes them.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
add_module_names = False
python_use_unqualified_type_names = True

# Links to the Python, Werkzeug and Asphalt documentation. Their inventories are fetched
# over the network, so they are used where the network is (Read the Docs sets READTHEDOCS,
# or set KYOUKAI_DOCS_INTERSPHINX=1); offline, `make docs` builds without them and names
# from those projects are shown as plain text.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "werkzeug": ("https://werkzeug.palletsprojects.com/en/stable", None),
    # As Asphalt's own component projects do (names it no longer has stay plain text).
    "asphalt": ("https://asphalt.readthedocs.io/en/latest", None),
}
if not (os.environ.get("READTHEDOCS") or os.environ.get("KYOUKAI_DOCS_INTERSPHINX")):
    intersphinx_mapping = {}

# Nitpicky mode (-n) checks every cross-reference. References into our own package must
# resolve, except to private modules and classes (``kyoukai._types.F``), which are shown as
# text. Names from the standard library and the libraries we build on resolve through
# intersphinx when it is on, and are plain text otherwise, so they are not errors here.
nitpicky = True
_EXTERNAL = (
    r"(werkzeug|asphalt|asyncio|_asyncio|contextvars|io|json|ssl|ssl_module|typing|collections"
    r"|gunicorn|argparse|os|h2|hyperframe)\..*"
)
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL),
    (r"py:.*", r"kyoukai\.(\w+\.)*_\w+(\..*)?"),
    # Annotations that name a class imported only for type checking, a private class or
    # alias, or a typeshed alias in a base class's signature (Werkzeug's ``Request``).
    (
        r"py:class",
        r"Context|Rule|ServerState|ServerSettings|KyoukaiServer|RouteDecorator|ConfigSource"
        r"|Response|MaxAge|Header|BodyStream|WSGIEnvironment",
    ),
]
html_theme = "furo"
html_title = f"Kyoukai {release}"
html_static_path: list[str] = []
pygments_style = "friendly"
pygments_dark_style = "monokai"


def _drop_object_base(app: Any, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """List base classes other than ``object`` only: "Bases: object" tells nothing."""
    if bases == [object]:
        bases.clear()


def setup(app: Any) -> None:
    app.connect("autodoc-process-bases", _drop_object_base)
