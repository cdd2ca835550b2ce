"""Fixtures of the ChatStore tests (test_storage.py, test_storage_versions.py): a database
file in the test's own folder, and a store open on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.storage import ChatStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "conversations.db"


@pytest.fixture
def store(db: Path):
    s = ChatStore(db)
    yield s
    s.close()
