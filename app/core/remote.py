"""Remote engines: an OpenAI-compatible server (vLLM, SGLang, llama-server, Ollama, LM Studio,
DeepSeek's API, another Ponder) in place of the in-process llama.cpp.

`RemoteEngine` has the in-process `Engine`'s chat interface: `chat(messages, sampling, stop)`
returns a run that, iterated, yields the same `Segment`s out of the same `ThinkSplitter`, and
afterwards has `thinking`, `answer`, `flags` and `stats` (a `Stats` with where it came from).
So the window's engine thread, `run_job` and `ponder ask` drive either one alike.

Using it (the network is touched only by `connect`, `list_models`, iterating a run and
`answer_now`; none of them belongs on the GUI thread)::

    from app.core.remote import Endpoint, RemoteEngine, list_models
    from app.core.secrets import key_store

    models = list_models("http://gpu-box:8000/v1", api_key)         # for the picker
    engine = RemoteEngine.connect(Endpoint("http://gpu-box:8000/v1", models[0].id, api_key))
    engine.info.label            # "remote: gpu-box:8000 · deepseek-r1" (show it at all times)
    engine.capabilities.answer_now, engine.capabilities.answer_now_note   # for the controls
    run = engine.chat([{"role": "user", "content": "Hi"}], Sampling(), stop_event)
    for segment in run:          # Segment("think" | "answer", text, block), as from Engine
        ...
    run.stats.finish_reason      # stop | length | cancelled | error
    run.error                    # None, or a RemoteError whose str() is a sentence to show
    run.answer_now()             # from any thread while it thinks; RemoteUnsupported if it can't

What it does, and why:

- **Which server.** `connect` lists `GET /models` once: that checks the address and the key,
  names the server's kind from the models' `owned_by` (`llamacpp`, `vllm`, `sglang`, ...) and
  offers the first model when none was chosen. A server that does not list models is still used.
- **Splitting.** The thought may come as `reasoning_content` deltas (DeepSeek's API,
  llama-server, LM Studio, Ponder), as `reasoning` deltas (vLLM, Ollama), as `<think>` tags in
  `content`, or as `content` that only closes the thought (`</think>`, the server's template
  opened it: llama-cpp-python's server with R1). Reasoning deltas are fed to the splitter
  wrapped in tags, so every path goes through one `ThinkSplitter` with one set of flags.
- **Reasoning model or not** (`info.is_reasoning`): the endpoint's setting if it has one
  (`Endpoint.reasoning`), else a guess from the model's name, corrected by the first stream. A
  content-only stream that starts mid-thought can only be told apart from a plain answer when
  `</think>` arrives; if the guess was wrong the run re-splits its whole text at the end
  (`run.resplit` is True: take `run.thinking`/`run.answer`, not the live segments) and
  `engine.reasoning_learned` says what the stream showed, for the model's settings.
- **Stats** come from the server: `usage` (with `completion_tokens_details.reasoning_tokens`
  and `prompt_tokens_details.cached_tokens`) and llama-server's `timings`; what it does not
  send is counted from the stream (one chunk, one token) or timed here. `stats.source` is
  `info.label` and `stats.counts_from` says which of these the counts are.
- **Stop** closes the connection within a token: a watcher thread shuts the run's sockets down
  when the stop event is set, also while the request waits for its first byte.
- **Thinking budget / Answer now** (`capabilities`): llama-server takes a per-request
  `reasoning_budget_tokens` and ends a running thought through `POST /v1/chat/completions/control`
  `{"id", "action": "reasoning_end", "model"}` (the request must carry `reasoning_control: true`;
  llama.cpp's tools/server source). The run's flags then say `answer_now` or `budget_reached`,
  as a local run's do. Other servers have no such control; the capability is False and its
  note is a sentence the control can show.
- **Failures** end the run with `finish_reason == "error"` and `run.error` (a `RemoteError`
  with a sentence and a `kind`), keeping the part already received: unreachable host, TLS, 401,
  403, 404, 429 and 5xx (with the server's Retry-After), a stream cut before its end, bytes
  that are not JSON, and a server that goes quiet (`idle_timeout_s`) or never sends `[DONE]`
  (after the last chunk it is waited for `done_grace_s`, then the answer counts as complete).

Cost: reading a stream through a RemoteEngine took 0.88x and 1.04x the time of reading it with
the bare openai client (two runs of 5 rounds × 5000 chunks, 2026-12-03, on the 2-core development
machine under a load of ~10, where the openai client itself spent ~1 ms a chunk):
`tests/benchmarks/bench_remote.py`. The splitting, counting and Stop watcher add no cost beyond
that noise.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit, urlunsplit

from app.core.engine import DEFAULT_MAX_TOKENS, Sampling, Stats
from app.core.errors import RemoteError, RemoteUnsupported
from app.core.reasoning import CLOSE_TAG, OPEN_TAG, Segment, ThinkSplitter, split_text

log = logging.getLogger("ponder.remote")

CONNECT_TIMEOUT_S = 10.0
FIRST_TOKEN_TIMEOUT_S = 600.0  # a cluster may take minutes over a long prompt before its first token
IDLE_TIMEOUT_S = 120.0  # silence between two chunks after which the server counts as gone
DONE_GRACE_S = 3.0  # after the finishing chunk: wait this long for usage and [DONE]
CONTROL_TIMEOUT_S = 10.0

# Server kinds, named from what `GET /models` says in `owned_by`.
LLAMA_SERVER = "llama-server"
_OWNERS = {
    "llamacpp": LLAMA_SERVER,
    "vllm": "vLLM",
    "sglang": "SGLang",
    "ollama": "Ollama",
    "library": "Ollama",
    "organization_owner": "LM Studio",
    "deepseek": "DeepSeek",
    "ponder": "Ponder",
    "me": "llama-cpp-python",
}
GENERIC = "OpenAI-compatible server"

# Model names that say "reasoning model" (R1 and its distills, deepseek-reasoner, QwQ, ...).
_REASONING_NAME = re.compile(
    r"(?:^|[^a-z0-9])r1(?:[^a-z0-9]|$)|reason|think|qwq|(?:^|[^a-z0-9])o[134](?:[^a-z0-9]|$)|magistral|qwen3",
    re.IGNORECASE,
)


def guess_reasoning(model: str) -> bool:
    """Whether a model's name says it thinks before answering (R1, deepseek-reasoner, QwQ...)."""
    return bool(_REASONING_NAME.search(model or ""))


