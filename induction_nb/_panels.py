"""The parts of a head's panel that the HeadExplorer and the static HTML export share: the heatmap as
PNG bytes, the metrics table (the detection's scores beside those of the pattern shown, so no number
is read against the wrong pattern), and the tokens with the ``[A][B] ... [A]`` matches marked.

Every token and name is HTML-escaped (``<s>`` is a real token). The PNG comes from a bare matplotlib
``Figure`` (no pyplot), so the notebook's backend and current figure are left alone.
"""

from __future__ import annotations

import html
import io
import math
from typing import Any

import torch

from ._labels import escape_label

__all__ = ["heatmap_png", "metrics_html", "tokens_html", "detection_label", "head_title"]

_ROWS = ("overall_score", "prefix_matching", "contrast", "copying", "previous_token", "duplicate_token", "diagonal")


def head_title(score: Any, detected: bool, pattern: str, example: int, n_examples: int, kind: str | None = None) -> str:
    """``L18H6 (induction head): attention on 'random', example 2 of 4`` (``retrieval head`` for a
    retrieval scan's heads)."""
    mark = ("retrieval head" if kind == "retrieval" else "induction head") if detected else "not detected"
    which = f", example {example + 1} of {n_examples}" if n_examples > 1 else ""
    return f"{score.name} ({mark}): attention on '{pattern}'{which}"


def detection_label(settings: dict) -> str:
    """What the result's scores were measured on, in a few words."""
    kind = settings.get("kind")
    if kind == "text":
        n = settings.get("documents", "?")
        return f"your text ({n} document{'' if n == 1 else 's'})"
    if kind == "retrieval":
        return "needle retrieval"
    batch, length = settings.get("batch_size"), settings.get("sequence_length")
    size = f", {batch} x {length} tokens" if batch and length else ""
    return f"repeated-token probe{size}"


def _cell(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def metrics_html(score: Any, threshold: float, settings: dict, shown: dict[str, float] | None = None,
                 shown_label: str = "") -> str:
    """Two columns: the detection's scores (with the 95% CI of the overall score) and, when given, the
    metrics of the pattern shown (``scores.pattern_metrics``)."""
    from .scores import LABELS

    head = f"<th>detection<br><small>{html.escape(detection_label(settings))}</small></th>"
    if shown is not None:
        head += f"<th>shown pattern<br><small>{html.escape(shown_label)}</small></th>"
    rows = []
    for m in _ROWS:
        value = _cell(getattr(score, m))
        if m == "overall_score":
            value += f" <small>[{score.ci_low:.2f}, {score.ci_high:.2f}]</small>"
        other = "" if shown is None else f"<td>{_cell(shown.get(m))}</td>"
        rows.append(f"<tr><td>{LABELS[m]}</td><td>{value}</td>{other}</tr>")
    if score.causal_effect is not None:
        rows.append(f"<tr><td>ablation effect (nats)</td><td>{score.causal_effect:+.3f}</td>"
                    + ("<td>-</td>" if shown is not None else "") + "</tr>")
    overall = {"text": "overall = prefix matching on your text",
               "retrieval": "overall = retrieval score (needle tokens copied / needle length)"}.get(
        settings.get("kind"), "overall = contrast x copying")
    return (f"<table class='inb-metric-table'><tr><th></th>{head}</tr>{''.join(rows)}</table>"
            f"<small>{overall}, detected at >= {threshold:.2f}; '-': not defined "
            f"(contrast needs the control probe)</small>")


def tokens_html(labels: list[str], tokens: torch.Tensor) -> str:
    """Tokens with queries that have an earlier copy underlined and their induction targets marked."""
    from .scores import match_mask

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
    legend = ("<small><b><u>bold</u></b>: [A] whose earlier copy exists; <span style='background:#fdb863'>marked"
              "</span>: [B], the token after an earlier [A] (the induction target)</small>")
    return f"<div style='font-family:monospace;line-height:1.6'>{' '.join(spans)}</div>{legend}"


def heatmap_png(attention: torch.Tensor, labels: list[str] | None, period: int | None, window: tuple[int, int],
                title: str, dpi: int = 100, offset: int = 0) -> bytes:
    """One head's pattern ``[seq, seq]`` as PNG bytes (square axes, so the picture is at its true aspect
    wherever it is shown at its natural size; no software tag, so equal input gives equal bytes)."""
    from matplotlib.figure import Figure

    from .figures import plot_attention_heatmap, style

    with style():
        fig = Figure(figsize=(4.8, 4.4), layout="constrained")
        plot_attention_heatmap(attention, labels, ax=fig.subplots(), period=period, window=window, title=title,
                               offset=offset)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
