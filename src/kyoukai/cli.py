"""The ``kyoukai`` command: ``kyoukai run TARGET`` serves an application.

``TARGET`` is a ``module:attribute`` reference to a :class:`~kyoukai.app.Kyoukai` application,
or an Asphalt YAML configuration, whose components (databases, renderers) are started and whose
Kyoukai application is served with the component's address and settings unless options say
otherwise (``run_server: false`` in the file does not stop the command from serving it).

One process serves with the built-in server. ``--workers N`` runs N of them under gunicorn's
arbiter (:class:`~kyoukai.backends.gunicorn.KyoukaiWorker`), each with its own Asphalt
context. ``--reload`` restarts the server when a Python or template file under the working
directory changes (watchfiles), for development. Every server setting is an option.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import logging
import logging.config
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kyoukai._config import build_ssl_context, parse_mode, resolve_app
from kyoukai._deploy import ConfiguredApp, load_config, read_config
from kyoukai.backends._server import (
    listen_error,
    loop_factory,
    serve_until_signal,
    start_server,
)
from kyoukai.backends._settings import ServerSettings

__all__ = ["main"]

logger = logging.getLogger("kyoukai")

#: File suffixes whose change restarts the server under ``--reload``, beside ``.py``.
RELOAD_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".yml", ".yaml")
_TYPES = {"int": int, "str": str}


class UsageError(Exception):
    """A command line or target the command cannot serve; its message says why."""


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser (``kyoukai run`` and its options)."""
    parser = argparse.ArgumentParser(prog="kyoukai", description="Serve Kyoukai applications.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="serve an application",
        description="Serve a Kyoukai application, or the one an Asphalt configuration starts.",
    )
    run.add_argument("target", metavar="TARGET", help="module:attribute, or an Asphalt YAML file")
    run.add_argument(
        "overlays", metavar="OVERLAY", nargs="*", help="YAML files merged over a YAML TARGET"
    )
    listen = run.add_argument_group("where to listen")
    listen.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    listen.add_argument("--port", type=int, help="port to listen on (default 4444)")
    listen.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead")
    listen.add_argument("--uds-mode", metavar="MODE", help="permissions of the socket (660)")
    listen.add_argument("--certfile", help="serve HTTPS with this PEM certificate (chain)")
    listen.add_argument("--keyfile", help="the certificate's private key, if not in it")
    listen.add_argument("--http2", action="store_true", help="serve HTTP/2 as well")
    processes = run.add_argument_group("processes")
    processes.add_argument(
        "--workers", type=int, metavar="N", help="run N processes under gunicorn's arbiter"
    )
    processes.add_argument(
        "--reload", action="store_true", help="restart when a .py or template file changes"
    )
    logs = run.add_argument_group("logging")
    logs.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    logs.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        help="the root logger's level (default info, or a configuration's logging section's)",
    )
    settings = run.add_argument_group("server settings (see docs/server.md)")
    for field in dataclasses.fields(ServerSettings):
        settings.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=_TYPES.get(str(field.type), float),
            metavar=str(field.type).split(" ")[0].upper(),
            help=f"default {field.default}",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status.

    :param argv: The arguments (``sys.argv[1:]`` if omitted).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.reload and args.workers is not None:
            raise UsageError("--reload runs one process: leave out --workers")
        if args.reload:
            return _reload([arg for arg in (argv or sys.argv[1:]) if arg != "--reload"], args)
        return serve(args)
    except UsageError as exc:
        parser.exit(2, f"kyoukai: error: {exc}\n")
    except KeyboardInterrupt:
        return 0


