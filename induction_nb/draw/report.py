"""The analysis report (``create_analysis_report``, the original spec's format) of any scan result.

The report reads the result's own words (its title, its notes: what was scored, warnings; what a detected
head is called) and its metrics from the registry: the detailed table has a column per table metric the
result carries (``metrics.REGISTRY``: short headers, signed values with their sign), so a new metric
shows up here without a change to this file; ``metrics=`` adds columns of metrics kept out of it (the
n-prefix scores). ``text_n_prefix``: n-prefix matching for n = 1, 2, 3 (4) side by side, head by head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._validate import check_heads, check_int
from ..errors import InputError
from ..metrics import N_PREFIX_MAX, REGISTRY, n_prefix_metric
from .ascii import text_score_map
from .text_kit import Charset, TextPlot, check_view_options, entries, finish, head_name

__all__ = ["create_analysis_report", "text_report", "text_n_prefix"]


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
    metrics: Sequence[str] | None = None,
) -> TextPlot:
    """The analysis report in the original format; ``detailed=True`` adds the per-metric table, the
    layer x head map, previous-token heads, the settings and the seed. ``decimals``: of the top-head
    scores (2 gives text that is identical across CPUs and BLAS builds, e.g. for checked notebooks).
    ``metrics``: metrics the detailed table shows after its own columns, e.g. the n-prefix scores
    ``[n_prefix_metric(n) for n in (2, 3)]`` (each one the result carries; ``None``: the table as always).

    The report reads the result's own words (its title, its notes: what was scored, warnings; what a
    detected head is called) and its metrics from ``metrics.REGISTRY``: the detailed table has a column per
    table metric the result carries (short headers, signed values with their sign), continued in a second
    table under the first where the columns do not fit in ``width``. ``text_report`` is this same function
    under its ``text_*`` name.

    Args:
        result: any scan result (``DetectionResult``, ``TextScanResult``, ``RetrievalResult``, ...).
        detailed: add the per-metric table of the top heads (with the overall score's 95% interval), the
            layer x head map (``text_score_map``), the previous-token heads (score >= 0.40), the settings and
            the seed (default ``False``: the summary and the top heads only).
        width: the widest line, in characters (at least 40; default 80); longer lines are wrapped.
        top: how many heads the top-heads list and the detailed table show, best first (default 10).
        charset: the layer x head map's characters: ``"ascii"`` (default) or ``"unicode"``.
        decimals: decimals of the top-head scores, 0 to 6 (default 3).
        metrics: metric names (or one name) the detailed table shows after its own columns; each must be
            one the result carries, and ``detailed=True`` is needed. ``None`` (default): the table as always.

    Returns:
        TextPlot: the report as a ``str`` (displays as itself in IPython/Jupyter): title, model info
            (model, n_layers, n_heads), detection summary (threshold, heads detected, the result's notes,
            the detected heads), the top heads by overall score with a 10-character bar, then (``detailed``)
            the sections above; no line is wider than ``width``.

    Raises:
        InputError: when ``top`` is not a positive integer, ``decimals`` is not an integer in [0, 6],
            ``metrics`` is not a list of metric names, is given without ``detailed=True`` or names a metric
            the result does not carry (the message lists those it does), ``width`` is not an integer >= 40
            or ``charset`` is neither ``"unicode"`` nor ``"ascii"``.

    Examples:
        >>> from induction_nb import HandBuiltInduction, create_analysis_report, detect_induction_heads
        >>> result = detect_induction_heads(HandBuiltInduction(), sequence_length=32)
        >>> print(create_analysis_report(result, top=1))
        INDUCTION HEAD ANALYSIS REPORT
        ==============================
        Model Info:
        model: HandBuiltInduction
        n_layers: 2
        n_heads: 4
        Detection Summary:
        Threshold: 0.40
        Heads detected: 1
        Induction heads: L1H0
        Top Heads by Score:
        L1H0: 0.86... [#########-]

        The detailed report, with the 2-prefix matching as an extra column:

        >>> print(create_analysis_report(result, detailed=True, top=1, metrics=["prefix_matching_2"]))
        INDUCTION HEAD ANALYSIS REPORT
        ...
        Per-Head Metrics (top heads):
        head  overall  95% CI         prefix contrast copying prev   dup    prefix2
        L1H0  0.86...
        <BLANKLINE>
        Layer x Head Map:
        overall_score by layer (rows) x head (columns)
        ...
        Previous-Token Heads (>= 0.40):
        L0H0 1.00
        ...
        Seed: 0
    """
    check_view_options(width, charset)
    check_int("top", top, 1)
    check_int("decimals", decimals, 0, 6)
    extra = _extra_columns(result, metrics, detailed)
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
        lines += ["", "Per-Head Metrics (top heads):", *_metrics_table(result, tops, w, width, extra)]
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


def _extra_columns(result: Any, metrics: Any, detailed: bool) -> list[str]:
    """The report's ``metrics=``: names the result carries, for the detailed table (``[]`` for ``None``)."""
    if metrics is None:
        return []
    names = [metrics] if isinstance(metrics, str) else list(metrics) if isinstance(metrics, Sequence) else None
    if names is None or not all(isinstance(m, str) for m in names):
        raise InputError(f"metrics must be a list of metric names, e.g. ['prefix_matching_2'], got {metrics!r:.80}")
    if not detailed:
        raise InputError("metrics= adds columns to the detailed report's table; pass detailed=True")
    missing = [m for m in names if m not in result.metrics]
    if missing:
        raise InputError(
            f"this result has no {', '.join(map(repr, missing))}; its metrics: {', '.join(result.metrics)}"
        )
    return names


def _metrics_table(result: Any, tops: Sequence[Any], w: int, width: int, extra: Sequence[str] = ()) -> list[str]:
    """The detailed report's per-head table: the overall score and its interval, then one column per table
    metric of the result (registry order) and per ``extra`` metric, each as wide as its header or a value
    and two spaces; head and interval columns padded to their widest entry (a negative bound is one
    character wider). Columns that do not fit in ``width`` continue in a second table under the first,
    keyed by head again."""
    names = [m for m in result.metrics if m != "overall_score" and REGISTRY[m].table]
    names += [m for m in dict.fromkeys(extra) if m not in names and m != "overall_score"]
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


def text_n_prefix(
    result: Any,
    heads: Any = None,
    *,
    top: int = 10,
    by: str = "overall_score",
    ns: Sequence[int] | None = None,
    width: int = 80,
    decimals: int = 3,
) -> TextPlot:
    """n-prefix matching side by side: one row per head, one column per ``n`` (``prefix_matching`` for
    n = 1, ``prefix_matching_<n>`` above: attention on the token after an earlier copy of the last ``n``
    tokens). ``heads``: ``(layer, head)`` pairs (``None``: the ``top`` heads by ``by``, any metric of the
    result); ``ns``: which n in 1..4 (``None``: each the result carries). On the ``ngram`` probe a plain
    induction head scores ~1 at n = 1 and about 1/(number of targets) at n >= 2; an n-gram head ~1 at n.

    A cell shows ``-`` where no query has an earlier copy of its last n tokens. The metric names come from
    ``n_prefix_metric``.

    Args:
        result: a scan result whose heads carry n-prefix matching (``prefix_matching`` and
            ``prefix_matching_2`` .. ``prefix_matching_4``, as ``detect_induction_heads`` scores them).
        heads: the ``(layer, head)`` pairs to show, in this order; ``None`` (default): the ``top`` heads by
            ``by``.
        top: with ``heads=None``, how many heads to show (default 10).
        by: with ``heads=None``, the metric the heads are ranked by (default ``"overall_score"``); any
            metric the result carries.
        ns: which n, each in 1..4, as columns in this order, e.g. ``[1, 2, 3]``; ``None`` (default): each n
            the result carries.
        width: the widest line, in characters (at least 40; default 80).
        decimals: decimals of the scores, 0 to 6 (default 3).

    Returns:
        TextPlot: a header naming the heads shown and the probes, one row per head with a column per n, and
            a key naming each column's metric; plain ASCII, no line wider than ``width``.

    Raises:
        InputError: when the result carries no n-prefix matching or not each of ``ns`` (the message lists
            its metrics), ``ns`` is not a non-empty list of integers in 1..4, ``heads`` is not a list of
            integer ``(layer, head)`` pairs or names a head the result does not have, ``top`` is not a
            positive integer, ``by`` is not a metric of the result, ``decimals`` is not an integer in
            [0, 6] or ``width`` is not an integer >= 40.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, text_n_prefix
        >>> result = detect_induction_heads(HandBuiltInduction(), sequence_length=32)
        >>> print(text_n_prefix(result, heads=[(1, 0), (1, 1)], decimals=2))  # L1H1 is positional: 1 as well
        n-Prefix Matching: attention after an earlier copy of the last n tokens
        (chosen heads; probes: repeated)
        head  n=1   n=2   n=3   n=4
        L1H0  0.97  1.00  1.00  1.00
        L1H1  1.00  1.00  1.00  1.00
        <BLANKLINE>
        key: n=1 prefix_matching  n=2 prefix_matching_2  n=3 prefix_matching_3
             n=4 prefix_matching_4
        '-': no query has an earlier copy of its last n tokens
        >>> print(text_n_prefix(result, top=1, ns=[1, 2]))
        n-Prefix Matching: attention after an earlier copy of the last n tokens
        (top 1 by overall_score; probes: repeated)
        head  n=1    n=2
        L1H0  0.969  1.000
        ...
    """
    check_view_options(width, "ascii")
    check_int("decimals", decimals, 0, 6)
    names = _n_prefix_names(result, ns)
    if heads is None:
        check_int("top", top, 1)
        shown, how = result.get_top_heads(top, by), f"top {top} by {by}"
    else:
        shown, how = [result.score(l, h) for l, h in check_heads("heads", heads)], "chosen heads"
    patterns = result.settings.get("patterns") if isinstance(result.settings, dict) else None
    on = f"; probes: {', '.join(map(str, patterns))}" if patterns else ""
    w = max([4, *(len(head_name(s.layer, s.head)) for s in shown)])
    cell = max(decimals + 2, 3)  # "0.955", "n=1"
    lines = [
        "n-Prefix Matching: attention after an earlier copy of the last n tokens",
        f"({how}{on})",
        f"{'head':<{w}}" + "".join(f"  {f'n={n}':<{cell}}" for n in names),
    ]
    for s in shown:
        cells = [REGISTRY[m].format(s.values.get(m), decimals) for m in names.values()]
        lines.append(
            f"{head_name(s.layer, s.head):<{w}}"
            + "".join(f"  {c.center(cell) if c == '-' else c:<{cell}}" for c in cells)
        )
    key = entries("key: ", [f"n={n} {m}" for n, m in names.items()], width)
    return finish([*lines, "", *key, "'-': no query has an earlier copy of its last n tokens"], width)


def _n_prefix_names(result: Any, ns: Any) -> dict[int, str]:
    """``{n: metric}`` for ``ns`` (checked by ``n_prefix_metric``), each one the result carries."""
    if ns is None:
        names = {n: n_prefix_metric(n) for n in range(1, N_PREFIX_MAX + 1)}
        names = {n: m for n, m in names.items() if m in result.metrics}
        if not names:
            raise InputError(
                f"this result carries no n-prefix matching (prefix_matching .. prefix_matching_{N_PREFIX_MAX}); "
                f"its metrics: {', '.join(result.metrics)}"
            )
        return names
    if isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or not ns:
        raise InputError(f"ns must be a non-empty list of n in 1..{N_PREFIX_MAX}, e.g. [1, 2, 3], got {ns!r:.80}")
    names = {}
    for n in ns:
        metric = n_prefix_metric(n)  # checks n before it is used
        names[int(n)] = metric
    missing = [m for m in names.values() if m not in result.metrics]
    if missing:
        raise InputError(
            f"this result has no {', '.join(missing)} (scanned before it was registered?); "
            f"its metrics: {', '.join(result.metrics)}"
        )
    return names
