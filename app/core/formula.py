"""One LaTeX formula → SVG, for the message view to draw (Qt-free; see docs/maths.md).

`render_formula(source, display, size_px, color)` typesets with ziamath (pure Python:
LaTeX → MathML → SVG, with its own maths font; no TeX install, no browser) and returns a
`FormulaImage`: SVG bytes that QtSvg's QSvgRenderer draws (`ziamath.config.svg2 = False`:
SVG 1.1, no bare `href`), with the metrics to sit it on the text baseline. A formula that
does not parse, or uses a command ziamath does not know, gives a `FormulaError`: the caller
shows the source in monospace. It never raises.

It costs milliseconds (docs/maths.md has the numbers): call it off the GUI thread. Results
(errors included) are cached by (source, display, size, colour) in a bounded LRU, so a
formula seen before, or repainted, costs a dictionary lookup; `cached_formula` is that
lookup alone, for the GUI thread. Thread-safe: ziamath is used by one thread at a time.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as etree
from collections import OrderedDict
from dataclasses import dataclass

CACHE_SIZE = 1024  # formulas; an SVG is a few kB, so at most a few MB
MAX_SOURCE = 4000  # characters: longer "formulas" are shown as source (a runaway $$ in a stream)

_COLOR_RE = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_VIEWBOX_RE = re.compile(r"\S+")


@dataclass(frozen=True)
class FormulaImage:
    """A typeset formula. Units are pixels at `size_px` (device-independent: scale by the
    device pixel ratio when rasterising). The SVG's y = 0 line is the maths baseline."""

    svg: bytes
    width: float
    height: float
    depth: float  # how far the image reaches below the baseline: place its top `height - depth` above it
    source: str
    display: bool

    @property
    def ascent(self) -> float:
        return self.height - self.depth


@dataclass(frozen=True)
class FormulaError:
    """The formula could not be typeset: show `source` as text (monospace)."""

    source: str
    message: str


_cache: OrderedDict[tuple[str, bool, float, str], FormulaImage | FormulaError] = OrderedDict()
_cache_lock = threading.Lock()
_render_lock = threading.Lock()  # ziamath keeps module state (fonts, numbering): one user at a time


def _key(source: str, display: bool, size_px: float, color: str) -> tuple[str, bool, float, str]:
    return (source, bool(display), round(float(size_px), 2), color.lower())


def cached_formula(source: str, display: bool, size_px: float, color: str) -> FormulaImage | FormulaError | None:
    """The cached result for these arguments, or None if it was not rendered yet (never blocks
    on a render in progress; for the GUI thread)."""
    try:
        key = _key(source, display, size_px, color)
    except (TypeError, ValueError, AttributeError):
        return None
    with _cache_lock:
        result = _cache.get(key)
        if result is not None:
            _cache.move_to_end(key)
        return result


def render_formula(source: str, display: bool = False, size_px: float = 16.0, color: str = "#000000") -> FormulaImage | FormulaError:
    """Typeset LaTeX `source` (no delimiters; `\\boxed{…}` draws a box) at font size `size_px`
    in `color` (`#rgb` or `#rrggbb`). Cached; never raises (see the module docstring)."""
    try:
        key = _key(source, display, size_px, color)
    except (TypeError, ValueError, AttributeError) as exc:
        return FormulaError(str(source), f"bad arguments: {exc}")
    cached = cached_formula(source, display, size_px, color)
    if cached is not None:
        return cached
    result = _render(*key)
    with _cache_lock:
        result = _cache.setdefault(key, result)  # another thread may have got there first: keep one
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _render(source: str, display: bool, size_px: float, color: str) -> FormulaImage | FormulaError:
    if not isinstance(source, str) or not source.strip():
        return FormulaError(str(source), "empty formula")
    if len(source) > MAX_SOURCE:
        return FormulaError(source, f"longer than {MAX_SOURCE} characters")
    if not _COLOR_RE.fullmatch(color):
        return FormulaError(source, f"not a colour: {color!r}")
    if not 1 <= size_px <= 1000:
        return FormulaError(source, f"not a font size: {size_px!r}")
    try:
        with _render_lock:
            svg = _typeset(source, display, size_px, color)
        x, y, width, height = (float(v) for v in _VIEWBOX_RE.findall(svg.get("viewBox", "")))
        data = etree.tostring(svg, encoding="utf-8", xml_declaration=False)
    except _UnknownCommand as exc:
        return FormulaError(source, f"unknown command {exc}")
    except Exception as exc:  # noqa: BLE001 (latex2mathml and ziamath raise many kinds; none may reach the UI)
        return FormulaError(source, f"{type(exc).__name__}: {exc}".rstrip(": "))
    return FormulaImage(data, width, height, y + height, source, display)


class _UnknownCommand(Exception):
    pass


def _typeset(source: str, display: bool, size_px: float, color: str) -> etree.Element:
    import ziamath  # (imported on first use: about 0.2 s)
    from ziamath.tex import tex2mml

    ziamath.config.svg2 = False  # SVG 1.1 (xlink:href): QtSvg does not read SVG 2's bare href
    mathml = etree.fromstring(tex2mml(source, inline=not display))
    # latex2mathml passes a command it does not know through as text (`\foo` typeset in italics).
    for el in mathml.iter():
        if el.text and len(el.text) > 1 and el.text.startswith("\\") and el.tag != "mtext":
            raise _UnknownCommand(el.text)
    mathml.attrib["mathcolor"] = color
    return ziamath.Math(mathml, size=size_px).svgxml()


def warm_up() -> None:
    """Import ziamath and load its font ahead of the first formula (off the GUI thread)."""
    render_formula("x^2", False, 16.0, "#000000")
