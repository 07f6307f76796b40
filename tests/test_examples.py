"""The examples, in process: the tutorial application and the notes service.

The notes service is started the Asphalt way (its container component, with the database and
the renderer) but without its server; requests go through the test client into the
container's context. ``test_asphalt_e2e.py`` runs both examples with ``asphalt run``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from asphalt.core import Context
from sqlalchemy.ext.asyncio import AsyncEngine

from kyoukai import Kyoukai, KyoukaiComponent, TestKyoukai
from kyoukai.testing import WebSocketRejected

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def import_example(monkeypatch: pytest.MonkeyPatch, directory: Path, name: str) -> ModuleType:
    monkeypatch.syspath_prepend(str(directory))
    return importlib.import_module(name)


# -- the tutorial -------------------------------------------------------------------------------


@pytest.fixture
def tutorial(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The tutorial's ``app`` module (a generic name, so it is forgotten afterwards)."""
    yield import_example(monkeypatch, EXAMPLES / "tutorial", "app")
    for name in ("app", "application", "application.container"):
        sys.modules.pop(name, None)


async def test_tutorial_index_is_the_template(tutorial: ModuleType) -> None:
    client = TestKyoukai.wrap_existing_app(tutorial.kyk)
    response = await client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    template = EXAMPLES / "tutorial" / "templates" / "index.html"
    assert response.get_data(as_text=True) == template.read_text(encoding="utf-8")


async def test_tutorial_serves_static_files_and_nothing_outside(tutorial: ModuleType) -> None:
    client = TestKyoukai.wrap_existing_app(tutorial.kyk)
    response = await client.get("/static/style.css")
    response.direct_passthrough = False  # send_file streams; read it whole here
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert response.cache_control.max_age == 3600 and response.headers["ETag"]
    assert b"font-family" in response.get_data()
    response.close()  # closes the file send_file opened, as a server does after sending
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/missing.css"):
        assert (await client.get(path)).status_code == 404, path


async def test_tutorial_container_adds_the_kyoukai_component(tutorial: ModuleType) -> None:
    from application.container import AppContainer

    container = AppContainer({"kyoukai": {"run_server": False, "port": 5555}})
    async with Context() as ctx:
        await container.start(ctx)
        component = container.child_components["kyoukai"]
        assert isinstance(component, KyoukaiComponent)
        assert component.app is tutorial.kyk and component.port == 5555
        assert ctx.require_resource(Kyoukai) is tutorial.kyk


# -- the notes service --------------------------------------------------------------------------


@pytest.fixture
async def notes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[TestKyoukai]:
    """A test client for the notes service, started on a fresh SQLite file."""
    container_module = import_example(monkeypatch, EXAMPLES / "notes", "notes.container")
    container = container_module.NotesContainer(
        {"kyoukai": {"run_server": False}}, database=str(tmp_path / "notes.sqlite")
    )
    async with Context() as ctx:
        await container.start(ctx)
        yield TestKyoukai.wrap_existing_app(container_module.app, base_context=ctx)


async def create(client: TestKyoukai, **note: Any) -> dict[str, Any]:
    response = await client.post("/notes", json=note)
    assert response.status_code == 201, response.get_data()
    created: dict[str, Any] = response.get_json()
    return created


async def test_notes_database_is_created_with_its_tables(
    notes: TestKyoukai, tmp_path: Path
) -> None:
    assert (tmp_path / "notes.sqlite").exists()
    assert notes.base_context is not None
    assert isinstance(notes.base_context.require_resource(AsyncEngine), AsyncEngine)
    response = await notes.get("/notes")
    assert (response.status_code, response.get_json()) == (200, {"notes": []})


async def test_create_returns_the_note_and_its_location(notes: TestKyoukai) -> None:
    response = await notes.post("/notes", json={"title": "  Plan  ", "body": "step 1"})
    assert response.status_code == 201
    note = response.get_json()
    assert response.headers["Location"] == f"/notes/{note['id']}"
    assert (note["title"], note["body"]) == ("Plan", "step 1")
    assert note["created_at"].endswith("Z") and note["updated_at"] == note["created_at"]
    assert (await notes.get(f"/notes/{note['id']}")).get_json() == note


async def test_list_is_in_creation_order(notes: TestKyoukai) -> None:
    for title in ("one", "two", "three"):
        await create(notes, title=title)
    listed = (await notes.get("/notes")).get_json()["notes"]
    assert [note["title"] for note in listed] == ["one", "two", "three"]


