"""Proxy headers: who the client is, behind a reverse proxy the server trusts.

Behind nginx the peer of every connection is the proxy, so the proxy says who the client was
(``X-Forwarded-For``), which scheme it used (``X-Forwarded-Proto``) and which host it asked for
(``X-Forwarded-Host``), or all three in one RFC 7239 ``Forwarded`` field. A client can send
the same fields itself, so they are believed only on connections from the addresses of the
``forwarded_allow_ips`` setting (:class:`TrustedProxies`); elsewhere they stay ordinary
headers. Only the last hop is believed, the one the trusted proxy added, as Werkzeug's
``ProxyFix`` does with one proxy: anything before it came from the client.

This module does no I/O: the server decides trust once per connection and calls
:func:`apply_proxy_headers` on the environs of a trusted one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.http import parse_list_header, parse_options_header
from werkzeug.middleware.proxy_fix import ProxyFix

__all__ = ["TrustedProxies", "apply_proxy_headers"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The environ keys of the ``X-Forwarded-*`` fields.
X_FORWARDED_KEYS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
)
#: Every environ key a proxy field arrives under.
_PROXY_KEYS = frozenset((*X_FORWARDED_KEYS, "HTTP_FORWARDED"))
_SCHEMES = ("http", "https")
_ORIGINAL = ("REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT")


class TrustedProxies:
    """The peers whose proxy headers are believed: the ``forwarded_allow_ips`` setting.

    :param spec: A comma-separated list of IP addresses and networks (``10.0.0.0/8``), or
        ``*`` for every peer, connections over a Unix socket included (they have no address,
        so nothing else trusts them).
    :raises ValueError: If an entry is neither an address nor a network.
    """

    __slots__ = ("_addresses", "_any", "_networks")

    def __init__(self, spec: str) -> None:
        entries = [entry.strip() for entry in spec.split(",") if entry.strip()]
        self._any = "*" in entries
        self._addresses: frozenset[str] = frozenset()
        self._networks: tuple[_Network, ...] = ()
        if not self._any:
            self._networks = tuple(_network(entry) for entry in entries)
            self._addresses = frozenset(
                str(net.network_address)
                for net in self._networks
                if net.prefixlen == net.max_prefixlen
            )

    def trusts(self, peer: str | None) -> bool:
        """Whether proxy headers from ``peer`` are believed.

        :param peer: The peer's IP address, or ``None`` (or ``""``) for a Unix socket.
        """
        if self._any:
            return True
        if not peer:
            return False
        if peer in self._addresses:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


def _network(entry: str) -> _Network:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(
            f"forwarded_allow_ips: {entry!r} is not an IP address or network; give a "
            "comma-separated list such as '127.0.0.1,10.0.0.0/8', or '*' to trust every peer"
        ) from None


def check_trusted_proxies(spec: object) -> None:
    """Raise if ``spec`` is not a valid ``forwarded_allow_ips`` value (for the settings)."""
    if not isinstance(spec, str):
        raise TypeError(
            f"server setting 'forwarded_allow_ips' must be a string such as '127.0.0.1', "
            f"not {spec!r}"
        )
    TrustedProxies(spec)


def _keep_environ(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    return ()


#: Werkzeug's proxy handling, trusting one hop of each ``X-Forwarded-*`` field.
_X_FORWARDED = ProxyFix(_keep_environ, x_for=1, x_proto=1, x_host=1, x_port=1)


def apply_proxy_headers(environ: dict[str, Any]) -> None:
    """Take the client's address, scheme and host from a trusted proxy's fields.

    ``REMOTE_ADDR``, ``wsgi.url_scheme`` and ``HTTP_HOST`` (with ``SERVER_NAME`` and
    ``SERVER_PORT``) change; the values they had are kept under ``werkzeug.proxy_fix.orig``,
    as ``ProxyFix`` keeps them. One family of fields is used: ``X-Forwarded-*`` when any is
    present (what nginx, HAProxy and cloud load balancers send, overwriting the client's),
    ``Forwarded`` otherwise, so that a field the proxy does not set, and so passes through from
    the client, cannot override one it does. A scheme other than ``http`` or ``https`` is
    ignored.

    :param environ: The environ of a request that came from a trusted proxy.
    """
    keys = environ.keys()
    if keys.isdisjoint(_PROXY_KEYS):
        return  # the usual request: one lookup per key, in C
    if not keys.isdisjoint(X_FORWARDED_KEYS):
        scheme = environ["wsgi.url_scheme"]
        _X_FORWARDED(environ, None)  # type: ignore[arg-type]
        if environ["wsgi.url_scheme"] not in _SCHEMES:
            environ["wsgi.url_scheme"] = scheme
    else:
        _apply_forwarded(environ, environ["HTTP_FORWARDED"])


def _apply_forwarded(environ: dict[str, Any], value: str) -> None:
    """RFC 7239: the last element is the one the trusted proxy added."""
    environ["werkzeug.proxy_fix.orig"] = {key: environ.get(key) for key in _ORIGINAL}
    elements = parse_list_header(value)
    if not elements:
        return
    _, params = parse_options_header(f"_;{elements[-1]}")
    client = _node_address(params.get("for", ""))
    if client:
        environ["REMOTE_ADDR"] = client
    proto = params.get("proto", "").lower()
    if proto in _SCHEMES:
        environ["wsgi.url_scheme"] = proto
    host = params.get("host")
    if host:
        environ["HTTP_HOST"] = environ["SERVER_NAME"] = host
        if ":" in host and not host.endswith("]"):
            environ["SERVER_NAME"], environ["SERVER_PORT"] = host.rsplit(":", 1)


def _node_address(node: str) -> str | None:
    """The IP address of a ``for=`` node (RFC 7239 section 6), or ``None`` if it has none
    (``unknown``, an obfuscated ``_name``)."""
    if node.startswith("["):
        address = node[1:].partition("]")[0]
    else:
        address = node.rpartition(":")[0] if node.count(":") == 1 else node
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
