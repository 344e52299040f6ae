"""A detection result as one self-contained HTML file: opens in any browser, offline, without a kernel.

The page holds the layer x head grid (the HeadExplorer's own ES module, ``draw/_static/grid.js``, inlined and
run against the result's fixed state: hover and click work, colour legend included), the detected and
top heads with their scores, each exported head's panel (heatmap as an embedded PNG, the detection's
metrics beside those of the pattern shown, the tokens with matches marked) and the ASCII report.
Clicking a head in the grid shows its panel when it was exported. Nothing is fetched: no CDN, no fonts,
no remote script (checked in tests/test_browser.py with the network blocked).

Used by ``DetectionResult.to_html`` (the heads it kept), ``HeadExplorer.save_html`` (the heads viewed) and
``induction-nb scan --html`` (the top heads, captured by ``explorer.export.capture_panels``).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..metrics import pattern_metrics
from .canvas_state import STATIC, es_module, grid_state
from .html_repr import top_table
from .labels import escape_label, token_labels
from .panels import head_title, heatmap_png, metrics_html, tokens_html
from .report import create_analysis_report

__all__ = ["save_html", "head_panel", "panels_from_kept", "check_path"]

_DRIVER = """
const state = JSON.parse(document.getElementById("inb-state").textContent);
const handlers = {};
const model = {
  get: (k) => state[k],
  set: (k, v) => { state[k] = v; },
  on: (event, f) => { (handlers[event] = handlers[event] || []).push(f); },
  save_changes: () => show(state.selected),
};
function show([l, h]) {
  const id = `inb-panel-L${l}-H${h}`;
  let found = false;
  for (const p of document.querySelectorAll(".inb-panel")) { p.hidden = p.id !== id; found = found || p.id === id; }
  const note = document.getElementById("inb-no-panel");
  note.hidden = found;
  note.textContent = found ? "" : `L${l}H${h}: no heatmap in this file (export it with heads=[(${l}, ${h})])`;
}
render({ model, el: document.getElementById("inb-grid-host") });
show(state.selected);
"""


def _png_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img class='inb-image' alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def head_panel(
    result: Any,
    layer: int,
    head: int,
    attention: torch.Tensor,
    tokens: torch.Tensor,
    labels: list[str],
    period: int | None,
    pattern: str,
    offset: int = 0,
) -> dict[str, Any]:
    """One head's exported panel: ``attention [seq, seq]`` on ``tokens [seq]`` as a heatmap, metrics
    (of this pattern, scored from query ``1 + offset`` as the detector does; ``offset``: tokens before the
    pattern, 1 with BOS), tokens."""
    score = result.score(layer, head)
    n = attention.shape[0]
    title = head_title(result, score, pattern, 0, 1)
    shown = pattern_metrics(attention, tokens, 1 + offset)
    return {
        "layer": layer,
        "head": head,
        "title": title,
        "png": heatmap_png(attention, labels, period, (0, n), f"L{layer}H{head} on '{pattern}'", offset=offset),
        "metrics": metrics_html(result, score, shown, f"'{pattern}'"),
        "tokens": tokens_html(labels, tokens),
    }


def panels_from_kept(result: Any, model: Any = None) -> list[dict[str, Any]]:
    """Panels of the heads whose patterns ``result`` kept (``detect(keep_patterns=...)``), first example;
    tokens spelled by ``model``'s tokenizer when given (else shown as ids)."""
    panels = []
    for layer, head in sorted(result.kept_heads(), key=lambda k: -result.score(*k).overall_score):
        p = result.kept_layer(layer, head)
        attention, tokens = p.example(0, head)
        names = token_labels(model, tokens.tolist()) if model is not None else [str(t) for t in tokens.tolist()]
        panels.append(head_panel(result, layer, head, attention, tokens, names, p.period, p.name, p.offset))
    return panels


def _page(
    result: Any, panels: Sequence[dict], selected: tuple[int, int], metric: str, missing: Sequence[tuple[int, int]] = ()
) -> str:

    state = grid_state(result, metric, selected, {(p["layer"], p["head"]) for p in panels})
    module = es_module("grid.js").replace("export default { render };", "") + _DRIVER
    css = (STATIC / "explorer.css").read_text()
    name = html.escape(escape_label(result.model_name))
    detected = " ".join(f"L{l}H{h}" for l, h in result.induction_heads) or "none"
    body = "".join(
        f"<section class='inb-panel' id='inb-panel-L{p['layer']}-H{p['head']}'><h4 class='inb-title'>"
        f"{html.escape(escape_label(p['title']))}</h4>{_png_tag(p['png'], p['title'])}{p['metrics']}{p['tokens']}"
        "</section>"
        for p in panels
    )
    empty = '<p class="inb-empty">No heatmaps in this file.</p>'
    report = html.escape(str(create_analysis_report(result, detailed=True)))
    state_json = json.dumps(state).replace("</", "<\\/")
    skipped = (
        (
            "<p class='inb-missing'><small>no attention patterns for "
            + " ".join(f"L{l}H{h}" for l, h in missing)
            + " (not kept by the detection, and no model to capture them)</small></p>"
        )
        if missing
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name}: induction heads</title>
<meta name="generator" content="induction_nb">
<style>body {{ font: 13px sans-serif; margin: 16px; color: #222; }} td, th {{ padding: 1px 6px; text-align: left; }}
{css}</style></head><body>
<h2>{name}: induction heads</h2>
<p class="inb-header">{result.n_layers} layers x {result.n_heads} heads; {result.num_heads_detected} detected at
threshold {result.threshold:.2f}: {html.escape(detected)}. Seed {result.seed}.</p>
<div class="inb-explorer">
<div class="inb-grid-panel"><div id="inb-grid-host"></div>{top_table(result, 12)}</div>
<div class="inb-view-panel"><p id="inb-no-panel" hidden></p>{body or empty}{skipped}</div>
</div>
<details><summary>ASCII report</summary><pre class="inb-report">{report}</pre></details>
<script type="application/json" id="inb-state">{state_json}</script>
<script type="module">{module}</script>
</body></html>
"""


def check_path(path: Any) -> Path:
    """``path`` as a ``Path`` ending in ``.html`` that is not a folder, or ``InputError``."""
    if not isinstance(path, (str, Path)):
        raise InputError(f"the HTML page needs a file path, got {type(path).__name__}")
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"the HTML export writes an .html file, got {str(path)!r}: give a path ending in .html")
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder; give a file name")
    return path


def save_html(
    result: Any,
    path: str | Path,
    *,
    panels: Sequence[dict] | None = None,
    model: Any = None,
    selected: tuple[int, int] | None = None,
    metric: str = "overall_score",
    missing: Sequence[tuple[int, int]] = (),
) -> Path:
    """Write ``result`` (with ``panels`` from ``head_panel``; default: the heads it kept, tokens spelled
    by ``model``'s tokenizer when given) to ``path`` as one HTML file (its folder created if needed);
    returns the path. ``missing``: heads asked for but without patterns, listed on the page.
    ``InputError`` for an empty result or a path that is not an ``.html`` file."""
    if not result.head_scores:
        raise InputError("the result is empty (no head scores): run detect() first")
    path = check_path(path)
    panels = panels_from_kept(result, model) if panels is None else list(panels)
    if selected is None:
        top = result.get_top_heads(1)[0]
        selected = (panels[0]["layer"], panels[0]["head"]) if panels else (top.layer, top.head)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_page(result, panels, selected, metric, missing), encoding="utf-8")
    return path
