"""`python -m app ask` in a real subprocess with a scripted model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.scripted_gguf import STANDARD_ANSWER, STANDARD_THINKING

STATS_KEYS = {
    "prompt_tokens", "thinking_tokens", "answer_tokens", "time_to_first_token_s",
    "thinking_s", "decode_tokens_per_s", "finish_reason",
}


def ponder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120
    )


def test_ask_json_prints_one_object_with_trace_and_stats(scripted_model):
    result = ponder("ask", "--model", str(scripted_model("standard_r1")), "--ctx", "2048",
                    "--seed", "4", "--json", "What is 17 × 23?")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["thinking"] == STANDARD_THINKING.strip()
    assert data["answer"] == STANDARD_ANSWER.strip()
    assert data["flags"] == []
    assert STATS_KEYS <= set(data["stats"])
    assert data["stats"]["finish_reason"] == "stop"
    assert data["model"]["is_reasoning"] is True
    # The exact prompt: the template's turn tokens around the question, opening a thought.
    assert data["prompt"].endswith("<｜User｜>What is 17 × 23?<｜Assistant｜><think>\n")
    assert data["sampling"]["seed"] == 4 and data["sampling"]["temperature"] == 0.6


def test_ask_joins_several_think_blocks_with_a_blank_line(scripted_model):
    result = ponder("ask", "--model", str(scripted_model("repeated_think")), "--ctx", "2048", "--json", "Hi")
    data = json.loads(result.stdout)
    assert data["thinking"] == "First idea: try 6.\n\nWait, check again"
    assert "multiple_think_blocks" in data["flags"]


def test_ask_streams_thinking_to_stderr_and_answer_to_stdout(scripted_model):
    result = ponder("ask", "--model", str(scripted_model("standard_r1")), "--ctx", "2048", "Hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == STANDARD_ANSWER.strip()
    assert STANDARD_THINKING.strip() in result.stderr
    assert "\x1b[" not in result.stderr  # no colour codes when stderr is not a terminal


def test_ask_max_tokens_and_temperature_are_honoured(scripted_model):
    result = ponder("ask", "--model", str(scripted_model("standard_r1")), "--ctx", "2048",
                    "--max-tokens", "5", "--temperature", "1.0", "--json", "Hi")
    data = json.loads(result.stdout)
    assert data["stats"]["finish_reason"] == "length"
    assert data["stats"]["thinking_tokens"] == 5
    assert "unclosed_thinking" in data["flags"]


@pytest.mark.parametrize("kind", ["missing", "truncated", "zero_blocks", "random_bytes", "unknown_arch"])
def test_bad_model_exits_nonzero_with_one_line(tmp_path, malformed_model, kind):
    path = tmp_path / "missing.gguf" if kind == "missing" else malformed_model(kind)
    result = ponder("ask", "--model", str(path), "--json", "Hi")
    assert result.returncode != 0
    assert result.returncode > 0  # an exit code, not a signal (llama.cpp never saw the file)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ponder: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
