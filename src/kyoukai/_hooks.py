"""Request hooks and the body limit: what blueprints and routes share, inherited down the tree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kyoukai._body import check_body_size
from kyoukai._types import F, HookType

__all__ = ["HookHolder", "check_hook_type"]


def check_hook_type(type_: str) -> None:
    """Raise a :exc:`ValueError` unless ``type_`` names a hook type."""
    if type_ not in ("pre", "post"):
        raise ValueError(f"unknown hook type {type_!r}: use 'pre' or 'post'")


class HookHolder:
    """Holds ``pre`` and ``post`` request hooks; blueprints and routes are hook holders.

    A pre-request hook is called as ``hook(ctx)`` and may return a replacement context; a
    post-request hook as ``hook(ctx, response)`` and may return a replacement response.
    Hooks may be coroutine functions or plain functions.

    :param max_body_size: The largest request body, in bytes, or ``None`` to inherit it.
    """

    def __init__(self, max_body_size: int | None = None) -> None:
        #: Hooks added here, by type (``"pre"`` or ``"post"``), in the order they were added.
        self.hooks: dict[str, list[Callable[..., Any]]] = {"pre": [], "post": []}
        #: The body limit set here in bytes (wire and decoded), or ``None`` to inherit it.
        self.max_body_size = check_body_size(max_body_size)

    def add_hook(self, type_: HookType | str, hook: Callable[..., Any]) -> Callable[..., Any]:
        """Add a hook of type ``type_`` (``"pre"`` or ``"post"``) and return it."""
        check_hook_type(type_)
        self.hooks[type_].append(hook)
        self._hooks_changed()
        return hook

    def before_request(self, func: F) -> F:
        """Decorator: add a pre-request hook."""
        self.add_hook("pre", func)
        return func

    def after_request(self, func: F) -> F:
        """Decorator: add a post-request hook."""
        self.add_hook("post", func)
        return func

    def _hooks_changed(self) -> None:
        """Forget whatever was computed from the hooks."""
        raise NotImplementedError
