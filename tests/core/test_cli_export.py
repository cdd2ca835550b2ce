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


def test_markdown_puts_thinking_in_a_collapsible_section_it_cannot_break_out_of(data, capsys):
    base, first, _ = data
    code, out, _ = export(capsys, "--data-dir", str(base), "--conversation", str(first), "--format", "markdown")
    assert code == 0
    assert out.startswith("# What is 2+2?\n")
    assert "### You\n\nWhat is 2+2?" in out
    assert "### Assistant · R1-1.5B" in out
    assert "flags: unclosed" in out and "temperature 0.6" in out and "tokens_per_s 38.2" in out
    section = (
        "<details>\n<summary>Thinking (20 tokens)</summary>\n\n"
        "> Okay, the user wants 2+2.\n>\n> # Not a heading\n> &lt;/details>\n> So it is 4. 用户\n\n</details>"
    )
    assert section in out
    assert out.count("<details>") == 1 and out.count("</details>") == 1  # the trace's own one is escaped
    assert out.index("</details>") < out.index("**4**")
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


# --- JSON Lines: one record per assistant message version ------------------------------

from app.core.traces import MODEL_FIELDS, PARAM_FIELDS, STATS_FIELDS, TRACE_FIELDS  # noqa: E402

MODEL_INFO = {"name": "DeepSeek R1 Distill Qwen 1.5B", "file": "r1-1.5b-Q4_K_M.gguf", "quantization": "Q4_K_M",
              "sha256": "ab" * 32, "source": "download"}
FULL_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 40, "min_p": 0.0, "seed": 1234, "max_tokens": 4096,
                 "thinking_budget": 64}
FULL_STATS = {"prompt_tokens": 12, "thinking_tokens": 70, "answer_tokens": 5, "time_to_first_token_s": 0.12,
              "thinking_s": 1.5, "answer_s": 0.2, "decode_tokens_per_s": 41.0, "thinking_tokens_per_s": 40.0,
              "answer_tokens_per_s": 25.0, "inserted_tokens": 9, "finish_reason": "stop", "total_s": 1.9,
              "context_used": 87}
BUDGET_SPANS = [{"field": "thinking", "start": 30, "end": 62, "by": "ponder", "kind": "wrap_up"}]
PROMPT_TEXT = "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n"


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, int, list[int]]:
    """A chat whose first answer was regenerated once (two versions), then a second turn."""
    with ChatStore(store_path(tmp_path)) as store:
        conv = store.create_conversation()
        store.add_message(conv, "user", "What is 2+2?")
        first = store.add_message(
            conv, "assistant", "4", "Two and two. I should answer now.\n</think>", flags=["budget_reached"],
            stats=FULL_STATS, model="R1-1.5B", sampling=FULL_SAMPLING, spans=BUDGET_SPANS, prompt=PROMPT_TEXT,
            model_info=MODEL_INFO,
        )
        store.start_version(conv, 0)  # Regenerate: the first answer is kept as version 1
        second = store.add_message(conv, "assistant", "Four.", "Adding.", stats={"finish_reason": "stop"},
                                   model="R1-1.5B", sampling={"temperature": 0.6, "top_p": 0.95})
        store.add_message(conv, "user", "And 3+3?")
        third = store.add_message(conv, "assistant", "6", "", model="R1-1.5B")  # an older message: no extras
    return tmp_path, conv, [first, second, third]


def test_jsonl_has_one_record_per_answer_version_with_every_field(versions, tmp_path: Path, capsys):
    base, conv, (first, second, third) = versions
    out_file = tmp_path / "traces.jsonl"
    code, out, err = export(capsys, "--data-dir", str(base), "--format", "jsonl", "--output", str(out_file))
    assert code == 0 and out == "" and err == ""
    lines = out_file.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["message_id"] for r in records] == [first, second, third]
    for r in records:
        assert list(r) == list(TRACE_FIELDS)
        assert list(r["model"]) == list(MODEL_FIELDS) and list(r["params"]) == list(PARAM_FIELDS)
        assert list(r["stats"])[: len(STATS_FIELDS)] == list(STATS_FIELDS)
        assert r["conversation_id"] == conv and r["created_at"].endswith("+00:00")
    v1, v2, turn2 = records
    assert (v1["position"], v1["version"], v1["version_count"], v1["shown"]) == (1, 1, 2, False)
    assert (v2["position"], v2["version"], v2["version_count"], v2["shown"]) == (1, 2, 2, True)
    assert (turn2["position"], turn2["version"], turn2["version_count"], turn2["shown"]) == (3, 1, 1, True)
    # Everything the first version was made from and what it said.
    assert v1["model"] == MODEL_INFO and v1["prompt"] == PROMPT_TEXT and v1["keep_thinking"] is False
    assert v1["params"] == FULL_SAMPLING
    assert v1["thinking"] == "Two and two. I should answer now.\n</think>" and v1["answer"] == "4"
    assert v1["spans"] == BUDGET_SPANS and v1["flags"] == ["budget_reached"] and v1["status"] == "complete"
    assert v1["stats"] == {
        "prompt_tokens": 12, "thinking_tokens": 70, "answer_tokens": 5, "time_to_first_token_s": 0.12,
        "thinking_s": 1.5, "answer_s": 0.2, "tokens_per_s": 41.0, "thinking_tokens_per_s": 40.0,
        "answer_tokens_per_s": 25.0, "inserted_tokens": 9, "finish_reason": "stop", "total_s": 1.9,
        "context_used": 87,
    }
    # What a message does not say is null, never missing.
    assert v2["params"]["seed"] is None and v2["params"]["temperature"] == 0.6
    assert turn2["model"] == {"name": "R1-1.5B", "file": None, "quantization": None, "sha256": None, "source": None}
    assert turn2["prompt"] is None and turn2["spans"] == [] and turn2["stats"]["finish_reason"] is None


