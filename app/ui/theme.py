"""Light and dark looks: Fusion style, a palette, one stylesheet, and the CSS for messages.

`apply_theme(app, mode)` sets the whole application's look; "system" follows the
desktop's colour scheme (and keeps following it). Widgets that render HTML ask
`colors_for(widget)` which set of colours is current and `document_css(...)` for
their QTextDocument; a palette change reaches them as QEvent.PaletteChange.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication, QWidget

from app.core.render import code_css

MODES = ("system", "light", "dark")
BASE_FONT_PX = 14
ICON_DIR = Path(__file__).resolve().parents[2] / "resources" / "icons"


@dataclass(frozen=True)
class Colors:
    dark: bool
    window: str  # app background (side panels, transcript)
    base: str  # inputs, lists
    text: str
    text_dim: str  # secondary text: stats, thinking
    border: str
    accent: str
    accent_text: str  # text on accent
    user_bubble: str
    thinking_bg: str
    code_bg: str
    code_head: str
    inline_code_bg: str
    link: str
    hover: str
    warn_bg: str  # badges, stopped chip
    warn_text: str
    error_bg: str
    error_text: str
    indicator: str  # outline of radio buttons and check boxes
    pygments_style: str


LIGHT = Colors(
    dark=False,
    window="#ffffff",
    base="#ffffff",
    text="#1f2328",
    text_dim="#656d76",
    border="#d8dee4",
    accent="#2563eb",
    accent_text="#ffffff",
    user_bubble="#eef1f6",
    thinking_bg="#f6f8fa",
    code_bg="#f6f8fa",
    code_head="#eaeef2",
    inline_code_bg="#eff1f3",
    link="#0969da",
    hover="#eaeef2",
    warn_bg="#fff4d6",
    warn_text="#7a4d00",
    error_bg="#ffe4e2",
    error_text="#a40e26",
    indicator="#8c959f",
    pygments_style="default",
)

DARK = Colors(
    dark=True,
    window="#1b1c1f",
    base="#232428",
    text="#e3e5e8",
    text_dim="#9aa0a8",
    border="#383a40",
    accent="#4c8dff",
    accent_text="#ffffff",
    user_bubble="#2c2f35",
    thinking_bg="#222327",
    code_bg="#131417",
    code_head="#2a2c31",
    inline_code_bg="#2c2e33",
    link="#6cb0ff",
    hover="#2e3036",
    warn_bg="#3d3217",
    warn_text="#f2cc60",
    error_bg="#4a1f23",
    error_text="#ff9a94",
    indicator="#9aa0a8",
    pygments_style="github-dark",
)


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def colors_for(widget: QWidget | None = None) -> Colors:
    """The colour set matching `widget`'s palette (or the application's)."""
    palette = widget.palette() if widget is not None else QGuiApplication.palette()
    return DARK if is_dark(palette) else LIGHT


# Code fonts that read well, in order; the platform's fixed font if none is installed.
MONO_PREFERENCES = ("Cascadia Mono", "Consolas", "SF Mono", "Menlo", "JetBrains Mono",
                    "DejaVu Sans Mono", "Noto Sans Mono", "Liberation Mono")


@lru_cache(maxsize=1)
def mono_family() -> str:
    installed = set(QFontDatabase.families())
    for family in MONO_PREFERENCES:
        if family in installed:
            return family
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()


@lru_cache(maxsize=4)
def document_css(c: Colors, base_px: int = BASE_FONT_PX) -> str:
    """Default stylesheet for rendered messages (QTextDocument's CSS subset)."""
    mono = mono_family()
    code_px = base_px - 1
    return f"""
a {{ color: {c.link}; text-decoration: none; }}
p {{ margin-top: 0px; margin-bottom: 10px; }}
h1 {{ font-size: {base_px + 8}px; font-weight: 600; margin-top: 14px; margin-bottom: 8px; }}
h2 {{ font-size: {base_px + 5}px; font-weight: 600; margin-top: 12px; margin-bottom: 8px; }}
h3 {{ font-size: {base_px + 3}px; font-weight: 600; margin-top: 10px; margin-bottom: 6px; }}
h4, h5, h6 {{ font-size: {base_px + 1}px; font-weight: 600; margin-top: 8px; margin-bottom: 6px; }}
ul, ol {{ margin-top: 0px; margin-bottom: 10px; }}
li {{ margin-bottom: 3px; }}
blockquote {{ color: {c.text_dim}; margin-left: 14px; }}
code {{ font-family: '{mono}'; font-size: {code_px}px; background-color: {c.inline_code_bg}; }}
span.math {{ font-family: '{mono}'; font-size: {code_px}px; color: {c.text}; }}
span.boxed {{ font-weight: 600; background-color: {c.warn_bg}; color: {c.warn_text}; }}
table.code {{ background-color: {c.code_bg}; border-width: 0px; }}
td.code-lang {{ background-color: {c.code_head}; color: {c.text_dim}; font-size: {base_px - 2}px;
               padding: 4px 10px 4px 10px; }}
td.code-copy {{ background-color: {c.code_head}; font-size: {base_px - 2}px; padding: 4px 10px 4px 10px; }}
td.code-body {{ padding: 8px 10px 8px 10px; }}
pre.code {{ font-family: '{mono}'; font-size: {code_px}px; white-space: pre-wrap; margin: 0px; color: {c.text}; }}
table.md {{ border-collapse: collapse; border-width: 1px; border-style: solid; border-color: {c.border}; }}
table.md td, table.md th {{ border-width: 1px; border-style: solid; border-color: {c.border}; }}
table.md th {{ background-color: {c.code_head}; font-weight: 600; text-align: left; }}
hr {{ color: {c.border}; }}
{code_css(c.pygments_style)}
"""


def stylesheet(c: Colors) -> str:
    """The application stylesheet: message cards, footers, badges, the main window's controls,
    sidebar, notice bar and status bar. (Pages with their own parts, the welcome page and
    the model manager, add theirs.)"""
    return f"""
QToolTip {{ color: {c.text}; background-color: {c.base}; border: 1px solid {c.border}; padding: 4px; }}

QScrollBar:vertical {{ background: transparent; width: 10px; margin: 0px; }}
QScrollBar:horizontal {{ background: transparent; height: 10px; margin: 0px; }}
QScrollBar::handle {{ background-color: {c.border}; border-radius: 3px; margin: 2px; }}
QScrollBar::handle:hover {{ background-color: {c.text_dim}; }}
QScrollBar::handle:vertical {{ min-height: 28px; }}
QScrollBar::handle:horizontal {{ min-width: 28px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0px; height: 0px; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}

#userBubble {{ background-color: {c.user_bubble}; border-radius: 14px; }}
#userText {{ color: {c.text}; background: transparent; }}

#thinkingPane {{ background-color: {c.thinking_bg}; border: 1px solid {c.border}; border-radius: 10px; }}
#thinkingHeader {{ color: {c.text_dim}; background: transparent; border: none; padding: 2px 4px;
                  text-align: left; font-weight: 600; }}
#thinkingHeader:hover {{ color: {c.text}; }}
#thinkingBody {{ color: {c.text_dim}; background: transparent; border: none;
                border-top: 1px solid {c.border}; }}

#answerView {{ background: transparent; border: none; color: {c.text}; }}

#flagBadge {{ color: {c.warn_text}; background-color: {c.warn_bg}; border-radius: 8px;
             padding: 1px 7px; font-size: {BASE_FONT_PX - 3}px; font-weight: 600; }}
#statusChip {{ border-radius: 8px; padding: 1px 8px; font-size: {BASE_FONT_PX - 2}px; font-weight: 600; }}
#statusChip[state="stopped"] {{ color: {c.warn_text}; background-color: {c.warn_bg}; }}
#statusChip[state="error"] {{ color: {c.error_text}; background-color: {c.error_bg}; }}
#messageError {{ color: {c.error_text}; }}
#messageStats {{ color: {c.text_dim}; font-size: {BASE_FONT_PX - 2}px; }}

QToolButton#messageAction {{ color: {c.text_dim}; background: transparent; border: none;
                            border-radius: 6px; padding: 3px 6px; font-size: {BASE_FONT_PX - 2}px; }}
QToolButton#messageAction:hover {{ color: {c.text}; background-color: {c.hover}; }}

#promptInput {{ background-color: {c.base}; color: {c.text}; border: 1px solid {c.border};
               border-radius: 12px; padding: 8px 10px; }}
#promptInput:focus {{ border-color: {c.accent}; }}
QPushButton#sendButton {{ background-color: {c.accent}; color: {c.accent_text}; border: none;
                         border-radius: 10px; padding: 7px 16px; font-weight: 600; }}
QPushButton#sendButton:disabled {{ background-color: {c.border}; color: {c.text_dim}; }}
QPushButton#stopButton {{ background-color: {c.base}; color: {c.text}; border: 1px solid {c.border};
                         border-radius: 10px; padding: 7px 16px; }}
QPushButton#stopButton:hover {{ background-color: {c.hover}; }}
QPushButton#stopButton:disabled {{ color: {c.text_dim}; border-color: {c.border}; background-color: {c.window}; }}
#editBanner {{ color: {c.warn_text}; background-color: {c.warn_bg}; border-radius: 6px; padding: 4px 8px; }}

#sidebar {{ background-color: {c.thinking_bg}; }}
#conversationList, #searchResults {{ background: transparent; border: none; }}
#conversationList::item {{ padding: 7px 8px; border-radius: 8px; }}
#conversationList::item:selected {{ background-color: {c.hover}; color: {c.text}; }}
#searchResults::item {{ padding: 6px 8px; border-bottom: 1px solid {c.border}; }}
#searchInput {{ background-color: {c.base}; color: {c.text}; border: 1px solid {c.border};
               border-radius: 8px; padding: 5px 8px; }}
#searchInput:focus {{ border-color: {c.accent}; }}
QPushButton#newChatButton {{ background-color: {c.base}; color: {c.text}; border: 1px solid {c.border};
                            border-radius: 8px; padding: 7px 10px; font-weight: 600; }}
QPushButton#newChatButton:hover {{ background-color: {c.hover}; }}
#mainSplitter::handle {{ background-color: {c.border}; }}

#noticeBar {{ background-color: {c.thinking_bg}; border-bottom: 1px solid {c.border}; }}
#noticeBar[kind="error"] {{ background-color: {c.error_bg}; }}
#noticeText {{ color: {c.text}; }}
#noticeBar[kind="error"] #noticeText {{ color: {c.error_text}; }}
QPushButton#noticeAction {{ background-color: {c.base}; color: {c.text}; border: 1px solid {c.border};
                           border-radius: 8px; padding: 4px 12px; }}

QStatusBar {{ color: {c.text_dim}; border-top: 1px solid {c.border}; }}
QStatusBar QLabel {{ color: {c.text_dim}; padding: 0px 8px; }}
QToolButton#serverIndicator {{ color: {c.accent}; font-weight: 600; border: none; padding: 0px 8px; }}
QToolButton#serverIndicator:hover {{ background-color: {c.hover}; border-radius: 6px; }}
QToolButton#serverIndicator::menu-indicator {{ image: none; width: 0px; }}
QStatusBar QLabel#statusModel[remote="true"] {{ color: {c.warn_text}; background-color: {c.warn_bg};
                                              border-radius: 6px; font-weight: 600; }}
"""


def palette(c: Colors) -> QPalette:
    p = QPalette()
    role = QPalette.ColorRole
    dim = QColor(c.text_dim)
    for r, value in (
        (role.Window, c.window), (role.WindowText, c.text), (role.Base, c.base),
        (role.AlternateBase, c.thinking_bg), (role.Text, c.text), (role.Button, c.base),
        (role.ButtonText, c.text), (role.ToolTipBase, c.base), (role.ToolTipText, c.text),
        (role.Highlight, c.accent), (role.HighlightedText, c.accent_text), (role.Link, c.link),
        (role.PlaceholderText, c.text_dim), (role.Mid, c.border), (role.Midlight, c.hover),
        (role.Dark, c.border), (role.Light, c.base),
    ):
        p.setColor(r, QColor(value))
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, dim)
    return p


