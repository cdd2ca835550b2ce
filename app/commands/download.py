"""`ponder download MODEL_ID[:QUANT]` or `ponder download --repo REPO --file FILE`: fetch a model
into the models folder with a progress bar on stderr. Ctrl-C stops and keeps the part;
running the same command again resumes it."""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time

from app.core import paths
from app.core.catalog import load_catalog
from app.core.downloads import DownloadCancelled, Progress, download_model, format_bytes
from app.core.errors import DownloadError
from app.core.hardware import probe
from app.core.wording import describe_plan

DEFAULT_QUANT = "Q4_K_M"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "download",
        help="download a model into the models folder",
        description="Download a GGUF model from Hugging Face (HF_ENDPOINT is honoured). "
        "An interrupted download resumes when the command is run again.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL_ID[:QUANT]", help=f"catalog model (quant default {DEFAULT_QUANT})")
    p.add_argument("--repo", help="Hugging Face repository (owner/name), instead of a catalog model")
    p.add_argument("--file", action="append", dest="files", metavar="FILE", help="file in --repo; repeat for each part")
    p.add_argument("--revision", default="main", help="branch, tag or commit of --repo (default main)")
    p.add_argument("--data-dir", dest="data_dir", default=argparse.SUPPRESS, help="where models are kept")
    p.add_argument("--no-check", action="store_true",
                   help="download even if the model's header says it will not fit this computer")
    p.set_defaults(func=run)


def run(args) -> int:
    repo, files, revision, model = _what_to_fetch(args)
    dest = paths.models_dir(paths.data_dir(getattr(args, "data_dir", None)))
    bar = _ProgressBar(sys.stderr)
    cancel = threading.Event()
    finished = threading.Event()
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            # The first file's header is planned for this machine before the transfer: a model that
            # will not fit is refused with a sentence, and where the catalog was wrong it is said.
            outcome["paths"] = download_model(repo, files, dest, revision=revision, progress=bar.update, cancel=cancel,
                                              hardware=None if args.no_check else probe(), catalog_model=model,
                                              on_plan=_say_plan)
        except BaseException as exc:  # handed to the main thread, which reports it
            outcome["error"] = exc
        finally:
            finished.set()

    # The download runs in a thread so that Ctrl-C in the main thread becomes a clean cancel.
    # (Waiting on an Event, not Thread.join: an interrupted join can report a live thread as done.)
    threading.Thread(target=work, name="download", daemon=True).start()
    while not finished.is_set():
        try:
            finished.wait(0.2)
        except KeyboardInterrupt:
            cancel.set()
    bar.finish()
    error = outcome.get("error")
    if isinstance(error, DownloadCancelled):
        print(f"ponder: {error} Run the same command again to resume.", file=sys.stderr)
        return 130
    if error is not None:
        raise error
    for path in outcome["paths"]:
        print(path)
    return 0


def _say_plan(planned) -> None:
    for difference in planned.differences:
        print(f"ponder: the catalog is wrong about {planned.label}: {difference}; the file's header is used.",
              file=sys.stderr)
    print(f"{planned.label}: {describe_plan(planned.plan)} (planned from its header)", file=sys.stderr)


def _what_to_fetch(args) -> tuple[str, list[str], str, object]:
    if args.repo or args.files:
        if not (args.repo and args.files) or args.model:
            raise DownloadError("Give either MODEL_ID[:QUANT], or --repo REPO together with --file FILE.")
        return args.repo, args.files, args.revision, None
    if not args.model:
        raise DownloadError("Say what to download: MODEL_ID[:QUANT] from the catalog, or --repo REPO --file FILE.")
    return _from_catalog(args.model)


def _from_catalog(spec: str) -> tuple[str, list[str], str, object]:
    model, quant = load_catalog().resolve(spec, DEFAULT_QUANT)
    print(
        f"{model.short_name} {quant.name}, about {format_bytes(quant.size_bytes)}, from {model.repo}",
        file=sys.stderr,
    )
    return model.repo, [f.path for f in quant.files], "main", model


class _ProgressBar:
    """One line redrawn in place on a terminal; a line per 10% when stderr is a log file."""

    WIDTH = 20

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.drawn = False
        self.last_step = -1
        self.last_draw = 0.0

    def update(self, p: Progress) -> None:
        fraction = p.downloaded / p.total if p.total else 1.0
        line = self._line(p, fraction)
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw < 0.1 and p.downloaded < p.total:
                return
            self.last_draw = now
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + line.ljust(width)[:width])
            self.drawn = True
        elif int(fraction * 10) != self.last_step:
            self.last_step = int(fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

    def _line(self, p: Progress, fraction: float) -> str:
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        if p.stage == "checking":
            tail = "checking the kept part"
        else:
            eta = _clock(p.eta_s) if p.eta_s is not None else "--:--"
            tail = f"{format_bytes(p.speed_bps)}/s  ETA {eta}"
        done = f"{format_bytes(p.downloaded)} / {format_bytes(p.total)}"
        name = p.filename if len(p.filename) <= 32 else "…" + p.filename[-31:]  # keep the quant
        return f"{name} [{bar}] {fraction:4.0%} {done}  {tail}"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"
