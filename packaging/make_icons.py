#!/usr/bin/env python3
"""Render the application icon resources/ponder.svg into every file the installers need.

    .venv/bin/python packaging/make_icons.py

Writes (and the repository keeps) resources/ponder.png (256 px, the window icon),
resources/hicolor/<N>x<N>/apps/ponder.png (the freedesktop icon theme layout the .deb copies),
resources/ponder.ico (Windows: exe, installer, Start menu) and resources/ponder.icns (macOS).
Rendering uses Qt's SVG renderer (PySide6), so no other image library is needed. ICO and ICNS
are written here: Qt's writers put a single image in each file, and these formats hold one
image per size so every size stays sharp.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
SVG = RESOURCES / "ponder.svg"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 256)
# ICNS entry types and the pixel size each holds (the @2x types are the Retina ones).
ICNS_TYPES = (
    (b"icp4", 16), (b"icp5", 32), (b"ic11", 32), (b"icp6", 64), (b"ic12", 64), (b"ic07", 128),
    (b"ic13", 256), (b"ic08", 256), (b"ic14", 512), (b"ic09", 512), (b"ic10", 1024),
)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise RuntimeError("Qt could not encode a PNG")
    buffer.close()
    return bytes(data)


def dib_bytes(image: QImage) -> bytes:
    """An uncompressed 32-bit ICO entry: BITMAPINFOHEADER, BGRA rows bottom-up, then the AND mask."""
    size = image.width()
    header = struct.pack("<IiiHHIIiiII", 40, size, size * 2, 1, 32, 0, 0, 0, 0, 0, 0)
    argb = image.convertToFormat(QImage.Format.Format_ARGB32)  # little-endian memory order is B, G, R, A
    rows = [bytes(argb.constScanLine(y))[: size * 4] for y in range(size)]
    mask_row = bytes(((size + 31) // 32) * 4)  # all zero: the alpha channel decides transparency
    return header + b"".join(reversed(rows)) + mask_row * size


def ico_bytes(images: dict[int, QImage]) -> bytes:
    """A multi-size ICO: small sizes as bitmaps (read by every Windows tool), 256 px as PNG."""
    entries = [(size, png_bytes(images[size]) if size >= 256 else dib_bytes(images[size])) for size in ICO_SIZES]
    offset = 6 + 16 * len(entries)
    directory, blobs = b"", b""
    for size, blob in entries:
        dim = 0 if size >= 256 else size  # 0 means 256 in an ICO directory
        directory += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset + len(blobs))
        blobs += blob
    return struct.pack("<HHH", 0, 1, len(entries)) + directory + blobs


def icns_bytes(images: dict[int, QImage]) -> bytes:
    body = b"".join(
        kind + struct.pack(">I", 8 + len(png)) + png
        for kind, size in ICNS_TYPES
        for png in [png_bytes(images[size])]
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841  (Qt needs one)
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"{SVG}: Qt cannot read this SVG")
    sizes = sorted({*HICOLOR_SIZES, *ICO_SIZES, *(size for _, size in ICNS_TYPES)})
    images = {size: render(renderer, size) for size in sizes}

    written = []
    for size in HICOLOR_SIZES:
        path = RESOURCES / "hicolor" / f"{size}x{size}" / "apps" / "ponder.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(images[size]))
        written.append(path)
    outputs = {
        RESOURCES / "ponder.png": png_bytes(images[256]),
        RESOURCES / "ponder.ico": ico_bytes(images),
        RESOURCES / "ponder.icns": icns_bytes(images),
    }
    for path, data in outputs.items():
        path.write_bytes(data)
        written.append(path)
    for path in written:
        print(f"{path.relative_to(RESOURCES.parent)}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
