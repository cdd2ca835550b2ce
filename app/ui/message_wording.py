"""What an assistant message says about itself: header and footer lines, the status chip,
trace-flag badges and their tooltips.

Plain strings, no widgets: thinking_pane.py and message_footer.py show them.
"""

from __future__ import annotations

from app.core.speculative import drafting_summary

# Trace anomalies from app.core.reasoning (and storage's "interrupted"): badge text, tooltip.
FLAG_INFO = {
    "skipped_thinking": (
        "skipped",
        "The model closed its thinking block without writing any reasoning; the answer came without visible thought.",
    ),
    "unclosed_thinking": (
        "unclosed",
        "The thinking never ended: the model hit the token limit or was stopped before </think>, "
        "so there is no separate answer. Raise Max tokens in Settings and regenerate.",
    ),
    "orphan_close": (
        "orphan tag",
        "The answer contained a </think> without a matching <think>; the tag was removed from the answer.",
    ),
    "multiple_think_blocks": (
        "multiple",
        "The model wrote more than one think block (or a nested <think>); all of its reasoning is shown here.",
    ),
    "text_before_think": (
        "text before",
        "The model wrote answer text before it started thinking; that text is shown in the answer.",
    ),
    # Steering (app/core/steering.py): not anomalies, but the trace is not the model's alone.
    "budget_reached": (
        "budget",
        "The thinking budget ran out: Ponder ended the thought with a short wrap-up and </think> "
        "(shown in the thinking), and the model answered from there.",
    ),
    "answer_now": (
        "answered now",
        "You pressed Answer now: Ponder ended the thought with a short wrap-up and </think> (on a server, "
        "its control ended it), and the model answered from there.",
    ),
    "nudged": ("nudged", "You added a note to the thought while the model thought; it is marked in the thinking."),
    "continued": (
        "continued",
        "The model continued a thought you edited or cut; the part you wrote is marked in the thinking.",
    ),
    "interrupted": (
        "interrupted",
        "Ponder closed while this message was being written; it ends where the last save did.",
    ),
}
SILENT_FLAGS = {"no_thinking"}  # normal for a non-reasoning model: nothing to warn about

FINISH_WORDS = {"stop": "done", "length": "token limit", "context_full": "context full", "cancelled": "stopped"}


def format_seconds(s: float) -> str:
    if s < 0.1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {s % 60:.0f} s"


def tokens(n: int) -> str:
    return f"{n:,} token" + ("" if n == 1 else "s")


def thinking_header(live_seconds: int | None, thought_for_s: float | None, thinking_tokens: int) -> str:
    """ "Thinking… 12 s · 480 tokens" while the clock runs (`live_seconds`), then "Thought for …"."""
    if live_seconds is not None:
        text = f"Thinking… {live_seconds} s"
    elif thought_for_s is not None:
        text = f"Thought for {format_seconds(thought_for_s)}"
    else:
        text = "Thoughts"
    return text + (f" · {tokens(thinking_tokens)}" if thinking_tokens else "")


def live_footer(phase: str, answer_tokens: int) -> str:
    """The footer while an answer streams (while thinking, the pane's header says it all)."""
    if phase == "waiting":
        return "Starting…"
    if phase == "answering":
        return f"Writing… {tokens(answer_tokens)}" if answer_tokens else "Writing…"
    return ""


def _phase_stats(name: str, n: int, seconds: float | None, rate: float | None) -> str:
    """ "thinking: 812 tokens, 9.1 s, 89.2 tokens/s" (what is known of it)."""
    parts = [tokens(n)]
    if seconds is not None:
        parts.append(format_seconds(seconds))
    if rate:
        parts.append(f"{rate:.1f} tokens/s")
    return f"{name}: " + ", ".join(parts)


