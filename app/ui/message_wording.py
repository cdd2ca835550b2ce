"""What an assistant message says about itself: header and footer lines, the status chip,
trace-flag badges and their tooltips.

Plain strings, no widgets: thinking_pane.py and message_footer.py show them.
"""

from __future__ import annotations

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


def stats_line(stats: dict | None, thinking_tokens: int, answer_tokens: int) -> str:
    """The finished message's one-line summary: speed, tokens, how it ended."""
    s = stats or {}
    parts = []
    if s.get("time_to_first_token_s") is not None:
        parts.append(f"{format_seconds(s['time_to_first_token_s'])} to first token")
    if s.get("decode_tokens_per_s"):
        parts.append(f"{s['decode_tokens_per_s']:.1f} tokens/s")
    if thinking_tokens:
        parts.append(f"{thinking_tokens:,} thinking + {answer_tokens:,} answer tokens")
    elif answer_tokens:
        parts.append(tokens(answer_tokens))
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
        ("Time to first token", s.get("time_to_first_token_s") and format_seconds(s["time_to_first_token_s"])),
        ("Thinking time", s.get("thinking_s") and format_seconds(s["thinking_s"])),
        ("Speed", s.get("decode_tokens_per_s") and f"{s['decode_tokens_per_s']:.1f} tokens/s"),
        ("Total time", s.get("total_s") and format_seconds(s["total_s"])),
        ("Finish reason", s.get("finish_reason")),
        ("Context used", s.get("context_used") and tokens(s["context_used"])),
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
