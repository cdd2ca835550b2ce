"""Log file and crash reports for the window.

`setup_gui_logging()` sends logging to a rotating file in the platform log directory (or in
`<data dir>/logs` when a data directory is given) and installs the crash handler:

- an uncaught exception in the main thread, in any other thread or in a Qt slot (PySide6 hands
  those to `sys.excepthook`) writes `crash-<time>.txt` there, logs it, and calls the crash
  listeners with a sentence naming the file (the window shows it in a message box);
- a native crash (llama.cpp aborting, a segfault) cannot run Python code, so `faulthandler`
  writes the stacks of every thread to `native-crash.log`; the next start turns that into a
  `crash-<time>-native.txt` report and `previous_crash()` returns it so the user is told.

Commands (`ponder ask ...`) do not use this: they print to the terminal.
"""

from __future__ import annotations

import datetime as _dt
import faulthandler
import logging
import logging.handlers
import os
import platform
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable

from app.core.paths import ENV_DATA_DIR, data_dir, log_dir

LOG_NAME = "ponder.log"
NATIVE_CRASH_NAME = "native-crash.log"
LOG_MAX_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 3
LOG_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"

log = logging.getLogger(__name__)

CrashListener = Callable[[str, Path], None]  # (sentence for the user, report file)


class _State:
    def __init__(self) -> None:
        self.log_dir: Path | None = None
        self.handlers: list[logging.Handler] = []
        self.listeners: list[CrashListener] = []
        self.fault_file = None
        self.fault_was_enabled = False  # faulthandler on stderr before us (pytest, python -X faulthandler)
        self.installed = False
        self.previous = None  # (sys.excepthook, threading.excepthook, root level) before us
        self.previous_crash: Path | None = None
        self.lock = threading.Lock()


_state = _State()


def default_log_dir() -> Path:
    """Where the platform keeps application logs (not created here)."""
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "Ponder" / "Logs"
    if sys.platform == "darwin":
        return home / "Library" / "Logs" / "Ponder"
    # XDG: logs are "state data" (kept across restarts, not worth backing up)
    base = Path(os.environ.get("XDG_STATE_HOME") or home / ".local" / "state")
    return base / "ponder" / "logs"


def resolve_log_dir(data_dir_override: str | os.PathLike | None = None) -> Path:
    """The log directory (created): `<data dir>/logs` when a data directory is chosen
    (`--data-dir` or $PONDER_DATA_DIR), so a portable or test set-up keeps everything in one
    place; the platform log directory otherwise."""
    if data_dir_override or os.environ.get(ENV_DATA_DIR):
        return log_dir(data_dir(data_dir_override))
    path = default_log_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def setup_gui_logging(
    data_dir_override: str | os.PathLike | None = None,
    verbose: bool = False,
    max_bytes: int = LOG_MAX_BYTES,
) -> Path:
    """Log to `<log dir>/ponder.log` (and to stderr when there is one) and install the crash handler.

    Returns the log file. Calling it again replaces the previous set-up (no duplicate handlers).
    """
    directory = resolve_log_dir(data_dir_override)
    root = logging.getLogger()
    for handler in _state.handlers:
        root.removeHandler(handler)
        handler.close()
    _state.handlers = []

    file_handler = logging.handlers.RotatingFileHandler(
        directory / LOG_NAME, maxBytes=max_bytes, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    _state.handlers.append(file_handler)
    if sys.stderr is not None:  # a windowed Windows exe has no stderr at all
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.DEBUG if verbose else logging.WARNING)
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        _state.handlers.append(stream)
    for handler in _state.handlers:
        root.addHandler(handler)
    if not _state.installed:
        _state.previous = (sys.excepthook, threading.excepthook, root.level)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)

    _state.log_dir = directory
    _state.previous_crash = _collect_native_crash(directory)
    _install_crash_handler(directory)
    from app import __version__

    log.info("Ponder %s starting (Python %s, %s); log in %s",
             __version__, platform.python_version(), platform.platform(), directory)
    if _state.previous_crash:
        log.warning("the previous run crashed; report: %s", _state.previous_crash)
    return directory / LOG_NAME


def previous_crash() -> Path | None:
    """The report of a native crash in the previous run, found by the last setup_gui_logging()."""
    return _state.previous_crash


def previous_crash_message() -> str | None:
    """A sentence for the user about the previous run's native crash, or None."""
    report = _state.previous_crash
    if report is None:
        return None
    return (f"Ponder closed unexpectedly last time. A crash report was saved to {report} "
            "— please attach it if you report the problem.")