def stats_line(stats: dict | None, thinking_tokens: int, answer_tokens: int) -> str:
    """The finished message's one-line summary: time to first token, then thinking and answer
    each with tokens, seconds and tokens/s (stats of older messages: one speed), how it ended."""
    s = stats or {}
    parts = []
    if s.get("time_to_first_token_s") is not None:
        parts.append(f"{format_seconds(s['time_to_first_token_s'])} to first token")
    if "answer_s" in s:  # the engine times thinking and answer apart (issue 9)
        if thinking_tokens:
            parts.append(_phase_stats("thinking", thinking_tokens, s.get("thinking_s"), s.get("thinking_tokens_per_s")))
        if answer_tokens or not thinking_tokens:
            parts.append(_phase_stats("answer", answer_tokens, s.get("answer_s"), s.get("answer_tokens_per_s")))
    elif s.get("decode_tokens_per_s"):
        parts.append(f"{s['decode_tokens_per_s']:.1f} tokens/s")
    if "answer_s" in s:
        pass
    elif thinking_tokens:
        parts.append(f"{thinking_tokens:,} thinking + {answer_tokens:,} answer tokens")
    elif answer_tokens:
        parts.append(tokens(answer_tokens))
    drafting = drafting_summary(s.get("drafter"), s.get("draft_tokens", 0), s.get("draft_accepted", 0),
                                s.get("draft_speedup"))
    if drafting:  # speculative decoding: "draft 1.5B · 78% accepted · 1.4× est."
        parts.append(drafting)
    if s.get("finish_reason"):
        parts.append(FINISH_WORDS.get(s["finish_reason"], s["finish_reason"]))
    return " · ".join(parts)


def stats_details(stats: dict | None) -> str:
    """Every stat, one per line (the summary's tooltip)."""
    s = stats
    if not s:
        return ""
    rows = [
        ("Prompt tokens", s.get("prompt_tokens")),
        ("Thinking tokens", s.get("thinking_tokens")),
        ("Answer tokens", s.get("answer_tokens")),
        ("Inserted into the thinking", s.get("inserted_tokens") and tokens(s["inserted_tokens"])),
        ("Time to first token", s.get("time_to_first_token_s") and format_seconds(s["time_to_first_token_s"])),
        ("Thinking time", s.get("thinking_s") and format_seconds(s["thinking_s"])),
        ("Thinking speed", s.get("thinking_tokens_per_s") and f"{s['thinking_tokens_per_s']:.1f} tokens/s"),
        ("Answer time", s.get("answer_s") and format_seconds(s["answer_s"])),
        ("Answer speed", s.get("answer_tokens_per_s") and f"{s['answer_tokens_per_s']:.1f} tokens/s"),
        ("Decode speed", s.get("decode_tokens_per_s") and f"{s['decode_tokens_per_s']:.1f} tokens/s"),
        ("Total time", s.get("total_s") and format_seconds(s["total_s"])),
        ("Finish reason", s.get("finish_reason")),
        ("Context used", s.get("context_used") and tokens(s["context_used"])),
        ("Drafting", s.get("drafter") and f"{s['drafter']}: {s.get('draft_accepted', 0):,} of "
                                          f"{s.get('draft_tokens', 0):,} drafted tokens kept"),
        ("Speed-up from drafting", s.get("draft_speedup") and
         f"{s['draft_speedup']:.2f}× (estimated against this answer's own one-token steps)"),
    ]
    return "\n".join(f"{name}: {value}" for name, value in rows if value not in (None, ""))


def status_chip(status: str, stats: dict | None, flags: list[str], error: str | None) -> tuple[str, str]:
    """(chip text, tooltip) for a message that did not simply finish; ("", "") when it did."""
    reason = (stats or {}).get("finish_reason")
    if status == "error":
        return "Error", error or "The answer could not be completed."
    if "interrupted" in flags:
        return "Interrupted", FLAG_INFO["interrupted"][1]
    if status == "stopped" or reason == "cancelled":
        return "Stopped", "You stopped this answer; what was generated is kept."
    if reason == "length":
        return "Token limit", "The answer reached Max tokens. Raise it in Settings and regenerate."
    if reason == "context_full":
        return "Context full", (
            "The conversation filled the model's context window. Start a new chat or raise the context size."
        )
    return "", ""


def badges(flags: list[str]) -> list[tuple[str, str]]:
    """(badge text, tooltip) for each trace flag worth showing."""
    shown = []
    for flag in flags:
        if flag in SILENT_FLAGS or flag == "interrupted":  # "interrupted" is the status chip
            continue
        shown.append(FLAG_INFO.get(flag, (flag.replace("_", " "), f"Trace flag: {flag}")))
    return shown
