"""The parts of a head's panel that the HeadExplorer and the static HTML export share: the heatmap as
PNG bytes, the metrics table (the detection's scores beside those of the pattern shown, so no number
is read against the wrong pattern), and the tokens with the ``[A][B] ... [A]`` matches marked.

Every token and name is HTML-escaped (``<s>`` is a real token). The PNG comes from a bare matplotlib
``Figure`` (no pyplot), so the notebook's backend and current figure are left alone.
"""

from __future__ import annotations

import html
import io
from typing import Any

import torch

from ..metrics import REGISTRY, match_mask
from .figures import plot_attention_heatmap
from .labels import escape_label
from .style import style

__all__ = ["heatmap_png", "metrics_html", "tokens_html", "head_title"]


def head_title(result: Any, score: Any, pattern: str, example: int, n_examples: int) -> str:
    """``L18H6 (induction head): attention on 'random', example 2 of 4`` (the result's own name for a
    detected head: ``retrieval head`` for a retrieval scan's)."""
    mark = result.head_noun if (score.layer, score.head) in result.induction_heads else "not detected"
    which = f", example {example + 1} of {n_examples}" if n_examples > 1 else ""
    return f"{score.name} ({mark}): attention on '{pattern}'{which}"


def metrics_html(result: Any, score: Any, shown: dict[str, float] | None = None, shown_label: str = "") -> str:
    """Two columns: the scan's scores of ``score``'s head (with the 95% CI of the overall score) and, when
    given, the metrics of the pattern shown (``metrics.pattern_metrics``): one row per metric either has,
    in the registry's order."""
    head = f"<th>detection<br><small>{html.escape(result.measured_on())}</small></th>"
    if shown is not None:
        head += f"<th>shown pattern<br><small>{html.escape(shown_label)}</small></th>"
    rows = []
    for name, metric in REGISTRY.items():
        if name not in score.values and (shown is None or name not in shown):
            continue
        value = metric.format(score.values.get(name))
        if name == "overall_score":
            value += f" <small>[{score.ci_low:.2f}, {score.ci_high:.2f}]</small>"
        other = "" if shown is None else f"<td>{metric.format(shown.get(name))}</td>"
        unit = f" ({metric.unit})" if metric.unit else ""
        rows.append(f"<tr><td>{html.escape(metric.label + unit)}</td><td>{value}</td>{other}</tr>")
    return (
        f"<table class='inb-metric-table'><tr><th></th>{head}</tr>{''.join(rows)}</table>"
        f"<small>{html.escape(result.overall_meaning)}, detected at >= {result.threshold:.2f}; '-': not defined "
        f"(contrast needs the control probe)</small>"
    )


def tokens_html(labels: list[str], tokens: torch.Tensor) -> str:
    """Tokens with queries that have an earlier copy underlined and their induction targets marked."""
    match = match_mask(tokens[None].cpu())[0]
    queries = set(match.any(-1).nonzero().flatten().tolist())
    targets = set(match.any(0).nonzero().flatten().tolist())
    spans = []
    for i, label in enumerate(labels):
        style = []
        if i in targets:
            style.append("background:#fdb863")
        if i in queries:
            style.append("text-decoration:underline;font-weight:bold")
        text = html.escape(escape_label(label)) or "&nbsp;"
        spans.append(f"<span class='inb-tok' title='position {i}' style='{';'.join(style)}'>{text}</span>")
    legend = (
        "<small><b><u>bold</u></b>: [A] whose earlier copy exists; <span style='background:#fdb863'>marked"
        "</span>: [B], the token after an earlier [A] (the induction target)</small>"
    )
    return f"<div style='font-family:monospace;line-height:1.6'>{' '.join(spans)}</div>{legend}"


def heatmap_png(
    attention: torch.Tensor,
    labels: list[str] | None,
    period: int | None,
    window: tuple[int, int],
    title: str,
    dpi: int = 100,
    offset: int = 0,
) -> bytes:
    """One head's pattern ``[seq, seq]`` as PNG bytes (square axes, so the picture is at its true aspect
    wherever it is shown at its natural size; no software tag, so equal input gives equal bytes)."""
    from matplotlib.figure import Figure

    with style():
        fig = Figure(figsize=(4.8, 4.4), layout="constrained")
        plot_attention_heatmap(
            attention, labels, ax=fig.subplots(), period=period, window=window, title=title, offset=offset
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
