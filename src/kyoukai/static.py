"""Static files: the handler behind :meth:`.Blueprint.add_static`, on Werkzeug's ``send_file``.

Strategy: a requested name is refused (404) before the file system is asked anything when it
could leave the directory or name something hidden: NUL and other control characters,
backslashes, empty segments, segments starting with a dot (``..`` included), absolute paths,
and whatever Werkzeug's :func:`~werkzeug.security.safe_join` refuses (Windows device names on
Windows). The name that is left is joined to the directory and resolved; unless
``follow_symlinks`` is set, a path whose real location is outside the directory is refused
too. Only regular files are sent, so FIFOs and devices inside the directory are never opened.

A name that passed these checks is remembered with what its response needs (the path, the
chosen type, the headers Werkzeug's ``send_file`` makes, the precompressed siblings), in a
bounded cache. A plain ``GET`` of a remembered name then costs an ``open`` and an ``fstat``:
when the opened file is not the one remembered (device, inode, size or modification time
differ) the name goes through every check again. Conditional, range and ``HEAD`` requests
take Werkzeug's path, which answers them.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from werkzeug.exceptions import NotFound
from werkzeug.http import http_date
from werkzeug.security import safe_join
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from kyoukai.route import Route, RouteRule
from kyoukai.util import FILE_CHUNK_SIZE, MaxAge, file_wrapper, send_file

if TYPE_CHECKING:
    from kyoukai._context import HTTPRequestContext
    from kyoukai.blueprint import Blueprint

__all__ = ["PRECOMPRESSED", "StaticFiles", "StaticRoute", "add_static"]

#: The content codings of precompressed siblings, best first, with their file suffixes.
PRECOMPRESSED: tuple[tuple[str, str], ...] = (("br", ".br"), ("gzip", ".gz"))

# A compressed file asked for by its own name is that file, not an encoded representation.
_ENCODED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
}
_REFUSED_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\]")
#: The number of names a :class:`StaticFiles` remembers.
CACHE_SIZE = 1024
# Request headers Werkzeug's path answers: conditional and range requests.
_CONDITIONAL = (
    "HTTP_RANGE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_MATCH",
    "HTTP_IF_UNMODIFIED_SINCE",
)


class _Cached:
    """What the response for one file needs, and the identity of the file it was made for."""

    __slots__ = (
        "coding",
        "expires",
        "headers",
        "ident",
        "max_age",
        "mimetype",
        "path",
        "siblings",
        "size",
        "vary",
    )

    def __init__(self, path: str, mimetype: str, coding: str | None, vary: bool) -> None:
        self.path = path
        self.mimetype = mimetype
        self.coding = coding
        self.vary = vary
        self.ident: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.size = 0
        self.headers: list[tuple[str, str]] = []
        #: The index of the ``Expires`` header, renewed per request, and the age it adds.
        self.expires = -1
        self.max_age = 0
        #: The precompressed siblings, by content coding.
        self.siblings: dict[str, _Cached] = {}


def _ident(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


class StaticRoute(Route):
    """The route of a static directory: its rules never merge slashes.

    Werkzeug would redirect ``/static//etc/passwd`` to ``/static/etc/passwd``; refusing the
    name (404) keeps every traversal attempt answered alike.
    """

    def get_rules(self, prefix: str = "", host: str | None = None) -> list[RouteRule]:
        """The route's rules (see :meth:`.Route.get_rules`), none of them merging slashes."""
        rules = super().get_rules(prefix, host)
        for rule in rules:
            rule.merge_slashes = False
        return rules