# --- addresses ------------------------------------------------------------------------------


def normalise_base_url(url: str) -> str:
    """The API's base URL as the client needs it: a scheme (https, or http for a local or
    numeric host), no trailing slash or pasted `/chat/completions`, and `/v1` when no path was
    given (vLLM, SGLang, llama-server, Ollama and LM Studio all serve under /v1).
    Raises RemoteError for something that is not an address."""
    text = (url or "").strip()
    if not text:
        raise RemoteError("Give the server's address, e.g. http://localhost:8000/v1.", kind="bad_request")
    if "://" not in text:
        host = text.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        text = ("http://" if _is_local_host(host) or ":" in text.split("/", 1)[0] else "https://") + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteError(f"'{url}' is not a server address; use one like http://localhost:8000/v1.",
                          kind="bad_request")
    path = parts.path.rstrip("/")
    for tail in ("/chat/completions", "/models"):
        if path.endswith(tail):
            path = path[: -len(tail)]
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _is_local_host(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_private or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(base_url: str) -> str:
    """host[:port] of an address, as the window and the stats name the server."""
    return urlsplit(base_url).netloc or base_url


# --- what the window configures -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A remote engine as the user configured it. The key is never written to settings
    (app/core/secrets.py keeps it); `repr` leaves it out."""

    base_url: str
    model: str = ""  # "" : the first model the server lists
    api_key: str | None = field(default=None, repr=False)
    reasoning: bool | None = None  # the user's setting; None: guess from the name and the first stream
    server_kind: str | None = None  # from a preset; None: named from GET /models

    def normalised(self) -> Endpoint:
        return dataclasses.replace(self, base_url=normalise_base_url(self.base_url))


@dataclass(frozen=True)
class RemoteModel:
    """One entry of `GET /models`."""

    id: str
    owned_by: str = ""
    context_length: int | None = None  # vLLM's max_model_len, llama-server's n_ctx_train, ...


NUDGE_NOTE = ("A server can't take a note into its running thought: no OpenAI-compatible API has a way to. "
              "Load a local model to nudge the thinking.")


@dataclass(frozen=True)
class Capabilities:
    """What the server can do beyond streaming. A False one has a note: a sentence the control
    shows instead of doing nothing."""

    budget: bool = False  # a thinking budget per request
    answer_now: bool = False  # end a running thought so the answer starts
    budget_note: str = ""
    answer_now_note: str = ""
    # No OpenAI-compatible API (llama-server's included) puts words into a running thought, nor
    # continues a thought from a given text: nudges are a local model's alone.
    nudge: bool = False
    nudge_note: str = NUDGE_NOTE


def capabilities_for(server_kind: str) -> Capabilities:
    if server_kind == LLAMA_SERVER:
        return Capabilities(budget=True, answer_now=True)
    who = "This server" if server_kind == GENERIC else f"{server_kind}"
    return Capabilities(
        budget=False,
        answer_now=False,
        budget_note=f"{who} can't limit the thinking: its API has no thinking budget (llama-server's has).",
        answer_now_note=f"{who} can't end the thinking early: its API has no control for it "
                        "(llama-server's has). Stop the answer instead.",
    )


@dataclass
class RemoteModelInfo:
    """The remote counterpart of `ModelInfo`: the same field names where they mean something
    (name, n_ctx, backend, is_reasoning, ...), and the server's own."""

    name: str
    base_url: str
    host: str
    server_kind: str
    is_reasoning: bool
    reasoning_source: str  # "setting" | "name" | "stream"
    n_ctx: int = 0  # 0: the server did not say
    backend: str = "remote"
    path: None = None  # no file
    architecture: str = "remote"
    quantization: str = ""
    file_size: int = 0
    n_ctx_train: int = 0
    n_layers: int = 0
    n_gpu_layers: int = 0
    kv_type: str = ""
    gpu_note: str | None = None
    template_note: str | None = None
    template_name: str | None = None

    @property
    def label(self) -> str:
        """What the window shows at all times and a message records: "remote: host · model"."""
        return f"remote: {self.host} · {self.name}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["label"] = self.label
        return d


@dataclass
class RemoteStats(Stats):
    """`Stats` of a remote answer, saying where they came from."""

    source: str = ""  # "remote: host · model"
    counts_from: str = ""  # "server usage" | "llama-server timings" | "stream chunks"
    server_model: str = ""  # the model name the server put in its chunks


# --- the client -------------------------------------------------------------------------------


class _SocketRecorder:
    """An httpcore network backend that remembers the sockets it opens, so another thread can
    shut them down (which wakes a read blocked on them at once)."""

    def __init__(self) -> None:
        import httpcore2

        self._backend = httpcore2.SyncBackend()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._shut = False

    def connect_tcp(self, *args, **kwargs):
        stream = self._backend.connect_tcp(*args, **kwargs)
        sock = stream.get_extra_info("socket")
        with self._lock:
            self._sockets.append(sock)
            shut = self._shut
        if shut:
            _shutdown(sock)
        return stream

    def connect_unix_socket(self, *args, **kwargs):
        return self._backend.connect_unix_socket(*args, **kwargs)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)

    def shutdown(self) -> None:
        with self._lock:
            self._shut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_ssl_context = None
