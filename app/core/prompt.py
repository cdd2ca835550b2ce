"""Turning a conversation into the prompt text the model expects.

DeepSeek's guidance for R1 models, applied here:
- earlier reasoning is not sent back (only the text after the last `</think>`), unless a
  conversation asks to keep it (`keep_thinking`, for multi-turn reasoning studies);
- no system prompt: its text is folded into the first user turn;
- the generation prompt must end with `<think>\\n` (current distill templates do;
  older ones do not, so it is appended).
The template is the GGUF's own, rendered in llama-cpp-python's sandboxed Jinja
environment. A file without a template gets one of llama.cpp's built-in templates,
chosen from its architecture and tokenizer (`choose_builtin_template`, rendered by
llama.cpp's `llama_chat_apply_template`), or, when nothing identifies its format,
a generic fallback; the model info says which (docs/engine.md, "Files without a
chat template").
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.core.modelfile import ModelSummary

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


# --- llama.cpp's built-in templates for files without one ---------------------------------


@dataclass(frozen=True)
class BuiltinChoice:
    """One of llama.cpp's built-in chat templates, and what in the file it was chosen from."""

    name: str  # llama.cpp's name for it ("llama3", "gemma", ...)
    basis: str  # e.g. "its tokenizer's <|start_header_id|>, <|end_header_id|> and <|eot_id|> tokens"

    @property
    def note(self) -> str:
        return (
            f"This model file has no chat template; Ponder uses llama.cpp's built-in '{self.name}' template, "
            f"chosen from {self.basis}."
        )


def _tokens_basis(tokens: tuple[str, ...]) -> str:
    listed = ", ".join(tokens[:-1]) + " and " + tokens[-1] if len(tokens) > 1 else tokens[0]
    return f"its tokenizer's {listed} token{'s' if len(tokens) > 1 else ''}"


# (template, special tokens that must all be in the vocabulary), first match wins. The
# tokens are the template's own turn markers, so a vocabulary that holds them was trained
# on that format. Order matters where vocabularies overlap: R1 distills keep their base
# model's tokens (Llama 3's, Qwen's <|im_start|>) and add <｜User｜>; fine-tunes that add
# <|im_start|> to a Llama 3 or Mistral vocabulary (Hermes, Dolphin) were trained on ChatML;
# Phi-4 and SmolVLM have <|im_start|> without being ChatML.
_TOKEN_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("deepseek3", ("<｜User｜>", "<｜Assistant｜>")),
    ("phi4", ("<|im_start|>", "<|im_sep|>")),
    ("command-r", ("<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>")),
    ("chatml", ("<|im_start|>", "<|im_end|>")),
    ("llama4", ("<|header_start|>", "<|header_end|>", "<|eot|>")),
    ("llama3", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    ("gemma", ("<start_of_turn>", "<end_of_turn>")),
    ("granite", ("<|start_of_role|>", "<|end_of_role|>")),
    ("exaone3", ("[|assistant|]", "[|endofturn|]")),
    ("phi3", ("<|user|>", "<|assistant|>", "<|end|>")),
    ("mistral", ("[INST]", "[/INST]")),  # a variant, below
)
# Architectures whose format is certain without looking at the vocabulary.
_ARCH_RULES = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
    "command-r": "command-r", "cohere2": "command-r",
    "exaone": "exaone3", "exaone4": "exaone4",
    # DeepSeek-LLM/MoE/V2 chat ("User: ...\n\nAssistant:"); V2.5, V3 and R1 have <｜User｜> (above).
    "deepseek": "deepseek2", "deepseek2": "deepseek2",
}  # fmt: skip
# Pre-tokenizers (tokenizer.ggml.pre) that name a model family whose format is known.
_PRE_RULES = {
    "deepseek-llm": ("deepseek2", ()),  # DeepSeek-LLM 7B/67B chat (llama architecture)
    "deepseek-coder": ("deepseek", ("<|EOT|>",)),  # DeepSeek-Coder instruct: "### Instruction:" ... <|EOT|>
}

