"""The building blocks of the terminal views: the ``TextPlot`` string, shading scales and the keys printed
from them, head names, lists that wrap between entries, the key-position ruler, line wrapping.

Scales map a value to the character of the last bound it reaches; every key is printed from the same
table, so a shade and its legend cannot disagree. No line a view returns is wider than its ``width``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch

from .._validate import check_int
from ..errors import InputError
from .labels import escape_controls

__all__ = [
    "TextPlot",
    "Charset",
    "MIN_WIDTH",
    "SHADES",
    "signed_scale",
    "SPARK",
    "BAR",
    "TICK",
    "check_view_options",
    "finish",
    "shade",
    "legend",
    "head_name",
    "entries",
    "ruler",
    "token_list",
    "window_range",
    "wrap",
]

Charset = Literal["unicode", "ascii"]
MIN_WIDTH = 40
Scale = tuple[tuple[float, str], ...]


def scale_of(chars: str, bounds: Sequence[float]) -> Scale:
    """(lower bound, character) pairs: a value gets the character of the last bound it reaches. The
    keys are printed from the same table (``legend``), so a shade and its legend cannot disagree."""
    return tuple(zip((-math.inf, *bounds), chars, strict=True))


# Blank below 0.05: a causal softmax spreads a few percent over every earlier key, and shading that
# makes the whole lower triangle look like signal. No '-' among the shades: the score map uses it for
# "no such head", and one symbol must not mean two things.
SHADES = {
    "unicode": scale_of(" ░▒▓█", (0.05, 0.25, 0.5, 0.75)),
    "ascii": scale_of(" .:;=+*#%@", (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9)),
}
_EIGHTHS = (0.05, 0.12, 0.25, 0.38, 0.5, 0.62, 0.75, 0.88)  # eighths rounded to 2 decimals, same blank floor


def signed_scale(vmax: float) -> Scale:
    """Shades of a signed metric (an ablation effect) up to ``|value| = vmax``: ``X x ,`` below zero,
    ``. o O`` above, blank within 5% of ``vmax`` of zero; the same characters in both charsets."""
    bounds = tuple(b * vmax for b in (-0.66, -0.33, -0.05, 0.05, 0.33, 0.66))  # unrounded: a tiny vmax stays ordered
    return scale_of("Xx, .oO", bounds)


SPARK = {"unicode": scale_of(" ▁▂▃▄▅▆▇█", _EIGHTHS), "ascii": scale_of(" _.-=+*#@", _EIGHTHS)}
BAR = {"unicode": ("█", " ", "│"), "ascii": ("#", " ", "|")}
TICK = {"unicode": "╵", "ascii": "^"}


class TextPlot(str):
    """A text figure: prints as itself, and IPython shows it without quotes."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def check_view_options(width: Any, charset: Any) -> None:
    """Raise ``InputError`` unless ``width`` (>= MIN_WIDTH) and ``charset`` are usable."""
    check_int("width", width, MIN_WIDTH)
    if charset not in SHADES:
        raise InputError(f"charset must be 'unicode' or 'ascii', got {charset!r}")


def finish(lines: list[str], width: int) -> TextPlot:
    # labels are escaped where they are laid out; this catches a control in a model name or settings value
    return TextPlot("\n".join(line.rstrip() for line in wrap([escape_controls(x) for x in lines], width)))


def shade(value: float, scale: Scale) -> str:
    if math.isnan(value):
        return "?"
    return scale[bisect.bisect_right([lo for lo, _ in scale], value) - 1][1]


def legend(scale: Scale, nan: bool = False) -> list[str]:
    """One legend entry per character of ``scale`` with its value range (``'?'`` too when it appears)."""
    out = []
    for i, (lo, char) in enumerate(scale):
        hi = scale[i + 1][0] if i + 1 < len(scale) else None
        joint = " to " if lo < 0 else "-"  # "-0.99--0.15" would read as a minus
        span = f"<{hi:g}" if i == 0 else f">={lo:g}" if hi is None else f"{lo:g}{joint}{hi:g}"
        out.append(f"'{char}' {span}")
    return out + (["'?' no value (NaN)"] if nan else [])


def head_name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def entries(lead: str, entries: Sequence[str], width: int) -> list[str]:
    """``lead`` then ``entries`` two spaces apart, wrapped only between entries: ``wrap`` breaks at any
    space and would split ``L16H0 0.93`` from its score. Continuation lines start under the first entry."""
    indent = " " * len(lead) if len(lead) + max(map(len, entries), default=0) <= width else "  "
    lines, line, fresh = [], lead, True
    for entry in entries:
        if not fresh and len(line) + 2 + len(entry) > width:
            lines.append(line)
            line, fresh = indent, True
        line += ("" if fresh else "  ") + entry
        fresh = False
    return lines + [line]


def ruler(start: int, stop: int, factor: int, indent: int, width: int, charset: str) -> list[str]:
    """Tick marks and key numbers under a grid whose column ``c`` holds keys ``start + c * factor`` ...:
    key ``k`` is ticked in column ``(k - start) // factor`` and its number starts there. Ticks fall on
    round keys at least 8 columns apart, so the numbers never run into each other."""
    gap = max(8, len(str(stop - 1)) + 2)
    step = next(s for e in itertools.count() for s in (10**e, 2 * 10**e, 5 * 10**e) if s >= gap * factor)
    room = width - indent
    ticks, numbers, free = [" "] * room, [" "] * room, 0
    keys = range(-(-start // step) * step, stop, step) or [start]  # a narrow window between round keys: its start
    for k in keys:
        c = (k - start) // factor
        ticks[c] = TICK[charset]
        if c >= free and c + len(str(k)) <= room:  # the last number is dropped rather than cut at the edge
            numbers[c : c + len(str(k))] = str(k)
            free = c + len(str(k)) + 1
    return [" " * indent + "".join(ticks), " " * indent + "".join(numbers)]


def token_list(tokens: Any, n: int) -> list | None:
    tokens = tokens.tolist() if isinstance(tokens, torch.Tensor) else tokens
    if tokens is not None and len(tokens) != n:
        raise InputError(f"tokens has {len(tokens)} entries but the pattern covers {n} positions")
    return None if tokens is None else list(tokens)


def window_range(n: int, window: tuple[int, int] | None) -> tuple[int, int]:
    if window is None:
        return 0, n
    try:
        start, stop = (int(x) for x in window)
    except (TypeError, ValueError):
        raise InputError(f"window must be a (start, stop) pair, got {window!r}") from None
    if not 0 <= start < stop <= n or stop - start < 2:
        raise InputError(f"window ({start}, {stop}) must satisfy 0 <= start < stop <= {n} and cover >= 2 positions")
    return start, stop


def wrap(lines: list[str], width: int) -> list[str]:
    """Break over-long lines at spaces (a settings value, a long model name) instead of cutting them;
    a word longer than the line is cut at the width."""
    out = []
    for line in lines:
        while len(line) > width:
            cut = line.rfind(" ", 3, width)  # after a continuation line's indent, or no progress
            cut = cut if cut > 2 else width
            out.append(line[:cut].rstrip())
            line = "  " + line[cut:].lstrip()
        out.append(line)
    return out
