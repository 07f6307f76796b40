"""HTTP/2 flood budgets and the frame checks made before h2 sees the bytes.

h2 buffers a whole frame (up to 16 MiB) before it compares its length with
``SETTINGS_MAX_FRAME_SIZE``, joins a header block across any number of ``CONTINUATION``
frames before it decodes it, and answers every ``PING`` and ``SETTINGS`` with no budget.
:class:`FrameScanner` reads the 9-byte frame headers as the bytes arrive, ahead of h2, so that
an oversized frame or header block ends the connection before it is buffered (with the
error code RFC 9113 asks for where h2's differs), and counts
the frames that cost the server work without giving it a request; :class:`Budget` bounds
such counts per time window.

:func:`initiate` puts the server's own limits in its preface (``SETTINGS``).

This module does no I/O: bytes in, counts out, :class:`FloodError` when the connection must
end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

if TYPE_CHECKING:
    from h2.connection import H2Connection

    from kyoukai.backends._settings import ServerSettings

__all__ = [
    "FLOOD_WINDOW",
    "PREFACE",
    "Budget",
    "FloodError",
    "FrameScanner",
    "compression_error",
    "initiate",
]

#: The client connection preface (RFC 9113 section 3.4); h2 checks it, the scanner skips it.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Seconds over which the control-frame and reset budgets are counted.
FLOOD_WINDOW = 10.0

_HEADERS = 0x1
_CONTINUATION = 0x9
_DATA = 0x0
_SETTINGS = 0x4
_ACK = 0x1
_END_STREAM = 0x1
_END_HEADERS = 0x4
#: PRIORITY, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE: frames that open no request.
_CONTROL = frozenset((0x2, 0x3, 0x4, 0x6, 0x8))


class FloodError(Exception):
    """The client breached a limit that ends the connection.

    :param code: The ``GOAWAY`` error code to send.
    :param reason: What was breached, for the debug log.
    """

    def __init__(self, code: ErrorCodes, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Budget:
    """Counts events in fixed windows of :data:`FLOOD_WINDOW` seconds against a limit.

    :param limit: Most events per window.
    """

    __slots__ = ("_limit", "_spent", "_window_end")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._spent = 0
        self._window_end = 0.0

    def spend(self, count: int, now: float) -> bool:
        """Count ``count`` events at loop time ``now``; False once the window's limit is passed."""
        if now >= self._window_end:
            self._window_end = now + FLOOD_WINDOW
            self._spent = 0
        self._spent += count
        return self._spent <= self._limit


class FrameScanner:
    """Follows the frame boundaries of an HTTP/2 connection's incoming bytes.

    :param max_frame_size: The largest frame payload allowed (our ``SETTINGS_MAX_FRAME_SIZE``).
    :param max_header_block: The largest header block, summed over ``HEADERS`` and its
        ``CONTINUATION`` frames.
    :param preface: Whether the bytes begin with the client preface.
    """

    __slots__ = ("_block", "_max_block", "_max_frame", "_partial", "_remaining", "_skip")

    def __init__(self, max_frame_size: int, max_header_block: int, *, preface: bool = True) -> None:
        self._max_frame = max_frame_size
        self._max_block = max_header_block
        self._skip = len(PREFACE) if preface else 0
        #: The start of a frame header split across reads.
        self._partial = b""
        #: Payload bytes of the current frame still to arrive.
        self._remaining = 0
        #: Bytes of the open header block, or -1 when none is open.
        self._block = -1

    def feed(self, data: bytes) -> int:
        """Follow ``data`` and return how many control frames (and empty ``DATA``) began in it.

        :raises FloodError: ``FRAME_SIZE_ERROR`` for a frame over the size limit,
            ``ENHANCE_YOUR_CALM`` for a header block over its limit.
        """
        pos = 0
        end = len(data)
        if self._skip:
            pos = min(self._skip, end)
            self._skip -= pos
        remaining = self._remaining
        if remaining:
            if remaining >= end - pos:
                self._remaining = remaining - (end - pos)
                return 0
            pos += remaining
            self._remaining = 0
        if self._partial:
            data = self._partial + data[pos:]
            pos = 0
            end = len(data)
            self._partial = b""
        control = 0
        while pos + 9 <= end:
            length = int.from_bytes(data[pos : pos + 3])
            kind = data[pos + 3]
            flags = data[pos + 4]
            if length > self._max_frame:
                raise FloodError(
                    ErrorCodes.FRAME_SIZE_ERROR, f"a frame of {length} bytes is over the limit"
                )
            if kind in _CONTROL:
                control += 1
                if kind == _SETTINGS and flags & _ACK and length:
                    # RFC 9113 section 6.5: FRAME_SIZE_ERROR (h2 says PROTOCOL_ERROR).
                    raise FloodError(ErrorCodes.FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload")
            elif kind == _DATA:
                if length == 0 and not flags & _END_STREAM:
                    control += 1
            elif kind == _HEADERS or kind == _CONTINUATION:
                self._header_block(kind, length, flags)
            pos += 9 + length
        if pos > end:
            self._remaining = pos - end
        elif pos < end:
            self._partial = data[pos:]
        return control

    def _header_block(self, kind: int, length: int, flags: int) -> None:
        block = length if kind == _HEADERS else self._block + length
        if block > self._max_block:
            raise FloodError(
                ErrorCodes.ENHANCE_YOUR_CALM, f"a header block is over {self._max_block} bytes"
            )
        self._block = -1 if flags & _END_HEADERS else block


def compression_error(data: bytes, last_stream_id: int) -> bytes:
    """h2's output after an undecodable header block, its GOAWAY made ``COMPRESSION_ERROR``.

    RFC 9113 section 4.3 asks for that code; h2 queues the GOAWAY, last, with
    ``PROTOCOL_ERROR``.
    """
    goaway = GoAwayFrame(0, last_stream_id=last_stream_id)
    size = len(goaway.serialize())
    if len(data) >= size and data[-size + 3] == goaway.type:
        goaway.error_code = ErrorCodes.COMPRESSION_ERROR
        data = data[:-size] + goaway.serialize()
    return data


def initiate(conn: H2Connection, settings: ServerSettings, upgrade: bytes | None) -> None:
    """Queue the server's preface on ``conn``: its ``SETTINGS`` and connection window.

    ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` is always 1: WebSocket routes answer extended
    ``CONNECT`` (RFC 8441, :mod:`._h2ws`); on an application without any, routing says 404.

    :param upgrade: The ``HTTP2-Settings`` of a connection upgraded from HTTP/1.1 (h2c).
    """
    local = conn.local_settings
    streams = settings.h2_max_concurrent_streams
    local[SettingCodes.MAX_CONCURRENT_STREAMS] = streams
    local[SettingCodes.MAX_HEADER_LIST_SIZE] = settings.h2_max_header_list_size
    local[SettingCodes.INITIAL_WINDOW_SIZE] = settings.h2_initial_window_size
    local[SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
    local.acknowledge()  # these apply to the client's first frames (RFC 9113 section 6.5.3)
    conn.decoder.max_header_list_size = settings.h2_max_header_list_size
    if upgrade is None:
        conn.initiate_connection()
    else:
        conn.initiate_upgrade_connection(upgrade)
    # Advertised: the limit. Enforced by the protocol, on streams being served, with
    # REFUSED_STREAM; h2 ends the connection only for a client past twice the limit in one go.
    local[SettingCodes.MAX_CONCURRENT_STREAMS] = 2 * streams
    local.acknowledge()
    grow = settings.h2_connection_window_size - conn.inbound_flow_control_window
    if grow > 0:
        conn.increment_flow_control_window(grow)
