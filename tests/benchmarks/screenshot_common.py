"""What the screenshot scripts (screenshot_window, _steering, _versions, _remote, _models) share:
their arguments, sending a prompt, grabbing the X screen, and running the window until the
script closes it. Imported after `app` (llama_cpp before numpy), like the scripts' other imports."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

GIVE_UP_MS = 120_000  # a script whose window never gets there exits with 2 rather than hanging


def shot_args(parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """OUT_DIR (created) and --theme, plus whatever the script added to `parser`."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def grab(path: Path) -> None:
    """The whole X screen with ImageMagick's `import`, as a user would see it."""
    subprocess.run(["import", "-window", "root", str(path)], check=True)
    print("wrote", path)


def send(window, prompt: str) -> None:
    window.prompt_input.setPlainText(prompt)
    window.send_prompt()


def run_until_closed(qapp: QApplication, window) -> int:
    """Run the event loop: 0 once the script closes the window, 1 if the model fails to load
    (the reason is printed), 2 after GIVE_UP_MS."""
    window.client.load_failed.connect(lambda message: (print(message), QApplication.exit(1)))
    QTimer.singleShot(GIVE_UP_MS, lambda: QApplication.exit(2))
    code = qapp.exec()
    window.store.close()
    return code
