"""The HeadExplorer's two canvas widgets (anywidgets; their ES modules ``draw/_static/grid.js`` and
``draw/_static/heatmap.js`` ship with the package, so nothing is fetched and nothing is built).

``HeadGrid``: the layer x head map of one metric as one canvas, not one widget per head: an 80 x 64 grid
(5,120 heads) is one list of floats on the wire and one draw in the browser. Click sets ``selected``;
hover shows ``L{layer}H{head}`` and the value. The static HTML export runs the same ES module against
``draw.canvas_state.grid_state``. ``HeatmapView``: one head's pattern as ``uint8`` cells drawn in the browser (a click
sends a few kilobytes, no matplotlib render): square cells, token labels when they fit, the induction
stripe, a colour bar, hover naming query, key and weight.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from ..draw.canvas_state import STATIC, es_module

__all__ = ["HeadGrid", "HeatmapView"]


class HeadGrid(anywidget.AnyWidget):
    """The clickable layer x head grid (state: see ``draw.canvas_state.grid_state``)."""

    _esm = es_module("grid.js")
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
    outline = traitlets.Unicode("#e66100").tag(sync=True)

    def update(self, state: dict[str, Any]) -> None:
        """Set several keys as one message (one redraw in the browser)."""
        with self.hold_sync():
            for key, value in state.items():
                if getattr(self, key) != value:
                    setattr(self, key, value)


class HeatmapView(anywidget.AnyWidget):
    """One head's attention pattern (state: see ``draw.canvas_state.heatmap_state``)."""

    _esm = es_module("heatmap.js")
    _css = STATIC / "explorer.css"
    n = traitlets.Int(0).tag(sync=True)
    start = traitlets.Int(0).tag(sync=True)
    factor = traitlets.Int(1).tag(sync=True)
    data = traitlets.Bytes(b"").tag(sync=True)
    labels = traitlets.List([]).tag(sync=True)
    period = traitlets.Int(0).tag(sync=True)
    stripe_from = traitlets.Int(0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    stops = traitlets.List([]).tag(sync=True)

    update = HeadGrid.update
