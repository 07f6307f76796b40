"""Response compression as an after-request hook: br, zstd and gzip, negotiated per request.

Register :class:`Compress` on the application (``app.after_request(Compress())``) or on one
blueprint, whose subtree it then covers alone. ``br`` needs the ``brotli`` package and
``zstd`` the ``zstandard`` package (``pip install kyoukai[compression]``); without them only
``gzip`` is offered.

Strategy: a body in memory is compressed at once; a streamed body (an iterator, an async
iterator or a file) is compressed piece by piece, flushing after every piece, so each one
reaches the client as soon as the application yields it (an event stream stays live).
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.http import parse_accept_header
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from kyoukai._context import HTTPRequestContext


def _optional(name: str) -> Any:
    """The module ``name``, or ``None`` when that optional package is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - depends on what is installed
        return None


brotli = _optional("brotli")
zstandard = _optional("zstandard")

__all__ = ["CODINGS", "DEFAULT_LEVELS", "DEFAULT_MIMETYPES", "Compress", "negotiate"]

#: The codings that can be offered here, in the server's order of preference.
CODINGS: tuple[str, ...] = tuple(
    name
    for name, module in (("br", brotli), ("zstd", zstandard), ("gzip", zlib))
    if module is not None
)
#: Levels tuned for responses made per request (brotli's own default, 11, is for files).
DEFAULT_LEVELS: Mapping[str, int] = {"br": 4, "zstd": 3, "gzip": 6}
#: Media types worth compressing; ``type/*`` matches every subtype.
DEFAULT_MIMETYPES: frozenset[str] = frozenset(
    {
        "text/*",
        "application/json",
        "application/javascript",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/manifest+json",
        "application/ld+json",
        "application/geo+json",
        "application/wasm",
        "image/svg+xml",
    }
)


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...
    def finish(self) -> bytes: ...


class _Gzip:
    def __init__(self, level: int) -> None:
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def compress(self, data: bytes) -> bytes:
        return self._zlib.compress(data)

    def flush(self) -> bytes:
        return self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._zlib.flush()


class _Brotli:
    def __init__(self, level: int) -> None:
        self._brotli = brotli.Compressor(quality=level)

    def compress(self, data: bytes) -> bytes:
        return bytes(self._brotli.process(data))

    def flush(self) -> bytes:
        return bytes(self._brotli.flush())

    def finish(self) -> bytes:
        return bytes(self._brotli.finish())


class _Zstd:
    def __init__(self, level: int) -> None:
        self._zstd = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes) -> bytes:
        return bytes(self._zstd.compress(data))

    def flush(self) -> bytes:
        return bytes(self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

    def finish(self) -> bytes:
        return bytes(self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))


_COMPRESSORS: dict[str, type[_Gzip | _Brotli | _Zstd]] = {
    "br": _Brotli,
    "zstd": _Zstd,
    "gzip": _Gzip,
}


def negotiate(
    accept_encoding: str | None, codings: Iterable[str] = CODINGS
) -> tuple[str | None, bool]:
    """Pick a content coding for a request's ``Accept-Encoding`` (RFC 9110 section 12.5.3).

    The coding with the highest q-value wins, ties going to the order of ``codings``; ``*``
    stands for every coding not named. Without the header, nothing is compressed.

    :param accept_encoding: The header's value, or ``None`` if the request has none.
    :param codings: The codings the server can apply, best first.
    :return: ``(coding, identity_ok)``: the coding to use (``None`` for none), and whether an
        uncompressed body is acceptable (``identity;q=0``, or ``*;q=0`` without naming
        ``identity``, refuses it).
    """
    if accept_encoding is None:
        return None, True
    accept = parse_accept_header(accept_encoding)
    named = {value.lower() for value, _ in accept}
    identity_ok = ("identity" not in named and "*" not in named) or accept.quality("identity") > 0
    return accept.best_match(codings), identity_ok


