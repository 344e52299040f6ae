"""The cividis colour map as a small lookup table, for HTML views that should not need matplotlib."""

from __future__ import annotations

import math

__all__ = ["cividis_hex", "text_color"]

# cividis sampled at 0, 0.1, ..., 1 (matplotlib's values, rounded)
_ANCHORS = [
    (0, 34, 78),
    (18, 53, 112),
    (59, 73, 108),
    (87, 92, 109),
    (112, 113, 115),
    (138, 135, 120),
    (165, 157, 117),
    (193, 180, 109),
    (222, 204, 94),
    (246, 229, 68),
    (253, 234, 69),
]


def cividis_hex(value: float) -> str:
    """``#rrggbb`` for ``value`` in [0, 1] (clipped; NaN is grey)."""
    if value is None or math.isnan(value):
        return "#bbbbbb"
    x = min(1.0, max(0.0, float(value))) * (len(_ANCHORS) - 1)
    i = min(int(x), len(_ANCHORS) - 2)
    f = x - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_ANCHORS[i], _ANCHORS[i + 1])]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def text_color(value: float) -> str:
    """Black or white, whichever reads better on ``cividis_hex(value)``."""
    return "#000000" if value is not None and not math.isnan(value) and value > 0.55 else "#ffffff"
