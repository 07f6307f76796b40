"""The database schema: one table of notes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, Text, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Longest title a note may have.
MAX_TITLE = 200
#: Longest body a note may have.
MAX_BODY = 10_000


def utcnow() -> datetime:
    """The current UTC time without a zone: SQLite keeps no zone, so all times are UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Note(Base):
    """A note: a title, a body and when it was written and last changed."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(MAX_TITLE))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def to_json(self) -> dict[str, Any]:
        """The note as the API sends it."""
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "created_at": self.created_at.isoformat(timespec="seconds") + "Z",
            "updated_at": self.updated_at.isoformat(timespec="seconds") + "Z",
        }


async def create_schema(engine: AsyncEngine, sessionmaker: object) -> None:
    """Create the tables that do not exist yet.

    asphalt-sqlalchemy calls it (``ready_callback``) before it publishes the engine, so no
    request can reach a database without its tables.
    """
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Workers start at once: one creates the tables while the others wait for its
            # transaction, then find them (create_all alone would race to CREATE TABLE).
            await connection.execute(text("SELECT pg_advisory_xact_lock(7239)"))
        await connection.run_sync(Base.metadata.create_all)
