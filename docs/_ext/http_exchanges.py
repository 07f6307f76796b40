"""Highlighting of ``http`` blocks that show several messages: requests and their responses.

Pygments' HTTP lexer reads one message; after the headers it hands the rest of the block to
the lexer of the body's ``Content-Type``, so a JSON request followed by its response fails.
This lexer cuts a block at every request or status line and lexes each message alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from pygments.lexer import Lexer
from pygments.lexers import HttpLexer

_START = re.compile(r"^(?:[A-Z]+ \S+ HTTP/1\.[01]|HTTP/1\.[01] \d{3}(?: .*)?)\n", re.MULTILINE)


class HttpExchangesLexer(Lexer):
    """HTTP requests and responses, one after the other."""

    name = "HTTP exchanges"
    aliases: ClassVar[list[str]] = ["http"]

    def get_tokens_unprocessed(self, text: str) -> Iterator[tuple[int, Any, str]]:
        starts = [match.start() for match in _START.finditer(text)] or [0]
        if starts[0] != 0:
            starts.insert(0, 0)
        for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
            for index, token, value in HttpLexer().get_tokens_unprocessed(text[start:end]):
                yield start + index, token, value


def setup(app: Any) -> dict[str, Any]:
    app.add_lexer("http", HttpExchangesLexer)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
