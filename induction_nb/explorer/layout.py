"""The HeadExplorer's widgets and their layout (ipywidgets 8 + the ``HeadGrid`` anywidget).

Two panels in a wrapping flex row: the grid (with the metric it is coloured by) and the selected head's
view (title, heatmap at its natural size, controls, metrics, tokens). At ~900 px of output and more they
sit side by side; below, the view wraps under the grid. Both canvases size themselves from the width
their panel gets (square heatmap cells; grid cells down to 3 px a head, so every column stays in view).
"""

from __future__ import annotations

import html
from typing import Any

from ..draw.canvas_state import metric_options
from ..draw.labels import escape_label
from ..metrics import label

__all__ = ["build"]


def _metric_options(result: Any) -> list[tuple[str, str]]:
    return [(label(m), m) for m in metric_options(result)]


def _controls(ex: Any) -> list[Any]:
    import ipywidgets as W

    r = ex.result
    small = W.Layout(width="150px")
    ex._layer = W.BoundedIntText(value=0, min=0, max=r.n_layers - 1, description="layer", layout=small)
    ex._head = W.BoundedIntText(value=0, min=0, max=r.n_heads - 1, description="head", layout=small)
    ex._pattern = W.Dropdown(
        options=list(ex.patterns), value=ex.patterns[0], description="pattern", layout=W.Layout(width="220px")
    )
    n_ex = ex.source.n_examples_of(ex.patterns[0])
    ex._example = W.IntSlider(value=1, min=1, max=max(1, n_ex), description="example", layout=W.Layout(width="260px"))
    n = ex.sequence_length + 1
    ex._window = W.IntRangeSlider(
        value=(0, n),
        min=0,
        max=n,
        description="window",
        continuous_update=False,
        layout=W.Layout(width="100%", max_width="560px"),
    )
    ex._stripe = W.Checkbox(
        value=True, description="outline the induction stripe", indent=False, layout=W.Layout(width="240px")
    )
    controls = [ex._layer, ex._head, ex._pattern, ex._example, ex._window, ex._stripe]
    for control, name in zip(controls, ("layer", "head", "pattern", "example", "window", "stripe")):
        control.add_class(f"inb-{name}")
    return controls


def build(ex: Any) -> None:
    """Create ``ex.grid``, ``ex.heatmap``, ``ex.title``, ``ex.metrics``, ``ex.evidence`` (shown under the
    metrics where ``ex.evidence_report`` is set), ``ex.tokens``, ``ex.message``, the controls and ``ex.widget``
    (the whole explorer)."""
    import ipywidgets as W

    from .canvas import HeadGrid, HeatmapView

    r = ex.result
    ex.grid = HeadGrid(n_layers=r.n_layers, n_heads=r.n_heads)  # filled by the first select()
    ex._metric = W.Dropdown(
        options=_metric_options(r),
        value=_metric_options(r)[0][1],
        description="colour by",
        layout=W.Layout(width="260px"),
    )
    ex._metric.add_class("inb-metric")
    heads = [f"L{l}H{h}" for l, h in r.induction_heads]
    detected = " ".join(heads[:10]) + (f" ... ({len(heads) - 10} more: report)" if len(heads) > 10 else "") or "none"
    header = W.HTML(
        f"<b>{html.escape(escape_label(r.model_name))}</b>: {r.n_layers} layers x {r.n_heads} heads; "
        f"{r.num_heads_detected} detected at {r.threshold:.2f}: {html.escape(detected)}"
    )
    header.add_class("inb-header")
    ex.title, ex.metrics, ex.tokens, ex.message, ex.evidence = W.HTML(), W.HTML(), W.HTML(), W.HTML(), W.HTML()
    for part, name in ((ex.title, "title"), (ex.metrics, "metrics"), (ex.tokens, "tokens"), (ex.message, "message")):
        part.add_class(f"inb-{name}")
    ex.evidence.add_class("inb-evidence-panel")  # the selected head's evidence, with evidence=report only
    evidence = [ex.evidence] if ex.evidence_report is not None else []
    ex.heatmap = HeatmapView(layout=W.Layout(width="100%"))
    ex._offer = W.Dropdown(
        options=[("", None)], value=None, description="show head", layout=W.Layout(width="220px", display="none")
    )
    ex._offer.add_class("inb-offer")
    controls = W.Box(_controls(ex), layout=W.Layout(display="flex", flex_flow="row wrap"))
    controls.add_class("inb-controls")
    grid_panel = W.VBox(
        [header, ex._metric, ex.grid], layout=W.Layout(flex="1 1 300px", min_width="260px", max_width="620px")
    )
    grid_panel.add_class("inb-grid-panel")
    view = W.VBox(
        [ex.title, ex.heatmap, ex.message, ex._offer, controls, ex.metrics, *evidence, ex.tokens],
        layout=W.Layout(flex="1 1 470px", min_width="300px", max_width="100%"),
    )
    view.add_class("inb-view-panel")
    # gaps come from explorer.css (loaded with the grid): ipywidgets' Layout has no flex gap
    ex.widget = W.Box(
        [grid_panel, view],
        layout=W.Layout(display="flex", flex_flow="row wrap", align_items="flex-start", width="100%"),
    )
    ex.widget.add_class("inb-explorer")
