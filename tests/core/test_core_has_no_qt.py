"""app/core and the commands never import Qt: the core is tested, and `ponder ask|export|...`
runs, without a display or a Qt library (docs/architecture.md, "Layers")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QT_BINDINGS = ("PySide6", "PySide2", "PyQt6", "PyQt5", "shiboken6", "shiboken2")

# Runs in a fresh interpreter: this test process has Qt loaded already (the UI tests).
PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    import app.commands, app.core

    QT = {qt!r}

    def qt_loaded():
        return sorted({{name.split(".")[0] for name in sys.modules}} & set(QT))

    modules = [
        info.name
        for package in (app.core, app.commands)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    ]
    first_with_qt = {{}}
    for name in modules + ["app.__main__"]:
        importlib.import_module(name)
        if qt_loaded() and not first_with_qt:
            first_with_qt = {{"module": name, "qt": qt_loaded()}}
    importlib.import_module("app.__main__").build_parser()  # what every `ponder COMMAND` runs first
    if qt_loaded() and not first_with_qt:
        first_with_qt = {{"module": "app.__main__.build_parser()", "qt": qt_loaded()}}
    print(json.dumps({{"modules": modules, "first_with_qt": first_with_qt}}))
    """
).format(qt=QT_BINDINGS)


def test_core_and_command_modules_import_without_qt():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    modules = result["modules"]
    # Discovery found the packages' modules, not an empty list that would pass anything.
    assert {"app.core.engine", "app.core.storage", "app.core.reasoning", "app.commands.ask"} <= set(modules)
    assert result["first_with_qt"] == {}, (
        f"{result['first_with_qt']['module']} imports Qt ({', '.join(result['first_with_qt']['qt'])}); "
        "app/core and app/commands must stay Qt-free"
    )
