"""Ponder as an OpenAI-compatible server (`ponder serve`).

- `service.py`: `EngineService`, one thread that owns the `Engine` and runs requests from a
  bounded queue, one at a time (no Starlette, no Qt); `JobQueue`, what the API needs of it (the
  window's server, app/ui/server_switch.py, is the other one); `serve_job` for any engine thread.
- `api.py`: the Starlette app (`/v1/models`, `/v1/chat/completions`) and the uvicorn server.

See docs/serving.md.
"""
