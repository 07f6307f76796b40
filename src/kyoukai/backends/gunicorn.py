"""Running under gunicorn: its process management, Kyoukai's own server in every worker.

``gunicorn -k kyoukai.backends.gunicorn.KyoukaiWorker app:kyk`` lets gunicorn's arbiter bind
the sockets, fork the workers, watch their heartbeat and restart them, while each worker serves
with the built-in HTTP/1.1 server (:func:`~kyoukai.backends._server.start_server` on the
sockets gunicorn hands it). The target may be a :class:`~kyoukai.app.Kyoukai` application, a
:class:`GunicornAdapter` or an adapter's ``run_application``.

Every worker starts its own Asphalt context after the fork (a started context holds
connections and tasks that must never be shared between processes), and tears it down when
it stops. gunicorn's settings map onto the server's: ``--keep-alive`` →
``keep_alive_timeout``, ``--limit-request-line`` → ``max_request_line_size``,
``--limit-request-fields`` → ``max_header_count``, ``--limit-request-field_size`` →
``max_header_line_size``, ``--graceful-timeout`` → ``shutdown_timeout``,
``--forwarded-allow-ips`` → ``forwarded_allow_ips``; ``--certfile``/``--keyfile`` serve HTTPS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asphalt.core import Context
from gunicorn.arbiter import Arbiter
from gunicorn.errors import AppImportError
from gunicorn.workers.base import Worker
from werkzeug.wrappers import Response

from kyoukai.app import Kyoukai
from kyoukai.backends._http1 import Cycle, StreamJob
from kyoukai.backends._server import KyoukaiServer, loop_factory, start_server
from kyoukai.backends._settings import ServerSettings
from kyoukai.backends.httptools_ import KyoukaiProtocol, Pending

if TYPE_CHECKING:
    import ssl

    from kyoukai._deploy import ConfiguredApp

__all__ = ["GunicornAdapter", "KyoukaiWorker"]

#: What gunicorn's "unlimited" (0) becomes for a limit the server always enforces.
UNLIMITED = 2**31 - 1


class GunicornAdapter:
    """A Kyoukai application prepared for gunicorn's :class:`KyoukaiWorker`.

    Expose ``adapter.run_application`` (or the adapter, or the application itself) as the
    gunicorn target. Nothing starts here: each worker starts the application (and, for
    :meth:`from_asphalt_config`, the configuration's components) after the fork.

    :param app: The application.
    :param base_context: The parent of every request context; each worker makes a fresh one
        if omitted. A context given here must not hold resources that cannot cross a fork.
    :param server_options: Any :class:`~kyoukai.backends._settings.ServerSettings` field;
        gunicorn's own settings (``--keep-alive`` and the request limits) win over these.
    :raises TypeError: If ``app`` is not an application, or an option is not a setting.
    """

    def __init__(
        self, app: Kyoukai, base_context: Context | None = None, **server_options: Any
    ) -> None:
        if not isinstance(app, Kyoukai):
            raise TypeError(f"GunicornAdapter serves a Kyoukai application, not {app!r}")
        ServerSettings.from_options(server_options)
        #: The application (``None`` until a worker started a configuration's).
        self.app: Kyoukai | None = app
        #: The parent of every request context, once started.
        self.base_context = base_context
        #: Server settings given here, over those of the configuration's component.
        self.server_options = dict(server_options)
        self._configured: ConfiguredApp | None = None

    @classmethod
    def from_asphalt_config(cls, *sources: Any, **server_options: Any) -> GunicornAdapter:
        """An adapter for the application an Asphalt configuration describes.

        Each worker starts the configuration's components (databases, renderers) in its own
        context, with the Kyoukai component's own server off whatever ``run_server`` says; the
        component's server settings (and ``ssl``, unless gunicorn has ``--certfile``) apply.

        :param sources: YAML paths (later ones overlay earlier ones) or mappings.
        :param server_options: Server settings over the component's.
        :raises ValueError: If the configuration has no root component.
        """
        # The configuration loader sits in the component layer, above the backends: imported
        # only here, where an adapter for a configuration is asked for.
        from kyoukai._deploy import ConfiguredApp

        ServerSettings.from_options(server_options)
        adapter = cls.__new__(cls)
        adapter.app = None
        adapter.base_context = None
        adapter.server_options = dict(server_options)
        adapter._configured = ConfiguredApp(*sources)
        return adapter

    def run_application(self, environ: Mapping[str, Any], start_response: Any) -> Any:
        """The gunicorn target for :class:`KyoukaiWorker`; any other worker class calls it as
        a WSGI application, which it is not, and gets an error that says what to run.

        :raises RuntimeError: Always, when called.
        """
        raise RuntimeError(
            "this Kyoukai application runs on its own worker class: start gunicorn with "
            "-k kyoukai.backends.gunicorn.KyoukaiWorker"
        )

    async def start(self) -> tuple[Kyoukai, Context, ServerSettings, ssl.SSLContext | None]:
        """Start the application in this process: its context, and its components if any.

        :return: The application, its base context, the configured server settings (before
            gunicorn's) and the component's TLS context.
        """
        settings = ServerSettings()
        tls = None
        if self._configured is not None:
            self.app = await self._configured.start()
            self.base_context = self._configured.context
            component = self._configured.kyoukai
            settings = getattr(component, "settings", settings)
            tls = getattr(component, "ssl_context", None)
        elif self.base_context is None:
            self.base_context = Context()
        assert self.app is not None and self.base_context is not None
        if self.server_options:
            settings = dataclasses.replace(settings, **self.server_options)
        return self.app, self.base_context, settings, tls

    async def stop(self, exception: BaseException | None = None) -> None:
        """Tear down what :meth:`start` started.

        :param exception: What ended the worker, if it failed.
        """
        if self._configured is not None:
            await self._configured.stop(exception)
        elif self.base_context is not None:
            await self.base_context.close(exception)


def as_adapter(target: object) -> GunicornAdapter:
    """The adapter for a gunicorn target: an adapter, its ``run_application``, or an app.

    :raises TypeError: For anything else, saying what to give.
    """
    owner = getattr(target, "__self__", None)
    if isinstance(owner, GunicornAdapter):
        return owner
    if isinstance(target, GunicornAdapter):
        return target
    if isinstance(target, Kyoukai):
        return GunicornAdapter(target)
    raise TypeError(
        f"KyoukaiWorker serves a Kyoukai application, a GunicornAdapter or an adapter's "
        f"run_application, not {target!r}"
    )


class _LoggedResponse:
    """What gunicorn's access log formatter reads of a response."""

    __slots__ = ("headers", "sent", "status")

    def __init__(self, response: Response) -> None:
        self.status = response.status
        self.headers = response.headers
        self.sent = response.content_length


#: The environ key of when a request's head was read (``time.monotonic()``), for the access log.
STARTED_KEY = "kyoukai.gunicorn.started"


class _WorkerProtocol(KyoukaiProtocol):
    """Counts the worker's requests (``--max-requests``) and writes gunicorn's access log as
    each response is delivered."""

    def __init__(self, *args: Any, worker: KyoukaiWorker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._worker = worker

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._environ is not None and self._worker.access_log:
            self._environ[STARTED_KEY] = time.monotonic()

    def _write_ready(
        self, cycle: Cycle | None = None, response: Response | None = None
    ) -> StreamJob | Pending | None:
        if cycle is not None and response is not None and cycle.environ is not None:
            self._worker.request_done(cycle.environ, response)
        return super()._write_ready(cycle, response)


class KyoukaiWorker(Worker):  # type: ignore[misc]  # gunicorn is not typed
    """A gunicorn worker that serves a Kyoukai application with the built-in server.

    It keeps gunicorn's contract: it notifies the arbiter (the heartbeat ``--timeout``
    watches) while its loop runs, stops gracefully on TERM or QUIT (in-flight requests get
    ``--graceful-timeout``), restarts after ``--max-requests`` (plus jitter), logs requests
    with gunicorn's access logger and format, and reopens log files on USR1.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        #: Whether gunicorn's access log is on (``--access-logfile`` or a logging config).
        self.access_log = False

    def init_process(self) -> None:
        """Make this process's event loop (uvloop's when installed), then let gunicorn
        finish the set-up and call :meth:`run`."""
        self.loop = (loop_factory() or asyncio.new_event_loop)()
        asyncio.set_event_loop(self.loop)
        super().init_process()

    def load_wsgi(self) -> None:
        """Load the target; gunicorn refuses objects that are not callable, which an
        application need not be, so those are imported here instead."""
        try:
            super().load_wsgi()
        except AppImportError as exc:
            uri = getattr(self.app, "app_uri", None)
            if uri is None or "callable" not in str(exc):
                raise
            module, _, attribute = uri.partition(":")
            target: Any = sys.modules[module]
            for part in attribute.split("."):
                target = getattr(target, part)
            self.wsgi = target

    def init_signals(self) -> None:
        """Handle gunicorn's signals on the event loop."""
        assert self.loop is not None
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        handlers = {
            signal.SIGTERM: self.handle_exit_signal,
            signal.SIGQUIT: self.handle_exit_signal,
            signal.SIGINT: self.handle_exit_signal,
            signal.SIGUSR1: self.log.reopen_files,
            signal.SIGWINCH: lambda: None,
            signal.SIGABRT: self.handle_abort_signal,
        }
        for signum, handler in handlers.items():
            self.loop.add_signal_handler(signum, handler)

    def handle_exit_signal(self) -> None:
        """Stop gracefully: stop accepting, let in-flight requests finish, tear down."""
        self.stop_serving()

    def handle_abort_signal(self) -> None:
        """The arbiter's abort (a worker past its timeout): exit at once."""
        self.alive = False
        self.cfg.worker_abort(self)
        sys.exit(1)

    def stop_serving(self) -> None:
        """End the heartbeat loop; the worker then shuts down gracefully."""
        self.alive = False
        if self._wake is not None:
            self._wake.set()

    def run(self) -> None:
        """Serve until told to stop; a target that cannot start stops gunicorn."""
        assert self.loop is not None
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    def request_done(self, environ: dict[str, Any], response: Response) -> None:
        """Count a request, log it, and stop after ``--max-requests``."""
        self.nr += 1
        if self.access_log:
            seconds = time.monotonic() - environ.get(STARTED_KEY, time.monotonic())
            headers = [
                (key[5:].replace("_", "-"), value)
                for key, value in environ.items()
                if key.startswith("HTTP_")
            ]
            elapsed = datetime.timedelta(seconds=seconds)
            self.log.access(_LoggedResponse(response), headers, environ, elapsed)
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.stop_serving()

    def _settings(self, configured: ServerSettings) -> ServerSettings:
        cfg = self.cfg
        trusted = list(cfg.forwarded_allow_ips)
        return dataclasses.replace(
            configured,
            keep_alive_timeout=float(cfg.keepalive) or configured.keep_alive_timeout,
            max_request_line_size=cfg.limit_request_line or UNLIMITED,
            max_header_count=cfg.limit_request_fields or UNLIMITED,
            max_header_line_size=cfg.limit_request_field_size or UNLIMITED,
            shutdown_timeout=max(0.1, cfg.graceful_timeout * 0.9),
            forwarded_allow_ips="*" if "*" in trusted else ",".join(trusted),
        )

    def _ssl_context(self, configured: ssl.SSLContext | None) -> ssl.SSLContext | None:
        if not self.cfg.is_ssl:
            return configured
        from gunicorn.sock import ssl_context

        context: ssl.SSLContext = ssl_context(self.cfg)
        return context

    async def _serve(self) -> None:
        self._wake = asyncio.Event()
        try:
            adapter = as_adapter(self.wsgi)
            app, context, configured, tls = await adapter.start()
        except Exception:
            self.log.exception("The Kyoukai application could not start")
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None
        error: BaseException | None = None
        try:
            settings = self._settings(configured)
            self.access_log = getattr(self.log, "access_log_enabled", bool(self.cfg.accesslog))
            if self.access_log:
                app.access_log = False  # gunicorn's access log takes its place
            server = await start_server(
                app,
                base_context=context,
                ssl=self._ssl_context(tls),
                sockets=[getattr(sock, "sock", sock) for sock in self.sockets],
                protocol_factory=functools.partial(_WorkerProtocol, worker=self),
                **{name: getattr(settings, name) for name in ServerSettings.field_names()},
            )
            await self._heartbeat(server)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await adapter.stop(error)

    async def _heartbeat(self, server: KyoukaiServer) -> None:
        assert self._wake is not None
        interval = max(0.1, min(1.0, self.timeout / 4))
        try:
            while self.alive:
                self.notify()
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                try:
                    async with asyncio.timeout(interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            # gunicorn kills a worker that stops notifying; shutting down still counts.
            stopping = asyncio.ensure_future(server.stop())
            while not stopping.done():
                self.notify()
                await asyncio.wait([stopping], timeout=interval)
            stopping.result()
