"""Settings file: defaults, round trip, bad files and values never stop the app."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import pytest

from app.core.errors import StorageError
from app.core.settings import Settings, load_settings, save_settings, settings_path


def test_missing_file_gives_the_r1_defaults(tmp_path: Path):
    s = load_settings(tmp_path)
    assert s == Settings()
    assert (s.temperature, s.top_p, s.max_tokens, s.n_ctx) == (0.6, 0.95, 32768, 16384)
    assert (s.n_gpu_layers, s.thinking_expanded, s.theme) == ("auto", False, "system")
    assert s.last_model_path is None and s.window_geometry is None


def test_saved_settings_load_back(tmp_path: Path):
    s = Settings(
        temperature=0.5, top_p=0.9, max_tokens=4096, n_ctx=32768, n_gpu_layers=20,
        thinking_expanded=True, theme="dark", last_model_path="/models/r1 7b.gguf",
        window_geometry="AdnQywADAAAAAAAA",
    )
    save_settings(tmp_path, s)
    assert load_settings(tmp_path) == s
    assert json.loads(settings_path(tmp_path).read_text(encoding="utf-8"))["n_gpu_layers"] == 20


def test_save_replaces_the_file_and_leaves_no_temporary_files(tmp_path: Path):
    save_settings(tmp_path, Settings(theme="light"))
    save_settings(tmp_path, Settings(theme="dark"))
    assert load_settings(tmp_path).theme == "dark"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_save_into_a_missing_directory_creates_it(tmp_path: Path):
    save_settings(tmp_path / "new" / "dir", Settings(theme="light"))
    assert load_settings(tmp_path / "new" / "dir").theme == "light"


def test_failed_save_is_a_storage_error_and_keeps_the_old_file(tmp_path: Path):
    save_settings(tmp_path, Settings(theme="light"))
    before = settings_path(tmp_path).read_bytes()
    if os.geteuid() == 0:
        # root ignores directory permissions: make the target a directory instead.
        blocked = tmp_path / "blocked"
        (blocked / "settings.json").mkdir(parents=True)
        with pytest.raises(StorageError, match="Could not save the settings"):
            save_settings(blocked, Settings(theme="dark"))
        assert [p.name for p in blocked.iterdir()] == ["settings.json"]  # temp file cleaned up
    else:
        tmp_path.chmod(0o500)
        try:
            with pytest.raises(StorageError, match="Could not save the settings"):
                save_settings(tmp_path, Settings(theme="dark"))
        finally:
            tmp_path.chmod(0o700)
    assert settings_path(tmp_path).read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[1, 2]", b'"a string"', b"\xff\xfe garbage", b'{"theme": "dark"'],
)
def test_malformed_file_gives_defaults_with_a_warning(tmp_path: Path, caplog, content: bytes):
    settings_path(tmp_path).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="app.core.settings"):
        assert load_settings(tmp_path) == Settings()
    assert "settings" in caplog.text


def test_bad_values_fall_back_one_by_one(tmp_path: Path, caplog):
    settings_path(tmp_path).write_text(
        json.dumps(
            {
                "temperature": "hot",  # wrong type
                "top_p": 0,  # out of range
                "max_tokens": 1024,  # fine
                "n_ctx": True,  # a bool is not a number here
                "n_gpu_layers": "all",  # only "auto" or an int
                "thinking_expanded": 1,  # not a bool
                "theme": "solarized",  # unknown theme
                "last_model_path": 42,
                "window_geometry": None,  # fine
                "font_size": 14,  # unknown key
            }
        ),
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="app.core.settings"):
        s = load_settings(tmp_path)
    assert s == dataclasses.replace(Settings(), max_tokens=1024)
    for name in ("temperature", "top_p", "n_ctx", "n_gpu_layers", "thinking_expanded", "theme", "font_size"):
        assert name in caplog.text


def test_integer_temperature_is_read_as_a_float(tmp_path: Path):
    settings_path(tmp_path).write_text('{"temperature": 1, "top_p": 1, "n_gpu_layers": -1}', encoding="utf-8")
    s = load_settings(tmp_path)
    assert s.temperature == 1.0 and isinstance(s.temperature, float)
    assert s.top_p == 1.0 and s.n_gpu_layers == -1


def test_server_and_remote_settings_round_trip_and_a_key_is_never_accepted(tmp_path: Path, caplog):
    connection = {"base_url": "http://gpu-box:8000/v1", "model": "deepseek-r1", "reasoning": None,
                  "server_kind": "vLLM"}
    save_settings(tmp_path, Settings(server_host="0.0.0.0", server_port=9000, server_reasoning_format="raw",
                                     remote_connections=[connection]))
    loaded = load_settings(tmp_path)
    assert (loaded.server_host, loaded.server_port, loaded.server_reasoning_format) == ("0.0.0.0", 9000, "raw")
    assert loaded.remote_connections == [connection]
    # A hand-edited file that puts a key among the connections, or a bad port, falls back to the default.
    raw = json.loads(settings_path(tmp_path).read_text())
    raw["remote_connections"] = [{**connection, "api_key": "sk-secret"}]
    raw["server_port"] = 70000
    settings_path(tmp_path).write_text(json.dumps(raw))
    with caplog.at_level(logging.WARNING):
        loaded = load_settings(tmp_path)
    assert loaded.remote_connections == [] and loaded.server_port == 8080
    assert "sk-secret" not in caplog.text  # the log never shows a key
