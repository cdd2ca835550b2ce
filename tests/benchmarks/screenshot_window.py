"""Screenshots of the real window (run by hand, under Xvfb): mid-thinking and after the answer.

    xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python tests/benchmarks/screenshot_window.py OUT_DIR [--theme dark] [--maths]

A scripted GGUF (real llama.cpp) writes a realistic R1 answer; the stream is slowed
to a plausible speed so the window can be caught while it thinks. Screenshots are
taken of the whole X screen with ImageMagick's `import`, as a user would see it.
Writes OUT_DIR/thinking.png and OUT_DIR/answer.png; with --maths, an R1 maths answer (inline,
display and boxed formulas, the finished thought open with its maths typeset) as OUT_DIR/maths.png,
taken once every formula is typeset.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)
from PySide6.QtCore import QTimer  # noqa: E402

import app.core.engine as engine  # noqa: E402
from app.core.settings import Settings, save_settings  # noqa: E402
from app.core.storage import ChatStore, store_path  # noqa: E402
from app.ui.main import create_app, open_window  # noqa: E402
from tests.benchmarks.screenshot_common import grab, run_until_closed, send, shot_args  # noqa: E402
from tests.fixtures.scripted_gguf import split_script, write_scripted_gguf  # noqa: E402

PROMPT = "Write a Python function that checks whether a string is a palindrome, ignoring case and punctuation."
THINKING = """Okay, so the user wants a function that tells whether a string is a palindrome, but it has to ignore case and punctuation. Let me think about what that means in practice.

A palindrome reads the same forwards and backwards. "Racecar" should count, and so should the classic "A man, a plan, a canal: Panama" once the commas, the colon and the spaces are gone and everything is lower case.

So the steps are: normalise the string, then compare it with its reverse. For normalising I could loop over the characters and keep those where str.isalnum() is true, or use a regular expression like [^a-z0-9] after lowering. The regex is shorter, but isalnum() also keeps letters like é or ß, which is friendlier for non-English text. Hmm, the user did not mention Unicode, so a regex is fine, but I should mention the alternative.

Comparing with the reverse is easy in Python: cleaned == cleaned[::-1]. That is O(n) time and O(n) extra memory, which is fine for normal strings. A two-pointer loop would avoid the copy, but it is less readable.

What about the empty string? After cleaning, "" or "!!!" both become empty, and an empty string is a palindrome by the usual definition, so returning True is reasonable.

I think a short function plus a few examples in a table would be the clearest answer. Let me also explain each step briefly.
"""
ANSWER = """

Here is a compact version:

```python
import re

def is_palindrome(text: str) -> bool:
    cleaned = re.sub(r"[^a-z0-9]", "", text.lower())
    return cleaned == cleaned[::-1]
```

**How it works**

1. `text.lower()` makes the comparison case-insensitive.
2. The regular expression removes everything that is not a letter or a digit.
3. `cleaned[::-1]` is the string reversed; a palindrome equals its reverse.

| input | result |
|---|---|
| `"A man, a plan, a canal: Panama"` | `True` |
| `"race a car"` | `False` |
| `"!!!"` | `True` (nothing left to compare) |

For text beyond ASCII, keep characters with `str.isalnum()` instead of the regular expression."""

MATHS_PROMPT = "Find the derivative of y = x^x. Please reason step by step, and put your final answer within \\boxed{}."
MATHS_THINKING = """The exponent depends on $x$, so neither the power rule nor the exponential rule applies directly. Taking logarithms turns it into a product: $\\ln y = x \\ln x$.

