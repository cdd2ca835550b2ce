#!/usr/bin/env python3
"""Check that the .deb's Depends bring every system library the frozen bundle loads.

    python packaging/linux/check_depends.py BUNDLE_DIR "DEPENDS"

Runs `ldd` on every ELF file in the bundle. A library found outside the bundle must belong
(`dpkg -S`) to a package in the closure of DEPENDS (`apt-cache depends --recurse`), or a
fresh machine that installs the .deb could lack it. Exits 1 naming the packages to add.
A bundle file with a library that is not found at all here is an optional Qt plugin
(GTK theme, Wayland) that Qt skips where its library is missing; it is printed as a note.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ELF_MAGIC = b"\x7fELF"


def elf_files(bundle: Path) -> list[Path]:
    files = []
    for path in bundle.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                if f.read(4) == ELF_MAGIC:
                    files.append(path)
    return files


def ldd(path: Path, bundle: Path) -> list[tuple[str, str | None]]:
    # PyInstaller's bootloader puts the bundle's top folder on the library path; so does this.
    env = dict(os.environ, LD_LIBRARY_PATH=str(bundle / "_internal"))
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env).stdout
    deps = []
    for line in out.splitlines():
        match = re.match(r"\s*(\S+) => (not found|(\S+) \(0x[0-9a-f]+\))", line)
        if match:
            deps.append((match.group(1), match.group(3)))
    return deps


def owner(library: str) -> str | None:
    real = os.path.realpath(library)
    for candidate in {library, real, real.replace("/usr/lib/", "/lib/", 1), real.replace("/lib/", "/usr/lib/", 1)}:
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":", 1)[0].strip()
    return None


def depends_closure(depends: str) -> set[str]:
    roots = []
    for clause in depends.split(","):
        for alternative in clause.split("|"):  # any alternative known to this machine counts
            name = alternative.strip().split(" ")[0]
            if name:
                roots.append(name)
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *roots],
        capture_output=True, text=True,
    ).stdout
    names = set(roots)
    for line in out.splitlines():
        line = line.strip()
        if line.startswith(("Depends:", "PreDepends:")):
            names.add(line.split(":", 1)[1].strip().strip("<>"))
        elif line and ":" not in line:
            names.add(line.strip("<>"))
    return {name.split(":")[0] for name in names}


def main() -> int:
    bundle, depends = Path(sys.argv[1]).resolve(), sys.argv[2]
    closure = depends_closure(depends)
    system: dict[str, set[str]] = {}  # system library -> bundle files needing it
    missing: dict[str, set[str]] = {}
    for path in elf_files(bundle):
        deps = ldd(path, bundle)
        unresolved = [name for name, where in deps if where is None]
        for name in unresolved:
            missing.setdefault(name, set()).add(str(path.relative_to(bundle)))
        if unresolved:
            continue  # an optional plugin that cannot load here; it is skipped the same way elsewhere
        for name, where in deps:
            if not os.path.realpath(where).startswith(str(bundle) + os.sep):
                system.setdefault(where, set()).add(str(path.relative_to(bundle)))
    uncovered: dict[str, list[str]] = {}
    for library in sorted(system):
        package = owner(library)
        if package is None or package.split(":")[0] not in closure:
            uncovered.setdefault(package or f"(no package owns {library})", []).append(library)
    print(f"check_depends: {len(system)} system libraries, from packages all named by Depends"
          if not uncovered else "check_depends: system libraries no Depends package brings:")
    for package, libraries in uncovered.items():
        print(f"  {package}: {', '.join(libraries)}")
    if missing:
        print(f"check_depends: note: {len(missing)} libraries not on this machine, needed only by optional parts:")
        for name, users in sorted(missing.items()):
            print(f"  {name} (by {', '.join(sorted(users)[:3])}{' ...' if len(users) > 3 else ''})")
    return 1 if uncovered else 0


if __name__ == "__main__":
    sys.exit(main())
