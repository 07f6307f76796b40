"""Driving an ASGI application in process: a scope, a ``receive`` that plays the client's
messages, and a ``send`` that records the application's."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: Seconds an in-process ASGI call may take.
CALL_TIMEOUT = 5.0


def http_scope(
    path: str = "/",
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """An ``http`` scope as uvicorn makes it; ``extra`` keys replace the defaults."""
    target, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "http",
        "method": method,
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"example.org"), *headers],
        "client": ("127.0.0.2", 5555),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(extra)
    return scope


@dataclass
class Exchange:
    """What the client sends (``inbox``, then a disconnect once ``leave`` is set) and what the
    application sent back."""

    inbox: deque[dict[str, Any]] = field(default_factory=deque)
    sent: list[dict[str, Any]] = field(default_factory=list)
    leave: asyncio.Event = field(default_factory=asyncio.Event)
    sent_one: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self) -> dict[str, Any]:
        if self.inbox:
            return self.inbox.popleft()
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.sent_one.set()

    @property
    def status(self) -> int:
        assert self.sent[0]["type"] == "http.response.start", self.sent
        status: int = self.sent[0]["status"]
        return status

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.bodies)

    @property
    def complete(self) -> bool:
        bodies = self.bodies
        return bool(bodies) and not bodies[-1].get("more_body", False)


def request_messages(*pieces: bytes) -> deque[dict[str, Any]]:
    """The ``http.request`` messages of a body sent in ``pieces``."""
    if not pieces:
        pieces = (b"",)
    return deque(
        {"type": "http.request", "body": piece, "more_body": index < len(pieces) - 1}
        for index, piece in enumerate(pieces)
    )


async def call(app: Any, scope: dict[str, Any], *pieces: bytes) -> Exchange:
    """Run ``app`` on ``scope`` with a body of ``pieces``; the client stays until the end."""
    exchange = Exchange(request_messages(*pieces))
    async with asyncio.timeout(CALL_TIMEOUT):
        await app(scope, exchange.receive, exchange.send)
    return exchange


class Lifespan:
    """The ``lifespan`` scope of an application, run in a task as a server runs it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def event(self, name: str) -> str:
        """Send ``lifespan.<name>``; return the type of the application's answer."""
        if self.task is None:
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
            self.task = asyncio.create_task(self.app(scope, self.inbox.get, self.answers.put))
        self.inbox.put_nowait({"type": f"lifespan.{name}"})
        async with asyncio.timeout(CALL_TIMEOUT):
            answer = await self.answers.get()
        kind: str = answer["type"]
        return kind