async def test_put_replaces_and_patch_changes_some_fields(notes: TestKyoukai) -> None:
    note = await create(notes, title="Draft", body="text")
    replaced = await notes.put(f"/notes/{note['id']}", json={"title": "Final"})
    assert replaced.status_code == 200
    assert (replaced.get_json()["title"], replaced.get_json()["body"]) == ("Final", "")
    patched = await notes.patch(f"/notes/{note['id']}", json={"body": "more"})
    assert (patched.get_json()["title"], patched.get_json()["body"]) == ("Final", "more")
    missing_title = await notes.put(f"/notes/{note['id']}", json={"body": "x"})
    assert missing_title.status_code == 400
    assert missing_title.get_json()["fields"] == {"title": "is required"}


async def test_delete_removes_the_note(notes: TestKyoukai) -> None:
    note = await create(notes, title="Temporary")
    response = await notes.delete(f"/notes/{note['id']}")
    assert (response.status_code, response.get_data()) == (204, b"")
    assert (await notes.get(f"/notes/{note['id']}")).status_code == 404
    assert (await notes.delete(f"/notes/{note['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"title": "is required"}),
        ({"title": "   "}, {"title": "must not be empty"}),
        ({"title": 5}, {"title": "must be a string"}),
        ({"title": "x" * 201}, {"title": "must be at most 200 characters"}),
        ({"title": "ok", "body": ["list"]}, {"body": "must be a string"}),
        ({"title": "ok", "tags": []}, {"tags": "unknown field; a note has a title and a body"}),
    ],
)
async def test_invalid_note_is_a_400_naming_the_fields(
    notes: TestKyoukai, body: dict[str, Any], fields: dict[str, str]
) -> None:
    response = await notes.post("/notes", json=body)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "the note is not valid", "fields": fields}
    assert (await notes.get("/notes")).get_json() == {"notes": []}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "the request body is not valid JSON"),
        ("", 'the request body must be a JSON object such as {"title": "..."}'),
        ('["a list"]', 'the request body must be a JSON object such as {"title": "..."}'),
    ],
)
async def test_body_that_is_not_a_json_object_is_a_400(
    notes: TestKyoukai, raw: str, message: str
) -> None:
    response = await notes.post("/notes", body=raw, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.get_json()) == (400, {"error": message})


async def test_errors_are_json_too(notes: TestKyoukai) -> None:
    missing = await notes.get("/notes/999")
    assert (missing.status_code, missing.get_json()) == (404, {"error": "there is no note 999"})
    unknown = await notes.get("/nowhere")
    assert (unknown.status_code, unknown.get_json()) == (404, {"error": "not found"})
    wrong_method = await notes.put("/notes")
    assert wrong_method.status_code == 405
    assert wrong_method.get_json() == {"error": "method not allowed"}
    assert "POST" in wrong_method.headers["Allow"]


async def test_page_lists_the_notes_escaped(notes: TestKyoukai) -> None:
    empty = await notes.get("/")
    assert empty.status_code == 200 and "No notes yet" in empty.get_data(as_text=True)
    await create(notes, title="<script>alert(1)</script>", body="a & b")
    page = (await notes.get("/")).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "a &amp; b" in page
    assert '<a href="/notes">' in page


# -- the chat ----------------------------------------------------------------------------------


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    yield import_example(monkeypatch, EXAMPLES / "chat", "chat")
    sys.modules.pop("chat", None)


async def test_chat_page_and_rooms(chat: ModuleType) -> None:
    client = TestKyoukai.wrap_existing_app(chat.app)
    page = await client.get("/")
    assert page.status_code == 200 and b"new WebSocket" in page.get_data()
    async with client.websocket_connect("/rooms/lobby?name=ann") as ann:
        assert (await ann.receive_json())["members"] == "ann"
        assert await ann.receive_json() == {"kind": "joined", "name": "ann"}
        async with client.websocket_connect("/rooms/lobby?name=bob") as bob:
            assert (await bob.receive_json())["members"] == "ann, bob"
            assert await ann.receive_json() == {"kind": "joined", "name": "bob"}
            await bob.receive_json()
            await bob.send_text("hi ann")
            said = {"kind": "said", "name": "bob", "text": "hi ann"}
            assert await ann.receive_json() == said
            assert await bob.receive_json() == said
            with pytest.raises(WebSocketRejected) as info:
                async with client.websocket_connect("/rooms/lobby?name=ann"):
                    pass
            assert info.value.response.status_code == 409
        assert await ann.receive_json() == {"kind": "left", "name": "bob"}
    assert chat.rooms == {}
