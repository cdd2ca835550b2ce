"""llama_cpp must load before numpy: on a CUDA build, numpy first made every model load segfault.

`app/__init__.py` imports llama_cpp, so any `app.*` import (and the `ponder` entry
point, `python -m app`) loads it first. Each module is imported in a fresh interpreter.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import app

CHECK = (
    "import sys, importlib; importlib.import_module(sys.argv[1]); m = list(sys.modules); "
    "assert 'numpy' not in m or m.index('llama_cpp.llama_cpp') < m.index('numpy'), "
    "[x for x in m if x.startswith(('numpy', 'llama_cpp', 'gguf'))][:5]"
)

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(app.__path__, prefix="app.")
    if not name.startswith("app.ui")  # Qt modules are covered through app.ui.main
) + ["app.ui.main", "tests.fixtures.scripted_gguf"]


@pytest.mark.parametrize("module", MODULES)
def test_llama_cpp_loads_before_numpy(module):
    result = subprocess.run([sys.executable, "-c", CHECK, module], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_check_catches_the_wrong_order():
    bad = "import numpy, sys; sys.argv.append('app.core.errors'); " + CHECK.replace("sys.argv[1]", "sys.argv[-1]")
    result = subprocess.run([sys.executable, "-c", bad], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
