"""`python -m app export`: conversations with their traces, as JSON or Markdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import main
from app.core.storage import ChatStore, store_path

REPO = Path(__file__).resolve().parents[2]

THINKING = "Okay, the user wants 2+2.\n\n# Not a heading\n</details>\nSo it is 4. 用户"
STATS = {"ttft_s": 0.25, "tokens_per_s": 38.2, "thinking_tokens": 20, "answer_tokens": 3}
SAMPLING = {"temperature": 0.6, "top_p": 0.95}


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, int, int]:
    with ChatStore(store_path(tmp_path)) as store:
        first = store.create_conversation()
        store.add_message(first, "user", "What is 2+2?")
        store.add_message(
            first, "assistant", "**4**", THINKING, flags=["unclosed"], stats=STATS, model="R1-1.5B", sampling=SAMPLING
        )
        second = store.create_conversation()
        store.add_message(second, "user", "Second chat")
        store.add_message(second, "assistant", "cut off", "thinking…", status="stopped")
    return tmp_path, first, second


def export(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["export", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_every_conversation_with_its_trace(data, capsys):
    base, first, second = data
    code, out, err = export(capsys, "--data-dir", str(base), "--format", "json")
    assert code == 0 and err == ""
    convs = json.loads(out)
    assert [c["id"] for c in convs] == [second, first]  # newest first, like the window's list
    c = convs[1]
    assert c["title"] == "What is 2+2?" and c["model"] == "R1-1.5B"
    user, reply = c["messages"]
    assert (user["role"], user["content"], user["thinking"]) == ("user", "What is 2+2?", "")
    assert reply["role"] == "assistant" and reply["content"] == "**4**" and reply["thinking"] == THINKING
    assert reply["flags"] == ["unclosed"] and reply["stats"] == STATS and reply["sampling"] == SAMPLING
    assert reply["model"] == "R1-1.5B" and reply["status"] == "complete"
    assert reply["created_at"].endswith("+00:00")
    assert convs[0]["messages"][1]["status"] == "stopped"


def test_one_conversation_by_id_is_still_a_list(data, capsys):
    base, first, _ = data
    code, out, _ = export(capsys, "--data-dir", str(base), "--conversation", str(first))
    assert code == 0
    assert [c["id"] for c in json.loads(out)] == [first]


def test_unknown_conversation_is_a_clear_error(data, capsys):
    base, _, _ = data
    code, out, err = export(capsys, "--data-dir", str(base), "--conversation", "999")
    assert code == 2 and out == ""
    assert "ponder: There is no conversation with id 999" in err


def test_markdown_quotes_thinking_so_it_cannot_break_out(data, capsys):
    base, first, _ = data
    code, out, _ = export(capsys, "--data-dir", str(base), "--conversation", str(first), "--format", "markdown")
    assert code == 0
    assert out.startswith("# What is 2+2?\n")
    assert "### You\n\nWhat is 2+2?" in out
    assert "### Assistant · R1-1.5B" in out
    assert "flags: unclosed" in out and "temperature 0.6" in out and "tokens_per_s 38.2" in out
    quoted = "> **Thinking**\n>\n> Okay, the user wants 2+2.\n>\n> # Not a heading\n> </details>\n> So it is 4. 用户"
    assert quoted in out
    assert out.rstrip().endswith("**4**")


def test_markdown_separates_conversations(data, capsys):
    base, _, _ = data
    code, out, _ = export(capsys, "--data-dir", str(base), "--format", "markdown")
    assert code == 0
    assert out.index("# Second chat") < out.index("\n---\n") < out.index("# What is 2+2?")
    assert "status: stopped" in out


def test_empty_data_dir_exports_an_empty_list(tmp_path: Path, capsys):
    code, out, _ = export(capsys, "--data-dir", str(tmp_path / "fresh"))
    assert code == 0 and json.loads(out) == []


def test_top_level_data_dir_option_works_too(data, capsys):
    base, first, second = data
    code = main(["--data-dir", str(base), "export"])
    out, _ = capsys.readouterr()
    assert code == 0 and [c["id"] for c in json.loads(out)] == [second, first]


def test_damaged_database_is_reported_and_export_still_runs(tmp_path: Path, capsys):
    store_path(tmp_path).write_bytes(os.urandom(4096))
    code, out, err = export(capsys, "--data-dir", str(tmp_path))
    assert code == 0 and json.loads(out) == []
    assert "was damaged, so it was moved to" in err and ".corrupt-" in err


def test_export_next_to_a_live_app_leaves_its_streaming_answer_alone(tmp_path: Path, capsys):
    with ChatStore(store_path(tmp_path)) as app_store:  # the app, mid-answer
        conv = app_store.create_conversation()
        app_store.add_message(conv, "user", "q")
        msg = app_store.add_message(conv, "assistant", "", "half a thought", status="streaming")
        code, out, _ = export(capsys, "--data-dir", str(tmp_path))
        assert code == 0
        exported = json.loads(out)[0]["messages"][1]
        assert (exported["status"], exported["thinking"], exported["flags"]) == ("streaming", "half a thought", [])
        app_store.update_message(msg, thinking="a whole thought", status="complete")
        assert app_store.get_conversation(conv).messages[1].flags == ()


def test_command_line_writes_utf8_json_to_stdout(data):
    base, first, _ = data
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}  # a console that cannot show the trace
    result = subprocess.run(
        [sys.executable, "-m", "app", "export", "--data-dir", str(base), "--conversation", str(first)],
        cwd=REPO, env=env, capture_output=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert json.loads(result.stdout.decode("utf-8"))[0]["messages"][1]["thinking"] == THINKING
