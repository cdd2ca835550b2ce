"""Fixtures shared by tests/core: a database file in the test's own folder and a store open on it
(test_storage.py, test_storage_versions.py); Ponder's own server on loopback (test_serve.py,
test_remote.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.storage import ChatStore
from tests.core.serve_helpers import ponder_servers, start_server, stop_server


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "conversations.db"


@pytest.fixture
def store(db: Path):
    s = ChatStore(db)
    yield s
    s.close()


@pytest.fixture
def serve(scripted_model):
    """serve(script, max_waiting=, n_ctx=, **build_app options) -> a fresh server, stopped after the test."""
    with ponder_servers(scripted_model) as start:
        yield start


@pytest.fixture(scope="module")
def ponder_served(scripted_model):
    """One server of the standard R1 script for the tests that read no counters."""
    served = start_server(scripted_model("standard_r1"))
    yield served
    stop_server(served)
