"""What the model saw: the window stores the exact prompt the engine tokenized, the seed it
used and the model file; the Prompt window shows them; a chat can send its earlier thinking
back; File → Export traces writes them (real window, real llama.cpp on scripted models,
real SQLite file)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from app.core.engine import Engine, LoadOptions
from app.core.storage import Message
from app.ui.prompt_inspector import NO_PROMPT, PromptInspector
from tests.fixtures.scripted_gguf import STANDARD_ANSWER, STANDARD_THINKING
from tests.ui.conftest import ANSWER_TIMEOUT_MS
from tests.ui.test_window import PROMPT, last_assistant_view, send


def stored_answers(window) -> list[Message]:
    """The open chat's answers as the file has them (a fresh read, not the session's copy)."""
    conv = window.store.get_conversation(window.session.conversation_id)
    return [m for m in conv.messages if m.role == "assistant"]


def open_inspector(qtbot, window, view) -> PromptInspector:
    qtbot.mouseClick(view.footer.prompt_button, Qt.MouseButton.LeftButton)
    inspectors = [w for w in window.findChildren(PromptInspector) if w.isVisible()]
    assert len(inspectors) == 1
    return inspectors[0]


def test_the_stored_prompt_is_what_the_engine_tokenized_and_the_inspector_shows_it(
    qtbot, data_dir, open_app, scripted_model
):
    model = scripted_model("standard_r1")
    window = open_app(data_dir, model)
    send(qtbot, window)
    (answer,) = stored_answers(window)

    # An engine of its own on the same file renders and tokenizes the same conversation.
    engine = Engine.load(model, LoadOptions(n_ctx=2048, n_gpu_layers=0))
    try:
        run = engine.chat([{"role": "user", "content": PROMPT}])
        assert answer.prompt == run.prompt_text
        assert answer.stats["prompt_tokens"] == run.stats.prompt_tokens
        run.close()
    finally:
        engine.close()
    assert answer.prompt.endswith(f"<｜User｜>{PROMPT}<｜Assistant｜><think>\n")
    seed = answer.sampling["seed"]
    assert isinstance(seed, int) and answer.sampling["keep_thinking"] is False
    assert answer.model_info == {"name": window.client.info.name, "file": model.name,
                                 "quantization": window.client.info.quantization, "sha256": None,
                                 "source": "local file"}

    inspector = open_inspector(qtbot, window, last_assistant_view(window))
    assert inspector.prompt_view.toPlainText() == answer.prompt
    rows = {label: value.text() for label, value in inspector.rows.items()}
    assert rows["Model"] == f"{window.client.info.name} · {window.client.info.quantization}"
    assert rows["File"] == f"{model.name} (local file)"
    assert rows["SHA-256"].startswith("not known")
    assert rows["Prompt"] == (f"{answer.stats['prompt_tokens']} tokens · "
                              "earlier thinking left out, as DeepSeek advises")
    assert rows["Sampling"].startswith("temperature 0.6 · top_p 0.95 · top_k 40")
    assert rows["Seed"] == str(seed)
    # The template's tokens are tinted; no thinking is in this first prompt.
    tinted = [s.cursor.selectedText() for s in inspector.prompt_view.extraSelections()]
    assert tinted[-1] == "<｜Assistant｜><think>"  # touching tokens tinted as one range (Qt drops the second)
    assert any(t.endswith("<｜User｜>") for t in tinted)
    assert inspector.thinking_spans == []
    qtbot.mouseClick(inspector.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == answer.prompt
    inspector.close()


def test_a_chat_that_keeps_its_thinking_sends_it_back_and_the_inspector_shows_the_difference(
    qtbot, data_dir, open_app, scripted_model
):
    window = open_app(data_dir, scripted_model("standard_r1"))
    keep = window.menus.keep_thinking
    assert keep.isCheckable() and not keep.isChecked()  # DeepSeek's advice by default
    send(qtbot, window, "first")
    send(qtbot, window, "second, thinking left out")
    keep.trigger()  # Chat → Send earlier thinking back
    assert keep.isChecked() and window.session.keep_thinking
    send(qtbot, window, "third, thinking kept")

    first, left_out, kept = stored_answers(window)
    thought = STANDARD_THINKING.strip()
    assert first.thinking == thought
    assert thought not in left_out.prompt and STANDARD_ANSWER.strip() in left_out.prompt
    assert kept.prompt.count(f"<think>\n{thought}\n</think>\n\n{STANDARD_ANSWER.strip()}") == 2
    assert kept.stats["prompt_tokens"] > left_out.stats["prompt_tokens"]
    assert (left_out.sampling["keep_thinking"], kept.sampling["keep_thinking"]) == (False, True)

    views = window.transcript.assistant_views()
    without = open_inspector(qtbot, window, views[1])
    assert without.thinking_spans == [] and "left out" in without.rows["Prompt"].text()
    without.close()
    with_thinking = open_inspector(qtbot, window, views[2])
    assert "earlier thinking kept (highlighted)" in with_thinking.rows["Prompt"].text()
    assert len(with_thinking.thinking_spans) == 2
    start, end = with_thinking.thinking_spans[0]
    assert kept.prompt[start:end] == thought
    highlighted = [s.cursor.selectedText() for s in with_thinking.prompt_view.extraSelections()]
    assert highlighted.count(thought.replace("\n", "\u2029")) == 2  # Qt's paragraph separator
    with_thinking.close()

    # The choice belongs to the chat: saved with it, off for a new one, back when it is reopened.
    conv_id = window.session.conversation_id
    window.new_chat()
    assert not keep.isChecked()
    window.session.open_conversation(conv_id)
    assert keep.isChecked()


def test_an_answer_without_a_kept_prompt_says_so(qtbot):
    old = Message(id=1, conversation_id=1, position=1, role="assistant", content="4", thinking="",
                  status="complete", model="R1-1.5B", sampling={"temperature": 0.6, "top_p": 0.95})
    inspector = PromptInspector(old, [])
    qtbot.addWidget(inspector)
    rows = {label: value.text() for label, value in inspector.rows.items()}
    assert rows["Model"] == "R1-1.5B" and "File" not in rows
    assert rows["Prompt"] == "not kept" and rows["Seed"] == "not recorded (random)"
    assert rows["Sampling"] == "temperature 0.6 · top_p 0.95"
    assert inspector.prompt_view.toPlainText() == "" and inspector.prompt_view.placeholderText() == NO_PROMPT
    assert not inspector.copy_button.isEnabled()


def test_model_file_text_is_shown_literally(qtbot):
    message = Message(id=1, conversation_id=1, position=1, role="assistant", content="", thinking="",
                      status="complete", prompt="<b>not bold</b>",
                      model_info={"name": "<b>Bold</b> model", "file": "<i>x</i>.gguf", "quantization": "Q4_K_M",
                                  "sha256": "ab" * 32, "source": "huggingface.co/unsloth/x"})
    inspector = PromptInspector(message, [])
    qtbot.addWidget(inspector)
    assert inspector.rows["Model"].textFormat() == Qt.TextFormat.PlainText
    assert inspector.rows["Model"].text() == "<b>Bold</b> model · Q4_K_M"
    assert inspector.rows["File"].text() == "<i>x</i>.gguf (huggingface.co/unsloth/x)"
    assert inspector.rows["SHA-256"].text() == "ab" * 32


def test_file_menu_exports_the_traces_and_an_unwritable_folder_loses_nothing(
    qtbot, data_dir, open_app, scripted_model, tmp_path: Path
):
    window = open_app(data_dir, scripted_model("standard_r1"))
    send(qtbot, window)
    last_assistant_view(window).regenerate_button.click()
    qtbot.waitUntil(lambda: not window.session.busy, timeout=ANSWER_TIMEOUT_MS)
    assert window.menus.export_traces.text().startswith("&Export all traces")

    target = tmp_path / "traces.jsonl"
    with qtbot.waitSignal(window.trace_export.finished, timeout=10_000) as done:
        window.trace_export.export_to(target)
    assert done.args == [str(target), 2]
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [(r["version"], r["version_count"], r["shown"]) for r in records] == [(1, 2, False), (2, 2, True)]
    assert all(r["prompt"] and r["params"]["seed"] is not None for r in records)
    assert "Exported 2 answers" in window.status.currentMessage()

    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
    elif Path("/sys").is_dir():
        folder = Path("/sys")
    else:
        pytest.skip("no folder this user cannot write to")
    with qtbot.waitSignal(window.trace_export.failed, timeout=10_000) as failed:
        window.trace_export.export_to(folder / "traces.jsonl")
    assert failed.args[0].startswith(f"Could not export to {folder / 'traces.jsonl'}: Ponder may not write in")
    assert window.notice.isVisible() and window.notice.label.text() == failed.args[0]
    assert len(stored_answers(window)) == 1 and target.exists()  # the chat and the earlier export are intact
