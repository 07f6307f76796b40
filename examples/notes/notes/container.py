"""The root component: a database, a template renderer and the web server, composed.

Every child component starts in the same context, so the request contexts of the web server
(children of that context) reach the database and the renderer. Configuration files may
override any argument given here, under ``components: <alias>:`` (``sqlalchemy``,
``templating``, ``kyoukai``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from asphalt.core import ContainerComponent, Context
from asphalt.sqlalchemy.component import SQLAlchemyComponent
from asphalt.templating.component import TemplatingComponent

from kyoukai import KyoukaiComponent
from notes.app import app
from notes.models import create_schema


class NotesContainer(ContainerComponent):
    """The notes application.

    :param components: Configuration of the children (``sqlalchemy``, ``templating``,
        ``kyoukai``), overriding the defaults given here.
    :param database: The SQLite file, relative to the working directory; it is created with
        its tables when missing. ``components: sqlalchemy: url:`` overrides it.
    """

    def __init__(
        self,
        components: dict[str, dict[str, Any] | None] | None = None,
        *,
        database: str = "notes.sqlite",
    ) -> None:
        super().__init__(components)
        self.database = database

    async def start(self, ctx: Context) -> None:
        self.add_component(
            "sqlalchemy",
            SQLAlchemyComponent,
            url=f"sqlite+aiosqlite:///{self.database}",
            ready_callback=create_schema,
        )
        self.add_component(
            "templating",
            TemplatingComponent,
            backend="jinja2",
            options={"package_name": "notes", "environment": {"autoescape": True}},
        )
        self.add_component("kyoukai", KyoukaiComponent, app=app)
        unknown = self.component_configs.keys() - self.child_components.keys()
        if unknown:
            raise ValueError(
                f"unknown component(s) {', '.join(sorted(unknown))} in the configuration; "
                f"the notes service has {', '.join(self.child_components)}"
            )
        # ContainerComponent.start() would start the children all at once. The web server
        # starts last instead: it serves only once the database and the renderer are
        # published, and, as teardown runs in reverse order, it is the first to stop
        # (finishing its requests) before the database is closed.
        children = self.child_components
        await asyncio.gather(children["sqlalchemy"].start(ctx), children["templating"].start(ctx))
        await children["kyoukai"].start(ctx)
