"""Steering a reasoning model's thought while it runs (issue 9): a thinking budget,
"Answer now", nudges, and continuing from an edited thought.

All of it works by putting text into the thought, into the KV cache after the last
generated token, as one batch (no prompt is evaluated again), and letting the model
go on from there (ChatRun in app/core/engine.py does that; this module holds the
words, the checks and the thread-safe requests):

- A budget that runs out, or "Answer now", ends the thought the way R1 ends its own:
  a short wrap-up sentence and ``</think>``, marked as inserted by Ponder. The inserted
  text ends with the ``</think>`` token; the model writes the blank line and its answer
  after it, as it does after its own ``</think>``. A budget counts the thinking tokens
  the model generates (not inserted ones), so a message's thinking tokens end up at
  most the budget plus the wrap-up (and any nudges). A budget must be at least 1: 0
  or a negative number is refused with a sentence (Ponder has no "skip thinking"
  mode; to let the model think freely, the budget is off, None).
- A nudge goes into the thought as the model's own words ("Wait, the user adds: …"),
  marked as inserted by the user; the model thinks on. Only while it thinks: a nudge
  that arrives after the thought ended is handed back unused (`Steering.unused`).
- Continuing from an edited thought: the kept start of the old thought and the user's
  changes become the new run's first segments (`continued_prefix`); the part the
  model wrote earlier keeps its marks, what the user changed is marked as theirs.

A note or an edited thought may not contain ``<think>`` or ``</think>``: the tokenizer
would turn them into the real tags and end (or reopen) the thought.
"""

from __future__ import annotations

import collections
import threading

from app.core.errors import PonderError
from app.core.reasoning import CLOSE_TAG, INSERTED, OPEN_TAG, Segment

BUDGET_WRAP_UP = "\n\nOkay, I'm out of thinking budget, so let me answer now with what I have.\n"
ANSWER_NOW_WRAP_UP = "\n\nOkay, I have to answer now, so let me answer with what I have.\n"
NUDGE_TEMPLATE = "\n\nWait, the user adds: {note}\n\n"
MAX_NOTE_CHARS = 4000

# Flags a steered message gets, beside the trace flags of app/core/reasoning.py.
STEERING_FLAGS = ("budget_reached", "answer_now", "nudged", "continued")


class SteeringError(PonderError):
    """A budget, note or edited thought that cannot be used; the sentence says why."""


def check_budget(budget: int | None) -> int | None:
    """A valid thinking budget (None: off), or SteeringError with a sentence."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise SteeringError(f"A thinking budget is a whole number of tokens, not {budget!r}.")
    if budget < 1:
        raise SteeringError(
            f"A thinking budget of {budget} tokens leaves no room to think: give at least 1 token, "
            "or turn the budget off to let the model think as long as it needs."
        )
    return budget


def _check_tags(text: str, what: str) -> None:
    for tag in (OPEN_TAG, CLOSE_TAG):
        if tag in text:
            raise SteeringError(f"{what} cannot contain {tag}: the model reads it as the tag that "
                                f"{'starts' if tag == OPEN_TAG else 'ends'} its thinking. Remove it and try again.")


def check_note(note: str) -> str:
    """The note, stripped, if it can go into a thought; else SteeringError with a sentence."""
    note = (note or "").strip()
    if not note:
        raise SteeringError("Type a note first: it goes into the model's thinking as it thinks.")
    if len(note) > MAX_NOTE_CHARS:
        raise SteeringError(f"A note can be at most {MAX_NOTE_CHARS:,} characters; this one has {len(note):,}.")
    _check_tags(note, "A note")
    return note


def check_thought(text: str) -> str:
    """An edited thought the model can continue from (it may be empty: think again from the start)."""
    _check_tags(text, "The edited thinking")
    return text


def nudge_text(note: str) -> str:
    """What a nudge puts into the thought: the note in the model's own voice."""
    return NUDGE_TEMPLATE.format(note=check_note(note))


def continued_prefix(thinking: str, spans, edited: str) -> list[Segment]:
    """The first segments of a thought continued from `edited`, an edit of `thinking`.

    The part of `edited` that `thinking` starts with was written as before (the model's
    text, or text inserted earlier: `spans`, TraceText's shape, keep their kinds); from
    the first character that differs on, it is the user's "edit".
    """
    check_thought(edited)
    same = 0
    limit = min(len(thinking), len(edited))
    while same < limit and thinking[same] == edited[same]:
        same += 1
    marks: list[tuple[int, int, str | None]] = []  # (start, end, inserted kind) covering [0, same)
    at = 0
    for span in sorted(spans or (), key=lambda s: s["start"]):
        start, end = max(at, int(span["start"])), min(same, int(span["end"]))
        if end <= start:
            continue
        if start > at:
            marks.append((at, start, None))
        kind = span.get("kind")
        marks.append((start, end, kind if kind in INSERTED else "edit"))
        at = end
    if at < same:
        marks.append((at, same, None))
    if same < len(edited):
        marks.append((same, len(edited), "edit"))
    segments: list[Segment] = []
    for start, end, kind in marks:
        text = edited[start:end]
        if segments and segments[-1].inserted == kind:
            segments[-1] = Segment("think", segments[-1].text + text, 0, kind)
        else:
            segments.append(Segment("think", text, 0, kind))
    return segments


class Steering:
    """Requests to one running answer, made from any thread (the GUI's), read by the run
    between tokens on the engine thread, like its stop Event."""

    def __init__(self) -> None:
        self._answer_now = threading.Event()
        self._notes: collections.deque[str] = collections.deque()  # append/popleft are thread-safe
        self.unused: list[str] = []  # notes that came after the thought ended (set when the run ends)

    def answer_now(self) -> None:
        """End the thought at the next token (as a budget reached there would)."""
        self._answer_now.set()

    def nudge(self, note: str) -> None:
        """Put `note` into the thought after the next token (SteeringError if it cannot go in)."""
        self._notes.append(check_note(note))

    # --- the run's side ------------------------------------------------------------------

    def take_answer_now(self) -> bool:
        if self._answer_now.is_set():
            self._answer_now.clear()
            return True
        return False

    def take_note(self) -> str | None:
        if not self._notes:  # the usual case, once a token: no exception raised and caught
            return None
        try:
            return self._notes.popleft()
        except IndexError:  # taken meanwhile (only the run takes notes, but be safe)
            return None

    def settle(self) -> None:
        """The run ended: notes still waiting did not go in."""
        while (note := self.take_note()) is not None:
            self.unused.append(note)
