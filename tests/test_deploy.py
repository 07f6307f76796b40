"""Starting an application from its Asphalt configuration, for a server that is not its own."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kyoukai import KyoukaiComponent, TestKyoukai
from kyoukai._deploy import ConfiguredApp, load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def in_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield
    for name in [n for n in sys.modules if n.split(".")[0] in ("app", "application", "notes")]:
        sys.modules.pop(name, None)


def enter(monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    directory = EXAMPLES / name
    monkeypatch.chdir(directory)
    monkeypatch.syspath_prepend(str(directory))
    return directory


async def test_notes_configuration_starts_with_its_database_and_no_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, in_example: None
) -> None:
    directory = enter(monkeypatch, "notes")
    overlay = {"component": {"database": str(tmp_path / "notes.sqlite")}}
    configured = ConfiguredApp(directory / "config.yml", overlay)
    app = await configured.start()
    try:
        assert configured.component is not None
        kyoukai = configured.component.child_components["kyoukai"]  # type: ignore[attr-defined]
        assert isinstance(kyoukai, KyoukaiComponent)
        assert kyoukai.server is None  # the component's own server did not start
        client = TestKyoukai.wrap_existing_app(app, base_context=configured.context)
        created = await client.post("/notes", json={"title": "t", "body": "b"})
        assert created.status_code == 201
        listed = await client.get("/notes")
        assert [note["title"] for note in listed.get_json()["notes"]] == ["t"]
    finally:
        await configured.stop()
    assert configured.context is None


async def test_single_component_configuration(
    monkeypatch: pytest.MonkeyPatch, in_example: None
) -> None:
    directory = enter(monkeypatch, "tutorial")
    configured = ConfiguredApp(directory / "config.yml")
    app = await configured.start()
    try:
        assert app is sys.modules["app"].kyk
        response = await TestKyoukai.wrap_existing_app(app).get("/")
        assert response.status_code == 200
    finally:
        await configured.stop()


def test_overlays_merge_in_order(tmp_path: Path) -> None:
    base = tmp_path / "base.yml"
    base.write_text("component:\n  type: kyoukai\n  app: a:b\n  port: 1\n")
    overlay = tmp_path / "overlay.yml"
    overlay.write_text("component:\n  port: 2\n")
    assert load_config(base, overlay) == {"type": "kyoukai", "app": "a:b", "port": 2}


def test_default_service_is_the_root_component(tmp_path: Path) -> None:
    path = tmp_path / "services.yml"
    path.write_text("services:\n  default:\n    component:\n      type: kyoukai\n")
    assert load_config(path) == {"type": "kyoukai"}


def test_configuration_without_a_component_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("logging:\n  version: 1\n")
    with pytest.raises(ValueError, match="no root component"):
        load_config(path)


async def test_configuration_without_an_application_is_refused() -> None:
    configured = ConfiguredApp({"component": {"type": "asphalt.core:ContainerComponent"}})
    with pytest.raises(LookupError, match="published 0 Kyoukai applications"):
        await configured.start()
