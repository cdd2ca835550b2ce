"""Presets for "Connect to a server…": the engines people run R1 on, with their usual address.

Each preset fills the dialog; the user can change every field. `server_kind` names the engine
when its model list does not (it decides the thinking budget / Answer now controls, see
`app.core.remote.capabilities_for`). Ports are each engine's default.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.remote import LLAMA_SERVER, Endpoint


@dataclass(frozen=True)
class Preset:
    name: str
    base_url: str
    model: str = ""  # a suggestion; "" : pick from the server's list
    needs_key: bool = False
    server_kind: str | None = None
    note: str = ""  # one line for the dialog

    def endpoint(self, model: str | None = None, api_key: str | None = None) -> Endpoint:
        return Endpoint(self.base_url, model if model is not None else self.model, api_key,
                        server_kind=self.server_kind)


PRESETS: tuple[Preset, ...] = (
    Preset("DeepSeek API", "https://api.deepseek.com/v1", "deepseek-reasoner", needs_key=True,
           server_kind="DeepSeek", note="DeepSeek's own R1 (deepseek-reasoner); needs an API key from platform.deepseek.com."),
    Preset("vLLM", "http://localhost:8000/v1", server_kind="vLLM",
           note="Start it with --reasoning-parser deepseek_r1 so the thinking comes apart (docs/cluster.md)."),
    Preset("SGLang", "http://localhost:30000/v1", server_kind="SGLang",
           note="Start it with --reasoning-parser deepseek-r1 so the thinking comes apart (docs/cluster.md)."),
    Preset("llama-server", "http://localhost:8080/v1", server_kind=LLAMA_SERVER,
           note="llama.cpp's server; supports a thinking budget and Answer now."),
    Preset("Ollama", "http://localhost:11434/v1", "deepseek-r1", server_kind="Ollama",
           note="Ollama's OpenAI-compatible endpoint; models as `ollama list` names them."),
    Preset("LM Studio", "http://localhost:1234/v1", server_kind="LM Studio",
           note="Turn on the local server in LM Studio's Developer tab."),
)


def preset_named(name: str) -> Preset | None:
    return next((p for p in PRESETS if p.name.lower() == name.lower()), None)
