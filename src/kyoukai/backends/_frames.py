"""The common case of RFC 6455 framing, done directly: whole, unfragmented data frames.

Most messages of a WebSocket session are small, whole, uncompressed text or binary frames.
:func:`parse_data_frames` reads a run of those from the start of a read, and
:func:`data_frame` writes one; everything else (control frames, fragments, extensions, a
frame cut by the read, anything malformed) is left to the full protocol (``websockets``), at
the frame boundary where this stopped. Unmasking uses ``websockets``' C routine.

No I/O here, and no state: the caller knows whether the session is in a state where the
shortcut applies (no extension negotiated, no fragmented message or partial frame pending).
"""

from __future__ import annotations

import struct

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["data_frame", "parse_data_frames"]

_TEXT_FIN, _BINARY_FIN = 0x81, 0x82
_U16, _U64 = struct.Struct("!H"), struct.Struct("!Q")


def parse_data_frames(data: bytes, max_size: int) -> tuple[list[tuple[bytes, bool]], int]:
    """The whole, masked, final text and binary frames at the start of ``data``.

    :param data: Bytes from the client, starting at a frame boundary.
    :param max_size: The largest payload taken here; a larger one is left to the protocol,
        which refuses it.
    :return: ``(payload, is_text)`` of each frame read, and how many bytes they took.
    """
    messages: list[tuple[bytes, bool]] = []
    pos, end = 0, len(data)
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


def data_frame(payload: bytes, text: bool) -> bytes:
    """A whole, unmasked server frame (RFC 6455 section 5.2) carrying ``payload``."""
    first = b"\x81" if text else b"\x82"
    length = len(payload)
    if length < 126:
        return first + bytes((length,)) + payload
    if length < 1 << 16:
        return first + b"\x7e" + _U16.pack(length) + payload
    return first + b"\x7f" + _U64.pack(length) + payload
