from __future__ import annotations

import pytest

from kyoukai import TestKyoukai


@pytest.fixture
def app() -> TestKyoukai:
    """A fresh application with nothing registered on it."""
    return TestKyoukai("test")
