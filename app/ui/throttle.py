"""Throttle: run an expensive UI update at most once per interval, coalescing requests."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer


class Throttle(QObject):
    """Calls `func` at most once every `interval_ms`, however often it is requested.

    The first request after a quiet period runs at once (no added latency); requests
    inside the interval are merged into one call at its end. `flush()` runs a pending
    call now (e.g. before a final render); `cancel()` drops it.
    """

    def __init__(self, func: Callable[[], None], interval_ms: int = 33, parent: QObject | None = None):
        super().__init__(parent)
        self._func = func
        self._interval_s = interval_ms / 1000
        self._last_run = float("-inf")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._run)

    @property
    def pending(self) -> bool:
        return self._timer.isActive()

    def request(self) -> None:
        if self._timer.isActive():
            return  # already scheduled: this request rides along
        wait_s = self._last_run + self._interval_s - time.monotonic()
        if wait_s <= 0:
            self._run()
        else:
            self._timer.start(max(1, round(wait_s * 1000)))

    __call__ = request

    def flush(self) -> None:
        if self._timer.isActive():
            self._timer.stop()
            self._run()

    def cancel(self) -> None:
        self._timer.stop()

    def _run(self) -> None:
        try:
            self._func()
        finally:
            # Measured from the end of the call: the event loop always gets a full
            # interval to itself, however long the update took.
            self._last_run = time.monotonic()
