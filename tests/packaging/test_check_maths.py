"""The bundle's maths check (`ponder --check-maths`, packaging/ponder_main.py) works from source,
and the PyInstaller spec's hooks find the renderer's data files. Fast; the frozen bundle itself
is checked by the slow tests in test_installer.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_check_maths_typesets_and_draws_a_formula():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(ROOT / "packaging" / "ponder_main.py"), "--check-maths"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["typeset"] is True and data["inked_pixels"] > 100 and data["width"] > 50


def test_the_spec_collects_the_fonts_and_the_symbol_table():
    hooks = pytest.importorskip("PyInstaller.utils.hooks", reason="PyInstaller is the packaging extra")
    collected = {Path(src).name for package in ("ziamath", "ziafont", "latex2mathml")
                 for src, _dest in hooks.collect_data_files(package)}
    assert {"STIXTwoMath-Regular.ttf", "DejaVuSans.ttf", "unimathsymbols.txt"} <= collected
    spec = (ROOT / "packaging" / "ponder.spec").read_text()
    assert all(f'collect_data_files("{p}")' in spec for p in ("ziamath", "ziafont", "latex2mathml"))
