"""Screenshots of the server switch and of a remote engine in the real window (run by hand, under Xvfb).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tests/benchmarks/screenshot_remote.py OUT_DIR [--theme dark]

A scripted GGUF (real llama.cpp) is loaded in the window, which serves it (Model → Serve the
loaded model); a second scripted model runs behind `ponder serve`'s service on loopback, and the
window connects to it through "Connect to a server…". Writes:
- OUT_DIR/serving.png: an answer, the status bar's "Serving on http://127.0.0.1:PORT";
- OUT_DIR/serving-menu.png: the indicator's menu (copy address, settings, turn off);
- OUT_DIR/connect-dialog.png: the connect dialog with the server's models listed;
- OUT_DIR/remote-chat.png: an answer from the remote engine, "remote: host · model" in the status bar.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)
from PySide6.QtCore import QPoint, QTimer  # noqa: E402

from app.core.engine import LoadOptions  # noqa: E402
from app.core.server.api import bind_socket, build_app, make_server  # noqa: E402
from app.core.server.service import EngineService  # noqa: E402
from app.core.settings import Settings, save_settings  # noqa: E402
from app.ui.main import create_app, open_window  # noqa: E402
from app.ui.remote_dialog import ConnectDialog  # noqa: E402
from tests.benchmarks.screenshot_common import grab, send, shot_args  # noqa: E402
from tests.benchmarks.screenshot_window import ANSWER, PROMPT, THINKING  # noqa: E402
from tests.fixtures.scripted_gguf import split_script, write_scripted_gguf  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    args = shot_args()

    work = Path(tempfile.mkdtemp(prefix="ponder-remote-"))
    script = split_script(THINKING + "</think>" + ANSWER)
    local = write_scripted_gguf(work / "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", script,
                                name="DeepSeek-R1-Distill-Qwen-7B (scripted)")
    remote_dir = work / "cluster"
    remote_dir.mkdir()
    remote = write_scripted_gguf(remote_dir / "DeepSeek-R1-0528.gguf", script, name="DeepSeek-R1-0528 (scripted)")

    service = EngineService(remote, LoadOptions(n_ctx=4096)).start()
    server = make_server(build_app(service), log_level="warning")
    sock = bind_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()

    data = work / "data"
    save_settings(data, Settings(n_ctx=4096, n_gpu_layers=0, theme=args.theme, server_port=free_port()))
    qapp = create_app()
    window = open_window(str(data), str(local))
    window.resize(1280, 800)
    window.move(0, 0)

    def step(delay_ms: int, action) -> None:
        QTimer.singleShot(delay_ms, action)

    def ask() -> None:
        send(window, PROMPT)

    def on_loaded_local(_info) -> None:
        window.client.loaded.disconnect(on_loaded_local)
        window.server.toggle_action.trigger()
        step(200, ask)

    def on_local_answer(_message) -> None:
        window.session.answer_finished.disconnect(on_local_answer)
        step(600, lambda: (grab(args.out / "serving.png"), show_menu()))

    def show_menu() -> None:
        indicator = window.status.server_indicator
        menu = indicator.menu()
        menu.popup(indicator.mapToGlobal(QPoint(0, -menu.sizeHint().height())))  # opens upwards, as at the edge
        step(400, lambda: (grab(args.out / "serving-menu.png"), indicator.menu().hide(), step(200, open_dialog)))

    def open_dialog() -> None:
        dialog = ConnectDialog(window.settings, window)
        dialog.preset.setCurrentIndex(dialog.preset.findText("Other server"))
        dialog.base_url.setText(base_url)
        dialog.list_models()
        dialog.show()

        def when_listed() -> None:
            if dialog.model.count() == 0 or not dialog.list_button.isEnabled():  # the list is in
                step(50, when_listed)
                return
            step(300, lambda: (grab(args.out / "connect-dialog.png"), connect(dialog)))

        when_listed()

    def connect(dialog) -> None:
        dialog.close()
        window.new_chat()
        window.client.loaded.connect(on_loaded_remote)
        window.models.connect_remote(dialog.endpoint())

    def on_loaded_remote(_info) -> None:
        window.client.loaded.disconnect(on_loaded_remote)
        window.session.answer_finished.connect(on_remote_answer)
        step(200, ask)

    def on_remote_answer(_message) -> None:
        step(600, lambda: (grab(args.out / "remote-chat.png"), window.close(), qapp.quit()))

    window.client.loaded.connect(on_loaded_local)
    window.session.answer_finished.connect(on_local_answer)
    QTimer.singleShot(60_000, qapp.quit)  # never hang
    qapp.exec()
    window.close()
    service.close()
    server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
