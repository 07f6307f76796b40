"""A container component: the place to add databases, templating, mailers and the like."""

from __future__ import annotations

from asphalt.core import ContainerComponent, Context

from kyoukai import KyoukaiComponent


class AppContainer(ContainerComponent):
    """Adds the Kyoukai component; ``container.yml`` may override any of its arguments."""

    async def start(self, ctx: Context) -> None:
        # The application is given by reference, so it is imported only when Asphalt starts.
        self.add_component("kyoukai", KyoukaiComponent, ip="127.0.0.1", port=4444, app="app:kyk")
        await super().start(ctx)
