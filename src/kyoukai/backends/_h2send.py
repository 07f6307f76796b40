"""Sending a response on an HTTP/2 stream, within its flow-control windows.

The response is taken apart by :func:`kyoukai.wsgi.response_parts`, as on HTTP/1.1; its
headers are checked and lowercased (:func:`._h2stream.response_headers`); a body in memory
that fits the windows goes out at once, and a larger or streamed one (pulled with the neutral
:func:`._flow.iter_body`) is cut into DATA frames that never pass the stream's or the
connection's window, the next piece pulled only once the last was sent and the client keeps
reading. The connection side (the windows' events, deadlines, resets) is the protocol's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from h2.exceptions import H2Error
from werkzeug.exceptions import InternalServerError

from kyoukai.backends._flow import ClientGone, iter_body
from kyoukai.backends._h2stream import H2State, get_header, response_headers
from kyoukai.backends._settings import ProtocolError
from kyoukai.wsgi import close_iter, response_parts

if TYPE_CHECKING:
    from kyoukai.backends.http2 import H2KyoukaiProtocol

__all__ = ["send_now", "send_refusal", "send_response"]

logger = logging.getLogger("kyoukai")

_PLAIN_TEXT = ("Content-Type", "text/plain; charset=utf-8")
#: Headers a refusal carries besides its text: the version a WebSocket client should use
#: (RFC 6455 section 4.4).
_REFUSAL_HEADERS = {"unsupported WebSocket version": [("Sec-WebSocket-Version", "13")]}


def send_now(protocol: H2KyoukaiProtocol, stream: H2State) -> bool:
    """Send a response held in memory whose body fits the windows, without awaiting.

    :return: False, having sent nothing, for any other response (:func:`send_response`
        sends those).
    """
    response = stream.response
    assert response is not None
    if type(response.response) is not list:
        return False
    environ = stream.environ
    code = response.status_code
    try:
        headers, body, _ = response_parts(response, environ, code)
        if body is None:
            return False
        no_body = environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in (204, 304)
        length = None if no_body else len(body)
        header_list = response_headers(code, headers, protocol.date_value(), length)
    except Exception:
        return False  # send_response logs it and answers 500
    conn = protocol.conn
    stream_id = stream.stream_id
    if no_body or not body:
        conn.send_headers(stream_id, header_list, end_stream=True)
    elif len(body) <= min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size):
        conn.send_headers(stream_id, header_list)
        conn.send_data(stream_id, body, end_stream=True)
    else:
        return False
    protocol._flush_soon()
    return True


async def send_response(protocol: H2KyoukaiProtocol, stream: H2State) -> None:
    """Send a stream's response (:attr:`H2State.response`): headers, then its body.

    HEAD, 1xx, 204 and 304 get no DATA. A response whose headers cannot be sent safely is
    replaced by a plain 500, logged as the application's error.
    """
    response = stream.response
    environ = stream.environ
    assert response is not None
    code = response.status_code
    iterator: Any = None
    try:
        headers, body, iterator = response_parts(response, environ, code)
        no_body = environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in (204, 304)
        length = None if body is None or no_body else len(body)
        header_list = response_headers(code, headers, protocol.date_value(), length)
    except Exception as exc:
        await _close_body(iterator)
        if isinstance(exc, ValueError):
            logger.error("Refusing to send the response to %s: %s", environ["RAW_URI"], exc)
        else:
            logger.exception("Error preparing the response to %s", environ["RAW_URI"])
        stream.response = InternalServerError().get_response(environ)
        await send_response(protocol, stream)
        return
    conn = protocol.conn
    stream_id = stream.stream_id
    if no_body or body == b"":
        await _close_body(iterator)
        conn.send_headers(stream_id, header_list, end_stream=True)
        protocol._flush_soon()
        return
    conn.send_headers(stream_id, header_list)
    if body is not None:
        await _send_data(protocol, stream, body, end=True)
        return
    declared = get_header(header_list, "content-length")
    await _send_stream(protocol, stream, iterator, int(declared) if declared else None)


async def _send_stream(
    protocol: H2KyoukaiProtocol, stream: H2State, iterator: Any, length: int | None
) -> None:
    """Send a streamed body, cut at its ``Content-Length`` (:pep:`3333`); a failing or
    short body resets the stream, so that the client cannot take it for complete."""
    sent = 0
    pieces = iter_body(iterator)
    try:
        async for data in pieces:
            if length is not None and sent + len(data) > length:
                logger.error(
                    "The response body is longer than its Content-Length of %d bytes; "
                    "cut at that length",
                    length,
                )
                data = data[: length - sent]
            sent += len(data)
            await _send_data(protocol, stream, data, end=False)
            if sent == length:
                break
    except (asyncio.CancelledError, ClientGone, H2Error):
        raise
    except Exception:
        logger.exception("Error while streaming a response body")
        protocol._reset(stream, ErrorCodes.INTERNAL_ERROR)
        return
    finally:
        await pieces.aclose()
    if length is not None and sent < length:
        logger.error("The response body is shorter than its Content-Length of %d", length)
        protocol._reset(stream, ErrorCodes.INTERNAL_ERROR)
        return
    protocol.conn.end_stream(stream.stream_id)
    protocol._flush_soon()


async def _send_data(
    protocol: H2KyoukaiProtocol, stream: H2State, data: bytes, *, end: bool
) -> None:
    """Send ``data`` on a stream as the windows allow; wait for the client meanwhile."""
    conn = protocol.conn
    flow = protocol._flow
    assert flow is not None
    sid = stream.stream_id
    while True:
        size = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
        if size >= len(data):
            conn.send_data(sid, data, end_stream=end)
            protocol._flush_soon()
            break
        if size > 0:
            conn.send_data(sid, data[:size])
            data = data[size:]
            protocol._flush()
            if flow.write_paused:
                await flow.drain()
            continue
        await protocol._wait_window(stream)
    if flow.write_paused:
        protocol._flush()
        await flow.drain()


async def _close_body(iterator: Any) -> None:
    """Close a response body that will not be sent."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
    else:
        close_iter(iterator)


def send_refusal(protocol: H2KyoukaiProtocol, stream: H2State, exc: ProtocolError) -> None:
    """Answer a request refused before the application saw it: its status, plain text.

    The body goes along only if it fits the windows; the stream is reset (``NO_ERROR``) if
    the client has not finished sending it (RFC 9113 section 8.1).
    """
    body = f"{exc.status} {exc}\n".encode("latin-1", "replace")
    pairs = [_PLAIN_TEXT, *_REFUSAL_HEADERS.get(exc.problem, ())]
    headers = response_headers(exc.status, pairs, protocol.date_value(), len(body))
    conn = protocol.conn
    sid = stream.stream_id
    try:
        fits = conn.local_flow_control_window(sid) >= len(body)
        conn.send_headers(sid, headers, end_stream=not fits)
        if fits:
            conn.send_data(sid, body, end_stream=True)
        if not stream.complete:
            conn.reset_stream(sid, ErrorCodes.NO_ERROR)
    except H2Error:
        pass  # the stream is already closed