def add_crash_listener(listener: CrashListener) -> None:
    """Call `listener(sentence, report_path)` after each crash report (from the failing thread)."""
    _state.listeners.append(listener)


def remove_crash_listener(listener: CrashListener) -> None:
    if listener in _state.listeners:
        _state.listeners.remove(listener)


def crash_message(exc: BaseException, report: Path) -> str:
    return (f"Ponder hit an unexpected error ({type(exc).__name__}: {exc}). "
            f"A crash report was saved to {report} — please attach it if you report the problem. "
            "Your conversations are saved; if the window misbehaves, restart Ponder.")


def write_crash_report(exc_type, exc, tb, thread_name: str | None = None) -> Path:
    """Write a crash report for one exception into the log directory and return its path."""
    from app import __version__

    directory = _state.log_dir or resolve_log_dir()
    now = _dt.datetime.now()
    with _state.lock:  # two threads crashing at once get two files
        path = directory / f"crash-{now:%Y%m%d-%H%M%S-%f}.txt"
        lines = [
            f"Ponder {__version__} crash report",
            f"time: {now.isoformat(timespec='seconds')}",
            f"thread: {thread_name or threading.current_thread().name}",
            f"python: {sys.version.split()[0]} ({'frozen' if getattr(sys, 'frozen', False) else 'source'})",
            f"platform: {platform.platform()}",
            "",
            "".join(traceback.format_exception(exc_type, exc, tb)),
        ]
        path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _report(exc_type, exc, tb, thread_name: str | None = None) -> None:
    try:
        report = write_crash_report(exc_type, exc, tb, thread_name)
    except OSError as error:  # a full or read-only disk: still say what happened
        log.critical("unexpected error, and the crash report could not be written (%s)", error,
                     exc_info=(exc_type, exc, tb))
        return
    log.critical("unexpected error; crash report %s", report, exc_info=(exc_type, exc, tb))
    message = crash_message(exc, report)
    if sys.stderr is not None:
        print(f"ponder: {message}", file=sys.stderr)
    for listener in list(_state.listeners):
        try:
            listener(message, report)
        except Exception:  # a broken listener must not hide the report
            log.exception("crash listener failed")


def _excepthook(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _report(exc_type, exc, tb)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    _report(args.exc_type, args.exc_value, args.exc_traceback, args.thread.name if args.thread else None)


def _install_crash_handler(directory: Path) -> None:
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    if _state.fault_file is not None:
        faulthandler.disable()
        _state.fault_file.close()
    if not _state.installed:
        _state.fault_was_enabled = faulthandler.is_enabled()
        _state.installed = True
    # Kept open for the life of the process: faulthandler writes to its descriptor from a signal handler.
    _state.fault_file = open(directory / NATIVE_CRASH_NAME, "a", encoding="utf-8")
    faulthandler.enable(file=_state.fault_file, all_threads=True)


def teardown_gui_logging() -> None:
    """Undo setup_gui_logging(): remove its handlers, restore the default hooks, stop faulthandler."""
    root = logging.getLogger()
    for handler in _state.handlers:
        root.removeHandler(handler)
        handler.close()
    _state.handlers = []
    if _state.installed and _state.previous:
        sys.excepthook, threading.excepthook, level = _state.previous
        root.setLevel(level)
    if _state.fault_file is not None:
        faulthandler.disable()
        _state.fault_file.close()
        _state.fault_file = None
    if _state.installed and _state.fault_was_enabled and sys.stderr is not None:
        faulthandler.enable()
    _state.installed = False
    _state.listeners.clear()
    _state.log_dir = None
    _state.previous_crash = None


def _collect_native_crash(directory: Path) -> Path | None:
    """Turn a non-empty native-crash.log (left by faulthandler) into a crash report."""
    fault = directory / NATIVE_CRASH_NAME
    if _state.fault_file is not None and not _state.fault_file.closed:
        _state.fault_file.flush()
    try:
        text = fault.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    if not text.strip():
        return None
    when = _dt.datetime.fromtimestamp(fault.stat().st_mtime)
    report = directory / f"crash-{when:%Y%m%d-%H%M%S}-native.txt"
    report.write_text(
        f"Ponder stopped in native code (llama.cpp, Qt or Python itself) at {when.isoformat(timespec='seconds')}.\n"
        "The stacks of all Python threads at that moment:\n\n" + text,
        encoding="utf-8",
    )
    if _state.fault_file is not None and not _state.fault_file.closed:
        faulthandler.disable()
        _state.fault_file.close()
        _state.fault_file = None
    fault.write_text("", encoding="utf-8")
    return report
