"""Type aliases shared by the core modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from kyoukai._context import HTTPRequestContext

#: A route handler: ``handler(ctx, **params)``, a coroutine function or a plain function.
Handler = Callable[..., Any]
#: A pre-request hook: returns a replacement context, or ``None`` to keep the current one.
PreHook = Callable[["HTTPRequestContext"], "HTTPRequestContext | Awaitable[Any] | None"]
#: A post-request hook: returns a replacement response, or ``None`` to keep the current one.
PostHook = Callable[["HTTPRequestContext", "Response"], Any]
#: An error handler: ``handler(ctx, exception)``.
ErrorHandler = Callable[..., Any]
#: The two kinds of request hook.
HookType = Literal["pre", "post"]

F = TypeVar("F", bound=Callable[..., Any])
