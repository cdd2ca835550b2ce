#!/usr/bin/env python3
"""Smoke-test a frozen or installed Ponder: its `ask` command and, optionally, its window.

    python packaging/smoke_test.py EXE [--gui xvfb|offscreen] [--screenshot OUT.png] 
                                       [--expect-backend NAME] [--env NAME=VALUE ...]

EXE is the frozen binary (dist/ponder/ponder, /usr/bin/ponder, Ponder.app/Contents/MacOS/Ponder,
ponder-cli.exe; on Windows the window is Ponder.exe: pass it as --gui-exe). Run with a Python that has Ponder's dependencies (it writes the scripted GGUF
with tests/fixtures/scripted_gguf.py); the binary itself runs on its own.

1. `EXE ask --json` on a scripted GGUF (tests/fixtures): the thinking, the answer and the
   model name must be exactly what the script makes llama.cpp generate. Then
   `EXE --check-maths` (ponder_main.py): the app typesets and draws a formula with the fonts
   it carries.
2. --gui offscreen: start the window (QT_QPA_PLATFORM=offscreen) on a temporary data dir with
   the model, wait until it is loaded (settings.json names it), then end it.
   --gui xvfb (Linux): the same on a private Xvfb display; check the window's title, WM_CLASS and
   icon (_NET_WM_ICON); type a question with xdotool when it is installed and wait for the
   saved answer; take a screenshot and check it is not blank; end the app with SIGTERM and
   expect a clean exit (the window saves and closes).
Every run uses a temporary HOME and data directory: nothing touches the user's files.
Exit status 0 when every check passed; each check prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import app  # noqa: E402,F401  (llama_cpp before numpy/gguf, see app/__init__.py)
from app.core.storage import store_path  # noqa: E402
from tests.fixtures.scripted_gguf import STANDARD_ANSWER, STANDARD_THINKING  # noqa: E402

QUESTION = "What is 17 times 23?"
LOAD_TIMEOUT_S = 90
ANSWER_TIMEOUT_S = 90


class SmokeFailure(Exception):
    pass


def check(condition: bool, what: str, detail: str = "") -> None:
    if not condition:
        raise SmokeFailure(f"FAIL {what}" + (f": {detail}" if detail else ""))
    print(f"ok   {what}", flush=True)


def write_model(folder: Path) -> Path:
    from tests.fixtures.scripted_gguf import SCRIPTS

    return SCRIPTS["standard_r1"].write(folder / "scripted-r1.gguf")


def isolated_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PONDER_", "QT_", "PYTHON"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_STATE_HOME=str(home / "state"),
               XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               USERPROFILE=str(home), LOCALAPPDATA=str(home / "AppData" / "Local"), HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def smoke_ask(exe: str, model: Path, env: dict[str, str], expect_backend: str | None) -> dict:
    started = time.monotonic()
    result = subprocess.run(
        [exe, "ask", "--model", str(model), "--ctx", "2048", "--seed", "1", "--json", QUESTION],
        capture_output=True, text=True, encoding="utf-8", env=env, timeout=300,
    )
    elapsed = time.monotonic() - started
    check(result.returncode == 0, f"ask exits 0 ({elapsed:.1f} s)", result.stderr[-2000:])
    data = json.loads(result.stdout)
    check(data["thinking"] == STANDARD_THINKING.strip(), "ask: thinking is the scripted trace", data["thinking"][:200])
    check(data["answer"] == STANDARD_ANSWER.strip(), "ask: answer is the scripted answer", data["answer"][:200])
    check(data["model"]["name"] == "Scripted-standard_r1", "ask: model name from the GGUF")
    backend = data["model"]["backend"]
    print(f"     backend {backend}; note: {data['model'].get('gpu_note')}; stderr: {result.stderr.strip()[-300:]!r}")
    if expect_backend:
        check(backend == expect_backend, f"ask: ran on {expect_backend}", backend)
    return data


def smoke_maths(exe: str, env: dict[str, str]) -> dict:
    """The frozen app typesets a formula (ziamath with its bundled fonts) and QtSvg draws it."""
    result = subprocess.run([exe, "--check-maths"], capture_output=True, text=True, encoding="utf-8",
                            env=env, timeout=120)
    lines = result.stdout.strip().splitlines()
    data = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    check(result.returncode == 0 and data.get("typeset") is True and data.get("inked_pixels", 0) > 100,
          f"--check-maths typesets and draws a formula ({data.get('width')}x{data.get('height')} px)",
          result.stdout[-1000:] + result.stderr[-2000:])
    return data


def start_xvfb(tmp: Path) -> tuple[subprocess.Popen, str]:
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=open(tmp / "xvfb.log", "w"),
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        raise SmokeFailure("FAIL Xvfb did not start (see xvfb.log)")
    return xvfb, f":{number}"


def wait_for(condition, timeout: float, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return None


def model_loaded(data_dir: Path, model: Path) -> bool:
    try:
        settings = json.loads((data_dir / "settings.json").read_text())
    except (OSError, ValueError):
        return False
    return settings.get("last_model_path") == str(model)


def saved_answer(data_dir: Path) -> tuple[str, str] | None:
    """(thinking, answer) of the first finished assistant message in the app's database."""
    db = store_path(data_dir)
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute("SELECT thinking, content FROM messages WHERE role = 'assistant' "
                               "AND status = 'complete' ORDER BY id LIMIT 1").fetchone()
    except sqlite3.Error:
        return None
    return tuple(row) if row else None


