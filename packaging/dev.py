#!/usr/bin/env python3
"""Run Ponder from a source checkout, setting up its virtual environment on first use.

    python3 packaging/dev.py run [ponder args...]    start the app (or any `ponder` command)
    python3 packaging/dev.py test [pytest args...]   run the test suite

The first run creates `.venv` and installs Ponder with its test tools; pip compiles
llama.cpp then (about 10 minutes on 2 cores; pip's wheel cache keeps the result).
Later runs reinstall only when pyproject.toml or CMAKE_ARGS (the GPU backend) change.
Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / "ponder-install.stamp"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def wanted_stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(os.environ.get("CMAKE_ARGS", "").encode())
    return digest.hexdigest()


def ensure_env() -> Path:
    if sys.version_info < (3, 10):
        sys.exit(f"Ponder needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    python = venv_python()
    if not python.exists():
        print(f"Creating the virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = wanted_stamp()
    if STAMP.exists() and STAMP.read_text().strip() == stamp:
        return python
    env = dict(os.environ)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    print(
        "Installing Ponder and its dependencies. The first time, pip compiles llama.cpp:\n"
        "about 10 minutes on 2 cores (set CMAKE_ARGS for a GPU build, see README.md).",
        flush=True,
    )
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(pip + ["install", "--upgrade", "pip"], check=True, env=env)
    if env.get("CMAKE_ARGS"):
        # A different backend needs a fresh compile, not the cached CPU wheel.
        subprocess.run(pip + ["install", "--force-reinstall", "--no-cache-dir", "--no-deps",
                              _engine_requirement()], check=True, env=env)
    subprocess.run(pip + ["install", "-e", f"{ROOT}[dev]"], check=True, env=env)
    STAMP.write_text(stamp)
    return python


def _engine_requirement() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        line = line.strip().strip('",')
        if line.startswith("llama-cpp-python"):
            return line
    return "llama-cpp-python"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__.strip())
        return 2
    python = ensure_env()
    if argv[0] == "run":
        command = [str(python), "-m", "app", *argv[1:]]
    else:
        command = [str(python), "-m", "pytest", *argv[1:]]
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
