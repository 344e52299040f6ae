"""The analysis report (``create_analysis_report``, the original spec's format) of any scan result.

The report reads the result's own words (its title, its notes: what was scored, warnings; what a detected
head is called) and its metrics from the registry: the detailed table has a column per table metric the
result carries (``metrics.REGISTRY``: short headers, signed values with their sign), so a new metric
shows up here without a change to this file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._validate import check_int
from ..metrics import REGISTRY
from .ascii import text_score_map
from .text_kit import Charset, TextPlot, check_view_options, entries, finish, head_name

__all__ = ["create_analysis_report", "text_report"]


def _bar10(value: float) -> str:
    filled = 0 if math.isnan(value) else round(min(1.0, max(0.0, value)) * 10)
    return "#" * filled + "-" * (10 - filled)


def create_analysis_report(
    result: Any,
    detailed: bool = False,
    width: int = 80,
    *,
    top: int = 10,
    charset: Charset = "ascii",
    decimals: int = 3,
) -> TextPlot:
    """The analysis report in the original format; ``detailed=True`` adds the per-metric table, the
    layer x head map, previous-token heads, the settings and the seed. ``decimals``: of the top-head
    scores (2 gives text that is identical across CPUs and BLAS builds, e.g. for checked notebooks)."""
    check_view_options(width, charset)
    check_int("top", top, 1)
    check_int("decimals", decimals, 0, 6)
    title = result.title
    lines = [
        title,
        "=" * len(title),
        "Model Info:",
        f"model: {result.model_name}",
        f"n_layers: {result.n_layers}",
        f"n_heads: {result.n_heads}",
        "Detection Summary:",
        f"Threshold: {result.threshold:.2f}",
        f"Heads detected: {result.num_heads_detected}",
        *result.notes(),
    ]
    if result.induction_heads:
        lead = f"{result.head_noun.capitalize()}s: "
        lines += entries(lead, [head_name(l, h) for l, h in result.induction_heads], width)
    tops = result.get_top_heads(top)
    w = max(len(head_name(s.layer, s.head)) for s in tops)
    lines.append("Top Heads by Score:")
    lines += [
        f"{head_name(s.layer, s.head) + ':':<{w + 1}} {s.overall_score:.{decimals}f} [{_bar10(s.overall_score)}]"
        for s in tops
    ]
    if detailed:
        lines += ["", "Per-Head Metrics (top heads):", *_metrics_table(result, tops, w, width)]
        lines += ["", "Layer x Head Map:", *text_score_map(result, width=width, charset=charset).splitlines()]
        lines += _previous_token_heads(result, width)
        lines += ["", "Settings:"] + [f"{k}: {v}" for k, v in sorted(result.settings.items())]
        lines.append(f"Seed: {result.seed}")
    return finish(lines, width)


text_report = create_analysis_report


def _previous_token_heads(result: Any, width: int) -> list[str]:
    if "previous_token" not in result.metrics:
        return []
    found = [f"{head_name(l, h)} {result.score(l, h).previous_token:.2f}" for l, h in result.previous_token_heads(0.4)]
    return ["", "Previous-Token Heads (>= 0.40):"] + (entries("", found[:8], width) if found else ["none"])


def _metrics_table(result: Any, tops: Sequence[Any], w: int, width: int) -> list[str]:
    """The detailed report's per-head table: the overall score and its interval, then one column per table
    metric of the result (registry order), each as wide as its header or a value and two spaces; head and
    interval columns padded to their widest entry (a negative bound is one character wider). Columns that
    do not fit in ``width`` continue in a second table under the first, keyed by head again."""
    names = [m for m in result.metrics if m != "overall_score" and REGISTRY[m].table]
    cis = [f"[{s.ci_low:.3f},{s.ci_high:.3f}]" for s in tops]
    ci_w = max(map(len, cis + ["95% CI"]))
    lead = [f"{'head':<{w}}  overall  {'95% CI':<{ci_w}}  "]
    lead += [
        f"{head_name(s.layer, s.head):<{w}}  {REGISTRY['overall_score'].format(s.overall_score):<9}{ci:<{ci_w}}  "
        for s, ci in zip(tops, cis)
    ]
    lines: list[str] = []
    while True:
        room, group = width - len(lead[0]), []
        while names and (not group or sum(_width(m) for m in group) + _content(names[0]) <= room):
            group.append(names.pop(0))
        lines += [(row + "".join(cells)).rstrip() for row, cells in zip(lead, _columns(group, tops))]
        if not names:
            return lines
        lines.append("")
        lead = [f"{'head':<{w}}  "] + [f"{head_name(s.layer, s.head):<{w}}  " for s in tops]


def _width(name: str) -> int:
    """A column's width: its header or a value, and the gap after it."""
    return max(len(REGISTRY[name].short) + 1, 7)


def _content(name: str) -> int:
    """The widest text a column holds (a last column's trailing gap is not printed)."""
    return max(len(REGISTRY[name].short), 6 if REGISTRY[name].signed else 5)


def _columns(names: list[str], tops: Sequence[Any]) -> list[list[str]]:
    """The header cells, then each head's cells, of the metric columns ``names``."""
    out = [[f"{REGISTRY[m].short:<{_width(m)}}" for m in names]]
    for s in tops:
        cells = []
        for m in names:
            text = REGISTRY[m].format(s.values.get(m))
            cells.append(f"{text.center(6 if REGISTRY[m].signed else 5) if text == '-' else text:<{_width(m)}}")
        out.append(cells)
    return out
