"""run_in_background: work on a worker thread, every callback on the GUI thread and only while
its owner exists, errors as sentences, progress in order, and a bounded shutdown."""

from __future__ import annotations

import logging
import threading
import time

import shiboken6
from PySide6.QtCore import QObject

from app.core.errors import DownloadError
from app.ui import background
from app.ui.background import run_in_background

WAIT_MS = 5_000


def ended(job) -> bool:
    """The job's end has been delivered (or dropped for a gone owner) on the GUI thread."""
    return job not in background.running_jobs()


def test_the_result_arrives_on_the_gui_thread_and_the_work_ran_off_it(qtbot):
    owner = QObject()
    results: list[tuple[str, threading.Thread]] = []

    job = run_in_background(lambda _job: threading.current_thread().name, owner=owner,
                            on_done=lambda name: results.append((name, threading.current_thread())))
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT_MS)

    ((worker_name, delivered_on),) = results
    assert delivered_on is threading.main_thread()
    assert worker_name != threading.main_thread().name and worker_name.startswith("ponder-default-")
    assert job.wait(0) and ended(job)


def test_a_ponder_error_reaches_on_failed_as_its_sentence(qtbot):
    def work(_job):
        raise DownloadError("Could not reach the hub — check your connection.")

    owner = QObject()
    done: list[object] = []
    failed: list[tuple[str, threading.Thread]] = []
    run_in_background(work, owner=owner, on_done=done.append,
                      on_failed=lambda message: failed.append((message, threading.current_thread())))
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)

    assert failed == [("Could not reach the hub — check your connection.", threading.main_thread())]
    assert done == []


def test_any_other_exception_reaches_on_failed_as_a_bug_and_is_logged_with_its_traceback(qtbot, caplog):
    def work(_job):
        raise ValueError("index out of range in the survey")

    owner = QObject()
    failed: list[str] = []
    with caplog.at_level(logging.ERROR, logger="app.ui.background"):
        run_in_background(work, owner=owner, on_failed=failed.append, name="the model survey")
        qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)

    assert failed == ["Something went wrong inside Ponder (the model survey): index out of range in the survey"]
    (record,) = [r for r in caplog.records if r.name == "app.ui.background"]
    assert record.levelno == logging.ERROR and "the model survey" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError


def test_progress_arrives_in_order_on_the_gui_thread_and_before_the_result(qtbot):
    owner = QObject()
    events: list[object] = []
    threads: set[threading.Thread] = set()

    def work(job):
        for i in range(300):
            job.report(i)
        return "done"

    def on_progress(value):
        threads.add(threading.current_thread())
        events.append(value)

    run_in_background(work, owner=owner, on_progress=on_progress, on_done=events.append)
    qtbot.waitUntil(lambda: "done" in events, timeout=WAIT_MS)

    assert events == [*range(300), "done"]
    assert threads == {threading.main_thread()}


def test_a_destroyed_owner_gets_no_callback(qtbot):
    owner = QObject()
    go = threading.Event()
    calls: list[object] = []

    def work(job):
        go.wait(WAIT_MS / 1000)
        job.report("halfway")
        return "result"

    job = run_in_background(work, owner=owner, on_done=calls.append, on_failed=calls.append,
                            on_progress=calls.append)
    shiboken6.delete(owner)  # the dialog that asked was closed and deleted
    go.set()
    assert job.wait(WAIT_MS / 1000)
    qtbot.waitUntil(lambda: ended(job), timeout=WAIT_MS)

    assert calls == []


def test_a_job_cancelled_while_queued_never_starts(qtbot):
    owner = QObject()
    release = threading.Event()
    started: list[str] = []
    calls: list[object] = []

    def blocker(_job):
        release.wait(WAIT_MS / 1000)

    first = run_in_background(blocker, owner=owner, lane="render")  # the render lane has one thread
    queued = run_in_background(lambda _job: started.append("queued"), owner=owner, lane="render",
                               on_done=calls.append, on_failed=calls.append)
    queued.cancel()
    release.set()

    assert first.wait(WAIT_MS / 1000) and queued.wait(WAIT_MS / 1000)
    qtbot.waitUntil(lambda: ended(first) and ended(queued), timeout=WAIT_MS)
    assert started == [] and calls == []


def test_shutdown_cancels_a_running_cooperative_job_and_returns_well_within_its_bound(qtbot):
    owner = QObject()
    running = threading.Event()
    results: list[object] = []

    def work(job):
        running.set()
        while not job.cancel_event.wait(0.01):
            pass
        return "stopped"

    job = run_in_background(work, owner=owner, on_done=results.append)
    assert running.wait(WAIT_MS / 1000)

    start = time.monotonic()
    assert background.shutdown(timeout_s=3.0) is True
    assert time.monotonic() - start < 1.0
    assert job.cancelled and job.wait(0)
    qtbot.waitUntil(lambda: results == ["stopped"], timeout=WAIT_MS)  # the owner still exists


def test_shutdown_leaves_a_job_that_ignores_the_cancel_after_its_bound(qtbot):
    owner = QObject()
    running, release = threading.Event(), threading.Event()

    def stuck(_job):  # like a network read that does not look at the cancel
        running.set()
        release.wait(WAIT_MS / 1000)

    job = run_in_background(stuck, owner=owner)
    try:
        assert running.wait(WAIT_MS / 1000)
        start = time.monotonic()
        assert background.shutdown(timeout_s=0.3) is False
        elapsed = time.monotonic() - start
        assert 0.3 <= elapsed < 1.5
        assert not job.wait(0)
    finally:
        release.set()
    assert job.wait(WAIT_MS / 1000)
