"""Maths in the message view, with real documents: a scripted model's answer holds inline,
display and boxed maths; what reaches the QTextDocument is checked (issue 12)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage, QTextDocument
from PySide6.QtWidgets import QApplication

from app.commands.export import message_to_markdown
from app.core.formula import render_formula
from app.core.maths import find_maths, resource_name
from app.core.settings import Settings, load_settings, save_settings
from app.ui import theme
from app.ui.formula_images import IMAGE_RESOURCE, FormulaStyle, rasterise, typeset
from app.ui.message_view import AssistantMessageView
from app.ui.settings_dialog import SettingsDialog
from tests.fixtures.scripted_gguf import Script, split_script
from tests.ui.test_message_view import StoredMessage, settle, streaming_view, transcript  # noqa: F401 (a fixture)
from tests.ui.test_window import last_assistant_view, send

TYPESET_TIMEOUT_MS = 20_000

THINKING = "We need $y = x^x$. Take logs: \\(\\ln y = x \\ln x\\). Then differentiate."
ANSWER = (
    "Taking logarithms, $\\frac{y'}{y} = \\ln x + 1$, so\n"
    "\\[\n\\frac{dy}{dx} = x^x(\\ln x + 1)\n\\]\n"
    "and also $$\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$$\n\n"
    "It costs $5 and $10; `echo $HOME` stays code.\n\n"
    "**Final answer:** \\boxed{x^x(\\ln x + 1)}"
)
FORMULAS = [f.source for f in find_maths(ANSWER)]


def formula_images(doc: QTextDocument) -> list[tuple[str, int]]:
    """(name, block alignment) of each formula image in the document, in order."""
    found = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isImageFormat() and fmt.toImageFormat().name().startswith("formula:"):
                found.append((fmt.toImageFormat().name(), int(block.blockFormat().alignment().value)))
            it += 1
        block = block.next()
    return found


def wait_typeset(qtbot, browser) -> None:
    images = browser.formula_images
    qtbot.waitUntil(lambda: images.pending_count == 0 and all(
        images.is_typeset(name) for name, _ in formula_images(browser.document())), timeout=TYPESET_TIMEOUT_MS)


def ink(image: QImage) -> list[QColor]:
    return [image.pixelColor(x, y) for y in range(image.height()) for x in range(image.width())
            if image.pixelColor(x, y).alpha() > 230]


def close_to(color: QColor, hex_color: str, tolerance: int = 40) -> bool:
    want = QColor(hex_color)
    return all(abs(a - b) <= tolerance for a, b in
               ((color.red(), want.red()), (color.green(), want.green()), (color.blue(), want.blue())))


# --- the window, with a scripted model ---------------------------------------------------


@pytest.fixture
def maths_window(qtbot, data_dir, open_app, scripted_model):
    script = Script("maths_answer", tuple(split_script(THINKING + "\n</think>\n\n" + ANSWER)))
    window = open_app(data_dir, scripted_model(script))
    message = send(qtbot, window, "Differentiate x^x.")
    return window, message


def test_a_scripted_answer_shows_its_formulas_typeset_in_the_document(qtbot, maths_window):
    window, message = maths_window
    assert message.content == ANSWER
    browser = last_assistant_view(window).answer_view
    wait_typeset(qtbot, browser)
    doc = browser.document()
    shown = formula_images(doc)
    assert [name for name, _ in shown] == [resource_name(f) for f in find_maths(ANSWER)]
    assert len(shown) == 4  # inline, two display, boxed
    centred = int(Qt.AlignmentFlag.AlignHCenter.value)
    assert [bool(align & centred) for _, align in shown] == [False, True, True, False]
    text = doc.toPlainText()
    assert "\\frac" not in text and "\\boxed" not in text and "\\sum" not in text
    assert "It costs $5 and $10;" in text and "echo $HOME" in text  # dollars and code stay text
    for name, _ in shown:
        image = doc.resource(IMAGE_RESOURCE, QUrl(name))
        assert isinstance(image, QImage) and image.width() > 8
        assert image.devicePixelRatio() == browser.devicePixelRatioF()
        drawn = ink(image)
        assert len(drawn) > 10 and all(close_to(c, theme.LIGHT.text) for c in drawn)  # the theme's text colour


def test_copying_an_answer_with_formulas_gives_its_latex(qtbot, maths_window):
    window, message = maths_window
    view = last_assistant_view(window)
    wait_typeset(qtbot, view.answer_view)
    clipboard = QGuiApplication.clipboard()
    qtbot.mouseClick(view.copy_answer_button, Qt.MouseButton.LeftButton)  # the Copy action
    assert clipboard.text() == ANSWER
    view.answer_view.setFocus()
    view.answer_view.selectAll()
    clipboard.clear()
    qtbot.keyClick(view.answer_view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)  # selection + Ctrl+C
    copied = clipboard.text()
    assert "$\\frac{y'}{y} = \\ln x + 1$" in copied
    assert "\\[\\frac{dy}{dx} = x^x(\\ln x + 1)\\]" in copied
    assert "$$\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$$" in copied
    assert "\\boxed{x^x(\\ln x + 1)}" in copied and "\ufffc" not in copied
    data = clipboard.mimeData()
    assert not data.hasImage() and "<img" not in data.html() and "formula:" not in data.html()
    assert ANSWER in message_to_markdown(message)  # the export keeps the source too


def test_the_finished_thought_has_its_maths_typeset(qtbot, maths_window):
    window, message = maths_window
    pane = last_assistant_view(window).thinking_pane
    typeset = pane.typeset
    wait_typeset(qtbot, typeset)
    assert [name for name, _ in formula_images(typeset.document())] == [resource_name(f) for f in find_maths(THINKING)]
    assert "\\ln" not in typeset.toPlainText() and typeset.toPlainText().startswith("We need ")
    assert pane.body.toPlainText() == THINKING  # the streamed plain text, now in its place
    pane.set_expanded(True)
    assert typeset.isVisible() and not pane.body.isVisible()
    pane.set_expanded(False)
    assert not typeset.isVisible() and not pane.expanded
    typeset.selectAll()
    assert typeset.createMimeDataFromSelection().text() == THINKING


# --- the view on its own ------------------------------------------------------------------


def test_a_formula_is_typeset_once_its_closing_delimiter_arrives(qtbot, transcript):  # noqa: F811 (the transcript fixture)
    view = streaming_view(transcript)
    view.append_answer("We get $\\frac{a}{b")
    settle(qtbot, view)
    browser = view.answer_view
    assert "$\\frac{a}{b" in browser.toPlainText() and not formula_images(browser.document())
    view.append_answer("}$ and")  # closed, but `$x$5` would not be maths: one more character decides
    settle(qtbot, view)
    qtbot.waitUntil(lambda: len(formula_images(browser.document())) == 1, timeout=TYPESET_TIMEOUT_MS)
    assert browser.toPlainText() == "We get \ufffc and"  # the rest of the tail is still plain text
    view.append_answer(" \\(x^2")
    settle(qtbot, view)
    qtbot.wait(50)
    assert browser.toPlainText().endswith("\\(x^2") and len(formula_images(browser.document())) == 1
    view.finish("", "We get $\\frac{a}{b}$ and \\(x^2\\)")
    wait_typeset(qtbot, browser)
    assert len(formula_images(browser.document())) == 2


def test_the_thinking_pane_stays_plain_text_while_it_streams(qtbot, transcript):  # noqa: F811 (the transcript fixture)
    view = streaming_view(transcript)
    view.append_thinking("Consider $x^2 + 1$ and more")
    settle(qtbot, view)
    qtbot.wait(50)
    assert view.thinking_body.toPlainText() == "Consider $x^2 + 1$ and more"
    assert not formula_images(view.thinking_body.document())


def test_with_the_setting_off_a_finished_thought_stays_plain_text(qtbot, transcript):  # noqa: F811 (the transcript fixture)
    view = transcript(AssistantMessageView.from_message(
        StoredMessage("Answer $a$.", thinking="Think $x^2$."), typeset_thinking_maths=False))
    assert view.thinking_body.toPlainText() == "Think $x^2$."
    assert view.thinking_pane.typeset is None and not formula_images(view.thinking_body.document())


def test_a_formula_that_does_not_parse_shows_its_source_in_monospace(qtbot, transcript):  # noqa: F811 (the transcript fixture)
    answer = "Before $\\notacommand{x}$ middle $x^2$ after.\n\n\\[\n\\frac{1}{\n\\]\n\nEnd."
    view = transcript(AssistantMessageView.from_message(StoredMessage(answer)))
    browser = view.answer_view
    wait_typeset(qtbot, browser)
    text = browser.toPlainText()
    assert "Before $\\notacommand{x}$ middle \ufffc after." in text and text.endswith("End.")
    assert len(formula_images(browser.document())) == 1  # only $x^2$ is an image
    found = browser.document().find("\\notacommand")
    assert found.charFormat().fontFamilies() == [theme.mono_family()]
    browser.selectAll()
    assert "$\\notacommand{x}$ middle $x^2$ after." in browser.createMimeDataFromSelection().text()


def test_dollar_amounts_and_shell_variables_stay_text(qtbot, transcript):  # noqa: F811 (the transcript fixture)
    answer = "It costs $5 and $10. Run `echo $HOME` or $HOME/$USER.\n\n```sh\nexport A=$B$C\n```"
    view = transcript(AssistantMessageView.from_message(StoredMessage(answer)))
    assert not formula_images(view.answer_view.document())
    assert "It costs $5 and $10. Run echo $HOME or $HOME/$USER." in view.answer_view.toPlainText()


def test_a_theme_change_typesets_the_formulas_in_the_new_colours(qtbot, transcript):  # noqa: F811 (the transcript fixture)
    view = transcript(AssistantMessageView.from_message(StoredMessage("So $\\sqrt{2}$ is irrational.")))
    wait_typeset(qtbot, view.answer_view)
    view.answer.set_colors(theme.DARK)
    wait_typeset(qtbot, view.answer_view)
    (name, _), = formula_images(view.answer_view.document())
    drawn = ink(view.answer_view.document().resource(IMAGE_RESOURCE, QUrl(name)))
    assert drawn and all(close_to(c, theme.DARK.text) for c in drawn)


# --- the images themselves ----------------------------------------------------------------


def style(dpr: float = 1.0) -> FormulaStyle:
    font = QApplication.font()
    font.setPixelSize(14)
    return FormulaStyle.for_text(font, "#000000", "#888888", dpr, theme.mono_family())


def test_images_are_rendered_at_the_device_pixel_ratio(qtbot):
    one, two = typeset(resource_name(find_maths("$\\int_0^1 x\\,dx$")[0]), style(1.0)), \
        typeset(resource_name(find_maths("$\\int_0^1 x\\,dx$")[0]), style(2.0))
    assert two.devicePixelRatio() == 2.0 and one.devicePixelRatio() == 1.0
    assert abs(two.width() - 2 * one.width()) <= 2 and abs(two.height() - 2 * one.height()) <= 2
    assert len(ink(two)) > 3 * len(ink(one))  # four times the pixels: sharp, not scaled up


@pytest.mark.parametrize("source", ["x", "a+b", "\\frac{a}{b}", "y_{i}^{2}", "\\sum_{k=1}^n k"])
def test_the_formula_baseline_lands_on_the_text_baseline(qtbot, source):
    """Laid out by QTextDocument after text, the formula's baseline is the line's: its ink
    ends `depth` below the text's baseline."""
    s = style(1.0)
    formula = render_formula(source, False, s.size_px, "#000000")
    image = rasterise(formula, s)
    doc = QTextDocument()
    font = QApplication.font()
    font.setPixelSize(14)
    doc.setDefaultFont(font)
    doc.addResource(IMAGE_RESOURCE, QUrl("formula:i/eA"), image)
    doc.setHtml('<p>x<img src="formula:i/eA" style="vertical-align: middle" /></p>')
    doc.setTextWidth(500)
    assert doc.documentLayout().documentSize().height() > 0  # (lays it out)
    block = doc.firstBlock()
    line = block.layout().lineAt(0)
    assert line.isValid()
    baseline = line.y() + line.ascent()
    height = image.height() / image.devicePixelRatio()
    top = baseline - (height + s.half_x) / 2  # where Qt puts a middle-aligned object's top
    ink_bottom = max(y for y in range(image.height()) for x in range(image.width()) if image.pixelColor(x, y).alpha() > 60)
    assert abs(top + ink_bottom + 1 - (baseline + formula.depth)) <= 1.5


def test_the_thinking_maths_setting_is_saved_and_in_the_dialog(qtbot, tmp_path):
    assert Settings().thinking_maths is True
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    assert dialog.thinking_maths.isChecked()
    dialog.thinking_maths.setChecked(False)
    save_settings(tmp_path, dialog.result_settings())
    assert load_settings(tmp_path).thinking_maths is False

