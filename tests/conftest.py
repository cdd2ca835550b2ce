"""Shared test setup and fixtures.

The environment is set before anything imports Qt or huggingface_hub (both read
it at import time), and `app` is imported before any test module so llama_cpp
loads ahead of numpy/gguf (see app/__init__.py).
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach the real hub
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import app  # noqa: E402,F401  (must precede numpy/gguf)

from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import pytest  # noqa: E402

from tests.fixtures.scripted_gguf import SCRIPTS, Script, write_malformed  # noqa: E402


@pytest.fixture(scope="session")
def scripted_model(tmp_path_factory) -> Callable[[str | Script], Path]:
    """scripted_model(name_or_script) -> path of a GGUF that generates that script.

    Names are the keys of tests.fixtures.scripted_gguf.SCRIPTS ("standard_r1",
    "long_trace", ...). Each model is written once per session; treat it as read-only.
    """
    folder = tmp_path_factory.mktemp("scripted")
    built: dict[Script, Path] = {}

    def build(script: str | Script) -> Path:
        if isinstance(script, str):
            script = SCRIPTS[script]
        if script not in built:
            built[script] = script.write(folder / f"{len(built):02d}-{script.name}.gguf")
        return built[script]

    return build


@pytest.fixture(scope="session")
def malformed_model(tmp_path_factory) -> Callable[[str], Path]:
    """malformed_model(kind) -> path of a broken model file; kinds in scripted_gguf.MALFORMED_KINDS."""
    folder = tmp_path_factory.mktemp("malformed")
    built: dict[str, Path] = {}

    def build(kind: str) -> Path:
        if kind not in built:
            built[kind] = write_malformed(folder / f"{kind}.gguf", kind)
        return built[kind]

    return build


# Slow tests (marked `slow`: installers, big builds) run only when asked for:
#   .venv/bin/python -m pytest --run-slow tests/packaging   or   PONDER_RUN_SLOW=1
def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="run tests marked slow (installers, big builds)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow") or os.environ.get("PONDER_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or PONDER_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