def serve(args: argparse.Namespace) -> int:
    """Serve as ``args`` (the parsed command line) say, until a signal stops it."""
    configure_logging(args)
    options = {name: getattr(args, name) for name in ServerSettings.field_names()}
    options = {name: value for name, value in options.items() if value is not None}
    try:
        ServerSettings(**options)
        tls = _tls(args)
        uds_mode = parse_mode(args.uds_mode, "--uds-mode") if args.uds_mode else None
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.http2:
        if "http2" not in inspect.signature(start_server).parameters:
            raise UsageError("--http2: HTTP/2 is not available in this version of Kyoukai")
        options["http2"] = True
    if args.workers is not None:
        return _run_workers(args, options, uds_mode)
    target = args.target
    if args.overlays and not _is_configuration(target):
        raise UsageError(f"overlays go with a YAML configuration, not with {target!r}")
    if _is_configuration(target):
        runner = asyncio.Runner(loop_factory=loop_factory())
        with runner:
            runner.run(_serve_configuration(args, options, tls, uds_mode))
        return 0
    app = _load_app(target)
    app.access_log = args.access_log
    host, port = args.host or "127.0.0.1", 4444 if args.port is None else args.port
    app.run(host, port, ssl=tls, uds=args.uds, uds_mode=uds_mode, **options)
    return 0