# Mistral-7B-Instruct v0.1/v0.2, Mixtral-8x7B-Instruct and Llama-2-chat: SentencePiece files with no
# chat tokens at all ([INST] is plain text), many converted before GGUFs carried templates. Only the
# name (general.name or the file name) tells them apart; it must name both the family and the
# instruct/chat tuning, since fine-tunes of these bases use other formats (Alpaca, Vicuna ...).
_NAME_RULES = (
    (re.compile(r"mi[sx]tral", re.I), re.compile(r"instruct", re.I), "mistral-v1"),
    (re.compile(r"llama[\s_-]*v?2(?!\d)", re.I), re.compile(r"chat", re.I), "llama2-sys-bos"),
)


def choose_builtin_template(summary: ModelSummary) -> BuiltinChoice | None:
    """llama.cpp's built-in template for a GGUF without tokenizer.chat_template, or None.

    `summary` is a modelfile.ModelSummary: its vocabulary's chat marker tokens, its
    architecture, its pre-tokenizer and, for two old families, its name decide, in that order. None: nothing identifies the
    format, and the caller falls back to the generic template with a warning.
    """
    markers = summary.chat_marker_tokens
    arch = summary.architecture
    pre = summary.tokenizer_pre
    for name, tokens in _TOKEN_RULES:
        if not all(t in markers for t in tokens):
            continue
        if name == "chatml" and "<end_of_utterance>" in markers:
            continue  # SmolVLM: <|im_start|> is its BOS, the format is not ChatML
        if name == "exaone3" and arch == "exaone4":
            name = "exaone4"
        if name == "mistral":
            # v7 has a system prompt block; tekken (Nemo, Small 3) has no spaces around [INST].
            tekken = pre == "tekken"
            if "[SYSTEM_PROMPT]" in markers:
                name, tokens = ("mistral-v7-tekken" if tekken else "mistral-v7"), tokens + ("[SYSTEM_PROMPT]",)
            else:
                name = "mistral-v3-tekken" if tekken else "mistral-v3"
            basis = _tokens_basis(tokens) + (" and its tekken pre-tokenizer" if tekken else "")
            return BuiltinChoice(name, basis)
        return BuiltinChoice(name, _tokens_basis(tokens))
    if arch in _ARCH_RULES:
        return BuiltinChoice(_ARCH_RULES[arch], f"its architecture ({arch})")
    if pre in _PRE_RULES:
        name, tokens = _PRE_RULES[pre]
        if all(t in markers for t in tokens):
            return BuiltinChoice(name, f"its tokenizer ({pre})")
    if summary.tokenizer_model == "llama" and "[INST]" not in markers:
        for text in (summary.name, summary.path.name):
            for family, kind, name in _NAME_RULES:
                if family.search(text) and kind.search(text):
                    return BuiltinChoice(name, f"its name ({text})")
    return None


def builtin_template_names() -> list[str]:
    """The names of the templates this build of llama.cpp has built in."""
    from llama_cpp import llama_cpp as lc

    n = lc.llama_chat_builtin_templates(None, 0)
    names = (ctypes.c_char_p * n)()
    lc.llama_chat_builtin_templates(names, n)
    return [name.decode() for name in names]


