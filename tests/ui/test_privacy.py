"""Privacy: with no remote engine configured, the window makes no network request.

The brief: Ponder touches the network only for downloads the user starts, or a server the user
connects to. An audit hook (sys.addaudithook) sees every socket connect and name look-up made by
Python code in this process, Qt's own networking aside (Ponder does not use QtNetwork). Hooks
cannot be removed, so this one records only while a test has switched it on.
"""

from __future__ import annotations

import ipaddress
import sys

from PySide6.QtCore import Qt

from tests.ui.test_window import ANSWER_TIMEOUT_MS, PROMPT

_recording: list[object] | None = None


def _is_loopback(host: object) -> bool:
    if host in (None, "localhost", b"localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host)).is_loopback
    except ValueError:
        return False


def _hook(event: str, args: tuple) -> None:
    if _recording is None:
        return
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            _recording.append(("connect", address))
    elif event == "socket.getaddrinfo" and not _is_loopback(args[0]):
        _recording.append(("getaddrinfo", args[0]))


sys.addaudithook(_hook)


def test_a_local_chat_in_the_window_makes_no_network_request(qtbot, data_dir, open_app, scripted_model):
    global _recording
    _recording = []
    try:
        window = open_app(data_dir, scripted_model("standard_r1"))
        qtbot.keyClicks(window.prompt_input, PROMPT)
        with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
            qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
        assert blocker.args[0].content  # an answer came, from the local model
        window.library.refresh()  # the hardware survey and recommendation: local only
        qtbot.wait(500)
        window.close()
        seen = list(_recording)
    finally:
        _recording = None
    assert seen == []


def test_the_hook_sees_a_request_to_a_remote_address():
    """The check above can fail: a connect to a non-loopback address is recorded."""
    import socket

    global _recording
    _recording = []
    try:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect_ex(("192.0.2.1", 9))  # TEST-NET-1: never routed, nothing is sent
        finally:
            sock.close()
        seen = list(_recording)
    finally:
        _recording = None
    assert seen == [("connect", ("192.0.2.1", 9))]
