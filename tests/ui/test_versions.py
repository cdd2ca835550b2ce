"""Versions of a turn in the window, through real llama.cpp with scripted models and the
real store: regenerate and edit keep earlier answers, ‹ › switches, the conversation
continues from the version on screen, the Chat menu's actions and shortcuts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.core.errors import StorageError
from app.core.storage import ChatStore, store_path
from app.ui.message_view import AssistantMessageView
from app.ui.version_nav import NO_SECOND_VERSION
from app.ui.window import MainWindow
from tests.ui.conftest import ANSWER_TIMEOUT_MS
from tests.ui.test_window import PROMPT, send

def answers(window: MainWindow) -> list[AssistantMessageView]:
    return window.transcript.assistant_views()


def click(qtbot, button) -> None:
    qtbot.waitUntil(button.isVisible)  # a view just added is shown on the next event loop pass
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def regenerate(qtbot, window: MainWindow, view: AssistantMessageView):
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        click(qtbot, view.regenerate_button)
    return blocker.args[0]


def record_histories(window: MainWindow) -> list[list[dict]]:
    """The histories the session sends to the engine (the real client still runs them)."""
    sent: list[list[dict]] = []
    chat = window.client.chat

    def recording(messages, *args, **kwargs):
        sent.append([dict(m) for m in messages])
        return chat(messages, *args, **kwargs)

    window.client.chat = recording
    return sent


def test_regenerate_keeps_version_one_and_the_arrows_switch(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    first = send(qtbot, window)
    assert answers(window)[0].version_nav.isHidden()  # one version: no arrows

    second = regenerate(qtbot, window, answers(window)[0])
    nav = answers(window)[0].version_nav
    assert nav.isVisible() and nav.label.text() == "2/2"
    assert not nav.next_button.isEnabled() and nav.previous_button.isEnabled()
    assert second.id != first.id
    conv = window.store.get_conversation(first.conversation_id)
    assert [m.id for m in conv.messages][1] == second.id
    assert [v.answer.id for v in conv.versions_of(0)] == [first.id, second.id]  # version 1 is kept

    click(qtbot, nav.previous_button)
    view = answers(window)[0]
    assert window.session.messages[1].id == first.id
    assert view.version_nav.label.text() == "1/2" and view.answer_text == first.content.strip()
    assert not view.version_nav.previous_button.isEnabled()

    click(qtbot, view.version_nav.next_button)
    assert window.session.messages[1].id == second.id
    assert answers(window)[0].version_nav.label.text() == "2/2"


def test_the_conversation_continues_from_the_version_on_screen(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    send(qtbot, window)
    # Edit and resend: version 2 has another prompt.
    window.editing.start(0, PROMPT)
    window.prompt_input.setPlainText("What is 17 times 24?")
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS):
        window.send_prompt()
    assert answers(window)[0].version_nav.label.text() == "2/2"

    click(qtbot, answers(window)[0].version_nav.previous_button)  # back to version 1
    sent = record_histories(window)
    send(qtbot, window, "And times 3?")
    assert [m["content"] for m in sent[-1] if m["role"] == "user"] == [PROMPT, "And times 3?"]

    conv_id = window.session.conversation_id
    with ChatStore(store_path(data_dir)) as other:  # what is saved, read as a fresh start would
        conv = other.get_conversation(conv_id)
        assert [m.content for m in conv.messages if m.role == "user"] == [PROMPT, "And times 3?"]
        assert conv.version_of(0) == (1, 2)
    # Version 2 does not have the follow-up; back on version 1 it is there again.
    click(qtbot, answers(window)[0].version_nav.next_button)
    assert [m.content for m in window.session.messages if m.role == "user"] == ["What is 17 times 24?"]
    assert len(answers(window)) == 1
    click(qtbot, answers(window)[0].version_nav.previous_button)
    assert [m.content for m in window.session.messages if m.role == "user"] == [PROMPT, "And times 3?"]
    assert len(answers(window)) == 2


def test_versions_survive_a_restart(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    first = send(qtbot, window)
    regenerate(qtbot, window, answers(window)[0])
    conv_id = first.conversation_id
    window.close()
    window.store.close()

    again = open_app(data_dir, scripted_model("standard_r1"))
    again.session.open_conversation(conv_id)
    nav = answers(again)[0].version_nav
    assert nav.isVisible() and nav.label.text() == "2/2"
    click(qtbot, nav.previous_button)
    assert again.session.messages[1].id == first.id


def test_arrows_are_disabled_while_an_answer_is_generated(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    send(qtbot, window)
    states: list[tuple[bool, bool]] = []

    def look(*_args) -> None:
        if not states:
            navs = [v.version_nav for v in answers(window)]
            states.append((navs[-1].isVisible(), navs[-1].previous_button.isEnabled()))
            window.session.stop()

    window.session.stream_segment.connect(look)
    regenerate(qtbot, window, answers(window)[0])
    assert states == [(True, False)]  # the live answer shows 2/2, but nothing switches meanwhile
    assert answers(window)[0].version_nav.previous_button.isEnabled()  # once it ended


def test_chat_menu_regenerate_compare_and_version_shortcuts(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    menus = window.menus
    assert menus.regenerate.shortcut().toString() == "Ctrl+R"
    assert menus.compare.shortcut().toString() == "Ctrl+D"
    assert menus.previous_version.shortcut().toString() == "Ctrl+["
    assert menus.next_version.shortcut().toString() == "Ctrl+]"
    titles = [a.text() for a in menus.chat_menu.actions()]
    assert "&Regenerate" in titles and "Co&mpare versions…" in titles

    first = send(qtbot, window)
    menus.compare.trigger()  # one version: a sentence, no dialog
    assert window.notice.label.text() == NO_SECOND_VERSION and window.versions.compare_dialog is None

    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS):
        menus.regenerate.trigger()
    assert window.session.version_of(1) == (2, 2)
    menus.previous_version.trigger()
    assert window.session.messages[1].id == first.id
    menus.next_version.trigger()
    assert window.session.version_of(1) == (2, 2)
    menus.compare.trigger()
    dialog = window.versions.compare_dialog
    assert dialog is not None and dialog.isVisible() and dialog.picked == (0, 1)
    qtbot.waitUntil(lambda: dialog.comparison is not None)
    assert dialog.summary.text() == "The two versions are identical."  # a scripted model says the same twice


def test_deleting_the_shown_version_shows_the_one_before(qtbot, data_dir, open_app, scripted_model, monkeypatch):
    window = open_app(data_dir, scripted_model("standard_r1"))
    first = send(qtbot, window)
    regenerate(qtbot, window, answers(window)[0])
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    click(qtbot, answers(window)[0].version_nav.delete_button)
    assert window.session.version_of(1) == (2, 2)  # cancelled: nothing deleted

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    click(qtbot, answers(window)[0].version_nav.delete_button)
    assert window.session.messages[1].id == first.id and window.session.version_of(1) == (1, 1)
    assert answers(window)[0].version_nav.isHidden()
    assert window.store.get_conversation(first.conversation_id).versions == []


def test_an_answer_that_cannot_be_saved_brings_the_earlier_version_back(qtbot, data_dir, open_app, scripted_model,
                                                                         monkeypatch):
    window = open_app(data_dir, scripted_model("standard_r1"))
    first = send(qtbot, window)
    add_message = window.store.add_message

    def full_disk(conv_id, role, *args, **kwargs):  # the real store's sentence for a full disk
        if role == "assistant":
            raise StorageError("Could not save to the conversation database: the disk is full; free some space "
                               "and try again.")
        return add_message(conv_id, role, *args, **kwargs)

    monkeypatch.setattr(window.store, "add_message", full_disk)
    assert not window.session.regenerate(first.id)
    assert "disk is full" in window.notice.label.text()
    # Not a prompt without an answer hiding version 1: version 1 is shown, and is the only one.
    assert [m.id for m in window.session.messages][1] == first.id and window.session.version_of(1) == (1, 1)
    assert window.store.get_conversation(first.conversation_id).versions == []
    assert not window.session.busy
