"""Ponder: a desktop chat for reasoning models.

llama_cpp is imported here, before anything in the app can import numpy
(directly or through `gguf`): on CUDA builds, loading numpy first made every
model load segfault. Every `app.*` import passes through this file first.
"""

try:  # pragma: no branch
    import llama_cpp  # noqa: F401  (import order matters, see above)
except ImportError:  # the engine reports a clear error when it is needed
    llama_cpp = None

__version__ = "0.1.0"
APP_NAME = "Ponder"
