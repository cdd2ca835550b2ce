"""Formulas typeset by app/core/formula.py are SVG that QtSvg draws: valid, sized, coloured, sharp."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QByteArray, QRectF
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from app.core.formula import FormulaImage, render_formula
from tests.core.test_maths import TYPESET


def rasterise(image: FormulaImage, ratio: float = 1.0) -> QImage:
    renderer = QSvgRenderer(QByteArray(image.svg))
    assert renderer.isValid()
    out = QImage(round(image.width * ratio) + 1, round(image.height * ratio) + 1, QImage.Format.Format_ARGB32)
    out.fill(0)
    painter = QPainter(out)
    renderer.render(painter, QRectF(0, 0, image.width * ratio, image.height * ratio))
    painter.end()
    return out


def inked(img: QImage) -> list[QColor]:
    return [img.pixelColor(x, y) for y in range(img.height()) for x in range(img.width()) if img.pixelColor(x, y).alpha() > 200]


@pytest.mark.parametrize("source, display", TYPESET)
def test_qtsvg_draws_each_formula(source, display):
    image = render_formula(source, display, 16.0, "#cc2200")
    assert isinstance(image, FormulaImage)
    renderer = QSvgRenderer(QByteArray(image.svg))
    assert renderer.isValid()
    size = renderer.defaultSize()
    assert abs(size.width() - image.width) <= 1 and abs(size.height() - image.height) <= 1
    ink = inked(rasterise(image))
    assert len(ink) > 10  # something was drawn
    assert all(c.red() > 150 and c.green() < 80 and c.blue() < 60 for c in ink)  # in the colour asked for


def test_hidpi_renders_at_the_device_pixel_ratio():
    image = render_formula("\\sum_{k=1}^n k", True, 16.0, "#000000")
    assert len(inked(rasterise(image, 2.0))) > 3 * len(inked(rasterise(image, 1.0)))


def widest_row(img: QImage) -> int:
    return max(sum(img.pixelColor(x, y).alpha() > 100 for x in range(img.width())) for y in range(img.height()))


def test_the_box_of_boxed_is_drawn():
    boxed = rasterise(render_formula("\\boxed{1}", False, 20.0, "#000000"))
    plain = rasterise(render_formula("1", False, 20.0, "#000000"))
    assert widest_row(boxed) >= 10 and widest_row(plain) < 10  # the box's top and bottom edges are lines
