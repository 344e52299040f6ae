"""The HeadExplorer's two canvas widgets (anywidgets; their ES modules ``_static/grid.js`` and
``_static/heatmap.js`` ship with the package, so nothing is fetched and nothing is built).

``HeadGrid``: the layer x head map of one metric as one canvas, not one widget per head: an 80 x 64 grid
(5,120 heads) is one list of floats on the wire and one draw in the browser. Click sets ``selected``;
hover shows ``L{layer}H{head}`` and the value. The static HTML export runs the same ES module against
``grid_state``. ``HeatmapView``: one head's pattern as ``uint8`` cells drawn in the browser (a click
sends a few kilobytes, no matplotlib render): square cells, token labels when they fit, the induction
stripe, a colour bar, hover naming query, key and weight.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anywidget
import torch
import traitlets

from ._colors import cividis_hex

__all__ = ["HeadGrid", "HeatmapView", "grid_state", "heatmap_state", "STATIC"]

STATIC = Path(__file__).resolve().parent / "_static"
# PuOr-like diverging stops for signed metrics (causal effects): purple below 0, orange above
_DIVERGING = ["#2d004b", "#5e3c99", "#b2abd2", "#f7f7f7", "#fdb863", "#e66101", "#7f3b08"]


def grid_state(result: Any, metric: str = "overall_score", selected: tuple[int, int] = (0, 0),
               available: set[tuple[int, int]] = frozenset()) -> dict[str, Any]:
    """The grid's synced state for ``result`` coloured by ``metric`` (values row-major, ``None`` where the
    model has no such head; a signed metric gets a diverging scale centred on 0)."""
    n_heads = result.n_heads
    values = [None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 5)
              for row in result.score_matrix(metric) for v in row]
    for layer in range(result.n_layers):  # score_matrix pads absent heads with NaN; say "no head" instead
        for head in range(n_heads):
            if not result.has_head(layer, head):
                values[layer * n_heads + head] = None
    vmin, vmax, stops = 0.0, 1.0, [cividis_hex(i / 10) for i in range(11)]
    if metric == "causal_effect":
        vmax = max([1e-6] + [abs(v) for v in values if v is not None])
        vmin, stops = -vmax, _DIVERGING
    return {
        "n_layers": result.n_layers, "n_heads": n_heads, "values": values,
        "row_labels": [f"L{layer}" for layer in range(result.n_layers)],
        "detected": sorted(l * n_heads + h for l, h in result.induction_heads),
        "available": sorted(l * n_heads + h for l, h in available),
        "selected": list(selected), "metric": metric.replace("_", " "), "vmin": vmin, "vmax": vmax, "stops": stops,
    }


class HeadGrid(anywidget.AnyWidget):
    """The clickable layer x head grid (state: see ``grid_state``)."""

    _esm = STATIC / "grid.js"
    _css = STATIC / "explorer.css"
    n_layers = traitlets.Int(1).tag(sync=True)
    n_heads = traitlets.Int(1).tag(sync=True)
    values = traitlets.List([]).tag(sync=True)
    row_labels = traitlets.List([]).tag(sync=True)
    detected = traitlets.List([]).tag(sync=True)
    available = traitlets.List([]).tag(sync=True)
    selected = traitlets.List([0, 0]).tag(sync=True)
    metric = traitlets.Unicode("").tag(sync=True)
    vmin = traitlets.Float(0.0).tag(sync=True)
    vmax = traitlets.Float(1.0).tag(sync=True)
    stops = traitlets.List([]).tag(sync=True)

    def update(self, state: dict[str, Any]) -> None:
        """Set several keys as one message (one redraw in the browser)."""
        with self.hold_sync():
            for key, value in state.items():
                if getattr(self, key) != value:
                    setattr(self, key, value)


def heatmap_state(attention: torch.Tensor, labels: list[str] | None, period: int | None, window: tuple[int, int],
                  title: str, max_cells: int = 512) -> dict[str, Any]:
    """The view's state for ``attention [seq, seq]`` inside ``window``: cells as ``uint8`` (weight x 255),
    a window longer than ``max_cells`` pooled by block max (a one-position stripe stays visible)."""
    from ._labels import escape_label
    from .scores import block_max

    start, stop = window
    factor = max(1, math.ceil((stop - start) / max_cells))
    shown = block_max(attention[start:stop, start:stop].float(), factor)
    cells = (shown.clamp(0, 1) * 255).round().to(torch.uint8)
    names = []
    if labels is not None and factor == 1 and stop - start <= 64:
        names = [(lambda t: t if len(t) <= 8 else t[:7] + "~")(escape_label(x)) for x in labels[start:stop]]
    return {"n": int(cells.shape[0]), "start": start, "factor": factor, "data": cells.numpy().tobytes(),
            "labels": names, "period": int(period or 0), "title": title,
            "stops": [cividis_hex(i / 10) for i in range(11)]}


class HeatmapView(anywidget.AnyWidget):
    """One head's attention pattern (state: see ``heatmap_state``)."""

    _esm = STATIC / "heatmap.js"
    _css = STATIC / "explorer.css"
    n = traitlets.Int(0).tag(sync=True)
    start = traitlets.Int(0).tag(sync=True)
    factor = traitlets.Int(1).tag(sync=True)
    data = traitlets.Bytes(b"").tag(sync=True)
    labels = traitlets.List([]).tag(sync=True)
    period = traitlets.Int(0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    stops = traitlets.List([]).tag(sync=True)

    update = HeadGrid.update
