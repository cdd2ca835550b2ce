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
