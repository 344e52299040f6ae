"""A result as HTML in a notebook (``_repr_html_``) and the top-heads table the static page shares with it:
the summary line, the best heads with every table metric of the result (``metrics.REGISTRY``: its short
headers, signed values with their sign) and the overall score's interval, and a layer x head heatmap of
the overall score. Every name is escaped; a head the model does not have is an empty cell."""

from __future__ import annotations

import html
from typing import Any

from ..metrics import REGISTRY
from .colors import cividis_hex, text_color
from .labels import escape_label

__all__ = ["result_html", "top_table", "table_metrics"]


def table_metrics(result: Any) -> list[str]:
    """The result's metrics shown in per-head tables, overall score first."""
    return [m for m in result.metrics if REGISTRY[m].table]


def _tip(metric: Any) -> str:
    """A column header's hover text: what the metric measures and where it is defined."""
    return f"{metric.description} ({metric.source})" if metric.source else metric.description


def top_table(result: Any, n: int = 8, css_class: str = "inb-top") -> str:
    """The ``n`` best heads: name (``*`` where detected), each table metric, the 95% interval."""
    names = table_metrics(result)
    detected = set(result.induction_heads)
    head = "".join(f"<th title='{html.escape(_tip(REGISTRY[m]))}'>{html.escape(REGISTRY[m].short)}</th>" for m in names)
    rows = []
    for s in result.get_top_heads(n):
        cells = "".join(f"<td>{REGISTRY[m].format(s.values.get(m))}</td>" for m in names)
        mark = " *" if (s.layer, s.head) in detected else ""
        rows.append(f"<tr><td><b>{s.name}</b>{mark}</td>{cells}<td>[{s.ci_low:.3f}, {s.ci_high:.3f}]</td></tr>")
    return (
        f"<table class='{css_class}'><tr><th>head</th>{head}<th>95% CI</th></tr>{''.join(rows)}</table>"
        f"<small>*: detected; {html.escape(result.overall_meaning)}</small>"
    )


def _heatmap(result: Any) -> str:
    detected = set(result.induction_heads)
    matrix = result.score_matrix()
    rows = []
    for layer, values in enumerate(matrix):
        tds = []
        for head, v in enumerate(values):
            if not result.has_head(layer, head):
                tds.append('<td style="width:14px;height:10px;padding:0"></td>')
                continue
            border = "2px solid #e66100" if (layer, head) in detected else "1px solid #ffffff"
            tds.append(
                f'<td title="L{layer}H{head}: {v:.3f}" style="background:{cividis_hex(v)};color:{text_color(v)};'
                f'border:{border};width:14px;height:10px;padding:0;font-size:7px;text-align:center"></td>'
            )
        rows.append(f'<tr><td style="font-size:8px;padding:0 3px">L{layer}</td>{"".join(tds)}</tr>')
    return f'<table style="border-collapse:collapse">{"".join(rows)}</table>'


def result_html(result: Any) -> str:
    """The notebook display of ``result``."""
    detected = " ".join(f"L{l}H{h}" for l, h in result.induction_heads) or "none"
    return (
        f'<div class="inb-result"><p><b>{html.escape(escape_label(result.model_name))}</b>: '
        f"{result.num_heads_detected} {result.head_noun}s at threshold {result.threshold:.2f} "
        f"({result.n_layers} layers x {result.n_heads} heads): {html.escape(detected)}</p>"
        '<div style="display:flex;gap:24px;align-items:flex-start">'
        f"{top_table(result)}{_heatmap(result)}</div>"
        f'<p style="font-size:8px">heatmap: overall score (cividis, 0 to 1); outlined: detected; '
        f"seed {result.seed}</p></div>"
    )
