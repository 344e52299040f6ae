"""Terminal views: one head's attention grid, score bars, the induction stripe, the layer x head map, the
previous-token -> induction circuit. (The report is ``draw.report``.)

Every function returns a ``TextPlot`` (a ``str`` that displays as itself in IPython/Jupyter): plain,
deterministic text in which no line is wider than ``width``. ``charset="unicode"`` shades with block
characters, ``charset="ascii"`` with plain ASCII for logs and old terminals. Long sequences are shown
through a ``window=(start, stop)`` or downsampled (block maximum, so a one-position stripe survives).
Heads are named ``L18H6`` everywhere (no zero padding; columns align by padding to the widest name), and
every view ends with a key naming each symbol it uses. Text views are named ``text_*``; the original
spec's ``plot_attention_pattern``, ``plot_head_scores`` and ``plot_induction_stripe`` are the same
functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from .._validate import check_int, check_period, check_probability, square_attention
from ..errors import InputError
from ..metrics import REGISTRY, block_max, stripe_profile
from .labels import display_width, escape_label, fit_width, shorten
from .text_kit import (
    BAR,
    SHADES,
    SPARK,
    TICK,
    Charset,
    TextPlot,
    check_view_options,
    entries,
    finish,
    head_name,
    legend,
    ruler,
    shade,
    signed_scale,
    token_list,
    window_range,
)

__all__ = [
    "text_attention_pattern",
    "text_head_scores",
    "text_induction_stripe",
    "text_score_map",
    "text_circuit",
    "plot_attention_pattern",
    "plot_head_scores",
    "plot_induction_stripe",
]


def text_attention_pattern(
    attention: Any,
    tokens: Sequence[Any] | None = None,
    width: int = 80,
    *,
    window: tuple[int, int] | None = None,
    charset: Charset = "unicode",
    title: str | None = None,
) -> TextPlot:
    """One head's attention ``[seq, seq]`` as a shaded grid: rows are queries, columns keys.

    ``tokens`` (ids or strings, ``[seq]``) label the rows. A pattern wider than the line is downsampled by
    the block maximum (so a one-position stripe survives), or shown through ``window``. The view ends with a
    key naming each shade. ``plot_attention_pattern`` (the original spec's name) is this same function.

    Args:
        attention: one head's attention pattern, ``[seq, seq]`` (queries x keys, each row summing to 1),
            as a ``torch.Tensor`` or anything ``torch.as_tensor`` reads, e.g. one example of
            ``capture_head(...)`` (``[batch, seq, seq]``: pass ``[0]``); ``seq >= 2``.
        tokens: ``[seq]`` token ids or strings labelling the rows (cut to 10 columns, control characters
            escaped); ``None`` (default): positions only.
        width: the widest line, in characters (at least 40; default 80).
        window: ``(start, stop)``: show only queries and keys ``start..stop - 1`` (at least 2 positions);
            ``None`` (default): the whole pattern, downsampled where it does not fit.
        charset: ``"unicode"`` (default: block shades) or ``"ascii"`` (plain ASCII, for logs and old
            terminals).
        title: a first line above the grid; ``None`` (default): none.

    Returns:
        TextPlot: the grid as a ``str`` (displays as itself in IPython/Jupyter); no line is wider than
            ``width``.

    Raises:
        InputError: when ``attention`` is not a square ``[seq, seq]`` matrix or covers fewer than 2
            positions, ``tokens`` does not have ``seq`` entries, ``window`` is not a ``(start, stop)`` pair
            with ``0 <= start < stop <= seq`` covering 2 positions or more, ``width`` is not an integer >= 40
            or ``charset`` is neither ``"unicode"`` nor ``"ascii"``.

    Examples:
        >>> import torch
        >>> from induction_nb import HandBuiltInduction, capture_head, text_attention_pattern
        >>> model = HandBuiltInduction()  # L1H0 is an induction head
        >>> tokens = torch.tensor([[0, *range(1, 9), *range(1, 9)]])  # a first token, then 1..8 twice
        >>> attention = capture_head(model, tokens, 1, 0)[0]  # [seq, seq] of the only sequence
        >>> text = text_attention_pattern(attention, tokens[0], width=50)
        >>> print(text)  # in the repeat each query attends to the token after its earlier copy
        queries 0..16 (rows) x keys 0..16 (columns)
        ...
         9 1 │  █
        10 2 │   █
        11 3 │    █
        ...
        key: ' ' <0.05  '░' 0.05-0.25  '▒' 0.25-0.5
             '▓' 0.5-0.75  '█' >=0.75  '╵' key position
        >>> max(len(line) for line in text.splitlines()) <= 50
        True
    """
    check_view_options(width, charset)
    A = square_attention(attention)
    n = A.shape[0]
    tokens = token_list(tokens, n)
    start, stop = window_range(n, window)
    A = A[start:stop, start:stop]
    label_w = 0 if tokens is None else min(10, max(display_width(escape_label(t)) for t in tokens[start:stop]))
    num_w = len(str(stop - 1))
    head_w = num_w + (label_w + 1 if label_w else 0) + 2  # "q label |": the grid's first column
    factor = max(1, math.ceil(A.shape[0] / (width - head_w - 1)))
    grid = block_max(A, factor)
    shades = SHADES[charset]
    lines = [title] if title else []
    scale = f", downsampled x{factor} (block max)" if factor > 1 else ""
    lines.append(f"queries {start}..{stop - 1} (rows) x keys {start}..{stop - 1} (columns){scale}")
    for r in range(grid.shape[0]):
        q = start + r * factor
        name = "" if not label_w else " " + fit_width(escape_label(tokens[q]), label_w)  # columns, not code points
        row = "".join(shade(float(v), shades) for v in grid[r])
        lines.append(f"{q:>{num_w}}{name} {BAR[charset][2]}{row}")
    lines += ruler(start, stop, factor, head_w, width, charset)
    lines += entries("key: ", legend(shades, bool(grid.isnan().any())) + [f"'{TICK[charset]}' key position"], width)
    return finish(lines, width)


def text_head_scores(
    scores: Sequence[dict],
    threshold: float = 0.4,
    width: int = 80,
    *,
    metric: str = "overall_score",
    top: int | None = 20,
    charset: Charset = "unicode",
) -> TextPlot:
    """Horizontal bars of ``metric`` for each head, sorted descending (NaN last), the threshold marked.

    ``scores``: dicts with ``layer``, ``head`` and the metric, e.g. ``[s.to_dict() for s in
    result.head_scores]``, or the result itself. Bars of a metric in [0, 1] are scaled to 1. A signed metric
    (``metrics.REGISTRY``: the ablation effect) gets bars scaled to its largest ``|value|``, negative ones
    drawn with their own character, and no threshold. ``plot_head_scores`` (the original spec's name) is
    this same function.

    Args:
        scores: a scan result (``DetectionResult``, ``TextScanResult``, ...: its ``head_scores``), or a
            list of dicts, one per head, each with ``"layer"``, ``"head"`` and ``metric`` (a value of
            ``None`` counts as NaN).
        threshold: the score (0-1) marked on every bar (default 0.4, the detection threshold); not drawn
            for a signed metric.
        width: the widest line, in characters (at least 40; default 80).
        metric: the metric to draw (default ``"overall_score"``); any key the dicts carry.
        top: show only the ``top`` highest heads (default 20); ``None``: every head.
        charset: ``"unicode"`` (default) or ``"ascii"`` (plain ASCII, for logs and old terminals).

    Returns:
        TextPlot: a header line (metric, threshold, how many heads shown of how many), then one bar per head
            with its value to 3 decimals (a signed metric: with its sign); no line is wider than ``width``.

    Raises:
        InputError: when ``threshold`` is outside [0, 1], ``top`` is not a positive integer, ``scores`` is
            neither a result nor a list of dicts, a dict lacks ``layer``, ``head`` or ``metric`` (or holds a
            value that is not a number), there are no scores, ``width`` is not an integer >= 40 or
            ``charset`` is neither ``"unicode"`` nor ``"ascii"``.

    Examples:
        >>> from induction_nb import text_head_scores
        >>> scores = [{"layer": 1, "head": 0, "overall_score": 0.9}, {"layer": 0, "head": 2, "overall_score": 0.1}]
        >>> print(text_head_scores(scores, width=50, charset="ascii"))
        overall_score (threshold 0.40 at '|'), top 2 of 2
        L1H0 0.900 ###############################
        L0H2 0.100 ###           |

        On a detection (the hand-built model's induction head is L1H0):

        >>> from induction_nb import HandBuiltInduction, detect_induction_heads
        >>> result = detect_induction_heads(HandBuiltInduction(), sequence_length=32)
        >>> print(text_head_scores(result, top=3))
        overall_score (threshold 0.40 at '│'), top 3 of 8
        L1H0 0.86... ██████...
        ...
    """
    check_view_options(width, charset)
    check_probability("threshold", threshold)
    if top is not None:
        check_int("top", top, 1)
    if hasattr(scores, "head_scores"):  # a result: its heads
        scores = [s.to_dict() for s in scores.head_scores]
    if isinstance(scores, (str, bytes)) or not isinstance(scores, Iterable):
        raise InputError(f"scores must be a result or a list of dicts per head, got {type(scores).__name__}")
    rows = []
    for d in scores:
        try:
            value = d[metric]
            rows.append((float("nan") if value is None else float(value), int(d["layer"]), int(d["head"])))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"each score needs 'layer', 'head' and {metric!r}; got {d!r:.80}") from None
    if not rows:
        raise InputError("no head scores to plot")
    rows.sort(key=lambda r: (-(r[0] if not math.isnan(r[0]) else -math.inf), r[1], r[2]))
    shown = rows if top is None else rows[:top]
    full, empty, mark = BAR[charset]
    name_w = max(len(head_name(layer, head)) for _, layer, head in shown)
    bar_w = width - max(16, name_w + 10)
    metric_ = REGISTRY.get(metric)
    if metric_ is not None and metric_.signed:  # a sign and 3 decimals: one character more
        return finish(_signed_bars(shown, len(rows), metric_, name_w, bar_w - 1, charset), width)
    cut = min(bar_w - 1, round(threshold * bar_w))  # threshold 1.0 marks the last column
    lines = [f"{metric} (threshold {threshold:.2f} at '{mark}'), top {len(shown)} of {len(rows)}"]
    for value, layer, head in shown:
        filled = 0 if math.isnan(value) else round(min(1.0, max(0.0, value)) * bar_w)
        bar = [full if i < filled else empty for i in range(bar_w)]
        if cut < bar_w and bar[cut] == empty:
            bar[cut] = mark
        lines.append(f"{head_name(layer, head):<{name_w}} {value:5.3f} {''.join(bar)}")
    return finish(lines, width)


def _signed_bars(shown: list, total: int, metric: Any, name_w: int, bar_w: int, charset: str) -> list[str]:
    """Bars of a signed metric: length ``|value| / max |value|``, negative values with their own fill."""
    vmax = max([abs(v) for v, _, _ in shown if not math.isnan(v)] + [1e-6])
    negative = {"unicode": "░", "ascii": "="}[charset]
    lines = [
        f"{metric.name} ({metric.unit or 'signed'}; bars to |{vmax:.3g}|, '{negative}' below zero), "
        f"top {len(shown)} of {total}"
    ]
    texts = [f"{value:+.3f}" for value, _, _ in shown]
    num_w = max(6, *map(len, texts))  # effects of 100 nats and more keep the bars in one column
    bar_w -= num_w - 6
    for (value, layer, head), text in zip(shown, texts):
        n = 0 if math.isnan(value) else round(abs(value) / vmax * bar_w)
        fill = negative if value < 0 else BAR[charset][0]
        lines.append(f"{head_name(layer, head):<{name_w}} {text:>{num_w}} {fill * n}")
    return lines


def text_induction_stripe(
    attention: Any,
    period: int = 8,
    width: int = 80,
    *,
    tokens: Sequence[Any] | None = None,
    charset: Charset = "unicode",
    offset: int = 0,
) -> TextPlot:
    """Attention on the induction stripe ``A[q, q - period + 1]`` against the largest weight anywhere
    else in the row, for each query of the repeat, ``q >= offset + period`` (``offset``: tokens before the
    pattern, 1 with BOS): the stripe stands out as the upper sparkline.

    Both sparklines are averaged over several queries per column where the repeat is wider than the line.
    With ``tokens``, one example is named: the query that attends most to the token after an earlier copy
    of itself. ``plot_induction_stripe`` (the original spec's name) is this same function.

    Args:
        attention: one head's attention pattern, ``[seq, seq]`` (queries x keys), as a ``torch.Tensor`` or
            anything ``torch.as_tensor`` reads; ``seq >= 2``.
        period: the length of the repeated block, in tokens (default 8): the sequence is ``offset`` tokens,
            then a block of ``period`` tokens repeated. At least 1 and at most ``seq - offset - 1``.
        width: the widest line, in characters (at least 40; default 80).
        tokens: ``[seq]`` token ids or strings; given, a line names one query, the key it attends to and the
            earlier copy (or says that the tokens do not repeat with this ``period``). ``None`` (default):
            no such line.
        charset: ``"unicode"`` (default) or ``"ascii"`` (plain ASCII, for logs and old terminals).
        offset: tokens before the repeated pattern (default 0; 1 with a BOS token), in ``[0, seq - 2]``.

    Returns:
        TextPlot: a header, the stripe's mean and the mean of each row's largest weight elsewhere, the two
            sparklines, the example line (with ``tokens``) and a key; no line is wider than ``width``.

    Raises:
        InputError: when ``attention`` is not a square ``[seq, seq]`` matrix or covers fewer than 2
            positions, ``offset`` or ``period`` is out of range (no repeated query is left), ``tokens`` does
            not have ``seq`` entries, ``width`` is not an integer >= 40 or ``charset`` is neither
            ``"unicode"`` nor ``"ascii"``.

    Examples:
        >>> import torch
        >>> from induction_nb import HandBuiltInduction, capture_head, text_induction_stripe
        >>> model = HandBuiltInduction()  # L1H0 is an induction head
        >>> tokens = torch.tensor([[0, *range(1, 9), *range(1, 9)]])  # a first token, then 1..8 twice
        >>> attention = capture_head(model, tokens, 1, 0)[0]  # [seq, seq]
        >>> print(text_induction_stripe(attention, period=8, tokens=tokens[0], offset=1))
        induction stripe k = q - 7 (period 8), queries 9..16
        stripe mean 1.000, max elsewhere in the row: mean 0.000
        stripe    │████████
        elsewhere │
        e.g. q=9 '1' attends 1.00 to k=2 '2', the token after the earlier '1'
        key: ...
    """
    check_view_options(width, charset)
    A = square_attention(attention)
    n = A.shape[0]
    check_period(period, offset, n)
    tokens = token_list(tokens, n)
    q, stripe, rest, _ = stripe_profile(A, period, offset)
    room = width - 12
    factor = max(1, math.ceil(len(q) / room))
    spark = SPARK[charset]

    def line(v: torch.Tensor) -> str:
        pad = (-len(v)) % factor
        v = torch.nn.functional.pad(v, (0, pad)).view(-1, factor).mean(-1)
        return "".join(shade(float(x), spark) for x in v)

    lines = [
        f"induction stripe k = q - {period - 1} (period {period}), queries {offset + period}..{n - 1}"
        + (f", {factor} per column (mean)" if factor > 1 else ""),
        f"stripe mean {float(stripe.mean()):.3f}, max elsewhere in the row: mean {float(rest.mean()):.3f}",
        f"stripe    {BAR[charset][2]}{line(stripe)}",
        f"elsewhere {BAR[charset][2]}{line(rest)}",
    ]
    if tokens is not None:
        matched = [i for i, qq in enumerate(q.tolist()) if tokens[qq - period] == tokens[qq]]
        if matched:
            best = max(matched, key=lambda i: (float(stripe[i]), -i))
            qq = int(q[best])
            lines.append(
                f"e.g. q={qq} '{shorten(tokens[qq], 12)}' attends {float(stripe[best]):.2f} to k={qq - period + 1} "
                f"'{shorten(tokens[qq - period + 1], 12)}', the token after the earlier '{shorten(tokens[qq], 12)}'"
            )
        else:
            lines.append(
                f"no query has an earlier copy {period} positions back: the tokens do not repeat with this period"
            )
    return finish(lines + entries("key: ", legend(spark), width), width)


def text_score_map(
    result: Any, metric: str = "overall_score", width: int = 80, *, charset: Charset = "unicode"
) -> TextPlot:
    """Layer x head map of ``metric`` in characters; detected heads in brackets (3-character cells)
    where the width allows, otherwise one character per head and the detected heads listed below.

    A signed metric (``metrics.REGISTRY``: the ablation effect) is shaded on both sides of zero, up to its
    largest ``|value|``; a head the model does not have (a layer without attention, a layer with fewer
    heads) is drawn as ``-`` and an unmeasured value (NaN) as ``?``. The view ends with a key.

    Args:
        result: a scan result (``DetectionResult``, ``TextScanResult``, ``RetrievalResult``, ...): its
            ``score_matrix``, ``induction_heads`` (the detected heads) and shape.
        metric: the metric to map (default ``"overall_score"``); any metric the result carries.
        width: the widest line, in characters (at least 40; default 80).
        charset: ``"unicode"`` (default) or ``"ascii"`` (plain ASCII, for logs and old terminals).

    Returns:
        TextPlot: one row per layer (``L0``, ``L1`` ...), head numbers above, and a key; no line is wider
            than ``width``.

    Raises:
        InputError: when the result does not carry ``metric`` (the message lists the metrics it does),
            ``width`` is not an integer >= 40 or ``charset`` is neither ``"unicode"`` nor ``"ascii"``.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, text_score_map
        >>> result = detect_induction_heads(HandBuiltInduction(), sequence_length=32)
        >>> print(text_score_map(result))  # L1H0 is the one detected head
        overall_score by layer (rows) x head (columns)
             0  1  2  3
        L0 │
        L1 │[█]
        key: ' ' <0.05  '░' 0.05-0.25  '▒' 0.25-0.5  '▓' 0.5-0.75  '█' >=0.75
             [x] detected
        >>> print(text_score_map(result, "previous_token"))  # L0H0 is the previous-token head
        previous_token by layer (rows) x head (columns)
             0  1  2  3
        L0 │ █ ...
        L1 │[...] ...
        key: ...
    """
    check_view_options(width, charset)
    matrix = result.score_matrix(metric)
    detected = set(result.induction_heads)
    n_layers, n_heads = result.n_layers, result.n_heads
    shades, scaled = SHADES[charset], ""
    if REGISTRY[metric].signed:  # either sign: shades on both sides of zero, to the largest |value|
        vmax = max([abs(v) for row in matrix for v in row if not math.isnan(v)] + [1e-6])
        shades, scaled = signed_scale(vmax), f" ({REGISTRY[metric].unit or 'signed'}, to |{vmax:.3g}|)"
    name_w = len(f"L{n_layers - 1}")
    lead = name_w + 2  # "L12 |"
    cell = 3 if lead + 3 * n_heads <= width else 1
    per_row = max(1, (width - lead) // cell)
    lines = [f"{metric}{scaled} by layer (rows) x head (columns)" + ("" if cell == 3 else "; detected listed below")]
    absent = unmeasured = False
    for first in range(0, n_heads, per_row):
        heads = range(first, min(n_heads, first + per_row))
        if cell == 3:
            lines.append(" " * lead + "".join(f"{h:>2} " for h in heads))
        else:  # one character per head: head numbers and ticks above the block, so a column can be read
            lines += [f"heads {first}..{heads[-1]}:", *reversed(ruler(first, heads[-1] + 1, 1, lead, width, charset))]
        for layer in range(n_layers):
            cells = []
            for h in heads:
                if not result.has_head(layer, h):
                    absent = True
                    cells.append(" - " if cell == 3 else "-")
                    continue
                c = shade(float(matrix[layer][h]), shades)
                unmeasured |= c == "?"
                cells.append((f"[{c}]" if (layer, h) in detected else f" {c} ") if cell == 3 else c)
            lines.append(f"{f'L{layer}':<{name_w}} {BAR[charset][2]}" + "".join(cells))
    if cell == 1 and detected:
        lines += entries("detected: ", [head_name(l, h) for l, h in sorted(detected)], width)
    key = legend(shades, unmeasured) + (["[x] detected"] if cell == 3 else [])
    lines += entries("key: ", key + (["'-' no such head (no attention there)"] if absent else []), width)
    return finish(lines, width)


def text_circuit(circuit: Any, n: int = 10, width: int = 80, *, charset: Charset = "unicode") -> TextPlot:
    """The ``n`` strongest edges of a ``causal.CircuitResult``: earlier head -> induction head, with the
    drop of the induction head's prefix matching when the earlier head is ablated.

    A line of baselines (each induction head's prefix matching, nothing ablated) comes first; the bars are
    scaled to the largest drop shown.

    Args:
        circuit: a ``CircuitResult``, from ``find_circuit``.
        n: how many edges to show, strongest first (default 10).
        width: the widest line, in characters (at least 40; default 80).
        charset: ``"unicode"`` (default) or ``"ascii"`` (plain ASCII, for logs and old terminals).

    Returns:
        TextPlot: a header, the baselines, then one line per edge: ``L0H0 -> L1H0 +0.926`` and a bar; no line
            is wider than ``width``.

    Raises:
        InputError: when the circuit has no edges (no earlier head was ablated), ``n`` is not a positive
            integer, ``width`` is not an integer >= 40 or ``charset`` is neither ``"unicode"`` nor ``"ascii"``.

    Examples:
        >>> from induction_nb import HandBuiltInduction, find_circuit, text_circuit
        >>> circuit = find_circuit(HandBuiltInduction(), sequence_length=32)  # earlier heads -> L1H0
        >>> print(text_circuit(circuit, n=1, width=100))
        previous-token -> induction circuit: prefix-matching drop when the earlier head is ablated
        baseline: L1H0 0.97
        L0H0 -> L1H0 +0.9... ███...
    """
    check_view_options(width, charset)
    edges = circuit.top(check_int("n", n, 1))
    if not edges:
        raise InputError("the circuit has no edges (no earlier head was ablated)")
    full = BAR[charset][0]
    src_w = max(len(head_name(*src)) for src, _, _ in edges)
    dst_w = max(len(head_name(*dst)) for _, dst, _ in edges)
    bar_w = max(5, width - src_w - dst_w - 22)
    peak = max(max(e[2] for e in edges), 1e-9)
    lines = ["previous-token -> induction circuit: prefix-matching drop when the earlier head is ablated"]
    lines += entries(
        "baseline: ", [f"{head_name(l, h)} {v:.2f}" for (l, h), v in sorted(circuit.baseline.items())], width
    )
    for src, dst, drop in edges:
        bar = full * max(0, round(max(0.0, drop) / peak * bar_w))
        lines.append(f"{head_name(*src):<{src_w}} -> {head_name(*dst):<{dst_w}} {drop:+.3f} {bar}")
    return finish(lines, width)


# the original spec's names
plot_attention_pattern = text_attention_pattern
plot_head_scores = text_head_scores
plot_induction_stripe = text_induction_stripe