def indicator_palette(c: Colors) -> QPalette:
    """For radio buttons and check boxes: Fusion draws their circle or box in the Window
    colour made 40% darker, which on a dark window is nearly black (invisible). Their own
    Window colour (they paint no background) makes that outline the theme's indicator colour."""
    p = palette(c)
    p.setColor(QPalette.ColorRole.Window, QColor(c.indicator).lighter(140))
    return p


def _system_is_dark(app: QGuiApplication) -> bool:
    return app.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply_theme(app: QApplication, mode: str = "system") -> Colors:
    """Give the whole application the light or dark look; "system" follows the desktop."""
    if mode not in MODES:
        raise ValueError(f"theme mode must be one of {MODES}, not {mode!r}")
    dark = _system_is_dark(app) if mode == "system" else mode == "dark"
    c = DARK if dark else LIGHT
    app.setStyle("Fusion")
    font = app.font()
    font.setPixelSize(BASE_FONT_PX)
    font.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
    app.setFont(font)
    app.setPalette(palette(c))
    for cls in ("QRadioButton", "QCheckBox"):
        app.setPalette(indicator_palette(c), cls)
    app.setStyleSheet(stylesheet(c))
    hints = app.styleHints()
    # Follow the desktop while in "system" mode; connect once, check the mode on each change.
    app.setProperty("ponderThemeMode", mode)
    if not app.property("ponderThemeFollows"):
        app.setProperty("ponderThemeFollows", True)
        hints.colorSchemeChanged.connect(lambda _scheme: _follow_system(app))
    return c


def _follow_system(app: QApplication) -> None:
    if app.property("ponderThemeMode") == "system":
        apply_theme(app, "system")


@lru_cache(maxsize=64)
def _icon(name: str, color: str, size: int) -> QIcon:
    svg = (ICON_DIR / f"{name}.svg").read_text(encoding="utf-8").replace("currentColor", color)
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    result = QIcon()
    for scale in (1, 2):  # crisp on high-DPI screens too
        pixmap = QPixmap(size * scale, size * scale)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter)
        painter.end()
        pixmap.setDevicePixelRatio(scale)
        result.addPixmap(pixmap)
    return result


def icon(name: str, color: str, size: int = 16) -> QIcon:
    """Icon `resources/icons/<name>.svg` drawn in `color` (the SVGs use currentColor)."""
    return _icon(name, color, size)