def x_window(display: str) -> str | None:
    """The id of the main window: titled Ponder and with a WM_CLASS (Qt's 1x1 leader window has none)."""
    out = subprocess.run(["xwininfo", "-root", "-tree", "-display", display], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("0x") and '"Ponder": ("' in line:
            return parts[0]
    return None


def image_stats(png: Path) -> tuple[int, float]:
    """(distinct colours, share of pixels unlike the most common colour) of a PNG."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QImage

    image = QImage(str(png)).convertToFormat(QImage.Format.Format_RGB32)
    width, height = image.width(), image.height()
    data = bytes(image.constBits())[: width * height * 4]
    counts: dict[bytes, int] = {}
    for i in range(0, len(data), 4 * 7):  # every 7th pixel is plenty for these two numbers
        key = data[i:i + 3]
        counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values())
    return len(counts), 1 - max(counts.values()) / total


def smoke_gui(exe: str, model: Path, env: dict[str, str], mode: str, tmp: Path,
              screenshot: Path | None) -> None:
    data_dir = tmp / "gui-data"
    xvfb = None
    env = dict(env)
    if mode == "xvfb":
        xvfb, display = start_xvfb(tmp)
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    else:
        env.update(QT_QPA_PLATFORM="offscreen")
    log_out = open(tmp / "gui.log", "w")
    started = time.monotonic()
    app = subprocess.Popen([exe, "--data-dir", str(data_dir), "--model", str(model)],
                           stdout=log_out, stderr=subprocess.STDOUT, env=env)
    try:
        loaded = wait_for(lambda: app.poll() is not None or model_loaded(data_dir, model), LOAD_TIMEOUT_S)
        check(app.poll() is None, "window is running", (tmp / "gui.log").read_text()[-2000:])
        check(bool(loaded), f"window loaded the model ({time.monotonic() - started:.1f} s after start)")
        if mode == "xvfb":
            window = wait_for(lambda: x_window(display), 20)
            check(window is not None, "an X window titled Ponder is shown")
            props = subprocess.run(["xprop", "-display", display, "-id", window, "WM_CLASS", "_NET_WM_ICON"],
                                   capture_output=True, text=True).stdout
            wm_class = next((line for line in props.splitlines() if line.startswith("WM_CLASS")), "")
            print(f"     {wm_class}")
            check("_NET_WM_ICON(CARDINAL)" in props, "the window carries Ponder's icon (_NET_WM_ICON)")
            if shutil.which("xdotool"):
                # No window manager on Xvfb: give the window the keyboard focus directly.
                subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, check=True)
                # The first word typed into a fresh Xvfb session gets lost (keymap set-up): type a
                # throwaway word, clear the box, then the question.
                subprocess.run(["xdotool", "type", "--delay", "15", "warm up "], env=env, check=True)
                time.sleep(0.3)
                subprocess.run(["xdotool", "key", "ctrl+a", "BackSpace"], env=env, check=True)
                subprocess.run(["xdotool", "type", "--delay", "15", QUESTION], env=env, check=True)
                subprocess.run(["xdotool", "key", "Return"], env=env, check=True)
                answer = wait_for(lambda: saved_answer(data_dir), ANSWER_TIMEOUT_S)
                check(answer is not None, "a question typed into the window gets a saved answer")
                check(answer == (STANDARD_THINKING.strip(), STANDARD_ANSWER.strip()),
                      "window: the saved thinking and answer are the scripted ones", repr(answer)[:300])
                time.sleep(1.5)  # the final markdown render
            else:
                time.sleep(2)
                print("     (xdotool not installed: no question typed)")
            shot = screenshot or tmp / "window.png"
            subprocess.run(["import", "-display", display, "-window", "root", str(shot)], check=True)
            colours, busy = image_stats(shot)
            check(colours > 40 and busy > 0.05, f"screenshot {shot} is not blank ({colours} colours, "
                  f"{busy:.0%} of pixels unlike the background)")
        # SIGTERM (logout, `kill`) closes the window properly; Windows has no such signal.
        if sys.platform == "win32":
            app.terminate()
            app.wait(30)
        else:
            app.send_signal(signal.SIGTERM)
            code = app.wait(30)
            check(code == 0, "window exits cleanly on SIGTERM", f"exit code {code}")
        logs = data_dir / "logs"
        check((logs / "ponder.log").is_file(), f"window wrote its log to {logs}")
        crashes = sorted(logs.glob("crash-*"))
        check(not crashes, "no crash report", ", ".join(p.name for p in crashes))
    finally:
        if app.poll() is None:
            app.kill()
        log_out.close()
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("exe")
    parser.add_argument("--gui", choices=["xvfb", "offscreen"])
    parser.add_argument("--gui-exe", help="the window's executable when it is not EXE (Windows: Ponder.exe)")
    parser.add_argument("--screenshot", type=Path, help="where to keep the window screenshot (xvfb)")
    parser.add_argument("--expect-backend", help='fail unless `ask` reports this backend ("CPU", "Vulkan", "Metal")')
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the app (e.g. GGML_VK_VISIBLE_DEVICES=0)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    args = parser.parse_args(argv)
    exe = shutil.which(args.exe) or args.exe
    extra = dict(item.split("=", 1) for item in args.env)

    tmp = Path(tempfile.mkdtemp(prefix="ponder-smoke-"))
    try:
        model = write_model(tmp)
        env = isolated_env(tmp / "home", extra)
        smoke_ask(exe, model, env, args.expect_backend)
        smoke_maths(exe, env)
        if args.gui:
            gui_exe = (shutil.which(args.gui_exe) or args.gui_exe) if args.gui_exe else exe
            smoke_gui(gui_exe, model, env, args.gui, tmp, args.screenshot)
    except SmokeFailure as failure:
        print(failure, flush=True)
        for name in ("gui.log",):
            if (tmp / name).exists():
                print(f"--- {name} (last lines)\n{(tmp / name).read_text()[-3000:]}")
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
