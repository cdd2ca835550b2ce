"""Log file, crash reports and native-crash pick-up (app.core.logs)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from app.core import logs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gui_logging(tmp_path):
    """setup_gui_logging on a temporary data directory; everything is undone afterwards."""
    calls = []

    def setup(**options):
        log_file = logs.setup_gui_logging(tmp_path / "data", **options)
        logs.add_crash_listener(lambda message, report: calls.append((message, report)))
        return log_file

    setup.calls = calls
    yield setup
    logs.teardown_gui_logging()


def _raise_and_hook(hook, exc: BaseException):
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001  (the hook decides what to do with it)
        hook(type(caught), caught, caught.__traceback__)


def test_log_file_lives_in_the_data_dir_when_one_is_given(gui_logging, tmp_path):
    log_file = gui_logging()
    logging.getLogger("app.test").info("hello from the test")
    assert log_file == tmp_path / "data" / "logs" / "ponder.log"
    text = log_file.read_text()
    assert "Ponder " in text and "starting" in text
    assert "INFO" in text and "hello from the test" in text


def test_debug_lines_only_when_verbose(gui_logging):
    log_file = gui_logging()
    logging.getLogger("app.test").debug("quiet detail")
    assert "quiet detail" not in log_file.read_text()
    log_file = gui_logging(verbose=True)
    logging.getLogger("app.test").debug("loud detail")
    assert "loud detail" in log_file.read_text()


def test_setting_up_twice_does_not_duplicate_lines(gui_logging):
    gui_logging()
    log_file = gui_logging()
    logging.getLogger("app.test").warning("once only")
    assert log_file.read_text().count("once only") == 1


def test_log_file_rotates(gui_logging):
    log_file = gui_logging(max_bytes=2000)
    for i in range(200):
        logging.getLogger("app.test").info("line %d %s", i, "x" * 40)
    backups = sorted(log_file.parent.glob("ponder.log.*"))
    assert [p.name for p in backups] == ["ponder.log.1", "ponder.log.2", "ponder.log.3"]
    assert log_file.stat().st_size <= 2000
    assert "line 199" in log_file.read_text()


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_STATE_HOME": "/xdg/state"}, "/xdg/state/ponder/logs"),
        ("linux", {}, "~/.local/state/ponder/logs"),
        ("darwin", {}, "~/Library/Logs/Ponder"),
        ("win32", {"LOCALAPPDATA": "C:/Users/a/AppData/Local"}, "C:/Users/a/AppData/Local/Ponder/Logs"),
    ],
)
def test_platform_log_directory(monkeypatch, tmp_path, platform, env, expected):
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_STATE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert logs.default_log_dir() == Path(expected.replace("~", str(tmp_path)))


def test_environment_data_dir_keeps_logs_inside_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PONDER_DATA_DIR", str(tmp_path / "portable"))
    assert logs.resolve_log_dir() == tmp_path / "portable" / "logs"
    assert (tmp_path / "portable" / "logs").is_dir()


def test_uncaught_exception_writes_a_report_and_tells_the_listener(gui_logging, capsys):
    log_file = gui_logging()
    _raise_and_hook(sys.excepthook, ValueError("the model list is upside down"))

    (message, report), = gui_logging.calls
    assert report.parent == log_file.parent and report.name.startswith("crash-")
    text = report.read_text()
    assert "ValueError: the model list is upside down" in text
    assert "Traceback (most recent call last)" in text and "_raise_and_hook" in text
    assert "Ponder 0.1.0 crash report" in text
    assert str(report) in message and "ValueError" in message
    assert "crash report" in log_file.read_text() and "CRITICAL" in log_file.read_text()
    assert str(report) in capsys.readouterr().err


def test_exception_in_a_thread_writes_a_report(gui_logging):
    gui_logging()

    def work():
        raise RuntimeError("worker fell over")

    thread = threading.Thread(target=work, name="engine-test")
    thread.start()
    thread.join()
    (message, report), = gui_logging.calls
    text = report.read_text()
    assert "thread: engine-test" in text and "RuntimeError: worker fell over" in text


def test_two_reports_in_the_same_second_do_not_overwrite_each_other(gui_logging):
    gui_logging()
    _raise_and_hook(sys.excepthook, ValueError("first"))
    _raise_and_hook(sys.excepthook, ValueError("second"))
    reports = [report for _, report in gui_logging.calls]
    assert len(set(reports)) == 2 and all(r.exists() for r in reports)


def test_ctrl_c_is_not_a_crash(gui_logging, tmp_path):
    gui_logging()
    _raise_and_hook(sys.excepthook, KeyboardInterrupt())
    assert gui_logging.calls == []
    assert not list((tmp_path / "data" / "logs").glob("crash-*"))


def test_a_failing_listener_does_not_hide_the_report(gui_logging):
    log_file = gui_logging()

    def broken(message, report):
        raise OSError("display gone")

    logs.add_crash_listener(broken)
    _raise_and_hook(sys.excepthook, ValueError("still reported"))
    assert len(gui_logging.calls) == 1
    assert "crash listener failed" in log_file.read_text()


def test_native_crash_is_reported_at_the_next_start(tmp_path):
    """A real segfault in a child process; the next setup turns faulthandler's dump into a report."""
    data = tmp_path / "data"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        import faulthandler
        from app.core import logs
        logs.setup_gui_logging({str(data)!r})
        faulthandler._sigsegv()
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert child.returncode != 0  # it really crashed

    try:
        logs.setup_gui_logging(data)
        report = logs.previous_crash()
        assert report is not None and report.name.endswith("-native.txt")
        text = report.read_text()
        assert "Segmentation fault" in text and "Current thread" in text
        assert str(report) in logs.previous_crash_message()
        assert (data / "logs" / logs.NATIVE_CRASH_NAME).read_text() == ""
        logs.setup_gui_logging(data)  # the next start has nothing new to report
        assert logs.previous_crash() is None
    finally:
        logs.teardown_gui_logging()


def test_teardown_restores_the_hooks_and_level_from_before(tmp_path):
    import faulthandler

    before = (sys.excepthook, threading.excepthook, logging.getLogger().level, faulthandler.is_enabled())
    logs.setup_gui_logging(tmp_path / "data")
    logs.setup_gui_logging(tmp_path / "data")
    assert sys.excepthook is not before[0] and threading.excepthook is not before[1]
    logs.teardown_gui_logging()
    after = (sys.excepthook, threading.excepthook, logging.getLogger().level, faulthandler.is_enabled())
    assert after == before
