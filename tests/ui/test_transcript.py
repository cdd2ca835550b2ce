"""The transcript: the live answer's view reads the text its owner keeps."""

from __future__ import annotations

from app.core.reasoning import Segment, TraceText
from app.core.storage import Message
from app.ui.message_view import AssistantMessageView
from app.ui.transcript import Transcript


def message(position: int, role: str, status: str = "complete", content: str = "") -> Message:
    return Message(id=position + 1, conversation_id=1, position=position, role=role, content=content,
                   thinking="", status=status)


def test_the_live_view_reads_the_trace_it_is_given(qtbot):
    transcript = Transcript()
    qtbot.addWidget(transcript)
    transcript.append(message(0, "user", content="Hi?"))
    trace = TraceText()
    view = transcript.append(message(1, "assistant", status="streaming"), trace=trace)
    assert isinstance(view, AssistantMessageView) and transcript.live_view is view
    trace.add(Segment("answer", "Hello"))
    transcript.live_segment("answer", "Hello")
    assert view.answer_text == "Hello" and trace.answer == "Hello"


def test_finished_messages_need_no_trace(qtbot):
    transcript = Transcript()
    qtbot.addWidget(transcript)
    view = transcript.append(message(1, "assistant", content="Done."))
    assert transcript.live_view is None and view.answer_text == "Done."
