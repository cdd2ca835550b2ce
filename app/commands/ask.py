"""`ponder ask`: one question to a local model, streamed to the terminal or printed as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from app.commands.local_model import add_model_arguments, chosen_model
from app.commands.remote_args import add_remote_arguments, remote_engine
from app.core.engine import DEFAULT_MAX_TOKENS, Engine, Sampling
from app.core.steering import SteeringError, check_budget

DIM, RESET = "\x1b[2m", "\x1b[0m"
ITALIC = "\x1b[3m"  # text Ponder inserted into the thought (a wrap-up when the budget runs out)


def _budget(text: str) -> int:
    """--thinking-budget's value: a whole number of tokens, at least 1 (steering.check_budget)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a thinking budget is a whole number of tokens, not {text!r}") from None
    try:
        return check_budget(value)
    except SteeringError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ask", help="ask a model one question (thinking to stderr, answer to stdout)")
    p.add_argument("prompt", metavar="PROMPT")
    add_model_arguments(p, "ask")
    add_remote_arguments(p)  # --endpoint URL [--api-key KEY] [--remote-model NAME]: a server instead
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    p.add_argument("--temperature", type=float, default=Sampling.temperature)
    p.add_argument("--top-p", type=float, default=Sampling.top_p)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--thinking-budget", type=_budget, default=None, metavar="N",
                   help="end the thought after N thinking tokens with a short wrap-up and </think>, then answer")
    p.add_argument("--system", default=None, help="system instructions (folded into the prompt for R1 models)")
    p.add_argument("--json", action="store_true", help="print one JSON object when done")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.endpoint:  # a remote engine: the same run interface, the same output
        engine = remote_engine(args, getattr(args, "ask_model", None) or args.model)
    else:
        chosen = chosen_model(args, "ask")
        if chosen is None:
            return 2
        engine = Engine.load(*chosen)
    try:
        for note in (engine.info.gpu_note, getattr(engine.info, "context_note", None)):
            if note:
                print(f"ponder: {note}", file=sys.stderr)
        if getattr(engine, "draft_note", None):  # a draft model that cannot draft for this one
            print(f"ponder: {engine.draft_note}", file=sys.stderr)
        messages = [{"role": "user", "content": args.prompt}]
        if args.system:
            messages.insert(0, {"role": "system", "content": args.system})
        sampling = Sampling(temperature=args.temperature, top_p=args.top_p,
                            max_tokens=args.max_tokens, seed=args.seed,
                            thinking_budget=getattr(args, "thinking_budget", None))
        chat = engine.chat(messages, sampling)
        if args.json:
            chat.run()
            print(json.dumps({
                "thinking": chat.thinking,
                "answer": chat.answer,
                "flags": chat.flags,
                "spans": getattr(chat, "spans", []),  # inserted stretches of the thinking (steering.py)
                "stats": chat.stats.to_dict(),
                "model": engine.info.to_dict(),
                "prompt": chat.prompt_text,  # exactly what was tokenized (template, system text folded in)
                "sampling": dataclasses.asdict(chat.sampling),  # as used: the seed drawn if none was given
                **({"error": str(chat.error)} if getattr(chat, "error", None) else {}),  # a remote failure
            }, ensure_ascii=False))
        else:
            _stream(chat)
            if getattr(chat, "resplit", False):  # a remote model that thinks, not known until its first answer
                print("ponder: the thinking above was printed as answer: the server's model thinks, which its name "
                      "did not say. Pass --remote-reasoning yes (or use --json) to split it as it streams.",
                      file=sys.stderr)
        if getattr(chat, "error", None):  # a remote engine keeps the part received and says what failed
            print(f"ponder: {chat.error}", file=sys.stderr)
            return 1
        return 0
    finally:
        engine.close()


def _stream(chat) -> None:
    dim = sys.stderr.isatty()
    for segment in chat:
        if segment.kind == "think":
            style = DIM + (ITALIC if getattr(segment, "inserted_by", None) else "")
            sys.stderr.write(f"{style}{segment.text}{RESET}" if dim else segment.text)
            sys.stderr.flush()
        else:
            sys.stdout.write(segment.text)
            sys.stdout.flush()
    sys.stdout.write("\n")
    s = chat.stats
    rate = f"{s.decode_tokens_per_s:.1f} tok/s" if s.decode_tokens_per_s else "-"
    flags = f" · {', '.join(chat.flags)}" if chat.flags else ""
    from app.core.speculative import drafting_summary

    drafting = drafting_summary(getattr(s, "drafter", None), getattr(s, "draft_tokens", 0),
                                getattr(s, "draft_accepted", 0), getattr(s, "draft_speedup", None))
    drafting = f" · {drafting}" if drafting else ""
    sys.stderr.write(
        f"\n[{s.thinking_tokens} thinking + {s.answer_tokens} answer tokens · {rate}{drafting} · {s.finish_reason}{flags}]\n"
    )
