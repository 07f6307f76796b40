"""The web application: a JSON API for notes, and an HTML page listing them.

Handlers take what they need from the request context: ``ctx.require_resource(AsyncSession)``
gives a database session that belongs to the request (asphalt-sqlalchemy commits it when the
request succeeds and rolls it back when it fails), and ``TemplateRenderer`` is the Jinja2
renderer of asphalt-templating. The container (:mod:`notes.container`) publishes both.
"""

from __future__ import annotations

import json
from typing import Any

from asphalt.templating.api import TemplateRenderer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.util import as_html, as_json
from notes.models import MAX_BODY, MAX_TITLE, Note

#: The application; the container serves it.
app = Kyoukai("notes")


class ValidationError(Exception):
    """A request body that is not a valid note; ``fields`` maps each bad field to why."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


def read_note(ctx: HTTPRequestContext, *, partial: bool) -> dict[str, str]:
    """Validate the JSON body of a request that creates or changes a note.

    :param partial: Whether fields may be left out (``PATCH``).
    :raises ValidationError: If the body is not a JSON object with valid fields.
    """
    try:
        data = json.loads(ctx.request.get_data(as_text=True) or "null")
    except ValueError:
        raise ValidationError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError('the request body must be a JSON object such as {"title": "..."}')
    errors: dict[str, str] = {}
    note: dict[str, str] = {}
    for key in sorted(data.keys() - {"title", "body"}):
        errors[key] = "unknown field; a note has a title and a body"
    for key, limit in (("title", MAX_TITLE), ("body", MAX_BODY)):
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, str):
            errors[key] = "must be a string"
        elif len(value) > limit:
            errors[key] = f"must be at most {limit} characters"
        else:
            note[key] = value.strip() if key == "title" else value
    if "title" in note and not note["title"]:
        errors["title"] = "must not be empty"
    elif "title" not in data and not partial:
        errors["title"] = "is required"
    if errors:
        raise ValidationError("the note is not valid", errors)
    return note


def error(status: int, message: str, **extra: Any) -> Response:
    """A JSON error response: ``{"error": message, ...}``."""
    return as_json({"error": message, **extra}, status)


def invalid(exc: ValidationError) -> Response:
    """The 400 response for a body that is not a valid note, naming each bad field."""
    return error(400, str(exc), fields=exc.fields) if exc.fields else error(400, str(exc))


async def find_note(session: AsyncSession, note_id: int) -> Note | None:
    return await session.get(Note, note_id)


@app.route("/")
async def index(ctx: HTTPRequestContext) -> Response:
    """The HTML page: every note, newest first."""
    session = ctx.require_resource(AsyncSession)
    notes = (await session.scalars(select(Note).order_by(Note.id.desc()))).all()
    renderer = ctx.require_resource(TemplateRenderer)
    return as_html(renderer.render("index.html", notes=notes))


@app.route("/notes", methods=["GET"])
async def list_notes(ctx: HTTPRequestContext) -> Response:
    session = ctx.require_resource(AsyncSession)
    notes = (await session.scalars(select(Note).order_by(Note.id))).all()
    return as_json({"notes": [note.to_json() for note in notes]})


@app.route("/notes", methods=["POST"])
async def create_note(ctx: HTTPRequestContext) -> Response:
    try:
        fields = read_note(ctx, partial=False)
    except ValidationError as exc:
        return invalid(exc)
    session = ctx.require_resource(AsyncSession)
    note = Note(**fields)
    session.add(note)
    # The id is needed now; the commit happens when the request ends.
    await session.flush()
    location = ctx.url_for("notes.get_note", note_id=note.id)
    return as_json(note.to_json(), 201, {"Location": location})


@app.route("/notes/<int:note_id>", methods=["GET"])
async def get_note(ctx: HTTPRequestContext, note_id: int) -> Response:
    note = await find_note(ctx.require_resource(AsyncSession), note_id)
    if note is None:
        return error(404, f"there is no note {note_id}")
    return as_json(note.to_json())


@app.route("/notes/<int:note_id>", methods=["PUT", "PATCH"])
async def update_note(ctx: HTTPRequestContext, note_id: int) -> Response:
    """Change a note: ``PUT`` replaces it (a title is required), ``PATCH`` changes some fields."""
    session = ctx.require_resource(AsyncSession)
    note = await find_note(session, note_id)
    if note is None:
        return error(404, f"there is no note {note_id}")
    try:
        fields = read_note(ctx, partial=ctx.request.method == "PATCH")
    except ValidationError as exc:
        return invalid(exc)
    if ctx.request.method == "PUT":
        fields.setdefault("body", "")
    for key, value in fields.items():
        setattr(note, key, value)
    await session.flush()
    return as_json(note.to_json())


@app.route("/notes/<int:note_id>", methods=["DELETE"])
async def delete_note(ctx: HTTPRequestContext, note_id: int) -> Response:
    session = ctx.require_resource(AsyncSession)
    note = await find_note(session, note_id)
    if note is None:
        return error(404, f"there is no note {note_id}")
    await session.delete(note)
    return Response(status=204)


@app.errorhandler(400, 600)
async def http_error(ctx: HTTPRequestContext, exc: HTTPException) -> Response:
    """Every HTTP error (unknown paths, wrong methods, failures) as JSON, like the rest."""
    code = exc.code or 500
    return error(code, exc.name.lower() if code < 500 else "internal server error")
