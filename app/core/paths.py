"""Where Ponder keeps its files, per platform. `--data-dir` overrides all of it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_DATA_DIR = "PONDER_DATA_DIR"


def default_data_dir() -> Path:
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override)
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "Ponder"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Ponder"
    base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "ponder"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory (created), from an explicit override or the platform default."""
    path = Path(override) if override else default_data_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir(base: Path) -> Path:
    path = base / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir(base: Path) -> Path:
    path = base / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def same_file(a: str | Path | None, b: str | Path | None) -> bool:
    """Whether two paths name the same file (False when either is None or cannot be resolved)."""
    if a is None or b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
