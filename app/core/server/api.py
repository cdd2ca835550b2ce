"""The OpenAI-compatible HTTP API over a `JobQueue` (the headless `EngineService`, or the window's
engine thread), on Starlette; served by uvicorn.

`GET /v1/models` and `POST /v1/chat/completions` (streamed as server-sent events, or one JSON
object). The reasoning goes in `reasoning_content` (message and delta) and the answer in
`content`; with `reasoning_format="raw"` the thinking stays in `content` between `<think>` and
`</think>`. Every error is an OpenAI-style JSON object (`{"error": {"message", "type", "code"}}`)
with a 4xx status for what the client sent, 503 while no model is loaded; nothing the client
sends stops the server.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import json
import logging
import math
import socket
import sys
import time
import uuid

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from app.core.engine import Sampling
from app.core.reasoning import Segment
from app.core.server.service import ChatRequest, JobQueue, JobResult, NoModelLoaded, ServerBusy

log = logging.getLogger("ponder.server")

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
REASONING_FORMATS = ("separate", "raw")

# Fields of OpenAI's chat request that Ponder honours, or accepts when they ask for nothing it lacks.
_HONOURED = {"model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens",
             "max_completion_tokens", "seed", "stop", "top_k", "min_p"}
_ACCEPTED = {"n", "user", "presence_penalty", "frequency_penalty", "logprobs", "metadata", "store",
             "response_format", "parallel_tool_calls"}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP_STRINGS = 4


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, type=self.type, code=self.code, param=self.param)


def error_response(status: int, message: str, *, type: str = "invalid_request_error",
                   code: str | None = None, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


# --- request parsing ----------------------------------------------------------------------


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(400, f"'{name}' must be a number.", param=name)
    if not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low:g} and {high:g}.", param=name)
    return float(value)


def _integer(body: dict, name: str, low: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{name}' must be an integer.", param=name)
    if low is not None and value < low:
        raise ApiError(400, f"'{name}' must be at least {low}.", param=name)
    return value


def _content(value, index: int) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"messages[{index}].content: only text parts are supported.",
                               param=f"messages[{index}].content")
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(400, f"messages[{index}].content must be a string or a list of text parts.",
                   param=f"messages[{index}].content")


def parse_chat_request(body) -> tuple[ChatRequest, bool, bool]:
    """(request, stream, include_usage) from a decoded JSON body; raises ApiError (400)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    unknown = sorted(set(body) - _HONOURED - _ACCEPTED)
    if unknown:
        raise ApiError(400, f"Unknown or unsupported field '{unknown[0]}'.", param=unknown[0], code="unknown_field")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "'model' must be a string.", param="model")
    # Accepted only where they ask for nothing Ponder lacks.
    if body.get("n") not in (None, 1):
        raise ApiError(400, "Only n=1 is supported.", param="n")
    for name in ("presence_penalty", "frequency_penalty"):
        if _number(body, name, -2, 2) not in (None, 0.0):
            raise ApiError(400, f"'{name}' is not supported; leave it out or 0.", param=name)
    if body.get("logprobs") not in (None, False):
        raise ApiError(400, "'logprobs' is not supported.", param="logprobs")
    fmt = body.get("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise ApiError(400, "Only response_format {\"type\": \"text\"} is supported.", param="response_format")

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list.", param="messages")
    converted = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = _ROLES.get(message.get("role")) if isinstance(message.get("role"), str) else None
        if role is None:
            raise ApiError(400, f"messages[{i}].role must be one of system, developer, user, assistant.",
                           param=f"messages[{i}].role")
        converted.append({"role": role, "content": _content(message.get("content"), i)})

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object.", param="stream_options")
    include_usage = bool((options or {}).get("include_usage", False))

    sampling = Sampling()  # R1 defaults where the client sets nothing
    if (t := _number(body, "temperature", 0, 2)) is not None:
        sampling.temperature = t
    if (p := _number(body, "top_p", 0, 1)) is not None:
        sampling.top_p = p
    if (k := _integer(body, "top_k", 0)) is not None:
        sampling.top_k = k
    if (m := _number(body, "min_p", 0, 1)) is not None:
        sampling.min_p = m
    limit = _integer(body, "max_completion_tokens", 1)
    if limit is None:
        limit = _integer(body, "max_tokens", 1)
    if limit is not None:
        sampling.max_tokens = limit
    sampling.seed = _integer(body, "seed")

    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= MAX_STOP_STRINGS:
        stops = tuple(stop)
    else:
        raise ApiError(400, f"'stop' must be a string or a list of up to {MAX_STOP_STRINGS} strings.", param="stop")
    return ChatRequest(converted, sampling, tuple(s for s in stops if s)), stream, include_usage


async def _read_json(request: Request, limit: int):
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"The request body is larger than {limit} bytes.", code="body_too_large")
        except ValueError:
            raise ApiError(400, "Bad Content-Length header.") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"The request body is larger than {limit} bytes.", code="body_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: [[[[... nested deep
        raise ApiError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from None


