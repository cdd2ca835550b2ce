#!/usr/bin/env python3
"""Install the .deb on this machine, smoke-test the installed app, remove it again.

    sudo .venv/bin/python packaging/linux/install_check.py dist/ponder_0.1.0_amd64.deb [--screenshot OUT.png]

1. `dpkg -i`: the files land in /opt/ponder, /usr/bin/ponder, the menu entry and the icons.
2. packaging/smoke_test.py on /usr/bin/ponder: `ask --json` on a scripted GGUF, then the
   window under Xvfb (question typed, answer saved, screenshot not blank, clean SIGTERM exit).
3. `dpkg -r ponder`: every file the package installed is gone and nothing is left in /opt/ponder;
   then `dpkg --purge` drops its record (dpkg keeps the postrm of a removed package until then).
Needs root, dpkg, Xvfb, xwininfo/xprop (x11-utils), ImageMagick's `import`; xdotool optional.
Refuses to run over a `ponder` package that is already installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import smoke_test  # noqa: E402  (packaging/smoke_test.py)

PREFIX = Path("/opt/ponder")
LAUNCHER = Path("/usr/bin/ponder")
DESKTOP = Path("/usr/share/applications/ponder.desktop")
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def dpkg_installed(package: str = "ponder") -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "installed" in out.stdout.split()


def install(deb: Path) -> list[str]:
    """dpkg -i the package; return the paths it installed (dpkg -L)."""
    if os.geteuid() != 0:
        raise SystemExit("install_check: dpkg -i needs root")
    if dpkg_installed():
        raise SystemExit("install_check: a ponder package is installed already; remove it first (dpkg -r ponder)")
    result = subprocess.run(["dpkg", "-i", str(deb)], capture_output=True, text=True)
    if result.returncode != 0:
        subprocess.run(["dpkg", "-r", "ponder"], capture_output=True)
        raise smoke_test.SmokeFailure(f"FAIL dpkg -i: {result.stderr.strip()}")
    smoke_test.check(True, f"dpkg -i {deb.name}")
    return subprocess.run(["dpkg", "-L", "ponder"], capture_output=True, text=True, check=True).stdout.split()


def check_layout(files: list[str]) -> None:
    check = smoke_test.check
    check((PREFIX / "ponder").is_file() and os.access(PREFIX / "ponder", os.X_OK), f"{PREFIX}/ponder is executable")
    check(LAUNCHER.is_symlink() and os.readlink(LAUNCHER) == str(PREFIX / "ponder"), f"{LAUNCHER} -> {PREFIX}/ponder")
    desktop = DESKTOP.read_text() if DESKTOP.exists() else ""
    check("Exec=ponder" in desktop and "Icon=ponder" in desktop, f"menu entry {DESKTOP}")
    if shutil.which("desktop-file-validate"):
        validate = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
        check(validate.returncode == 0 and not validate.stdout.strip(), "desktop-file-validate is happy", validate.stdout)
    icons = [Path(f"/usr/share/icons/hicolor/{n}x{n}/apps/ponder.png") for n in ICON_SIZES]
    icons.append(Path("/usr/share/icons/hicolor/scalable/apps/ponder.svg"))
    check(all(icon.is_file() for icon in icons), f"icons in /usr/share/icons/hicolor ({len(icons)} sizes)")
    check(len(files) > 100, f"dpkg -L lists {len(files)} paths")


def remove(files: list[str]) -> None:
    result = subprocess.run(["dpkg", "-r", "ponder"], capture_output=True, text=True)
    smoke_test.check(result.returncode == 0, "dpkg -r ponder", result.stderr)
    # Directories like /usr/share/icons/hicolor/16x16/apps are shared with other packages;
    # Ponder's own (/opt/ponder, /usr/share/doc/ponder) must go with its files.
    left = [p for p in files if Path(p).exists() and (not Path(p).is_dir() or "ponder" in p)]
    smoke_test.check(not left and not PREFIX.exists() and not LAUNCHER.exists() and not DESKTOP.exists(),
                     "dpkg -r removed every file it installed, /opt/ponder included", ", ".join(left[:10]))
    smoke_test.check(not dpkg_installed(), "dpkg no longer lists ponder as installed")
    # dpkg keeps a removed package's maintainer scripts (state "config-files") until it is purged.
    result = subprocess.run(["dpkg", "--purge", "ponder"], capture_output=True, text=True)
    known = subprocess.run(["dpkg-query", "-W", "ponder"], capture_output=True, text=True).returncode == 0
    smoke_test.check(result.returncode == 0 and not known, "dpkg --purge ponder leaves no trace in dpkg's database")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deb", type=Path)
    parser.add_argument("--screenshot", type=Path, help="keep the window screenshot here")
    parser.add_argument("--keep-installed", action="store_true", help="leave the package installed")
    args = parser.parse_args(argv)
    files: list[str] = []
    try:
        files = install(args.deb.resolve())
        check_layout(files)
        code = smoke_test.main([str(LAUNCHER), "--gui", "xvfb"]
                               + (["--screenshot", str(args.screenshot)] if args.screenshot else []))
        if code != 0:
            return code
        if not args.keep_installed:
            remove(files)
            files = []
    except smoke_test.SmokeFailure as failure:
        print(failure)
        return 1
    finally:
        if files and not args.keep_installed and dpkg_installed():
            subprocess.run(["dpkg", "--purge", "ponder"], capture_output=True)
    print("install check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
