"""Reading a Kyoukai component's configuration: the application reference, TLS, checked keys.

Configuration comes from YAML files and ``asphalt run --set``, so no value's type is trusted:
every check here raises an error that names the key and says what is expected.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Mapping
from difflib import get_close_matches
from importlib import import_module
from types import ModuleType
from typing import Any

from kyoukai.app import Kyoukai

__all__ = [
    "build_ssl_context",
    "check_address",
    "check_keys",
    "get_bool",
    "get_unix_socket",
    "parse_mode",
    "resolve_app",
]

#: Keys of the ``ssl`` section.
SSL_KEYS = ("enabled", "ssl_certfile", "ssl_keyfile")


def build_ssl_context(
    config: Mapping[str, Any] | ssl.SSLContext | None, *, http2: bool = False
) -> ssl.SSLContext | None:
    """Build the server's TLS context from the ``ssl`` configuration section.

    The context has the standard library's secure server defaults and accepts TLS 1.2 or
    newer. A section without ``enabled`` counts as enabled; ``enabled: false`` keeps the
    server on plain HTTP without reading the files. ALPN offers ``h2`` before ``http/1.1``
    when ``http2`` is on, ``http/1.1`` alone otherwise.

    :param config: The section (``enabled``, ``ssl_certfile``, ``ssl_keyfile``), a ready
        :class:`ssl.SSLContext` (returned as is), or ``None`` for plain HTTP.
    :param http2: Whether the server speaks HTTP/2 too.
    :raises TypeError: If the section has an unknown key or a value of the wrong type.
    :raises ValueError: If the certificate is missing or does not load.
    """
    if config is None or isinstance(config, ssl.SSLContext):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(
            f"ssl must be a mapping with enabled, ssl_certfile and ssl_keyfile, not {config!r}"
        )
    check_keys(config, SSL_KEYS, "key in the ssl section")
    if not get_bool(config, "enabled", default=True, prefix="ssl."):
        return None
    certfile = config.get("ssl_certfile")
    keyfile = config.get("ssl_keyfile")
    if not isinstance(certfile, str) or not certfile:
        raise ValueError(
            "ssl.ssl_certfile: the path of the certificate (PEM) is required when ssl is enabled"
        )
    if keyfile is not None and not isinstance(keyfile, str):
        raise TypeError(f"ssl.ssl_keyfile must be the path of the private key, not {keyfile!r}")
    for key, path in (("ssl_certfile", certfile), ("ssl_keyfile", keyfile)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"ssl.{key}: no such file: {os.path.abspath(path)!r}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise ValueError(
            f"ssl: cannot load the certificate {certfile!r} with the key {keyfile!r}: {exc}"
        ) from None
    return context


def resolve_app(app: object) -> Kyoukai:
    """Return the application ``app`` is, or refers to as ``"module:attribute"``.

    A module that is not importable is also looked for in the working directory: ``asphalt
    run`` does not put it on :data:`sys.path` (``python -m asphalt run`` does), and the
    configuration ``app: app:kyk`` names a module next to ``config.yml``.

    :raises TypeError: If the object is not a :class:`~kyoukai.app.Kyoukai` application.
    :raises ValueError: If the string is not a ``"module:attribute"`` reference.
    :raises LookupError: If the module or the attribute does not exist.
    """
    target = _import_reference(app) if isinstance(app, str) else app
    if not isinstance(target, Kyoukai):
        raise TypeError(
            f"app: {app!r} is {target!r}, not a Kyoukai application; pass the application "
            "or a 'module:attribute' reference to it"
        )
    return target


def _import_reference(ref: str) -> Any:
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"app: {ref!r} is not a 'module:attribute' reference such as 'myproject.web:app'"
        )
    target: Any = _import_module(module_name, ref)
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise LookupError(
                f"app: cannot resolve {ref!r}: {target!r} has no attribute {part!r}"
            ) from None
    return target


def _import_module(name: str, ref: str) -> ModuleType:
    top = name.partition(".")[0]
    try:
        return import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing top-level module of the reference itself is worth a second look; a
        # dependency missing inside the application is the user's error to see as it is.
        if exc.name != top and exc.name != name:
            raise
        cwd = os.getcwd()
        if any(os.path.abspath(entry or os.curdir) == cwd for entry in sys.path):
            raise LookupError(
                f"app: cannot import {name!r} for {ref!r}; run from the directory that holds "
                "it or add that directory to PYTHONPATH"
            ) from None
    sys.path.insert(0, cwd)
    try:
        return import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != top and exc.name != name:
            raise
        sys.path.remove(cwd)
        raise LookupError(
            f"app: cannot import {name!r} for {ref!r}, not even from {cwd!r}; run from the "
            "directory that holds it or add that directory to PYTHONPATH"
        ) from None


def check_keys(config: Mapping[str, Any], valid: list[str] | tuple[str, ...], what: str) -> None:
    """Raise :exc:`TypeError` naming the first unknown key, with the closest valid one."""
    for key in config:
        if key not in valid:
            close = get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"unknown Kyoukai {what} {key!r}{hint}; valid keys are: {', '.join(valid)}"
            )


def check_address(ip: object, port: object) -> None:
    # The values come from YAML or --set, so their types are not to be trusted.
    if not isinstance(ip, str) or not ip:
        raise TypeError(f"ip must be an address string such as '127.0.0.1', not {ip!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, not {port!r}")


def get_bool(config: Mapping[str, Any], key: str, *, default: bool, prefix: str = "") -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise TypeError(f"{prefix}{key} must be true or false, not {value!r}")
    return value


def get_unix_socket(config: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """The ``uds`` path and ``uds_mode`` permissions of a configuration, checked.

    :raises TypeError: If ``uds`` is not a path, or ``uds_mode`` is given without it.
    :raises ValueError: If ``uds_mode`` is not an octal permission such as ``0o660``.
    """
    path = config.get("uds")
    if path is not None and (not isinstance(path, str) or not path):
        raise TypeError(f"uds must be the path of a Unix socket, not {path!r}")
    mode = config.get("uds_mode")
    if mode is None:
        return path, None
    if path is None:
        raise TypeError("uds_mode sets the permissions of the uds socket: give uds too")
    return path, parse_mode(mode, "uds_mode")


def parse_mode(value: object, what: str) -> int:
    """File permissions from an integer or an octal string (``"660"``, ``"0o660"``).

    :raises ValueError: If the value is not a permission from 0 to 0o777.
    """
    mode: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str):
        try:
            mode = int(value.removeprefix("0o"), 8)
        except ValueError:
            mode = None
    if mode is None or not 0 <= mode <= 0o777:
        raise ValueError(f"{what} must be octal permissions such as 0o660 or '660', not {value!r}")
    return mode
