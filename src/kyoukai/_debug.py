"""Debug mode: Werkzeug's traceback page for unexpected errors, and the start-up warnings.

The page is Werkzeug's debugger page without its interactive console: the console needs
the frames kept alive between requests and a PIN, which the synchronous
``DebuggedApplication`` middleware provides and an asynchronous core cannot offer safely.
The page's style sheet and script are served from Werkzeug's package, at the query string
the page itself links (``?__debugger__=yes&cmd=resource&f=...``).
"""

from __future__ import annotations

import ipaddress
import logging
import mimetypes
import pkgutil
import posixpath

from werkzeug.wrappers import Request, Response

__all__ = ["debugger_resource", "is_debugger_request", "traceback_response", "warn_debug"]

logger = logging.getLogger("kyoukai")

_QUERY_FLAG = "__debugger__=yes"


def traceback_response(
    exc: BaseException, request: Request, response_class: type[Response] = Response
) -> Response:
    """A 500 response showing the traceback of ``exc``.

    HTML (Werkzeug's debugger page) for clients that accept it best; plain text otherwise,
    e.g. for ``Accept: text/plain`` or an API client asking for JSON.
    """
    from werkzeug.debug.tbtools import DebugTraceback

    traceback = DebugTraceback(exc)
    if request.accept_mimetypes.best_match(("text/html", "text/plain")) == "text/html":
        page = traceback.render_debugger_html(evalex=False, secret="", evalex_trusted=False)
        return response_class(page, status=500, mimetype="text/html")
    return response_class(traceback.render_traceback_text(), status=500, mimetype="text/plain")


def is_debugger_request(query_string: str) -> bool:
    """A cheap test for a request of the debugger page's own files."""
    return _QUERY_FLAG in query_string


def debugger_resource(request: Request, response_class: type[Response] = Response) -> Response:
    """The debugger page's style sheet, script or icon named by ``?f=``, or a 404."""
    name = posixpath.basename(request.args.get("f", ""))
    data = None
    if request.args.get("cmd") == "resource" and name:
        try:
            data = pkgutil.get_data("werkzeug.debug", f"shared/{name}")
        except OSError:
            data = None
    if data is None:
        return response_class("no such debugger resource", status=404, mimetype="text/plain")
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return response_class(data, mimetype=mimetype, headers={"Cache-Control": "max-age=3600"})


def warn_debug(app_name: str, host: str) -> None:
    """Log that debug mode is on; loudly when ``host`` is not a loopback address.

    Logged at WARNING on the ``kyoukai`` logger, which reaches stderr even when logging was
    never configured.
    """
    if _is_loopback(host):
        logger.warning(
            "Debug mode is on for %r: unexpected errors answer with their traceback and "
            "source code. Never use it in production.",
            app_name,
        )
        return
    logger.warning(
        "\n%s\nDEBUG MODE ON %s, WHICH IS NOT A LOOPBACK ADDRESS: anyone who can reach it "
        "sees the tracebacks, source code and file paths of %r.\nServe debug mode on "
        "127.0.0.1 only, and never in production.\n%s",
        "!" * 72,
        host or "EVERY INTERFACE",
        app_name,
        "!" * 72,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
