"""Response helpers, and the conversion of handler return values into responses.

Handlers may return a :class:`~werkzeug.wrappers.Response`, a ``str`` or ``bytes`` body, a
``dict`` or ``list`` (sent as JSON), or a tuple ``(body[, status[, headers]])``.
:func:`wrap_response` turns any of those into a response object.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

from werkzeug.datastructures import Headers
from werkzeug.http import parse_range_header
from werkzeug.utils import send_file as _send_file
from werkzeug.wrappers import Response
from werkzeug.wsgi import FileWrapper

if TYPE_CHECKING:
    from kyoukai._context import HTTPRequestContext

__all__ = ["as_html", "as_json", "as_plaintext", "send_file", "wrap_response"]

#: Bytes :func:`send_file` reads from a file per piece of the body, unless the server
#: brings its own ``wsgi.file_wrapper``.
FILE_CHUNK_SIZE = 64 * 1024
#: A ``max_age`` for :func:`send_file`: seconds, or a function of the file's path giving them.
MaxAge = int | Callable[[str | None], int | None] | None

HeadersLike = Mapping[str, str] | Headers | list[tuple[str, str]] | None


def as_html(text: str, code: int = 200, headers: HeadersLike = None) -> Response:
    """Return ``text`` as a ``text/html`` response.

    :param text: The HTML document or fragment.
    :param code: The status code of the response.
    :param headers: Extra headers for the response.
    """
    return Response(text, status=code, headers=headers, content_type="text/html; charset=utf-8")


def as_plaintext(text: str, code: int = 200, headers: HeadersLike = None) -> Response:
    """Return ``text`` as a ``text/plain`` response.

    :param text: The text to send.
    :param code: The status code of the response.
    :param headers: Extra headers for the response.
    """
    return Response(text, status=code, headers=headers, content_type="text/plain; charset=utf-8")


def as_json(
    data: Any,
    code: int = 200,
    headers: HeadersLike = None,
    *,
    json_encoder: type[json.JSONEncoder] | None = None,
    **kwargs: Any,
) -> Response:
    """Return ``data`` encoded as JSON in an ``application/json`` response.

    :param data: Anything the JSON encoder accepts, usually a ``dict`` or ``list``.
    :param code: The status code of the response.
    :param headers: Extra headers for the response.
    :param json_encoder: A :class:`json.JSONEncoder` subclass, for types the standard one
        cannot encode (dates, decimals, ...).
    :param kwargs: Passed on to :func:`json.dumps` (``indent``, ``sort_keys``, ...).
    """
    body = json.dumps(data, cls=json_encoder, **kwargs)
    return Response(body, status=code, headers=headers, content_type="application/json")


def send_file(
    ctx: HTTPRequestContext,
    path_or_file: str | os.PathLike[str] | IO[bytes],
    *,
    mimetype: str | None = None,
    as_attachment: bool = False,
    download_name: str | None = None,
    max_age: MaxAge = None,
    conditional: bool = True,
) -> Response:
    """Send one file, with Werkzeug's :func:`~werkzeug.utils.send_file` and its keywords.

    The body is streamed from the file, never read whole. With ``conditional``, the response
    answers ``If-None-Match``/``If-Modified-Since`` (304), ``Range`` (206, or 416 when no byte
    of the file is in it) and ``If-Range``; a request for several ranges gets the whole file
    (200), which RFC 9110 allows. The path is trusted: never pass one built from the request,
    use :meth:`.Blueprint.add_static` for that.

    :param ctx: The request context.
    :param path_or_file: A path, or a file object opened in binary mode.
    :param mimetype: The ``Content-Type``; guessed from the file name if omitted.
    :param as_attachment: Ask the browser to save the file instead of showing it.
    :param download_name: The file name the browser is given (the path's if omitted).
    :param max_age: Seconds a client may cache the file (``Cache-Control: public,
        max-age=N``); ``None`` sends ``no-cache``, so clients revalidate every time.
    :param conditional: Answer conditional and range requests.
    :raises werkzeug.exceptions.RequestedRangeNotSatisfiable: For a range past the end.
    """
    environ = ctx.environ
    if "wsgi.file_wrapper" not in environ:
        environ = {**environ, "wsgi.file_wrapper": file_wrapper}
    if conditional and "HTTP_RANGE" in environ:
        ranges = parse_range_header(environ["HTTP_RANGE"])
        if ranges is not None and len(ranges.ranges) > 1:
            # Werkzeug refuses several ranges with a 416; the whole file serves the client.
            environ = {key: value for key, value in environ.items() if key != "HTTP_RANGE"}
    app = ctx.app
    response = _send_file(
        path_or_file,
        environ,
        mimetype=mimetype,
        as_attachment=as_attachment,
        download_name=download_name,
        max_age=max_age,
        conditional=conditional,
        response_class=app.response_class if app is not None else None,
    )
    if response.status_code in (304, 412):
        response.close()  # no body goes out: let the file go now
        response.response = []
    return response


def file_wrapper(file: IO[bytes], buffer_size: int = FILE_CHUNK_SIZE) -> FileWrapper:
    """Wrap a file as a response body read in :data:`FILE_CHUNK_SIZE` pieces (or larger)."""
    # Werkzeug asks for 8 KiB pieces, an interpreter round trip per 8 KiB sent.
    return FileWrapper(file, max(buffer_size, FILE_CHUNK_SIZE))


def wrap_response(args: Any, response_class: type[Response] = Response) -> Response:
    """Turn a handler's return value into a response object.

    Accepts a response (returned unchanged), a ``str``/``bytes`` body, a ``dict``/``list``
    (encoded as JSON), ``None`` (an empty 204 response) or a tuple ``(body[, status[, headers]])``
    whose body may itself be any of those. Anything else is converted with ``str()``.

    :param args: The value returned by a handler or hook.
    :param response_class: The response class to build new responses with.
    :raises TypeError: If a tuple has no elements or more than three.
    """
    kind = type(args)
    if kind is str or kind is bytes:  # the usual bodies first, by exact type
        return _text_response(args, response_class)
    if kind is dict or kind is list:
        return _json_response(args, response_class)
    if isinstance(args, Response):
        return args
    if isinstance(args, tuple):
        if not 1 <= len(args) <= 3:
            raise TypeError(
                f"a handler returned a tuple of {len(args)} items; "
                "return (body[, status[, headers]])"
            )
        response = wrap_response(args[0], response_class)
        if len(args) > 1 and args[1] is not None:
            response.status = args[1]
        if len(args) > 2 and args[2]:
            response.headers.update(args[2])
        return response
    if isinstance(args, str | bytes):
        return _text_response(args, response_class)
    if isinstance(args, dict | list):
        return _json_response(args, response_class)
    if args is None:
        response = response_class(status=204)
        response.headers.pop("Content-Type", None)  # no content, nothing to describe
        return response
    return response_class(str(args))


def _text_response(body: str | bytes, response_class: type[Response]) -> Response:
    if response_class is Response and _FAST_RESPONSES:
        return _fast_response(body.encode() if isinstance(body, str) else body, _TEXT)
    return response_class(body)


def _json_response(data: dict[Any, Any] | list[Any], response_class: type[Response]) -> Response:
    body = _dumps(data)
    if response_class is Response and _FAST_RESPONSES:
        return _fast_response(body.encode(), _JSON)
    return response_class(body, content_type=_JSON)


_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


def _fast_response(body: bytes, content_type: str) -> Response:
    """A ``200`` Werkzeug response with ``body``, built without ``Response.__init__``.

    Equal to ``Response(body, content_type=content_type)`` (checked when this module is
    imported; the normal constructor is used if Werkzeug's internals ever differ), at a
    tenth of the cost: handlers returning plain values are the hot path of every server.
    """
    response = Response.__new__(Response)
    headers = Headers.__new__(Headers)
    headers._list = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    response.headers = headers
    response._status = "200 OK"
    response._status_code = 200
    response.direct_passthrough = False
    response._on_close = []
    response.response = [body]
    return response


def _same_response(first: Response, second: Response) -> bool:
    state = {**vars(first), "headers": list(first.headers.items())}
    return state == {**vars(second), "headers": list(second.headers.items())} and vars(
        first.headers
    ) == vars(second.headers)


_FAST_RESPONSES = _same_response(_fast_response(b"{}", _JSON), Response(b"{}", content_type=_JSON))


def _c_dumps() -> Callable[[Any], str] | None:
    """``json.dumps`` with its default options on a C encoder made once, not per call.

    ``None`` where the C encoder is missing or does not give ``json.dumps``'s output.
    Circular structures are not looked for: they fail with ``RecursionError`` instead of
    ``ValueError``, a 500 either way.
    """
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:
        return None
    try:
        encode = make_encoder(
            None,
            json.JSONEncoder().default,
            json.encoder.encode_basestring_ascii,
            None,
            ": ",
            ", ",
            False,
            False,
            True,
        )
    except TypeError:  # another signature
        return None

    def dumps(data: Any) -> str:
        return "".join(encode(data, 0))

    sample = {"text": 'é\n"', "numbers": [1, 2.5, -0.0, float("inf"), None, True], "n": {}}
    return dumps if dumps(sample) == json.dumps(sample) else None


_dumps: Callable[[Any], str] = _c_dumps() or json.dumps