class StaticFiles:
    """Serves the files under one directory; a route handler, made by ``add_static``.

    :param directory: The directory to serve. It must exist.
    :param max_age: Seconds clients may cache a file, or a function of its path giving
        them; ``None`` makes clients revalidate (``Cache-Control: no-cache``) every time.
    :param index: The file name (or names, tried in order) sent for a directory; ``None``
        answers directories with 404.
    :param follow_symlinks: Serve symbolic links that point outside the directory.
    :param precompressed: Send ``name.br`` or ``name.gz`` instead of ``name`` when it
        exists and the client accepts that coding.
    :param dotfiles: Serve names that start with a dot (``..`` is refused regardless).
    :raises NotADirectoryError: If ``directory`` is not a directory.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_age: MaxAge = None,
        index: str | Sequence[str] | None = None,
        follow_symlinks: bool = False,
        precompressed: bool = True,
        dotfiles: bool = False,
    ) -> None:
        root = os.path.realpath(directory)
        if not os.path.isdir(root):
            raise NotADirectoryError(
                f"cannot serve static files from {os.fspath(directory)!r}: it is not a "
                "directory (create it, or give the path relative to a known location such "
                "as Path(__file__).parent)"
            )
        #: The real path of the directory served.
        self.directory = root
        self.max_age = max_age
        #: The names tried, in order, for a directory.
        self.index: tuple[str, ...] = (index,) if isinstance(index, str) else tuple(index or ())
        self.follow_symlinks = follow_symlinks
        self.precompressed = precompressed
        self.dotfiles = dotfiles
        self._cache: dict[str, _Cached] = {}

    def __repr__(self) -> str:
        return f"<StaticFiles {self.directory!r}>"

    async def __call__(self, ctx: HTTPRequestContext, filename: str = "") -> Response:
        """Send the file ``filename`` of the directory.

        :raises werkzeug.exceptions.NotFound: If there is no such file, or the name is
            refused (see the module's documentation).
        """
        cache = self._cache
        entry = cache.get(filename)
        if entry is None:
            found = self._find(ctx, filename)
            if isinstance(found, Response):
                return found
            entry = self._remember(ctx, found)
            if len(cache) >= CACHE_SIZE:
                del cache[next(iter(cache))]
            cache[filename] = entry
        if entry.siblings:
            coding = ctx.request.accept_encodings.best_match(entry.siblings)
            if coding is not None:
                entry = entry.siblings[coding]
        environ = ctx.environ
        if environ["REQUEST_METHOD"] != "GET" or any(name in environ for name in _CONDITIONAL):
            return self._send(ctx, entry)
        try:
            file = open(entry.path, "rb")  # noqa: ASYNC230 - a local file opens at once
        except OSError:
            cache.pop(filename, None)
            raise NotFound() from None
        try:
            if _ident(os.fstat(file.fileno())) != entry.ident:
                # Changed or replaced since it was looked at: check the name again.
                file.close()
                cache.pop(filename, None)
                return await self(ctx, filename)
            headers = entry.headers
            if entry.expires >= 0:
                headers = headers.copy()
                headers[entry.expires] = ("Expires", _expires(entry.max_age))
            response_class = ctx.app.response_class if ctx.app is not None else Response
            wrap = environ.get("wsgi.file_wrapper", file_wrapper)
            return response_class(
                wrap(file, FILE_CHUNK_SIZE), headers=headers, direct_passthrough=True
            )
        except OSError:
            file.close()
            cache.pop(filename, None)
            raise NotFound() from None

    def _find(self, ctx: HTTPRequestContext, filename: str) -> str | Response:
        """The regular file ``filename`` names, or the redirect to its directory's index."""
        path = self._resolve(filename)
        info = self._stat(path) if path is not None else None
        if path is None or info is None:
            raise NotFound()
        if stat.S_ISDIR(info.st_mode) and self.index:
            if filename and not filename.endswith("/"):
                # Relative links in the index page resolve against the directory.
                query = ctx.environ.get("QUERY_STRING")
                path_info = ctx.request.script_root + ctx.request.path
                location = quote(path_info + "/") + (f"?{query}" if query else "")
                return redirect(location, 308)
            path, info = self._index(path)
        elif filename.endswith("/"):
            raise NotFound()  # a trailing slash names a directory
        if info is None or not stat.S_ISREG(info.st_mode):
            raise NotFound()
        return path

    def _index(self, directory: str) -> tuple[str, os.stat_result | None]:
        for name in self.index:
            path = os.path.join(directory, name)
            info = self._stat(path)
            if info is not None and stat.S_ISREG(info.st_mode):
                return path, info
        return directory, None

    def _resolve(self, filename: str) -> str | None:
        """The path ``filename`` names in the directory, or ``None`` if it is refused."""
        if _REFUSED_CHARACTERS.search(filename) is not None:
            return None
        parts = filename.split("/")
        if parts[-1] == "":
            parts.pop()  # a trailing slash names a directory
        for part in parts:
            if not part or part in (".", "..") or (part[0] == "." and not self.dotfiles):
                return None
        return safe_join(self.directory, *parts) if parts else self.directory

    def _inside(self, path: str) -> bool:
        if self.follow_symlinks:
            return True
        real = os.path.realpath(path)
        return real == self.directory or real.startswith(self.directory + os.sep)

    def _stat(self, path: str) -> os.stat_result | None:
        """The file's status, or ``None`` if it is missing, unreadable or outside."""
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            return None
        # Resolving links costs a system call per component: only for names that exist.
        return info if self._inside(path) else None

    def _remember(self, ctx: HTTPRequestContext, path: str) -> _Cached:
        """What the responses for ``path`` and its precompressed siblings need."""
        mimetype, encoding = mimetypes.guess_type(os.path.basename(path))
        if encoding is not None:
            mimetype = _ENCODED_TYPES.get(encoding, "application/octet-stream")
        elif mimetype is None:
            mimetype = "application/octet-stream"
        siblings = {}
        if self.precompressed:
            for name, suffix in PRECOMPRESSED:
                info = self._stat(path + suffix)
                if info is not None and stat.S_ISREG(info.st_mode):
                    siblings[name] = path + suffix
        entry = self._cached(ctx, _Cached(path, mimetype, None, bool(siblings)))
        for coding, sent in siblings.items():
            entry.siblings[coding] = self._cached(ctx, _Cached(sent, mimetype, coding, True))
        return entry

    def _cached(self, ctx: HTTPRequestContext, entry: _Cached) -> _Cached:
        """Fill ``entry`` with the headers of a plain ``GET`` and the identity of its file."""
        response = self._send(ctx, entry, conditional=False)
        with response:
            entry.ident = _ident(os.fstat(response.response.file.fileno()))  # type: ignore[union-attr]
        entry.size = entry.ident[2]
        entry.headers = response.headers.to_wsgi_list()
        entry.headers.append(("Accept-Ranges", "bytes"))
        if "Expires" in response.headers:
            entry.expires = [name for name, _ in entry.headers].index("Expires")
            entry.max_age = response.cache_control.max_age or 0
        return entry

    def _send(
        self, ctx: HTTPRequestContext, entry: _Cached, *, conditional: bool = True
    ) -> Response:
        try:
            response = send_file(
                ctx,
                entry.path,
                mimetype=entry.mimetype,
                max_age=self.max_age,
                conditional=conditional,
            )
        except OSError:
            raise NotFound() from None  # unreadable, or gone since it was looked at
        if entry.coding is not None:
            response.headers["Content-Encoding"] = entry.coding
        if entry.vary:
            response.vary.add("Accept-Encoding")
        return response


def _expires(max_age: int) -> str:
    return http_date(int(time.time() + max_age))


def add_static(
    bp: Blueprint,
    url_prefix: str,
    directory: str | os.PathLike[str],
    *,
    endpoint: str = "static",
    max_age: MaxAge = None,
    index: str | Sequence[str] | None = None,
    follow_symlinks: bool = False,
    precompressed: bool = True,
    dotfiles: bool = False,
) -> Route:
    """Serve the files under ``directory`` at ``url_prefix/<path:filename>`` of ``bp``.

    Build their URLs with ``ctx.url_for(endpoint, filename="css/site.css")``; they carry
    the blueprint's prefix and host, and its hooks run for them. Names that could leave
    the directory, hidden names and symbolic links pointing outside get a 404 (see
    :mod:`kyoukai.static`). Responses answer conditional and range requests, and ``HEAD``.

    :param bp: The blueprint (``Kyoukai.add_static`` uses the root).
    :param url_prefix: The path under the blueprint's prefix, e.g. ``"/static"``.
    :param directory: The directory to serve; it must exist.
    :param endpoint: The endpoint name for URL building. Two static directories in one
        application need two names.
    :param max_age: Seconds clients may cache a file (or a function of its path giving
        them); ``None`` makes them revalidate each time (``Cache-Control: no-cache``).
    :param index: The file (or files, tried in order) sent for a directory, which is
        then also served at ``url_prefix/``; ``None`` answers directories with 404.
    :param follow_symlinks: Serve symbolic links that point outside ``directory``.
    :param precompressed: Send ``name.br``/``name.gz`` when it exists and the client
        accepts it (with ``Content-Encoding`` and ``Vary: Accept-Encoding``).
    :param dotfiles: Serve names starting with a dot (``..`` is always refused).
    :return: The route serving the files.
    :raises NotADirectoryError: If ``directory`` is not a directory.
    """
    files = StaticFiles(
        directory,
        max_age=max_age,
        index=index,
        follow_symlinks=follow_symlinks,
        precompressed=precompressed,
        dotfiles=dotfiles,
    )
    route = StaticRoute(files, endpoint=endpoint)
    prefix = url_prefix.rstrip("/")
    if files.index:
        bp.add_route(route, prefix + "/")
    return bp.add_route(route, prefix + "/<path:filename>")
