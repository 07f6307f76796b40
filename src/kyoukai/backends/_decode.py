"""Bounded decoding of request bodies sent with ``Content-Encoding``.

This does no I/O: bytes in, bytes out, and a
:class:`~kyoukai.backends._settings.ProtocolError` when the body must be refused. Every
protocol decodes through it, so a body is bounded the same way whatever carried it.
"""

from __future__ import annotations

import zlib

from kyoukai.backends._settings import ProtocolError

__all__ = ["ContentDecoder"]


class _Inflater:
    """One ``gzip`` or ``deflate`` stage whose output never exceeds a byte budget."""

    __slots__ = ("_coding", "_gzip", "_obj", "_pending")

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._gzip = coding != "deflate"
        self._obj: zlib._Decompress | None = zlib.decompressobj(31) if self._gzip else None
        self._pending = b""

    def _start_deflate(self, data: bytes) -> bytes:
        # "deflate" should be zlib-wrapped (RFC 9110 section 8.4.1.2), but some clients send
        # a raw deflate stream; the two-byte zlib header tells them apart.
        data = self._pending + data
        if len(data) < 2:
            self._pending = data
            return b""
        self._pending = b""
        wrapped = data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
        self._obj = zlib.decompressobj(15 if wrapped else -15)
        return data

    def feed(self, data: bytes, budget: int) -> bytes:
        """Decode ``data``, producing at most ``budget + 1`` bytes (one more means too big)."""
        if self._obj is None:
            data = self._start_deflate(data)
            if self._obj is None:
                return b""
        obj = self._obj
        out: list[bytes] = []
        room = budget + 1
        try:
            while data:
                chunk = obj.decompress(data, room)
                out.append(chunk)
                room -= len(chunk)
                if room <= 0:
                    break
                if obj.eof:
                    data = obj.unused_data
                    if data and self._gzip:
                        # A multi-member gzip body: each member is decoded under the budget.
                        obj = self._obj = zlib.decompressobj(31)
                    elif data:
                        raise ProtocolError(
                            "body could not be decoded", "data after the deflate stream"
                        )
                else:
                    data = obj.unconsumed_tail
        except zlib.error as exc:
            raise ProtocolError(
                "body could not be decoded", f"the {self._coding} data is corrupt ({exc})"
            ) from None
        return b"".join(out)

    @property
    def complete(self) -> bool:
        return self._obj is not None and self._obj.eof


class ContentDecoder:
    """Decodes a request body's ``Content-Encoding`` chain with a bound on every stage's output.

    A 334-byte ``gzip(gzip(...))`` body can expand to 100 MiB, so output is produced
    incrementally with ``max_length`` and each stage stops one byte past ``limit``
    (RELIABILITY.md, decompression bombs).

    :param codings: The ``Content-Encoding`` value, e.g. ``"gzip"`` or ``"deflate, gzip"``.
    :param limit: The largest decoded body allowed.
    :param max_codings: The most stacked codings accepted.
    :raises ProtocolError: 415 for an unknown coding or too many codings.
    """

    __slots__ = ("_limit", "_produced", "_stages")

    def __init__(self, codings: str, limit: int, max_codings: int) -> None:
        names = [c.strip().lower() for c in codings.split(",")]
        names = [n for n in names if n and n != "identity"]
        if len(names) > max_codings:
            raise ProtocolError("unsupported content coding", f"more than {max_codings} codings")
        for name in names:
            if name not in ("gzip", "x-gzip", "deflate"):
                raise ProtocolError("unsupported content coding", name)
        # Codings are listed in the order they were applied, so decoding runs backwards.
        self._stages = [_Inflater(name) for name in reversed(names)]
        self._limit = limit
        self._produced = 0

    @property
    def active(self) -> bool:
        """False when every coding was ``identity``: the body passes through untouched."""
        return bool(self._stages)

    def lower_limit(self, limit: int) -> None:
        """Bound the decoded body at ``limit`` from now on (a route's limit, once routed)."""
        self._limit = min(self._limit, limit)

    def feed(self, data: bytes) -> bytes:
        """Decode the next piece of the body.

        :raises ProtocolError: 413 once the decoded body passes the limit, 400 for bad data.
        """
        budget = self._limit - self._produced
        for stage in self._stages:
            data = stage.feed(data, budget)
            if len(data) > budget:
                raise ProtocolError("decoded body too large")
        self._produced += len(data)
        return data

    def finish(self) -> None:
        """Check that every coded stream ended; a truncated body is a 400."""
        for stage in self._stages:
            if not stage.complete:
                raise ProtocolError("body could not be decoded", "the compressed body is truncated")
