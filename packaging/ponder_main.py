"""Entry point of the frozen app (PyInstaller runs this file as __main__).

`--check-maths` (packaging/smoke_test.py, tests/packaging): typeset a formula with the bundled
ziamath and its fonts, draw it with the bundled QtSvg (offscreen), print a JSON line saying what
came out, and exit 0 only if it drew. It proves the frozen bundle carries the maths renderer's
data (docs/maths.md), which PyInstaller does not find by itself.
"""

import sys

CHECK_MATHS = "--check-maths"
CHECK_FORMULA = "\\int_0^1 \\frac{x^2}{2}\\,dx = \\frac{1}{6} \\quad \\text{area}"


def check_maths() -> int:
    import json
    import os

    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtGui import QFont, QGuiApplication

    _app = QGuiApplication([sys.argv[0]])  # (QtGui needs an application to paint)
    from app.core.formula import FormulaImage, render_formula
    from app.ui.formula_images import FormulaStyle, rasterise

    result = render_formula(CHECK_FORMULA, True, 16.0, "#000000")
    if not isinstance(result, FormulaImage):
        print(json.dumps({"typeset": False, "error": result.message}))
        return 1
    image = rasterise(result, FormulaStyle.for_text(QFont(), "#000000", "#808080", 1.0, "monospace"))
    inked = sum(image.pixelColor(x, y).alpha() > 128 for y in range(image.height()) for x in range(image.width()))
    print(json.dumps({"typeset": True, "width": image.width(), "height": image.height(), "inked_pixels": inked}))
    return 0 if inked > 100 else 1


if __name__ == "__main__":
    if CHECK_MATHS in sys.argv[1:]:
        sys.exit(check_maths())
    from app.__main__ import main

    sys.exit(main())