_ssl_lock = threading.Lock()


def _tls():
    """One TLS context for every client: making one loads the CA bundle (~0.2 s), and each run
    has a client of its own (its sockets are the run's)."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            import httpx2

            _ssl_context = httpx2.create_ssl_context()
        return _ssl_context


def _client(base_url: str, api_key: str | None, read_timeout: float, recorder: _SocketRecorder | None = None):
    import httpx2
    import openai

    transport = httpx2.HTTPTransport(verify=_tls())
    if recorder is not None:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = recorder  # so Stop can cut the connection in any phase
        else:  # a future httpx: Stop then acts at the next chunk only
            log.warning("cannot hook the HTTP transport's sockets; Stop waits for the next chunk")
    timeout = httpx2.Timeout(connect=CONNECT_TIMEOUT_S, read=read_timeout, write=30.0, pool=CONNECT_TIMEOUT_S)
    http = httpx2.Client(transport=transport, timeout=timeout, follow_redirects=True)
    # max_retries=0: a failure is reported at once with what to do; the user decides to retry.
    return openai.OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeout,
                         http_client=http)


def list_models(base_url: str, api_key: str | None = None, timeout_s: float = 15.0) -> list[RemoteModel]:
    """`GET /models` of a server: what the picker offers. Raises RemoteError with a sentence."""
    base_url = normalise_base_url(base_url)
    client = _client(base_url, api_key, timeout_s)
    try:
        page = client.models.list()
        return [_remote_model(m) for m in page.data]
    except Exception as exc:
        raise remote_error(exc, base_url) from exc
    finally:
        client.close()


def _remote_model(m) -> RemoteModel:
    extra = getattr(m, "model_extra", None) or {}
    length = extra.get("max_model_len") or extra.get("context_length") or extra.get("max_context_length")
    meta = extra.get("meta")
    if not length and isinstance(meta, dict):
        length = meta.get("n_ctx_train")
    return RemoteModel(id=str(m.id), owned_by=str(getattr(m, "owned_by", "") or ""),
                       context_length=int(length) if isinstance(length, int) and length > 0 else None)


def server_kind_of(models: list[RemoteModel]) -> str:
    for m in models:
        kind = _OWNERS.get(m.owned_by.lower())
        if kind:
            return kind
    return GENERIC


# --- errors -----------------------------------------------------------------------------------


def remote_error(exc: BaseException, base_url: str, model: str = "", *, during_stream: bool = False) -> RemoteError:
    """An openai / httpx exception as a RemoteError whose sentence says what to do."""
    import openai

    if isinstance(exc, RemoteError):
        return exc
    host = host_of(base_url)
    kept = " The part already received is kept." if during_stream else ""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _server_message(exc)
        said = f" It said: {detail}" if detail else ""
        retry = _retry_after(exc.response)
        wait = f"The server asks to wait {retry:g} s; then try again." if retry else "Wait a moment and try again."
        if status == 401:
            return RemoteError(f"{host} refused the API key (401).{said} Check the key in 'Connect to a server…' "
                               "(or --api-key / PONDER_API_KEY).", kind="auth")
        if status == 403:
            return RemoteError(f"{host} does not allow this key to use '{model}' (403).{said} Check the key's "
                               "permissions or the account.", kind="forbidden")
        if status == 404:
            return RemoteError(f"{host} has no '{model}' (404).{said} Choose a model the server lists, and check "
                               "that the address ends in /v1 if the server needs it.", kind="not_found")
        if status == 429:
            return RemoteError(f"{host} is busy or over its rate limit (429).{said} {wait}", kind="busy",
                               retry_after_s=retry)
        if status >= 500:
            return RemoteError(f"{host} had a server error ({status}).{said} {wait} If it keeps failing, look at "
                               "the server's log.", kind="server", retry_after_s=retry)
        return RemoteError(f"{host} rejected the request ({status}).{said}", kind="bad_request")
    if isinstance(exc, openai.APITimeoutError):
        return RemoteError(f"{host} did not answer in time.{kept} Check that the server is running and not "
                           "overloaded, then try again.", kind="timeout")
    if isinstance(exc, openai.APIConnectionError):
        cause = _root_cause(exc)
        if isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or str(cause)
            return RemoteError(f"The secure connection to {host} failed ({reason}). Check that the address "
                               "should be https, and that the server's certificate is valid for that name.",
                               kind="tls")
        if during_stream:
            return RemoteError(f"The connection to {host} broke in the middle of the answer.{kept} Try again; "
                               "if it keeps happening, check the network and the server.", kind="cut")
        reason = _reason(cause)
        return RemoteError(f"Could not reach {host}{reason}. Check the address and port, and that the server is "
                           "running and reachable from this computer.", kind="unreachable")
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        detail = _server_message(exc) or str(exc)
        return RemoteError(f"{host} reported an error in the middle of the answer: {detail}.{kept}", kind="server")
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return RemoteError(f"{host} sent something that is not JSON in its stream.{kept} Is the address an "
                           "OpenAI-compatible API (…/v1)?", kind="garbage")
    if isinstance(exc, ssl.SSLError):
        return RemoteError(f"The secure connection to {host} failed ({exc}).", kind="tls")
    if isinstance(exc, OSError):
        return RemoteError(f"The connection to {host} failed ({exc}).{kept}", kind="cut" if during_stream else
                           "unreachable")
    return RemoteError(f"Talking to {host} failed: {exc}.{kept}", kind="other")


def _root_cause(exc: BaseException) -> BaseException:
    """The TLS error in an exception's chain if there is one, else the innermost cause."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLError):
            return exc
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _reason(cause: BaseException) -> str:
    text = str(cause).strip()
    if isinstance(cause, socket.gaierror) or "Name or service not known" in text or "nodename" in text:
        return " (no such host name)"
    if "refused" in text.lower():
        return " (connection refused: nothing listens there)"
    if "timed out" in text.lower():
        return " (the connection timed out)"
    return f" ({text})" if text else ""


