"""Errors a person can act on. Each carries one plain sentence for the UI or CLI."""


class PonderError(Exception):
    """A known failure: str(error) is a sentence to show the user as it is."""


class ModelFileError(PonderError):
    """The model file is missing, truncated, corrupt or not a usable GGUF."""


class ModelLoadError(PonderError):
    """llama.cpp could not load a valid file (memory, backend, unsupported)."""


class ContextOverflow(PonderError):
    """The prompt does not fit in the model's context window."""


class DownloadError(PonderError):
    """A download failed; the message says why and whether it can resume."""


class CatalogError(PonderError):
    """models.json is missing or malformed."""


class StorageError(PonderError):
    """The conversation database could not be opened or written."""


class LoadCancelled(PonderError):
    """The user cancelled loading a model."""

    def __init__(self, message: str = "Loading the model was cancelled.") -> None:
        super().__init__(message)


class RemoteError(PonderError):
    """A remote engine (an OpenAI-compatible server) failed; the sentence says what to do.

    `kind` says what went wrong, for a window that reacts to it (e.g. reopens the key field on
    "auth"): unreachable | tls | timeout | auth | forbidden | not_found | busy | server |
    bad_request | cut | garbage | idle | unsupported | other. `retry_after_s` is the wait the
    server asked for (429/503 Retry-After), if it said.
    """

    def __init__(self, message: str, kind: str = "other", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s


class RemoteUnsupported(RemoteError):
    """The server cannot do what was asked (end the thinking early, limit it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="unsupported")