# --- responses ----------------------------------------------------------------------------


class RawRenderer:
    """Thinking back into `content` as `<think>…</think>` (reasoning_format "raw")."""

    def __init__(self) -> None:
        self._current: tuple[str, int] | None = None

    def __call__(self, segment: Segment) -> str:
        prefix = ""
        in_think = self._current is not None and self._current[0] == "think"
        if segment.kind == "think":
            if self._current != ("think", segment.block):
                prefix = ("</think>\n\n" if in_think else "") + "<think>\n"
            self._current = ("think", segment.block)
        else:
            if in_think:
                prefix = "</think>\n\n"
            self._current = ("answer", 0)
        return prefix + segment.text


def usage(result: JobResult) -> dict:
    s = result.stats
    completion = s.thinking_tokens + s.answer_tokens
    return {
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": s.prompt_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": s.thinking_tokens},
        "prompt_tokens_details": {"cached_tokens": s.prompt_reused_tokens},
    }


def finish_reason(result: JobResult) -> str:
    return "length" if result.finish_reason in ("length", "context_full") else "stop"


def unavailable(message: str) -> ApiError:
    return ApiError(503, message, type="server_error", code="model_not_loaded")


def _job_error(result: JobResult) -> ApiError:
    if result.error_kind == "unavailable":
        return unavailable(result.error or "No model is loaded.")
    if result.error_kind == "invalid_request":
        code = "context_length_exceeded" if "context holds" in (result.error or "") else None
        return ApiError(400, result.error or "The request could not run.", code=code)
    return ApiError(500, result.error or "The engine failed.", type="server_error")