def test_jsonl_to_stdout_for_one_conversation_says_which_answers_kept_earlier_thinking(versions, capsys):
    base, conv, _ = versions
    with ChatStore(store_path(base)) as store:
        store.set_keep_thinking(conv, True)
        store.add_message(conv, "user", "Think on")
        kept = store.add_message(conv, "assistant", "ok", "t", sampling={**FULL_SAMPLING, "keep_thinking": True})
        other = store.create_conversation()
        store.add_message(other, "user", "q")
        store.add_message(other, "assistant", "a", "t")
    code, out, _ = export(capsys, "--data-dir", str(base), "--format", "jsonl", "--conversation", str(conv))
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 4 and {r["conversation_id"] for r in records} == {conv}
    # Per answer: the choice can change during a chat; answers from before it were always stripped.
    assert [r["keep_thinking"] for r in records] == [False, False, False, True] and records[3]["message_id"] == kept
    assert "keep_thinking" not in records[3]["params"]
    code, out, _ = export(capsys, "--data-dir", str(base), "--format", "jsonl")
    assert code == 0 and len(out.splitlines()) == 5


@pytest.fixture
def unwritable_folder(tmp_path: Path):
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
    elif Path("/sys").is_dir():  # root writes anywhere a mode allows; /sys refuses even root
        yield Path("/sys")
    else:
        pytest.skip("no folder this user cannot write to")


def test_export_into_an_unwritable_folder_says_so_and_loses_nothing(versions, unwritable_folder, capsys):
    base, conv, _ = versions
    target = unwritable_folder / "traces.jsonl"
    before = store_path(base).read_bytes()
    code, out, err = export(capsys, "--data-dir", str(base), "--format", "jsonl", "--output", str(target))
    assert code == 1 and out == ""
    assert err == (f"ponder: Could not export to {target}: Ponder may not write in {unwritable_folder}. "
                   "Choose another folder; nothing was written there and your saved chats are unchanged.\n")
    assert not target.exists() and not list(unwritable_folder.glob(".traces.jsonl.*"))
    assert store_path(base).read_bytes() == before
    code, out, _ = export(capsys, "--data-dir", str(base), "--format", "jsonl")
    assert code == 0 and len(out.splitlines()) == 3


def test_export_into_a_missing_folder_names_it(versions, tmp_path: Path, capsys):
    base, _, _ = versions
    code, _, err = export(capsys, "--data-dir", str(base), "--format", "jsonl",
                          "--output", str(tmp_path / "nope" / "t.jsonl"))
    assert code == 1 and f"the folder {tmp_path / 'nope'} does not exist" in err


def test_a_second_export_replaces_the_file_whole(versions, tmp_path: Path, capsys):
    base, conv, _ = versions
    target = tmp_path / "out.md"
    target.write_text("old export that is much longer than the new one " * 500, encoding="utf-8")
    code, _, _ = export(capsys, "--data-dir", str(base), "--format", "markdown", "--output", str(target))
    assert code == 0
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# What is 2+2?") and "old export" not in text
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.md")) == []


def test_a_damaged_chat_is_skipped_with_a_warning_and_the_rest_exported(tmp_path: Path, capsys):
    import sqlite3

    db = store_path(tmp_path)
    with ChatStore(db) as store:
        good = store.create_conversation()
        store.add_message(good, "user", "fine")
        store.add_message(good, "assistant", "still here", "short")
        bad = store.create_conversation()
        store.add_message(bad, "user", "broken")
        # The only text longer than a page: its overflow pages hold nothing of any other chat.
        store.add_message(bad, "assistant", "lost", "long thinking " * 3000)
        newer = store.create_conversation()
        store.add_message(newer, "user", "also fine")
        store.add_message(newer, "assistant", "here too", "")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [row[0] for row in conn.execute("SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'overflow'")]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    assert pages
    data = bytearray(db.read_bytes())
    for n in pages:
        data[(n - 1) * page_size : n * page_size] = b"\xff" * page_size
    db.write_bytes(bytes(data))

    code, out, err = export(capsys, "--data-dir", str(tmp_path), "--format", "jsonl")
    assert code == 0
    assert [json.loads(line)["conversation_id"] for line in out.splitlines()] == [newer, good]
    assert f"ponder: Chat {bad} (“broken”) could not be read and was left out: The conversation database" in err
