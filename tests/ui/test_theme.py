"""The light and dark looks, offscreen: what a user can see of the controls in each theme."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QCheckBox, QRadioButton, QVBoxLayout, QWidget

from app.ui import theme


@pytest.fixture
def restore_light_theme():
    yield
    theme.apply_theme(QApplication.instance(), "light")


def indicator_contrast(qtbot, button: QWidget) -> int:
    """The largest lightness difference between the window and the button's circle or box."""
    holder = QWidget()
    QVBoxLayout(holder).addWidget(button)
    qtbot.addWidget(holder)
    holder.show()
    qtbot.waitExposed(holder)
    image = button.grab().toImage()
    background = holder.palette().color(holder.backgroundRole()).lightness()
    indicator_width = button.style().pixelMetric(button.style().PixelMetric.PM_ExclusiveIndicatorWidth) + 2
    return max(abs(QColor(image.pixel(x, y)).lightness() - background)
               for x in range(min(indicator_width, image.width())) for y in range(image.height()))


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("kind", [QRadioButton, QCheckBox])
def test_unchecked_radio_buttons_and_check_boxes_are_clearly_outlined(qtbot, restore_light_theme, mode, kind):
    theme.apply_theme(QApplication.instance(), mode)
    assert indicator_contrast(qtbot, kind("R1-Distill-Qwen-7B")) >= 60  # (Fusion's own outline: < 15 on dark)