Differentiating both sides, the left gives $\\frac{y'}{y}$ and the right, by the product rule, $\\ln x + 1$. So $y' = x^x(\\ln x + 1)$. At $x = 1$ that is $1$, which matches the graph's slope there.
"""
MATHS_ANSWER = """

The exponent depends on $x$, so take the natural logarithm of both sides first:

$$\\ln y = x \\ln x$$

Differentiating implicitly with respect to $x$ (product rule on the right):
\\[
\\frac{y'}{y} = \\ln x + 1
\\]

Multiplying by $y = x^x$ gives $y' = x^x(\\ln x + 1)$. Check at $x = 1$: $y'(1) = 1 \\cdot (0 + 1) = 1$. As a bonus, integrating back:
\\[
\\int_1^e x^x(\\ln x + 1)\\,dx = \\Big[x^x\\Big]_1^e = e^e - 1 \\approx 14.15
\\]

**Final answer:**
\\[
\\boxed{\\frac{d}{dx}\\,x^x = x^x(\\ln x + 1)}
\\]"""

HISTORY = [  # earlier chats, for a realistic sidebar
    ("Explain the Monty Hall problem", "The host's choice gives information...", "Switching wins 2/3 of the time."),
    ("Prove that √2 is irrational", "Assume p/q in lowest terms...", "Suppose √2 = p/q with gcd(p, q) = 1 ..."),
    ("How many r's are in strawberry?", "s-t-r-a-w-b-e-r-r-y: r at 3, 8, 9.", "There are **3** r's in *strawberry*."),
]
TOKEN_DELAY_S = 0.012  # ~80 tokens/s: roughly a 7B distill on a laptop GPU


def slow_down_stream() -> None:
    """Pace the scripted model like a real one (the scripted model is thousands of tokens/s)."""
    original = engine.ChatRun.__next__

    def paced(self):
        segment = original(self)
        time.sleep(TOKEN_DELAY_S)
        return segment

    engine.ChatRun.__next__ = paced


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--maths", action="store_true", help="a maths answer, written to maths.png")
    args = shot_args(parser)
    shot_prompt, shot_thinking, shot_answer = (MATHS_PROMPT, MATHS_THINKING, MATHS_ANSWER) if args.maths else (PROMPT, THINKING, ANSWER)

    work = Path(tempfile.mkdtemp(prefix="ponder-shot-"))
    model = write_scripted_gguf(
        work / "DeepSeek-R1-Distill-Qwen-7B.gguf", split_script(shot_thinking + "</think>" + shot_answer),
        name="DeepSeek-R1-Distill-Qwen-7B (scripted)",
    )
    data = work / "data"
    save_settings(data, Settings(n_ctx=4096, n_gpu_layers=0, theme=args.theme, thinking_expanded=args.maths))
    with ChatStore(store_path(data)) as store:
        for prompt, thinking, answer in HISTORY:
            conv = store.create_conversation()
            store.add_message(conv, "user", prompt)
            store.add_message(conv, "assistant", answer, thinking, stats={"thinking_tokens": 120})
    slow_down_stream()

    qapp = create_app()
    window = open_window(str(data), str(model))
    window.resize(1280, 800)
    window.move(0, 0)
    shots = {"thinking": False}

    def on_counts(thinking: int, _answer: int) -> None:
        if thinking >= 100 and not shots["thinking"]:
            shots["thinking"] = True
            QTimer.singleShot(150, lambda: grab(args.out / "thinking.png"))

    def on_finished(_message) -> None:
        QTimer.singleShot(600, grab_when_typeset)

    def grab_when_typeset() -> None:
        view = window.transcript.assistant_views()[-1]
        typeset = view.thinking_pane.typeset
        if view.answer_view.formula_images.pending_count or (typeset and typeset.formula_images.pending_count):
            QTimer.singleShot(100, grab_when_typeset)
            return
        window.transcript.scroll_to_bottom()
        QTimer.singleShot(300, lambda: (grab(args.out / ("maths.png" if args.maths else "answer.png")), window.close()))

    window.session.stream_counts.connect(on_counts)
    window.session.answer_finished.connect(on_finished)
    window.client.loaded.connect(lambda _info: QTimer.singleShot(800, lambda: send(window, shot_prompt)))
    return run_until_closed(qapp, window)


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    sys.exit(main())