def configure_logging(args: argparse.Namespace) -> None:
    """Set logging up as ``asphalt run`` does: a YAML target's ``logging`` section goes to
    :func:`logging.config.dictConfig` (a number there is a level; ``null`` leaves logging
    alone); without one, messages go to stderr at ``INFO``. Loggers that exist already (Kyoukai's,
    Asphalt's) stay enabled unless the section sets ``disable_existing_loggers``.
    ``--log-level``, when given, sets the root logger's level last, over what the section
    says.

    :raises UsageError: If the section is not a valid logging configuration.
    """
    section: Any = logging.INFO  # asphalt run's default
    if _is_configuration(args.target):
        section = read_config(*check_configuration(args)).get("logging", logging.INFO)
    if isinstance(section, Mapping):
        # asphalt run applies the section before the application's modules are imported; the
        # command has imported Kyoukai (and Asphalt) already, whose loggers stay enabled.
        section = {"disable_existing_loggers": False, **section}
        try:
            logging.config.dictConfig(section)
        except (AttributeError, ImportError, TypeError, ValueError) as exc:
            raise UsageError(f"{args.target}: its logging section: {exc}") from None
    elif isinstance(section, int) and not isinstance(section, bool):
        logging.basicConfig(level=section, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    elif section is not None:
        raise UsageError(
            f"{args.target}: the logging section must be a mapping for "
            f"logging.config.dictConfig, a level number or null, not {section!r}"
        )
    if args.log_level:
        logging.getLogger().setLevel(args.log_level.upper())


def _run_workers(args: argparse.Namespace, options: dict[str, Any], uds_mode: int | None) -> int:
    try:
        from kyoukai._workers import configured_address, run_workers
        from kyoukai.backends.gunicorn import GunicornAdapter
    except ModuleNotFoundError as exc:
        if exc.name != "gunicorn" and not str(exc.name).startswith("gunicorn."):
            raise
        raise UsageError("--workers needs gunicorn: pip install 'kyoukai[gunicorn]'") from None
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    if options.pop("http2", False):
        raise UsageError("--http2 is served by one process only here: leave out --workers")
    # Each worker makes its adapter after the fork: the arbiter never imports the application,
    # so a worker started after kill -HUP imports the code as it is then.
    if _is_configuration(args.target):
        paths = check_configuration(args)
        address = configured_address(*paths)

        def load() -> GunicornAdapter:
            return GunicornAdapter.from_asphalt_config(*paths, **options)

    else:
        check_target(args.target)
        address = ("127.0.0.1", 4444)

        def load() -> GunicornAdapter:
            return GunicornAdapter(resolve_app(args.target), **options)

    return run_workers(load, options, args, address, uds_mode)


def _tls(args: argparse.Namespace) -> Any:
    if args.keyfile and not args.certfile:
        raise ValueError("--keyfile needs --certfile")
    if not args.certfile:
        return None
    return build_ssl_context({"ssl_certfile": args.certfile, "ssl_keyfile": args.keyfile})


def _is_configuration(target: str) -> bool:
    return target.endswith((".yml", ".yaml")) or Path(target).is_file()


#: What :func:`check_target` runs in a throwaway interpreter: exit status 2 and one line for a
#: target that is not an application, a traceback for code that fails to import.
_CHECK_TARGET = """\
import sys
from kyoukai._config import resolve_app
try:
    resolve_app(sys.argv[1])
except (LookupError, TypeError, ValueError) as exc:
    print(str(exc).removeprefix("app: "), file=sys.stderr)
    sys.exit(2)
"""


def check_target(target: str) -> None:
    """Import a ``module:attribute`` target in a throwaway interpreter, with this process's
    import path, so that a wrong one stops the command with one line while this process never
    imports the application (and keeps no module of it to hand its workers).

    :raises UsageError: If the target cannot be imported or is not an application.
    """
    check = [sys.executable, "-P", "-c", _CHECK_TARGET, target]
    result = subprocess.run(check, capture_output=True, text=True, check=False)
    if result.returncode == 2:
        raise UsageError(result.stderr.strip())
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise UsageError(f"cannot load {target!r}: the traceback above says why")


def _load_app(target: str) -> Any:
    try:
        return resolve_app(target)
    except (LookupError, TypeError, ValueError) as exc:
        raise UsageError(str(exc).removeprefix("app: ")) from None


def check_configuration(args: argparse.Namespace) -> list[str]:
    """The configuration files of the command line (the target and its overlays).

    :raises UsageError: If one is missing, or together they are not a configuration.
    """
    paths = [args.target, *args.overlays]
    for path in paths:
        if not os.path.isfile(path):
            raise UsageError(f"no such configuration file: {os.path.abspath(path)!r}")
    try:
        load_config(*paths)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{' + '.join(paths)}: {exc}") from None
    return paths


async def _serve_configuration(
    args: argparse.Namespace, options: dict[str, Any], tls: Any, uds_mode: int | None
) -> None:
    configured = ConfiguredApp(*check_configuration(args))
    try:
        app = await configured.start()
    except (LookupError, TypeError, ValueError) as exc:
        raise UsageError(f"{args.target}: {exc}") from None
    error: BaseException | None = None
    try:
        component: Any = configured.kyoukai
        settings = getattr(component, "settings", ServerSettings())
        settings = dataclasses.replace(settings, **options)
        host = args.host or getattr(component, "ip", "127.0.0.1")
        port = args.port if args.port is not None else getattr(component, "port", 4444)
        uds = args.uds or getattr(component, "uds", None)
        if uds_mode is None and not args.uds:
            uds_mode = getattr(component, "uds_mode", None)
        if tls is None:
            tls = getattr(component, "ssl_context", None)
        if not args.access_log:
            app.access_log = False
        fields = {name: getattr(settings, name) for name in ServerSettings.field_names()}
        try:
            server = await start_server(
                app,
                host,
                port,
                base_context=configured.context,
                ssl=tls,
                uds=uds,
                uds_mode=uds_mode,
                **fields,
            )
        except OSError as exc:
            raise listen_error(f"unix:{uds}" if uds else f"{host}:{port}", exc) from None
        await serve_until_signal(server)
    except BaseException as exc:
        error = exc
        raise
    finally:
        await configured.stop(error)


def _reload(argv: list[str], args: argparse.Namespace) -> int:
    try:
        import watchfiles
    except ImportError:
        raise UsageError("--reload needs watchfiles: pip install 'kyoukai[reload]'") from None
    cwd = os.getcwd()
    logging.basicConfig(
        level=(args.log_level or "info").upper(), format="%(levelname)s %(message)s"
    )
    logger.warning("Reloading on changes under %s: for development only", cwd)
    watch_filter = watchfiles.PythonFilter(extra_extensions=RELOAD_SUFFIXES)
    watchfiles.run_process(
        cwd, target=_serve_once, args=(argv,), watch_filter=watch_filter, callback=_changed
    )
    return 0


def _serve_once(argv: list[str]) -> None:
    """The reloaded process: serve once, as the command line without ``--reload`` says."""
    sys.exit(main(argv))


def _changed(changes: set[tuple[Any, str]]) -> None:
    names = sorted({os.path.relpath(path) for _, path in changes})
    logger.info("Restarting: %s changed", ", ".join(names))
