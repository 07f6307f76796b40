"""Starting an application from an Asphalt configuration, for a server that is not its own.

ASGI servers, gunicorn, WSGI hosts and the ``kyoukai`` command all serve an application that
an Asphalt configuration describes: the same YAML ``asphalt run`` reads, whose components
(databases, template renderers) publish the resources handlers use. :class:`ConfiguredApp`
is the one way to do that: load the YAML, start the root component with the Kyoukai
component's own server switched off (whatever ``run_server`` says), find the application it
published, and tear it all down at the end.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asphalt.core import Component, Context
from asphalt.core.component import component_types
from asphalt.core.context import _current_context
from asphalt.core.utils import merge_config
from ruamel.yaml import YAML

from kyoukai._component import SERVED_ELSEWHERE, KyoukaiBaseComponent
from kyoukai.app import Kyoukai

__all__ = ["ConfiguredApp", "load_config", "read_config"]

ConfigSource = str | os.PathLike[str] | Mapping[str, Any]


def _env_constructor(loader: Any, node: Any) -> str | None:
    return os.getenv(loader.construct_scalar(node))


def _text_file_constructor(loader: Any, node: Any) -> str:
    return Path(loader.construct_scalar(node)).read_text()


def _binary_file_constructor(loader: Any, node: Any) -> bytes:
    return Path(loader.construct_scalar(node)).read_bytes()


def read_config(*sources: ConfigSource) -> dict[str, Any]:
    """Read and merge configuration files as ``asphalt run`` does; return the whole of it.

    YAML files are read with Asphalt's tags (``!Env``, ``!TextFile``, ``!BinaryFile``) and merged
    in order, so an overlay file changes what the files before it say. As ``asphalt run``
    does, a top-level ``component`` is the ``default`` service's unless one is defined, and
    that service's section is merged over the top level: the result holds the root
    component's configuration under ``component`` and the runner's settings (``logging``)
    beside it.

    :param sources: YAML file paths, or configuration mappings already loaded.
    """
    yaml = YAML(typ="safe")
    yaml.constructor.add_constructor("!Env", _env_constructor)
    yaml.constructor.add_constructor("!TextFile", _text_file_constructor)
    yaml.constructor.add_constructor("!BinaryFile", _binary_file_constructor)
    config: dict[str, Any] = {}
    for source in sources:
        data = source if isinstance(source, Mapping) else yaml.load(Path(source))
        if not isinstance(data, Mapping):
            raise ValueError(f"{source!r}: the document root must be a mapping")
        config = merge_config(config, dict(data))
    services = config.pop("services", None) or {}
    if "component" in config:
        services.setdefault("default", {"component": config.pop("component")})
    default = services.get("default")
    return merge_config(config, dict(default)) if isinstance(default, Mapping) else config


def load_config(*sources: ConfigSource) -> dict[str, Any]:
    """The root component's configuration (:func:`read_config`'s ``component``).

    :param sources: YAML file paths, or configuration mappings already loaded.
    :raises ValueError: If the configuration has no root component.
    """
    component = read_config(*sources).get("component")
    if not isinstance(component, Mapping):
        raise ValueError(
            "the configuration has no root component: add a 'component' section (or a "
            "'default' service), as for 'asphalt run'"
        )
    return dict(component)


class ConfiguredApp:
    """An application described by an Asphalt configuration, started for another server.

    :param sources: YAML file paths (later ones overlay earlier ones) or mappings, as
        :func:`load_config` takes; the root component's configuration is taken from them.
    """

    def __init__(self, *sources: ConfigSource) -> None:
        #: The root component's configuration.
        self.config = load_config(*sources)
        #: The root component, once :meth:`start` has run.
        self.component: Component | None = None
        #: The context the root component started in: the parent of every request context.
        self.context: Context | None = None
        #: The application, once :meth:`start` has run.
        self.app: Kyoukai | None = None
        #: The Kyoukai component that published it (its address, settings and TLS context are
        #: what a server started for it should use), or ``None`` if the application was
        #: published some other way.
        self.kyoukai: KyoukaiBaseComponent | None = None

    async def start(self) -> Kyoukai:
        """Start the root component and return the application it published.

        :raises LookupError: If the configuration publishes no Kyoukai application, or more
            than one.
        """
        component: Component = component_types.create_object(**self.config)
        context = Context()
        token = _current_context.set(context)
        serving = SERVED_ELSEWHERE.set(True)  # however the config and the code add it
        try:
            await component.start(context)
        except BaseException:
            await context.close()
            raise
        finally:
            SERVED_ELSEWHERE.reset(serving)
            _current_context.reset(token)
        apps = context.get_resources(Kyoukai)
        if len(apps) != 1:
            await context.close()
            raise LookupError(
                f"the configuration published {len(apps)} Kyoukai applications, not one: "
                "give it exactly one kyoukai component"
            )
        self.component = component
        self.context = context
        self.app = next(iter(apps))
        self.kyoukai = _find_component(component, self.app)
        return self.app

    async def stop(self, exception: BaseException | None = None) -> None:
        """Tear the components down (closing the context they started in).

        :param exception: What ended the application, if it failed; teardown callbacks see it.
        """
        context, self.context = self.context, None
        if context is not None:
            await context.close(exception)


def _find_component(component: Component, app: Kyoukai) -> KyoukaiBaseComponent | None:
    """The component serving ``app`` in the tree under ``component`` (containers' children)."""
    if isinstance(component, KyoukaiBaseComponent) and component.app is app:
        return component
    for child in getattr(component, "child_components", {}).values():
        found = _find_component(child, app)
        if found is not None:
            return found
    return None
