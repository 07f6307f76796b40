"""The common case of RFC 6455 framing, done directly: unfragmented data frames.

Most messages of a WebSocket session are whole, uncompressed text or binary frames.
:func:`parse_data_frames` reads a run of those from the start of a read, :class:`FrameReader`
also assembles one that the reads cut (a large message spans several reads), and
:func:`data_frame` writes one; everything else (control frames, fragments, extensions,
anything malformed or over the size limit) is left to the full protocol (``websockets``), at
the frame boundary where this stopped. Unmasking uses ``websockets``' C routine.

No I/O here: the caller knows whether the session is in a state where the shortcut applies
(no extension negotiated, no fragmented message or partial frame pending in the protocol).
"""

from __future__ import annotations

import struct

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = [
    "FrameBoundaries",
    "FrameReader",
    "data_frame",
    "frame_header",
    "measure_header",
    "parse_data_frames",
]

_TEXT_FIN, _BINARY_FIN = 0x81, 0x82
_U16, _U64 = struct.Struct("!H"), struct.Struct("!Q")
#: Messages read from one read: ``(payload, is_text)`` each.
Messages = list[tuple[bytes, bool]]


def parse_data_frames(data: bytes, max_size: int, pos: int = 0) -> tuple[Messages, int]:
    """The whole, masked, final text and binary frames in ``data`` from ``pos``.

    :param data: Bytes from the client.
    :param max_size: The largest payload taken here; a larger one is left to the protocol,
        which refuses it.
    :param pos: Where in ``data`` a frame starts.
    :return: ``(payload, is_text)`` of each frame read, and where they end.
    """
    messages: Messages = []
    end = len(data)
    while end - pos >= 6:
        first, second = data[pos], data[pos + 1]
        # RFC 6455 section 5.1: every client frame is masked; unmasked ones go to the full
        # protocol, which fails the connection.
        if (first != _TEXT_FIN and first != _BINARY_FIN) or second < 0x80:
            break
        length = second & 0x7F
        start = pos + 2
        if length == 126:
            if end - pos < 8:
                break
            (length,) = _U16.unpack_from(data, start)
            start += 2
        elif length == 127:
            if end - pos < 14:
                break
            (length,) = _U64.unpack_from(data, start)
            start += 8
        stop = start + 4 + length
        if length > max_size or stop > end:
            break
        payload = apply_mask(data[start + 4 : stop], data[start : start + 4])
        messages.append((payload, first == _TEXT_FIN))
        pos = stop
    return messages, pos


class FrameReader:
    """:func:`parse_data_frames` across reads: a data frame that a read cuts, in its header
    or its payload, is kept until the reads that follow complete it, and is then joined and
    unmasked once (a 256 KiB message spans two or more reads).

    Limits are those of the protocol: a frame over ``max_size`` is left to it from its first
    bytes (it fails the session with 1009 without keeping the payload).

    :param max_size: The largest payload taken here.
    """

    __slots__ = ("_head", "_mask", "_max_size", "_missing", "_pieces", "_text")

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        #: The bytes of a frame whose header is not complete yet (at most 13).
        self._head = b""
        #: The header and the payload so far of the frame being assembled.
        self._pieces: list[bytes | memoryview] = []
        self._missing = 0
        self._mask = b""
        self._text = False

    @property
    def pending(self) -> bool:
        """True while a frame begun in an earlier read is incomplete."""
        return bool(self._head) or bool(self._pieces)

    def feed(self, data: bytes) -> tuple[Messages, bytes]:
        """Read the next bytes from the client.

        :return: The messages complete, and the bytes for the protocol (from a frame
            boundary; empty when this took everything).
        """
        messages: Messages = []
        pos = 0
        if self._pieces:
            missing = self._missing
            if len(data) < missing:
                self._pieces.append(data)
                self._missing = missing - len(data)
                return messages, b""
            pieces = self._pieces
            pieces.append(memoryview(data)[:missing] if len(data) > missing else data)
            pieces[0] = b""  # the header
            messages.append((apply_mask(b"".join(pieces), self._mask), self._text))
            self._pieces = []
            pos = missing
        elif self._head:
            data, self._head = self._head + data, b""
        whole, pos = parse_data_frames(data, self._max_size, pos)
        messages += whole
        if pos == len(data) or self._begin(data, pos):
            return messages, b""
        return messages, data[pos:] if pos else data

    def _begin(self, data: bytes, pos: int) -> bool:
        """Keep the frame at ``pos`` if it is one this reads and the read cut it."""
        end = len(data)
        first = data[pos]
        if first != _TEXT_FIN and first != _BINARY_FIN:
            return False
        if end - pos >= 2 and data[pos + 1] < 0x80:
            return False  # unmasked: the protocol fails it
        header = measure_header(data, pos)
        if header is None:
            self._head = data[pos:]
            return True
        size, length = header
        if length > self._max_size:
            return False
        start = pos + size
        self._mask, self._text = data[start - 4 : start], first == _TEXT_FIN
        self._pieces = [data[pos:start]]
        if end > start:
            self._pieces.append(memoryview(data)[start:])
        self._missing = length - (end - start)
        return True

    def release(self) -> bytes:
        """The bytes of the frame begun, for the protocol to read instead (the session left
        the state where this applies); nothing is pending afterwards."""
        data = self._head or b"".join(self._pieces)
        self._head, self._pieces = b"", []
        return data


def measure_header(data: bytes, pos: int) -> tuple[int, int] | None:
    """The header size (mask included) and payload length of the frame at ``pos`` in
    ``data``, or ``None`` if its header is not complete there."""
    end = len(data)
    if end - pos < 2:
        return None
    second = data[pos + 1]
    length = second & 0x7F
    size = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if second & 0x80 else 0)
    if end - pos < size:
        return None
    if length == 126:
        (length,) = _U16.unpack_from(data, pos + 2)
    elif length == 127:
        (length,) = _U64.unpack_from(data, pos + 2)
    return size, length


def frame_header(length: int, text: bool) -> bytes:
    """The header of an unmasked, final server frame (RFC 6455 section 5.2)."""
    first = 0x81 if text else 0x82
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return bytes((first, 126)) + _U16.pack(length)
    return bytes((first, 127)) + _U64.pack(length)


def data_frame(payload: bytes, text: bool) -> bytes:
    """A whole, unmasked server frame (RFC 6455 section 5.2) carrying ``payload``."""
    return frame_header(len(payload), text) + payload


class FrameBoundaries:
    """Where the frames handed to the full protocol end.

    The shortcut may take a read only at a frame boundary, and the protocol's buffer being
    empty does not say that: it is empty too when a read ended right after a frame's header
    and the protocol waits for the payload. This walks the headers of the bytes the protocol
    is given (without reading payloads) and knows how many are still owed to its frame.
    """

    __slots__ = ("_head", "_owed")

    def __init__(self) -> None:
        self._head = b""
        self._owed = 0

    @property
    def between(self) -> bool:
        """True when every frame given to the protocol is complete."""
        return not self._owed and not self._head

    def feed(self, data: bytes) -> None:
        """Note ``data``, given to the protocol."""
        if self._head:
            data, self._head = self._head + data, b""
        end = len(data)
        pos = 0
        owed = self._owed
        while True:
            if owed:
                step = min(owed, end - pos)
                pos += step
                owed -= step
                if owed:
                    break
            if pos >= end:
                break
            header = measure_header(data, pos)
            if header is None:
                self._head = data[pos:]
                break
            size, length = header
            owed = size + length
        self._owed = owed
