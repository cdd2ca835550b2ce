"""User settings, saved as `<data_dir>/settings.json`.

Loading never fails: a missing file gives the defaults, and a malformed file or
value falls back to the default for what is wrong (logged as a warning), so a
hand-edited or half-written file cannot stop the app from starting. Saving
writes a temporary file and renames it over the old one, so the file on disk is
always either the old settings or the new, never a mix.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import StorageError

log = logging.getLogger(__name__)

SETTINGS_FILENAME = "settings.json"
THEMES = ("system", "light", "dark")
SERVER_REASONING_FORMATS = ("separate", "raw")  # reasoning_content, or <think>…</think> in content
DRAFT_MODES = ("auto", "off")  # speculative decoding (app/core/speculative.py)


@dataclass
class Settings:
    # Sampling: DeepSeek's guidance for R1 (temperature 0.5-0.7, top_p 0.95).
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768  # R1 traces run to thousands of tokens
    n_ctx: int = 16384
    n_gpu_layers: int | str = "auto"  # "auto" (fit to free memory), or a layer count; -1 = all
    thinking_expanded: bool = False  # whether finished thinking panes start expanded
    thinking_budget: int | None = None  # default thinking budget beside the prompt box (tokens; None: off)
    thinking_maths: bool = True  # typeset the maths of a finished thought (it streams as plain text)
    # Speculative decoding: "auto" drafts with the catalog's paired small model when it is
    # downloaded, else by n-gram lookup, and stops drafting where it does not pay; "off".
    draft: str = "auto"
    theme: str = "system"  # one of THEMES
    last_model_path: str | None = None
    window_geometry: str | None = None  # base64 of QWidget.saveGeometry()
    # The window's server switch (app/ui/server_switch.py); its API key is in the OS keychain.
    server_host: str = "127.0.0.1"  # this computer only, unless the user says otherwise
    server_port: int = 8080
    server_reasoning_format: str = "separate"  # one of SERVER_REASONING_FORMATS
    # "Connect to a server…" (app/ui/remote_dialog.py): the last few, newest first, WITHOUT keys
    # (those are in the keychain): {"base_url", "model", "reasoning": bool | None, "server_kind": str | None}.
    remote_connections: list = dataclasses.field(default_factory=list)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_connection(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("base_url"), str) and bool(value["base_url"])
            and isinstance(value.get("model", ""), str) and value.get("reasoning") in (None, True, False)
            and isinstance(value.get("server_kind") or "", str) and "api_key" not in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# For each field: whether a JSON value is acceptable, and how to convert it.
_VALID = {
    "temperature": lambda v: _is_number(v) and 0.0 <= v <= 2.0,
    "top_p": lambda v: _is_number(v) and 0.0 < v <= 1.0,
    "max_tokens": lambda v: _is_int(v) and v >= 1,
    "n_ctx": lambda v: _is_int(v) and v >= 256,
    "n_gpu_layers": lambda v: v == "auto" or (_is_int(v) and v >= -1),
    "thinking_expanded": lambda v: isinstance(v, bool),
    "thinking_budget": lambda v: v is None or (_is_int(v) and v >= 1),
    "thinking_maths": lambda v: isinstance(v, bool),
    "draft": lambda v: v in DRAFT_MODES,
    "theme": lambda v: v in THEMES,
    "last_model_path": lambda v: v is None or (isinstance(v, str) and v != ""),
    "window_geometry": lambda v: v is None or isinstance(v, str),
    "server_host": lambda v: isinstance(v, str) and v.strip() != "",
    "server_port": lambda v: _is_int(v) and 1 <= v <= 65535,
    "server_reasoning_format": lambda v: v in SERVER_REASONING_FORMATS,
    "remote_connections": lambda v: isinstance(v, list) and len(v) <= 20 and all(_is_connection(c) for c in v),
}
_CONVERT = {"temperature": float, "top_p": float}


def settings_path(data_dir: Path) -> Path:
    return Path(data_dir) / SETTINGS_FILENAME


def load_settings(data_dir: Path) -> Settings:
    path = settings_path(data_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        log.warning("ignoring settings file %s (%s); using the defaults", path, exc)
        return Settings()
    if not isinstance(raw, dict):
        log.warning("ignoring settings file %s: not a JSON object; using the defaults", path)
        return Settings()

    defaults = Settings()
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _VALID:
            log.warning("ignoring unknown setting %r in %s", name, path)
        elif not _VALID[name](value):
            shown = "(not shown: it may hold a key)" if name == "remote_connections" else repr(value)
            log.warning(
                "ignoring setting %s=%s in %s; using the default %r", name, shown, path, getattr(defaults, name)
            )
        else:
            values[name] = _CONVERT.get(name, lambda v: v)(value)
    return Settings(**values)


def save_settings(data_dir: Path, settings: Settings) -> None:
    path = settings_path(data_dir)
    text = json.dumps(dataclasses.asdict(settings), indent=2, ensure_ascii=False) + "\n"
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target: os.replace is atomic only within one filesystem.
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=".settings-", suffix=".tmp", delete=False
        ) as f:
            tmp = Path(f.name)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the settings
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise StorageError(f"Could not save the settings to {path}: {exc.strerror or exc}.") from exc
