"""``kyoukai run --workers N``: several processes under gunicorn's arbiter.

gunicorn's documented custom-application API (:class:`gunicorn.app.base.BaseApplication`) runs
its arbiter with :class:`~kyoukai.backends.gunicorn.KyoukaiWorker` and the command's options,
so process management (heartbeats, restarts, graceful stops, ``kill -HUP``) is gunicorn's, not
a new one. The arbiter never imports the application (gunicorn's ``preload_app = False``):
each worker loads it after the fork and starts its own Asphalt context (and a configuration's
components), so the workers that ``kill -HUP`` starts run the code as it is then.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kyoukai._deploy import load_config

if TYPE_CHECKING:
    from kyoukai.backends.gunicorn import GunicornAdapter

__all__ = ["configured_address", "run_workers"]

WORKER_CLASS = "kyoukai.backends.gunicorn.KyoukaiWorker"


def run_workers(
    make_adapter: Callable[[], GunicornAdapter],
    options: dict[str, Any],
    args: argparse.Namespace,
    address: tuple[str, int],
    uds_mode: int | None,
) -> int:
    """Run ``args.workers`` workers under gunicorn until the arbiter stops.

    :param make_adapter: Makes what a worker serves; called in each worker, after the fork.
    :param options: The server settings of the command line.
    :param args: The parsed command line.
    :param address: The address to bind unless ``--host``, ``--port`` or ``--uds`` say.
    :param uds_mode: The permissions of the Unix socket, if one is served.
    """
    from gunicorn.app.base import BaseApplication

    host = args.host or address[0]
    port = args.port if args.port is not None else address[1]
    config: dict[str, Any] = {
        "bind": [f"unix:{args.uds}" if args.uds else f"{host}:{port}"],
        "workers": args.workers,
        "worker_class": WORKER_CLASS,
        "loglevel": args.log_level,
        "accesslog": "-" if args.access_log else None,
        "certfile": args.certfile,
        "keyfile": args.keyfile or args.certfile,
        "proc_name": f"kyoukai {args.target}",
        "preload_app": False,
    }
    for name, setting in GUNICORN_OWNS.items():
        if options.get(name) is not None:
            config[setting] = _gunicorn_value(name, options[name])
    if args.uds and uds_mode is not None:
        path, mode = args.uds, uds_mode
        config["when_ready"] = lambda arbiter: os.chmod(path, mode)

    class Application(BaseApplication):  # type: ignore[misc]  # gunicorn is not typed
        def load_config(self) -> None:
            for key, value in config.items():
                if value is not None:
                    self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> GunicornAdapter:
            return make_adapter()

    Application().run()
    return 0


#: Server settings that are gunicorn's own options under ``--workers``: the worker maps them
#: back onto the server.
GUNICORN_OWNS = {
    "keep_alive_timeout": "keepalive",
    "max_request_line_size": "limit_request_line",
    "max_header_count": "limit_request_fields",
    "max_header_line_size": "limit_request_field_size",
    "shutdown_timeout": "graceful_timeout",
    "forwarded_allow_ips": "forwarded_allow_ips",
}


def _gunicorn_value(name: str, value: Any) -> Any:
    if name == "shutdown_timeout":
        return max(1, round(value / 0.9))  # the worker gives requests 90 % of it
    if name == "keep_alive_timeout":
        return max(1, round(value))
    return value


def configured_address(*paths: str) -> tuple[str, int]:
    """The ``ip`` and ``port`` the configuration gives its Kyoukai component, where it says
    them (a container may set them in code, which only starting it would tell)."""
    config = load_config(*paths)
    found = _find_kyoukai(config)
    ip = found.get("ip", "127.0.0.1") if found else "127.0.0.1"
    port = found.get("port", 4444) if found else 4444
    return str(ip), int(port)


def _find_kyoukai(config: dict[str, Any]) -> dict[str, Any] | None:
    if "kyoukai" in str(config.get("type", "")).lower():
        return config
    children = config.get("components") or {}
    if "kyoukai" in children:
        return dict(children["kyoukai"] or {})
    for child in children.values():
        found = _find_kyoukai(dict(child or {}))
        if found is not None:
            return found
    return None
