"""Slow tests (marked `slow`) are skipped unless asked for.

    .venv/bin/python -m pytest tests/packaging --run-slow     (this folder's option)
    PONDER_RUN_SLOW=1 .venv/bin/python -m pytest tests/...    (works from any folder)
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="run tests marked slow (installers, big builds)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow", default=False) or os.environ.get("PONDER_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (pytest tests/packaging) or PONDER_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