def _server_message(exc) -> str:
    """The server's own words from an error body (OpenAI's {"error": {"message"}}, FastAPI's
    {"detail"}), one line, at most 300 characters."""
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message")
        elif isinstance(inner, str):
            message = inner
        if not message and isinstance(body.get("detail"), str):
            message = body["detail"]
    if not message:
        message = getattr(exc, "message", "") or ""
    return " ".join(str(message).split())[:300].rstrip(".")


def _retry_after(response) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except (ValueError, AttributeError):
        return None


# --- the engine ---------------------------------------------------------------------------


class RemoteEngine:
    """A model on an OpenAI-compatible server, used like an `Engine` (see the module docstring).

    Any thread may use it; a run is iterated by one thread. A new `chat` ends the run before it.
    `reasoning_learned` is None until a stream has shown whether the model thinks (True/False);
    the window may save it as the model's setting.
    """

    def __init__(self, endpoint: Endpoint, models: list[RemoteModel] | None = None, *,
                 first_token_timeout_s: float = FIRST_TOKEN_TIMEOUT_S, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 done_grace_s: float = DONE_GRACE_S) -> None:
        """No network here: `connect` lists the models first; this takes what is known."""
        endpoint = endpoint.normalised()
        models = models or []
        if not endpoint.model and models:
            endpoint = dataclasses.replace(endpoint, model=models[0].id)
        if not endpoint.model:
            raise RemoteError(f"Choose a model: {host_of(endpoint.base_url)} lists none, so give its name "
                              "(--remote-model NAME).", kind="not_found")
        self.endpoint = endpoint
        self.models = models
        kind = endpoint.server_kind or server_kind_of(models)
        listed = next((m for m in models if m.id == endpoint.model), None)
        if endpoint.reasoning is not None:
            is_reasoning, source = endpoint.reasoning, "setting"
        else:
            is_reasoning, source = guess_reasoning(endpoint.model), "name"
        self.info = RemoteModelInfo(
            name=endpoint.model, base_url=endpoint.base_url, host=host_of(endpoint.base_url), server_kind=kind,
            is_reasoning=is_reasoning, reasoning_source=source,
            n_ctx=(listed.context_length or 0) if listed else 0,
        )
        self.capabilities = capabilities_for(kind)
        self.notices: list[str] = []  # sentences for the window (e.g. the model is not listed)
        if models and listed is None:
            names = ", ".join(m.id for m in models[:5])
            self.notices.append(f"{self.info.host} does not list '{endpoint.model}' (it lists {names}); "
                                "answers may fail with 'not found'.")
        self.reasoning_learned: bool | None = None
        self.first_token_timeout_s = first_token_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.done_grace_s = done_grace_s
        self._run: weakref.ref[RemoteChatRun] | None = None

    @classmethod
    def connect(cls, endpoint: Endpoint, **timeouts) -> RemoteEngine:
        """List the server's models (checks the address and key, names the server), then the
        engine. Raises RemoteError for an unreachable host, TLS, a refused key; a server that
        has no model list is used without one."""
        endpoint = endpoint.normalised()
        try:
            models = list_models(endpoint.base_url, endpoint.api_key)
        except RemoteError as exc:
            if exc.kind not in ("not_found", "bad_request", "server", "garbage", "other"):
                raise
            log.info("%s lists no models (%s); going on without", endpoint.base_url, exc)
            models = []
        return cls(endpoint, models, **timeouts)

    def chat(self, messages: list[dict], sampling: Sampling | None = None,
             stop: threading.Event | None = None, *, keep_thinking: bool = False,
             steering=None) -> RemoteChatRun:
        """Start an answer to `messages`; iterate the result. No network until it is iterated.

        As `Engine.chat`: earlier reasoning (a message's "thinking") is sent back only with
        `keep_thinking` (as `<think>…</think>` before its content). `steering`
        (app.core.steering.Steering) carries "Answer now" from any thread; a server without the
        control gets a notice instead, and nudges are handed back unused (`steering.unused`):
        no OpenAI-compatible API can put words into a running thought.
        """
        self._end_run()
        run = RemoteChatRun(self, _wire_messages(messages, keep_thinking), sampling or Sampling(),
                            stop or threading.Event(), steering)
        self._run = weakref.ref(run)
        return run

    def close(self) -> None:
        """End the run in progress, if any (its connection closes)."""
        self._end_run()

    def _end_run(self) -> None:
        run = self._run() if self._run is not None else None
        self._run = None
        if run is not None:
            run._halt("stop")

    def _learn(self, is_reasoning: bool) -> None:
        self.reasoning_learned = is_reasoning
        if self.info.reasoning_source != "setting":
            self.info.is_reasoning = is_reasoning
            self.info.reasoning_source = "stream"


