"""The house style of the paper figures: the colour map, sizes and rc settings, the Axes a figure draws
into when none is given, the shared legend above the axes, and byte-stable export (``save_figure``).
Kept apart from ``figures.py`` (the figures themselves); matplotlib is imported on first use."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .placement import legend_above

__all__ = [
    "style",
    "ONE_COLUMN",
    "TWO_COLUMN",
    "CMAP",
    "HIGHLIGHT",
    "BLUE",
    "GREY",
    "axes_or_new",
    "panel_axes",
    "pyplot",
    "shared_legend",
    "save_figure",
]

CMAP = "cividis"
ONE_COLUMN = (3.3, 2.6)
TWO_COLUMN = (6.8, 3.0)
HIGHLIGHT = "#e66100"  # orange: stands out on cividis' blue-to-yellow and for colour-blind readers
BLUE, GREY = "#3b528b", "#5d6d7e"
_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "svg.hashsalt": "induction_nb",  # stable element ids in SVG output
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "image.cmap": CMAP,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_METADATA = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
    "svg": {"Creator": None, "Date": None},
}


def pyplot():
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def style():
    """The house style as an rc context: ``with style(): ...``."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        yield


def axes_or_new(ax: Any, size: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    plt = pyplot()
    with style():
        fig, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def panel_axes(axes: Any, n: int, caller: str) -> list:
    """``axes`` (one Axes, a sequence, nested sequences or an array of any shape, e.g. ``plt.subplots``'s
    grid with ``squeeze=False``) flattened in row order; ``InputError`` naming ``caller`` where it holds fewer
    than ``n`` Axes."""
    if hasattr(axes, "flat"):
        flat = list(axes.flat)
    elif isinstance(axes, (list, tuple)):
        flat = [ax for item in axes for ax in panel_axes(item, 0, caller)]
    else:
        flat = [axes]
    if len(flat) < n:
        count = {2: "two", 3: "three", 6: "six"}.get(n, str(n))
        raise InputError(
            f"{caller} draws {count} panels: pass {count} Axes (a sequence or an array of any shape), got {len(flat)}"
        )
    return flat


def shared_legend(*axes: Any, **kwargs: Any) -> Any:
    """One legend for the labelled lines, points and patches of ``axes`` (twin axes, or panels in one row
    whose lines share names: one entry per name) above the first one's frame, within its width (panels in
    a constrained layout: in a row of its own at the top of the figure), in as many columns as fit. There
    it covers no data, no axis label and no tick label on either side (``fig.legend`` in a corner meets
    the right axis' labels); a title is raised above it. ``kwargs`` go to ``Axes.legend``. Call it once
    the axes are otherwise complete. Returns the Legend."""
    if not axes:
        raise InputError("shared_legend needs at least one Axes")
    with style():
        return legend_above(axes, **{"frameon": False, **kwargs})


def save_figure(fig: Any, path: str | Path, formats: Sequence[str] | None = None) -> list[Path]:
    """Write ``fig`` (a Figure or Axes) to ``path``; with ``formats`` (e.g. ``("pdf", "png")``), one file
    per format next to ``path`` with that suffix. No version or date metadata is written.

    The figure is written in the house style (200 dpi, a tight bounding box, fonts kept as text in SVG and
    embedded as TrueType in PDF, stable SVG element ids), so the same figure gives the same bytes on every
    run: files that can be checked into a repository and compared.

    Args:
        fig: the matplotlib ``Figure`` to write, or an ``Axes`` of it (its ``.figure`` is written), e.g. what
            a ``plot_*`` function returns.
        path: the file to write (``str`` or ``Path``); without ``formats``, its suffix (``.pdf``, ``.svg``,
            ``.png``) is the format. With ``formats``, its suffix is replaced by each format's.
        formats: the formats to write, each ``"pdf"``, ``"svg"`` or ``"png"``, e.g. ``("pdf", "png")``;
            ``None`` (default): the one ``path``'s suffix names.

    Returns:
        list[Path]: the files written, one per format, in the order of ``formats``.

    Raises:
        InputError: when a format (or, without ``formats``, the suffix of ``path``) is not ``pdf``, ``svg``
            or ``png``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, plot_score_heatmap, save_figure
        >>> result = detect_induction_heads(HandBuiltInduction(), sequence_length=32)
        >>> ax = plot_score_heatmap(result)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     written = save_figure(ax, Path(folder) / "scores.pdf", formats=("pdf", "png"))
        ...     again = save_figure(ax, Path(folder) / "again.png")
        ...     print([p.name for p in written], written[1].read_bytes() == again[0].read_bytes())
        ['scores.pdf', 'scores.png'] True
    """
    fig = getattr(fig, "figure", fig)
    path = Path(path)
    formats = list(formats) if formats else [path.suffix.lstrip(".").lower()]
    written = []
    for fmt in formats:
        if fmt not in _METADATA:
            raise InputError(f"unsupported figure format {fmt!r}; use pdf, svg or png")
        target = path.with_suffix("." + fmt)
        with style():
            fig.savefig(target, format=fmt, metadata=_METADATA[fmt])
        written.append(target)
    return written