class Compress:
    """An after-request hook compressing responses for clients that accept it.

    A response is left alone when it is a ``HEAD`` answer, informational, 204, 206 or 304,
    already has a ``Content-Encoding``, says ``Cache-Control: no-transform``, has a media type
    outside ``mimetypes``, or has a body of known size under ``min_size`` (unless the client
    refuses an uncompressed body). Compressible responses get ``Vary: Accept-Encoding``
    whether or not this client's is compressed, so caches keep the variants apart. A
    compressed response loses its ``Content-Length`` (a new one is set for a body in memory)
    and ``Accept-Ranges``, and a strong ``ETag`` becomes weak: the bytes differ from the
    resource's.

    :param min_size: Bodies of fewer bytes are sent as they are.
    :param level: The compression level: one number for every coding, or a mapping from
        coding to level; :data:`DEFAULT_LEVELS` fills in the rest.
    :param mimetypes: The media types to compress (``type/*`` matches every subtype);
        :data:`DEFAULT_MIMETYPES` if omitted.
    """

    def __init__(
        self,
        min_size: int = 500,
        level: int | Mapping[str, int] | None = None,
        mimetypes: Iterable[str] | None = None,
    ) -> None:
        self.min_size = min_size
        if isinstance(level, int):
            self.levels = dict.fromkeys(CODINGS, level)
        else:
            self.levels = {**DEFAULT_LEVELS, **(level or {})}
        unknown = set(self.levels) - set(_COMPRESSORS)
        if unknown:
            raise ValueError(f"no such coding: {', '.join(sorted(unknown))}; use br, zstd or gzip")
        types = frozenset(
            t.lower() for t in (DEFAULT_MIMETYPES if mimetypes is None else mimetypes)
        )
        self._types = frozenset(t for t in types if not t.endswith("/*"))
        self._families = tuple(t[:-1] for t in types if t.endswith("/*"))

    def __repr__(self) -> str:
        return f"<Compress min_size={self.min_size}>"

    def compressible(self, response: Response) -> bool:
        """Whether a response of this kind is ever compressed (it then varies)."""
        code = response.status_code
        headers = response.headers
        if code < 200 or code in (204, 206, 304) or "Content-Encoding" in headers:
            return False
        if response.cache_control.no_transform:
            return False
        mimetype = response.mimetype
        if not mimetype:
            return False
        return mimetype in self._types or mimetype.startswith(self._families)

    def __call__(self, ctx: HTTPRequestContext, response: Response) -> Response:
        """Compress ``response`` in place when the request and the response allow it."""
        if not self.compressible(response):
            return response
        response.vary.add("Accept-Encoding")
        request = ctx.request
        if request.method == "HEAD":
            return response
        coding, identity_ok = negotiate(request.headers.get("Accept-Encoding"))
        if coding is None:
            return response
        body = response.get_data() if response.is_sequence else None
        size: int | None = len(body) if body is not None else response.content_length
        if identity_ok and size is not None and size < self.min_size:
            return response
        compressor = _COMPRESSORS[coding](self.levels[coding])
        if body is not None:
            response.set_data(compressor.compress(body) + compressor.finish())
        else:
            source: Any = response.response
            compressed: Any = (
                _CompressedAsync(source, compressor)
                if hasattr(source, "__aiter__")
                else _Compressed(response.iter_encoded(), source, compressor)
            )
            response.response = compressed  # Werkzeug's type has no async bodies
            response.headers.pop("Content-Length", None)
        response.headers["Content-Encoding"] = coding
        response.headers.pop("Accept-Ranges", None)
        etag, weak = response.get_etag()
        if etag is not None and not weak:
            response.set_etag(etag, weak=True)
        return response


class _Compressed:
    """A WSGI body compressed piece by piece; closing it closes the original."""

    def __init__(self, pieces: Iterator[bytes], source: Any, compressor: _Compressor) -> None:
        self._pieces = pieces
        self._source = source
        self._compressor = compressor
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        while not self._done:
            piece = next(self._pieces, None)
            if piece is None:
                self._done = True
                return self._compressor.finish()
            if piece:
                return self._compressor.compress(piece) + self._compressor.flush()
        raise StopIteration

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


class _CompressedAsync:
    """An async body compressed piece by piece; closing it closes the original."""

    def __init__(self, source: Any, compressor: _Compressor) -> None:
        self._source = source
        self._pieces: AsyncIterator[bytes | str] = aiter(source)
        self._compressor = compressor
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            try:
                piece = await anext(self._pieces)
            except StopAsyncIteration:
                self._done = True
                return self._compressor.finish()
            if piece:
                data = piece.encode() if isinstance(piece, str) else bytes(piece)
                return self._compressor.compress(data) + self._compressor.flush()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()