def _wire_messages(messages: list[dict], keep_thinking: bool) -> list[dict]:
    """Role and content only (a stored message carries more); earlier thinking only if kept."""
    wire = []
    for m in messages:
        content = m.get("content") or ""
        if keep_thinking and m.get("role") == "assistant" and m.get("thinking"):
            content = f"{OPEN_TAG}\n{m['thinking']}\n{CLOSE_TAG}\n\n{content}"
        wire.append({"role": m.get("role", "user"), "content": content})
    return wire


class RemoteChatRun:
    """One answer from a remote engine; the same surface as `ChatRun` (`thinking`, `answer`,
    `flags`, `stats`, `sampling`, `prompt_text`, `thinking_tokens`, `answer_tokens`, `close`,
    `run`), plus `error`, `resplit`, `notices`, `completion_id` and `answer_now()`.
    `prompt_text` is "": the server applies its own template."""

    def __init__(self, engine: RemoteEngine, messages: list[dict], sampling: Sampling, stop: threading.Event,
                 steering=None) -> None:
        self._engine = engine
        self._messages = messages
        self._sampling = sampling
        self.sampling = sampling
        self.prompt_text = ""
        self._stop = stop
        self._steering = steering
        self._extra_flags: list[str] = []
        info = engine.info
        self.stats = RemoteStats(source=info.label, counts_from="stream chunks")
        self.thinking_tokens = 0
        self.answer_tokens = 0
        self.error: RemoteError | None = None
        self.resplit = False  # the live segments were split on a wrong guess; use thinking/answer
        self.notices: list[str] = []
        self.completion_id: str | None = None
        self._splitter: ThinkSplitter | None = None
        self._opens_thinking = info.is_reasoning  # for a content-only stream
        self._mode: str | None = None  # "fields" (reasoning deltas) | "content"
        self._in_field_think = False
        self._raw: list[str] = []  # content text of a content-only stream, for a re-split
        self._final: tuple[str, str, list[str]] | None = None
        self._stream: Iterator[Segment] | None = None
        self._ended = threading.Event()
        self._halted: str | None = None  # "stop" | "idle" | "after_finish": why the watcher cut
        self._deadline = 0.0
        self._recorder: _SocketRecorder | None = None
        self._lock = threading.Lock()
        self._answer_now_pending = False
        self._finish_seen = False

    # --- results ----------------------------------------------------------------------

    @property
    def thinking(self) -> str:
        if self._final is not None:
            return self._final[0]
        return self._splitter.thinking if self._splitter else ""

    @property
    def answer(self) -> str:
        if self._final is not None:
            return self._final[1]
        return self._splitter.answer if self._splitter else ""

    @property
    def flags(self) -> list[str]:
        if self._final is not None:
            flags = self._final[2]
        else:
            flags = self._splitter.flags if self._splitter else []
        return sorted(set(flags) | set(self._extra_flags))

    # --- iterating ----------------------------------------------------------------------

    def __iter__(self) -> RemoteChatRun:
        if self._stream is None:  # one stream: iterating again goes on where it is
            self._stream = self._generate()
        return self

    def __next__(self) -> Segment:
        if self._stream is None:
            self._stream = self._generate()
        return next(self._stream)

    def run(self) -> RemoteChatRun:
        """Consume the whole stream; returns self."""
        for _ in self:
            pass
        return self

    def close(self) -> None:
        """End the run now (the connection closes); what came so far stays readable. From the
        iterating thread it also ends the iteration; from any other it cuts the connection and
        the iterating thread's next step ends the run."""
        self._halt("stop")
        if self._stream is not None:
            try:
                self._stream.close()
            except ValueError:  # the generator is running on another thread: the cut ends it
                pass

    # --- answer now -----------------------------------------------------------------------

    def answer_now(self) -> None:
        """End the thought so the model answers now. Any thread; it posts one short request.

        Raises RemoteUnsupported (with the sentence to show) where the server has no such
        control, RemoteError if the server refused. Before the first chunk it is remembered and
        sent as soon as the answer has an id; after the thought it does nothing."""
        caps = self._engine.capabilities
        if not caps.answer_now:
            raise RemoteUnsupported(caps.answer_now_note)
        with self._lock:
            if self.completion_id is None:
                self._answer_now_pending = True
                return
            completion_id = self.completion_id
        if self._splitter is not None and not self._splitter.in_thinking and self._mode is not None:
            return
        self._post_reasoning_end(completion_id)
        if "answer_now" not in self._extra_flags:
            self._extra_flags.append("answer_now")

    def _post_reasoning_end(self, completion_id: str) -> None:
        import httpx2

        endpoint = self._engine.endpoint
        host = host_of(endpoint.base_url)
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        body = {"id": completion_id, "action": "reasoning_end", "model": endpoint.model}
        try:
            response = httpx2.post(endpoint.base_url + "/chat/completions/control", json=body, headers=headers,
                                   timeout=CONTROL_TIMEOUT_S)
        except Exception as exc:
            raise RemoteError(f"Could not ask {host} to end the thinking ({exc}).", kind="unreachable") from exc
        if response.status_code in (404, 405, 501):
            raise RemoteUnsupported(f"{host} can't end the thinking early: this llama-server has no control "
                                    "endpoint (it needs a newer llama.cpp). Stop the answer instead.")
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            reply = {}
        if response.status_code >= 400 or not reply.get("success", False):
            error = reply.get("error")
            said = reply.get("message") or (error.get("message") if isinstance(error, dict) else "")
            raise RemoteError(f"{host} did not end the thinking" + (f": {said}" if said else f" ({response.status_code})")
                              + ".", kind="unsupported")

    # --- the stream -----------------------------------------------------------------------

    def _request(self) -> dict:
        engine = self._engine
        s = self._sampling
        request: dict = {"model": engine.endpoint.model, "messages": self._messages, "stream": True,
                         "stream_options": {"include_usage": True}, "temperature": s.temperature, "top_p": s.top_p}
        if s.max_tokens != DEFAULT_MAX_TOKENS:  # the default: let the server fit the rest of its context
            request["max_tokens"] = s.max_tokens
        if s.seed is not None:
            request["seed"] = s.seed
        extra: dict = {}
        budget = getattr(s, "thinking_budget", None)  # Sampling.thinking_budget (local budget helper)
        if engine.info.server_kind == LLAMA_SERVER:
            extra["reasoning_control"] = True  # lets answer_now end the thought
            if budget is not None:
                extra["reasoning_budget_tokens"] = int(budget)
        elif budget is not None:
            self.notices.append(engine.capabilities.budget_note)
        if extra:
            request["extra_body"] = extra
        return request

    def _halt(self, reason: str) -> None:
        """Cut the connection (any thread); the reading thread then ends at once."""
        with self._lock:
            if self._halted is None:
                self._halted = reason
            recorder = self._recorder
        if recorder is not None:
            recorder.shutdown()

    def _watch(self) -> None:
        """Shuts the connection when Stop is pressed, the server goes quiet, or the finished
        stream never ends."""
        while not self._ended.wait(0.02):
            if self._stop.is_set():
                self._halt("stop")
                return
            if time.monotonic() > self._deadline:
                self._halt("after_finish" if self._finish_seen else "idle")
                return

    def _generate(self) -> Iterator[Segment]:
        engine = self._engine
        info = engine.info
        stats = self.stats
        t0 = time.perf_counter()
        t_first = t_think_end = t_last = None
        server_finish: str | None = None
        usage = timings = None
        self._deadline = time.monotonic() + engine.first_token_timeout_s
        self._recorder = _SocketRecorder()
        if self._halted or self._stop.is_set():
            self._halted = self._halted or "stop"
        client = _client(info.base_url, engine.endpoint.api_key,
                         max(engine.first_token_timeout_s, engine.idle_timeout_s) + 5, self._recorder)
        watcher = threading.Thread(target=self._watch, name="ponder-remote-watch", daemon=True)
        stream = None
        received = False
        try:
            if self._halted:
                return
            watcher.start()
            stream = client.chat.completions.create(**self._request())
            ctype = stream.response.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raise RemoteError(f"{info.host} did not answer with a stream ({ctype or 'no content type'}). Is the "
                                  "address an OpenAI-compatible API (…/v1)?", kind="garbage")
            for chunk in stream:
                if self.completion_id is None and getattr(chunk, "id", None):
                    with self._lock:
                        self.completion_id = chunk.id
                        pending, self._answer_now_pending = self._answer_now_pending, False
                    if pending:
                        self._answer_now_quietly()
                if getattr(chunk, "model", None):
                    stats.server_model = chunk.model
                extra = getattr(chunk, "model_extra", None) or {}
                if chunk.usage is not None:
                    usage = chunk.usage
                if isinstance(extra.get("timings"), dict):
                    timings = extra["timings"]
                for choice in chunk.choices or []:
                    delta = choice.delta
                    dextra = (getattr(delta, "model_extra", None) or {}) if delta is not None else {}
                    reasoning = dextra.get("reasoning_content") or dextra.get("reasoning") or ""
                    content = (delta.content if delta is not None else None) or ""
                    for kind, text in (("think", reasoning), ("answer", content)):
                        if not isinstance(text, str) or not text:
                            continue
                        received = True
                        t_last = time.perf_counter()
                        if t_first is None:
                            t_first = t_last
                        was_thinking = self._splitter is not None and self._splitter.in_thinking
                        segments = self._feed(kind, text)
                        if was_thinking or self._splitter.in_thinking:
                            self.thinking_tokens += 1
                            if not self._splitter.in_thinking and t_think_end is None:
                                t_think_end = t_last
                        else:
                            self.answer_tokens += 1
                        yield from segments
                    if choice.finish_reason:
                        server_finish = choice.finish_reason
                        self._finish_seen = True
                # Until the first text (a role chunk may come at once) a long prompt may still be
                # evaluated; after it, silence means the server is gone; after the finish, only
                # usage and [DONE] are still to come.
                wait = (engine.done_grace_s if self._finish_seen else
                        engine.idle_timeout_s if received else engine.first_token_timeout_s)
                self._deadline = time.monotonic() + wait
                if self._stop.is_set():
                    self._halted = self._halted or "stop"
                    break
                if self._steering is not None:
                    self._steer()
            if not self._finish_seen and not self._halted:
                raise RemoteError(f"The stream from {info.host} ended before the answer was complete. The part "
                                  "already received is kept; try again.", kind="cut")
        except GeneratorExit:
            self._halt("stop")
            raise
        except Exception as exc:
            if self._halted == "stop" or self._stop.is_set():
                pass  # the cut we made
            elif self._halted == "after_finish":
                pass  # finished, then never closed: the answer is complete
            elif self._halted == "idle":
                waited = engine.idle_timeout_s if received else engine.first_token_timeout_s
                self.error = RemoteError(
                    f"{info.host} sent nothing for {waited:g} s, so Ponder stopped waiting. The part already "
                    "received is kept; try again, and check the server if it keeps happening.", kind="idle")
            else:
                self.error = remote_error(exc, info.base_url, info.name, during_stream=received)
                if not isinstance(exc, RemoteError):
                    log.info("remote answer failed: %r", exc)
        finally:
            self._ended.set()
            if stream is not None:
                try:
                    stream.close()
                except Exception:
                    pass
            client.close()
            # A held tag prefix (e.g. a last "<") that never became a tag comes out at the end.
            tail = self._splitter.finish() if self._splitter is not None else []
            if self._steering is not None:
                self._steering.settle()
            self._settle(stats, t0, t_first, t_think_end, t_last, server_finish, usage, timings)
        yield from tail

    def _answer_now_quietly(self) -> None:
        try:
            self._post_reasoning_end(self.completion_id)
            if "answer_now" not in self._extra_flags:
                self._extra_flags.append("answer_now")
        except RemoteError as exc:
            self.notices.append(str(exc))

    def _steer(self) -> None:
        """Requests from the window's Steering, between chunks on the reading thread."""
        steering = self._steering
        if steering.take_answer_now():
            caps = self._engine.capabilities
            if not caps.answer_now:
                if caps.answer_now_note not in self.notices:
                    self.notices.append(caps.answer_now_note)
            elif self._splitter is None or self._splitter.in_thinking:  # after the thought: nothing to end
                self._answer_now_quietly()
        while (note := steering.take_note()) is not None:
            steering.unused.append(note)
            self.notices.append(self._engine.capabilities.nudge_note + " The note was not sent.")

    def _feed(self, kind: str, text: str) -> list[Segment]:
        """Text of one delta through the one splitter: reasoning deltas wrapped in tags."""
        if self._splitter is None:
            if kind == "think":
                self._mode = "fields"
                self._splitter = ThinkSplitter(prompt_opens_thinking=False)
            else:
                self._mode = "content"
                self._splitter = ThinkSplitter(prompt_opens_thinking=self._opens_thinking)
        if kind == "think":
            if not self._in_field_think:
                text = OPEN_TAG + text
                self._in_field_think = True
        else:
            if self._in_field_think:
                text = CLOSE_TAG + text
                self._in_field_think = False
            if self._mode == "content":
                self._raw.append(text)
        return self._splitter.feed(text)

    def _settle(self, stats: RemoteStats, t0, t_first, t_think_end, t_last, server_finish, usage, timings) -> None:
        end = time.perf_counter()
        stats.total_s = end - t0
        stats.thinking_tokens = self.thinking_tokens
        stats.answer_tokens = self.answer_tokens
        if t_first is not None:
            stats.time_to_first_token_s = t_first - t0
            if self.thinking_tokens:
                stats.thinking_s = (t_think_end or t_last or end) - t_first
            if self.answer_tokens and t_last:
                stats.answer_s = t_last - (t_think_end or t_first)
            generated = self.thinking_tokens + self.answer_tokens
            if generated > 1 and t_last and t_last > t_first:
                stats.decode_tokens_per_s = (generated - 1) / (t_last - t_first)
        if usage is not None:
            stats.counts_from = "server usage"
            stats.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion = int(getattr(usage, "completion_tokens", 0) or 0)
            details = getattr(usage, "completion_tokens_details", None)
            reasoning = getattr(details, "reasoning_tokens", None) if details is not None else None
            if reasoning is not None:
                stats.thinking_tokens = int(reasoning)
                stats.answer_tokens = max(0, completion - int(reasoning))
            elif completion:  # only the total: share it out as the stream did
                counted = self.thinking_tokens + self.answer_tokens
                if counted:
                    stats.thinking_tokens = round(completion * self.thinking_tokens / counted)
                    stats.answer_tokens = completion - stats.thinking_tokens
            cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
            if cached is not None:
                stats.prompt_reused_tokens = int(cached)
            stats.context_used = stats.prompt_tokens + completion
        if timings:
            if usage is None:
                stats.counts_from = "llama-server timings"
                predicted = timings.get("predicted_n")
                if isinstance(predicted, int) and predicted and not usage:
                    counted = self.thinking_tokens + self.answer_tokens
                    if counted:
                        stats.thinking_tokens = round(predicted * self.thinking_tokens / counted)
                        stats.answer_tokens = predicted - stats.thinking_tokens
                if isinstance(timings.get("prompt_n"), int):
                    stats.prompt_tokens = timings["prompt_n"] + int(timings.get("cache_n") or 0)
            if isinstance(timings.get("predicted_per_second"), (int, float)) and timings["predicted_per_second"] > 0:
                stats.decode_tokens_per_s = float(timings["predicted_per_second"])
            if isinstance(timings.get("cache_n"), int):
                stats.prompt_reused_tokens = timings["cache_n"]
        if stats.thinking_s and stats.thinking_tokens:
            stats.thinking_tokens_per_s = stats.thinking_tokens / stats.thinking_s
        if stats.answer_s and stats.answer_tokens:
            stats.answer_tokens_per_s = stats.answer_tokens / stats.answer_s
        # how it ended
        if self.error is not None:
            stats.finish_reason = "error"
        elif self._halted == "stop" or (self._stop.is_set() and not self._finish_seen):
            stats.finish_reason = "cancelled"
        else:
            stats.finish_reason = "length" if server_finish == "length" else "stop"
        self._learn_reasoning(stats.finish_reason)
        budget = getattr(self._sampling, "thinking_budget", None)
        if (budget is not None and self._engine.capabilities.budget and self._splitter is not None
                and not self._splitter.in_thinking and self.thinking_tokens >= budget
                and "answer_now" not in self._extra_flags):
            self._extra_flags.append("budget_reached")  # the server ended the thought at the budget

    def _learn_reasoning(self, finish: str) -> None:
        """What the stream showed about the model, and a re-split where the guess was wrong."""
        engine = self._engine
        splitter = self._splitter
        if splitter is None:
            return
        flags = splitter.flags
        if self._mode == "fields":
            engine._learn(True)
            return
        raw = "".join(self._raw)
        if not self._opens_thinking and "orphan_close" in flags and "no_thinking" in flags:
            # "</think>" with no opening tag: the server's template opened the thought.
            self._final = split_text(raw, prompt_opens_thinking=True)
            self.resplit = True
            engine._learn(True)
        elif not self._opens_thinking and OPEN_TAG in raw:
            engine._learn(True)
        elif self._opens_thinking and CLOSE_TAG not in raw and OPEN_TAG not in raw and finish == "stop" \
                and engine.info.reasoning_source != "setting":
            # Guessed a reasoning model from the name, but the answer came with no thought at all.
            self._final = split_text(raw, prompt_opens_thinking=False)
            self.resplit = True
            engine._learn(False)
        elif self._opens_thinking and CLOSE_TAG in raw:
            engine._learn(True)
        elif not self._opens_thinking and finish == "stop":
            engine._learn(False)
        if self.resplit:
            thinking, answer, _ = self._final
            # the counts follow the text: split the total as the text splits
            total = self.thinking_tokens + self.answer_tokens
            if total and (thinking or answer):
                share = len(thinking) / max(1, len(thinking) + len(answer))
                self.thinking_tokens = round(total * share)
                self.answer_tokens = total - self.thinking_tokens
                if self.stats.counts_from == "stream chunks":
                    self.stats.thinking_tokens = self.thinking_tokens
                    self.stats.answer_tokens = self.answer_tokens
