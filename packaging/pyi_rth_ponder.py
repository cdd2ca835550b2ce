"""PyInstaller runtime hook: runs in the frozen app before Ponder's own code.

1. A windowed Windows exe (Ponder.exe) has no stdout/stderr (they are None); a stray print
   would raise. Point them at the null device; the console twin ponder-cli.exe has real ones.
2. Register llama.cpp's backend modules from the bundle's llama_cpp/lib before anything calls
   llama_backend_init (release engines are GGML_BACKEND_DL builds; see app/core/backends.py).
   Importing `app` first keeps the llama_cpp-before-numpy order (app/__init__.py).
"""

import os
import sys

for _name in ("stdout", "stderr"):
    if getattr(sys, _name) is None:
        setattr(sys, _name, open(os.devnull, "w", encoding="utf-8"))

import app  # noqa: E402,F401  (loads llama_cpp first)

if app.llama_cpp is not None:
    try:
        from app.core.backends import load_backends

        load_backends()
    except Exception as exc:  # never stop the app here: the engine reports a missing backend itself
        print(f"ponder: could not load llama.cpp's backend modules: {exc}", file=sys.stderr)
