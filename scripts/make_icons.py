"""Draw the web client's icons (a white "B" on a red rounded square) as PNG files, with nothing but the
standard library: ``python scripts/make_icons.py`` writes them to src/bleeper/web/static/icons/.

The outputs are committed; run this again only to change the design. Each shape is a signed distance
function (negative inside), and a pixel's coverage is read from its distance, which anti-aliases the edges
without supersampling. The output is the same byte for byte on every run.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "bleeper" / "web" / "static" / "icons"

RED = (176, 0, 32)  # the urgent banner's colour (--urgent-bg in style.css)
WHITE = (255, 255, 255)

Shape = Callable[[float, float], float]  # (x, y) in 0..1 -> signed distance, in the same units


def box(left: float, top: float, right: float, bottom: float, r_left: float, r_right: float) -> Shape:
    """A rectangle whose left and right corners are rounded with their own radii."""
    cx, cy = (left + right) / 2, (top + bottom) / 2
    hw, hh = (right - left) / 2, (bottom - top) / 2

    def distance(x: float, y: float) -> float:
        r = r_right if x > cx else r_left
        qx, qy = abs(x - cx) - hw + r, abs(y - cy) - hh + r
        outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
        return outside + min(max(qx, qy), 0.0) - r

    return distance


def union(*shapes: Shape) -> Shape:
    return lambda x, y: min(shape(x, y) for shape in shapes)


def ring(left: float, top: float, right: float, bottom: float, thickness: float) -> Shape:
    """A bowl of the B: the outline of a box rounded on its right, cut out from a box inside it."""
    round_right = (bottom - top) / 2
    outer = box(left, top, right, bottom, 0.0, round_right)
    inner = box(left - 1, top + thickness, right - thickness, bottom - thickness, 0.0, round_right - thickness)
    return lambda x, y: max(outer(x, y), -inner(x, y))


def letter_b(scale: float) -> Shape:
    """The glyph, drawn for a 0..1 square and shrunk by *scale* about its centre."""
    stroke = 0.11
    glyph = union(
        box(0.31, 0.21, 0.31 + stroke, 0.79, 0.0, 0.0),  # the stem
        ring(0.31, 0.21, 0.64, 0.52, stroke),  # the upper bowl
        ring(0.31, 0.48, 0.69, 0.79, stroke),  # the lower, wider bowl
    )
    return lambda x, y: glyph(0.5 + (x - 0.5) / scale, 0.5 + (y - 0.5) / scale) * scale


def coverage(distance: float, size: int) -> float:
    """How much of a pixel a shape covers, from the distance of the pixel's centre to its edge."""
    return min(1.0, max(0.0, 0.5 - distance * size))


def render(size: int, maskable: bool) -> bytes:
    """RGBA rows. A maskable icon fills its square (the platform cuts its own shape) and keeps the glyph
    inside the central safe circle; the plain one is a rounded square on transparency."""
    background = box(0.0, 0.0, 1.0, 1.0, 0.0, 0.0) if maskable else box(0.03, 0.03, 0.97, 0.97, 0.2, 0.2)
    glyph = letter_b(0.72 if maskable else 0.9)
    rows = bytearray()
    for row in range(size):
        rows.append(0)  # PNG filter: none
        y = (row + 0.5) / size
        for column in range(size):
            x = (column + 0.5) / size
            back = coverage(background(x, y), size)
            front = coverage(glyph(x, y), size)
            rgb = [round(r * (1 - front) + w * front) for r, w in zip(RED, WHITE, strict=True)]
            rows += bytes([*rgb, round(255 * back)])
    return bytes(rows)


def png(size: int, rgba_rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rgba_rows, 9))
        + chunk(b"IEND", b"")
    )


ICONS = {
    "icon-32.png": (32, False),  # the favicon
    "icon-192.png": (192, False),
    "icon-512.png": (512, False),
    "maskable-512.png": (512, True),
}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (size, maskable) in ICONS.items():
        (OUT / name).write_bytes(png(size, render(size, maskable)))
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