def render_builtin(name: str, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """`messages` in llama.cpp's built-in template `name` (llama_chat_apply_template).

    No BOS is written: the engine's tokenizer adds it where the vocabulary asks for one.
    """
    from llama_cpp import llama_cpp as lc

    # c_char_p strings end at a NUL; keep the arrays alive until the call returns.
    encoded = [(m["role"].encode(), m["content"].replace("\0", "").encode()) for m in messages]
    chat = (lc.llama_chat_message * len(encoded))(*(lc.llama_chat_message(r, c) for r, c in encoded))
    size = 2 * sum(len(r) + len(c) for r, c in encoded) + 256
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = lc.llama_chat_apply_template(name.encode(), chat, len(encoded), add_generation_prompt, buf, size)
        if n < 0:
            raise ValueError(f"llama.cpp has no built-in chat template named {name!r}")
        if n <= size:
            return buf.raw[:n].decode("utf-8", "replace")
        size = n + 1
    raise RuntimeError("llama_chat_apply_template kept asking for a bigger buffer")


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


def with_thinking(thinking: str, answer: str) -> str:
    """An earlier assistant turn as the model wrote it: its reasoning, then its answer."""
    return f"{THINK_OPEN}\n{thinking.strip()}\n{THINK_CLOSE}\n\n{answer}" if thinking.strip() else answer


# Stands in for an assistant turn whose thinking is kept: R1's own template cuts every assistant
# turn at its last `</think>`, so the template sees this and the whole turn goes in afterwards.
# Private-use characters: no template changes them and no trace contains them by chance.
_KEPT_TURN = "\ue000ponder-kept-turn-{}\ue001"


def fallback_template(has_r1_tokens: bool) -> str:
    return R1_FALLBACK_TEMPLATE if has_r1_tokens else GENERIC_FALLBACK_TEMPLATE


@dataclass(frozen=True)
class PromptRules:
    """A model's own prompt guidance. The January R1 family (R1 and its distills): no system prompt
    (folded into the first user turn) and a forced "<think>\\n". R1-0528 and its Qwen3-8B distill take a
    system prompt and think without being forced (DeepSeek's R1-0528 model card)."""

    system_prompt: bool = False
    force_think: bool = True


JANUARY_R1_RULES = PromptRules()
R1_0528_RULES = PromptRules(system_prompt=True, force_think=False)
_R1_0528_NAME = re.compile(r"r1[\W_]*0528", re.I)


def prompt_rules(name: str) -> PromptRules:
    """The rules for a model by its name (general.name or file name); the catalog's system_prompt and
    force_think flags say the same for its models (tests/core/test_catalog.py checks they agree)."""
    return R1_0528_RULES if _R1_0528_NAME.search(name or "") else JANUARY_R1_RULES


class PromptBuilder:
    """Renders conversations with one model's template (compiled once, sandboxed Jinja)."""

    rules: PromptRules = JANUARY_R1_RULES  # the engine sets the loaded model's (prompt_rules)

    def __init__(self, template: str, *, bos_token: str, eos_token: str, is_reasoning: bool) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.is_reasoning = is_reasoning
        self.builtin_name: str | None = None
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)
        self._format: Callable[[list[dict]], str] = lambda messages: formatter(messages=messages).prompt

    @classmethod
    def builtin(cls, name: str, *, is_reasoning: bool) -> PromptBuilder:
        """A builder that renders with llama.cpp's built-in template `name` (see choose_builtin_template)."""
        if name not in builtin_template_names():
            raise ValueError(f"llama.cpp has no built-in chat template named {name!r}")
        self = cls.__new__(cls)
        self.is_reasoning = is_reasoning
        self.builtin_name = name
        self._format = lambda messages: render_builtin(name, messages)
        return self

    def render(self, messages: list[dict], *, keep_thinking: bool = False) -> RenderedPrompt:
        """The prompt text; for reasoning models it always ends by opening a think block.

        An assistant message may carry its reasoning as "thinking" (and its answer as
        "content"). It is left out, as DeepSeek advises, unless `keep_thinking`: then each
        earlier turn goes back as `<think>\\n…\\n</think>\\n\\n` + answer, whatever the template does.
        """
        kept: dict[str, str] = {}
        if keep_thinking:
            messages = [dict(m) for m in messages]
            for m in messages:
                if m["role"] == "assistant" and m.get("thinking", "").strip():
                    key = _KEPT_TURN.format(len(kept))
                    kept[key] = with_thinking(m["thinking"], strip_reasoning(m["content"]))
                    m["content"] = key
        text = self._format(prepare_messages(messages, self.is_reasoning and not self.rules.system_prompt))
        for key, turn in kept.items():
            text = text.replace(key, turn, 1)
        if self.is_reasoning and self.rules.force_think:
            tail = text.rstrip(" ")
            if tail.endswith(THINK_OPEN):
                text = tail + "\n"
            elif not tail.endswith(THINK_OPEN + "\n"):
                text = text + THINK_OPEN + "\n"
        return RenderedPrompt(text=text, opens_thinking=text.rstrip().endswith(THINK_OPEN))
