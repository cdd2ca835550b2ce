"""Turning a conversation into the prompt text the model expects.

DeepSeek's guidance for R1 models, applied here:
- earlier reasoning is not sent back (only the text after the last `</think>`);
- no system prompt: its text is folded into the first user turn;
- the generation prompt must end with `<think>\\n` (current distill templates do;
  older ones do not, so it is appended).
The template is the GGUF's own, rendered in llama-cpp-python's sandboxed Jinja
environment. A file without a template gets a fallback and a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# For files that carry R1's special tokens but no template.
R1_FALLBACK_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<｜User｜>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<｜Assistant｜>{{ m['content'] }}<｜end▁of▁sentence｜>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)

# For anything else without a template: ChatML, the most widely understood layout.
GENERIC_FALLBACK_TEMPLATE = (
    "{% for m in messages %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    opens_thinking: bool  # the prompt ends inside an open <think> block


def strip_reasoning(content: str) -> str:
    """The answer part of an assistant message: what follows the last `</think>`."""
    if THINK_CLOSE in content:
        return content.rsplit(THINK_CLOSE, 1)[1].strip()
    return content


def prepare_messages(messages: list[dict], is_reasoning: bool) -> list[dict]:
    """Drop old reasoning; for R1 models fold system text into the first user turn."""
    prepared = [
        {"role": m["role"], "content": strip_reasoning(m["content"]) if m["role"] == "assistant" else m["content"]}
        for m in messages
    ]
    if not is_reasoning:
        return prepared
    system = "\n\n".join(m["content"] for m in prepared if m["role"] == "system" and m["content"].strip())
    prepared = [m for m in prepared if m["role"] != "system"]
    if system:
        for m in prepared:
            if m["role"] == "user":
                m["content"] = f"{system}\n\n{m['content']}"
                break
    return prepared


def fallback_template(has_r1_tokens: bool) -> str:
    return R1_FALLBACK_TEMPLATE if has_r1_tokens else GENERIC_FALLBACK_TEMPLATE


class PromptBuilder:
    """Renders conversations with one model's template (compiled once, sandboxed Jinja)."""

    def __init__(self, template: str, *, bos_token: str, eos_token: str, is_reasoning: bool) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.is_reasoning = is_reasoning
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)

    def render(self, messages: list[dict]) -> RenderedPrompt:
        """The prompt text; for reasoning models it always ends by opening a think block."""
        text = self._formatter(messages=prepare_messages(messages, self.is_reasoning)).prompt
        if self.is_reasoning:
            tail = text.rstrip(" ")
            if tail.endswith(THINK_OPEN):
                text = tail + "\n"
            elif not tail.endswith(THINK_OPEN + "\n"):
                text = text + THINK_OPEN + "\n"
        return RenderedPrompt(text=text, opens_thinking=text.rstrip().endswith(THINK_OPEN))
