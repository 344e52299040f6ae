"""The state the canvas views draw from (``draw/_static/grid.js``, ``draw/_static/heatmap.js``): plain numbers and
strings, no widget library, so the static HTML export (which runs the same ES modules against a fixed
state) works on a core install; ``explorer.canvas.py`` holds the widgets that sync it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..metrics import REGISTRY, block_max, label
from .colors import cividis_hex
from .labels import shorten

__all__ = ["grid_state", "grid_colours", "grid_selection", "heatmap_state", "metric_options", "es_module", "STATIC"]

STATIC = Path(__file__).resolve().parent / "_static"
# PuOr-like diverging stops for signed metrics (causal effects): purple below 0, orange above
_DIVERGING = ["#2d004b", "#5e3c99", "#b2abd2", "#f7f7f7", "#fdb863", "#e66101", "#7f3b08"]
_OUTLINE = {"sequential": "#e66100", "diverging": "#00a08a"}  # detected heads: never a colour of the scale


def es_module(name: str) -> str:
    """The ES module ``draw/_static/{name}`` with the helpers it shares with the other canvas view prepended."""
    return (STATIC / "canvas_common.js").read_text() + "\n" + (STATIC / name).read_text()


def metric_options(result: Any) -> list[str]:
    """The metrics ``result`` has a number for (a text scan has no contrast, a retrieval scan only its
    score, causal effects only once added), in the registry's order: the grid is coloured by one of these."""

    def known(m: str) -> bool:
        return any(not math.isnan(s.values.get(m, math.nan)) for s in result.head_scores)

    return [m for m in result.metrics if known(m)]


def grid_colours(result: Any, metric: str = "overall_score") -> dict[str, Any]:
    """The part of the grid's state that depends on ``metric`` only: values row-major (``None`` where the
    model has no such head: ``score_matrix`` gives NaN there) and the colour scale (a signed metric gets
    a diverging one centred on 0). Computed once per metric, not per click."""
    values = [
        None if v is None or math.isnan(v) else round(float(v), 5) for row in result.score_matrix(metric) for v in row
    ]
    vmin, vmax, stops, outline = 0.0, 1.0, [cividis_hex(i / 10) for i in range(11)], _OUTLINE["sequential"]
    if REGISTRY[metric].signed:
        vmax = max([1e-6] + [abs(v) for v in values if v is not None])
        vmin, stops, outline = -vmax, _DIVERGING, _OUTLINE["diverging"]
    return {
        "n_layers": result.n_layers,
        "n_heads": result.n_heads,
        "values": values,
        "row_labels": [f"L{layer}" for layer in range(result.n_layers)],
        "detected": sorted(l * result.n_heads + h for l, h in result.induction_heads),
        "metric": label(metric),
        "vmin": vmin,
        "vmax": vmax,
        "stops": stops,
        "outline": outline,
    }


def grid_selection(result: Any, selected: tuple[int, int], available: set[tuple[int, int]]) -> dict[str, Any]:
    """The part of the grid's state a click changes: the selected head, the heads with patterns at hand."""
    return {"selected": list(selected), "available": sorted(l * result.n_heads + h for l, h in available)}


def grid_state(
    result: Any,
    metric: str = "overall_score",
    selected: tuple[int, int] = (0, 0),
    available: set[tuple[int, int]] = frozenset(),
) -> dict[str, Any]:
    """The grid's whole synced state for ``result`` coloured by ``metric``."""
    return {**grid_colours(result, metric), **grid_selection(result, selected, available)}


def heatmap_state(
    attention: torch.Tensor,
    labels: list[str] | None,
    period: int | None,
    window: tuple[int, int],
    title: str,
    max_cells: int = 512,
    offset: int = 0,
) -> dict[str, Any]:
    """The view's state for ``attention [seq, seq]`` inside ``window``: cells as ``uint8`` (weight x 255),
    a window longer than ``max_cells`` pooled by block max (a one-position stripe stays visible). The
    stripe is outlined from the repeat's first query, ``offset + period`` (``offset``: tokens before the
    pattern, 1 with BOS)."""

    start, stop = window
    factor = max(1, math.ceil((stop - start) / max_cells))
    shown = block_max(attention[start:stop, start:stop].float(), factor)
    cells = (shown.clamp(0, 1) * 255).round().to(torch.uint8)
    names = []
    if labels is not None and factor == 1 and stop - start <= 64:
        names = [shorten(x, 8) for x in labels[start:stop]]
    return {
        "n": int(cells.shape[0]),
        "start": start,
        "factor": factor,
        "data": cells.numpy().tobytes(),
        "labels": names,
        "period": int(period or 0),
        "stripe_from": offset + int(period or 0),
        "title": title,
        "stops": [cividis_hex(i / 10) for i in range(11)],
    }