class _Bridge:
    """Events from the service thread into this request's asyncio loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.items: collections.deque = collections.deque()
        self.ready = asyncio.Event()

    def __call__(self, kind: str, payload: object) -> None:  # on the service thread
        self.loop.call_soon_threadsafe(self._put, (kind, payload))

    def _put(self, item) -> None:
        self.items.append(item)
        self.ready.set()

    async def get(self):
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()

    async def get_merged(self):
        """The next event; segments already waiting behind it are merged into it while they
        are of one kind (and think block), so a client that falls behind gets fewer, longer chunks."""
        kind, payload = await self.get()
        if kind != "segment":
            return kind, payload
        texts = [payload.text]
        while self.items:
            next_kind, following = self.items[0]
            if next_kind != "segment" or (following.kind, following.block) != (payload.kind, payload.block):
                break
            self.items.popleft()
            texts.append(following.text)
        if len(texts) == 1:
            return kind, payload
        return kind, Segment(payload.kind, "".join(texts), payload.block)


async def _watch_disconnect(request: Request, job) -> None:
    """Cancel the job when the client goes away (the body has been read: only a disconnect comes)."""
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                job.cancel()
                return
    except (ClientDisconnect, OSError, RuntimeError):
        job.cancel()


def build_app(service: JobQueue, *, api_key: str | None = None, reasoning_format: str = "separate",
              max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Starlette:
    if reasoning_format not in REASONING_FORMATS:
        raise ValueError(f"reasoning_format must be one of {REASONING_FORMATS}")
    raw = reasoning_format == "raw"
    expected = f"Bearer {api_key}".encode() if api_key else None

    async def models(request: Request):
        model = service.model_id
        return JSONResponse({"object": "list", "data": [] if model is None else [
            {"id": model, "object": "model", "created": service.model_created, "owned_by": "ponder"},
        ]})

    async def chat_completions(request: Request):
        try:
            body = await _read_json(request, max_body_bytes)
            chat, stream, include_usage = parse_chat_request(body)
        except ApiError as exc:
            return exc.response()
        except ClientDisconnect:
            return error_response(400, "The client disconnected.")
        bridge = _Bridge()
        model = service.model_id or "none"  # as it is when the request arrives
        try:
            job = service.submit(chat, bridge)
        except ServerBusy as exc:
            return error_response(429, str(exc), type="rate_limit_error", code="queue_full",
                                  headers={"Retry-After": "1"})
        except NoModelLoaded as exc:
            return unavailable(str(exc)).response()
        watcher = asyncio.create_task(_watch_disconnect(request, job))
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        try:
            kind, payload = await bridge.get()  # "started", or "done" for a job that never ran
            if kind == "done":
                result: JobResult = payload
                if result.error:
                    return _job_error(result).response()
                return error_response(499, "The request was cancelled.", code="cancelled")
            if not stream:
                return await _whole(job, bridge, completion_id, created, model)
        except BaseException:
            job.cancel()
            raise
        finally:
            watcher.cancel()  # a stream's disconnect is watched by StreamingResponse itself
        return StreamingResponse(_sse(job, bridge, completion_id, created, model, include_usage),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _whole(job, bridge: _Bridge, completion_id: str, created: int, model: str):
        render = RawRenderer() if raw else None
        content = []
        while True:
            kind, payload = await bridge.get()
            if kind == "segment":
                if render is not None:
                    content.append(render(payload))
            elif kind == "done":
                result: JobResult = payload
                break
        if result.error:
            return _job_error(result).response()
        if result.finish_reason == "cancelled":
            return error_response(499, "The request was cancelled.", code="cancelled")
        message = {"role": "assistant"}
        if raw:
            message["content"] = "".join(content).strip()
        else:
            message["content"] = result.answer
            message["reasoning_content"] = result.thinking or None
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(result),
                         "logprobs": None}],
            "usage": usage(result),
        })

    async def _sse(job, bridge: _Bridge, completion_id: str, created: int, model: str, include_usage: bool):
        def chunk(delta: dict | None, finish: str | None = None, **extra) -> str:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish,
                                                 "logprobs": None}]
            data = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": choices, **extra}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        render = RawRenderer() if raw else None
        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                kind, payload = await bridge.get_merged()
                if kind == "segment":
                    if render is not None:
                        yield chunk({"content": render(payload)})
                    elif payload.kind == "think":
                        yield chunk({"reasoning_content": payload.text})
                    else:
                        yield chunk({"content": payload.text})
                elif kind == "done":
                    result: JobResult = payload
                    break
            if result.error:
                err = _job_error(result)
                yield f"data: {json.dumps({'error': {'message': err.message, 'type': err.type, 'code': err.code}})}\n\n"
            elif result.finish_reason != "cancelled":
                yield chunk({}, finish_reason(result))
                if include_usage:
                    yield chunk(None, usage=usage(result))
            yield "data: [DONE]\n\n"
        finally:
            job.cancel()  # a no-op after the end; on a disconnect (the generator is cancelled) it stops the run

    async def not_found_or_method(request: Request, exc: HTTPException):
        return error_response(exc.status_code, exc.detail or "Error", code=str(exc.status_code),
                              headers=getattr(exc, "headers", None))

    async def server_error(request: Request, exc: Exception):
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error.", type="server_error")

    app = Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        ],
        exception_handlers={HTTPException: not_found_or_method, Exception: server_error},
    )
    app.state.service = service
    if expected is None:
        return app
    return _BearerAuth(app, expected)


class _BearerAuth:
    """Every request needs `Authorization: Bearer KEY`; otherwise 401 with a JSON error."""

    def __init__(self, app, expected: bytes) -> None:
        self.app, self.expected = app, expected
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = error_response(401, "A valid API key is needed: send 'Authorization: Bearer KEY'.",
                                          type="authentication_error", code="invalid_api_key",
                                          headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- running it ---------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket for `Server.run(sockets=[...])` (port 0: any free one).

    Made with proto IPPROTO_TCP on purpose: asyncio turns on TCP_NODELAY for the connections
    of such a socket only (it checks `sock.proto`), and without it every keep-alive response
    waits ~40 ms for the client's delayed ACK (measured: 44 ms instead of 1.7 ms a request)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # "::1", "::" are IPv6
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if sys.platform != "win32":  # on Windows SO_REUSEADDR would let two servers share a port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def make_server(app, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info"):
    """A uvicorn Server for `app` (call `.run()`, or `.run(sockets=[...])` with a bound socket)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, http="h11", ws="none", lifespan="off",
                            log_level=log_level, timeout_graceful_shutdown=3, access_log=False)
    return uvicorn.Server(config)
