"""API keys of remote engines, in the OS keychain (through `keyring`), never in settings.

One entry per server: service "Ponder", account = the server's normalised base URL (or a
plain name for a key that belongs to no URL, e.g. the window's own server's). Where
this computer has no usable keychain (keyring's `fail` or `null` backend, e.g. Linux without a
Secret Service, or a keychain that refuses to open), keys are kept in memory for this session
only, and `KeyStore.note` says so in a sentence the window shows next to the key field.

    store = key_store()
    saved = store.set("http://gpu-box:8000/v1", "sk-...")   # False: session only; see store.note
    store.get("http://gpu-box:8000/v1")                      # the key, or None
    store.delete("http://gpu-box:8000/v1")
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("ponder.secrets")

SERVICE = "Ponder"

NO_KEYCHAIN = ("No system keychain was found on this computer, so the API key is kept for this session only "
               "and will be asked for again after Ponder restarts.")


def account_for(base_url: str) -> str:
    """The keychain account of a server: its normalised base URL (so "host:8000" and
    "http://host:8000/v1/" share one key). A plain name with no ':', '/' or '.' (such as the
    window's own server key, "ponder-window-server") is its own account."""
    from app.core.remote import normalise_base_url

    text = base_url.strip()
    if not any(c in text for c in ":/.") and text != "localhost":
        return text
    try:
        return normalise_base_url(text)
    except Exception:
        return text


class KeyStore:
    """Keys per server in the keychain, or in memory for the session where there is none.

    `persistent` says whether keys outlive the session; `note` is the sentence saying why not
    (None when they do). Nothing here raises: a keychain that fails falls back to memory.
    """

    def __init__(self, backend=None) -> None:
        """`backend`: a keyring backend (default: the one keyring chooses for this system)."""
        self._session: dict[str, str] = {}
        self._lock = threading.Lock()
        self._backend = None
        self.note: str | None = None
        try:
            import keyring

            backend = backend if backend is not None else keyring.get_keyring()
        except Exception as exc:  # keyring missing or broken
            log.warning("no keychain: %s", exc)
            backend = None
        if backend is None or not _usable(backend):
            self.note = NO_KEYCHAIN
        else:
            self._backend = backend

    @property
    def persistent(self) -> bool:
        return self._backend is not None

    def get(self, base_url: str) -> str | None:
        account = account_for(base_url)
        with self._lock:
            if account in self._session:
                return self._session[account]
        if self._backend is None:
            return None
        try:
            return self._backend.get_password(SERVICE, account)
        except Exception as exc:
            self._fail("read", exc)
            return None

    def set(self, base_url: str, key: str) -> bool:
        """Store the key; True if it is in the keychain, False if kept for this session only
        (then `note` says why). An empty key deletes."""
        account = account_for(base_url)
        if not key:
            self.delete(base_url)
            return self.persistent
        if self._backend is not None:
            try:
                self._backend.set_password(SERVICE, account, key)
                with self._lock:
                    self._session.pop(account, None)
                return True
            except Exception as exc:
                self._fail("save", exc)
        with self._lock:
            self._session[account] = key
        return False

    def delete(self, base_url: str) -> None:
        account = account_for(base_url)
        with self._lock:
            self._session.pop(account, None)
        if self._backend is None:
            return
        try:
            self._backend.delete_password(SERVICE, account)
        except Exception as exc:  # keyring.errors.PasswordDeleteError: there was none
            if type(exc).__name__ != "PasswordDeleteError":
                self._fail("delete", exc)

    def _fail(self, what: str, exc: Exception) -> None:
        log.warning("the keychain could not %s a key: %s", what, exc)
        self.note = (f"The system keychain could not {what} the API key ({exc}), so the key is kept for this "
                     "session only.")


def _usable(backend) -> bool:
    """False for keyring's stand-ins that store nothing (fail, null) and a chain of none."""
    from keyring.backends import chainer, fail, null

    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return bool(backend.backends)
    try:
        return float(getattr(backend, "priority", 1)) > 0
    except Exception:
        return True


_store: KeyStore | None = None
_store_lock = threading.Lock()


def key_store() -> KeyStore:
    """The process's one KeyStore (the session-only keys live in it)."""
    global _store
    with _store_lock:
        if _store is None:
            _store = KeyStore()
        return _store
