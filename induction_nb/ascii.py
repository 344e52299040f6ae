"""Terminal views: attention grids, score bars, the induction stripe, the layer x head map, the report.

Every function returns a ``TextPlot`` (a ``str`` that displays as itself in IPython/Jupyter): plain,
deterministic text in which no line is wider than ``width``. ``charset="unicode"`` shades with block
characters, ``charset="ascii"`` with plain ASCII for logs and old terminals. Long sequences are shown
through a ``window=(start, stop)`` or downsampled (block maximum, so a one-position stripe survives).
Heads are named ``L18H6`` everywhere (no zero padding; columns align by padding to the widest name), and
every view ends with a key naming each symbol it uses.
"""

from __future__ import annotations

import bisect
import itertools
import math
from typing import Any, Literal, Sequence

import torch

from ._validate import check_int, check_period, check_probability, square_attention
from ._labels import display_width, escape_controls, escape_label, fit_width, shorten
from .errors import InputError
from .scores import block_max, stripe_profile

__all__ = ["TextPlot", "plot_attention_pattern", "plot_head_scores", "plot_induction_stripe", "plot_score_map",
           "create_analysis_report", "plot_circuit", "MIN_WIDTH"]

Charset = Literal["unicode", "ascii"]
MIN_WIDTH = 40
Scale = tuple[tuple[float, str], ...]


def _scale(chars: str, bounds: Sequence[float]) -> Scale:
    """(lower bound, character) pairs: a value gets the character of the last bound it reaches. The
    keys are printed from the same table (``_key``), so a shade and its legend cannot disagree."""
    return tuple(zip((-math.inf, *bounds), chars, strict=True))


# Blank below 0.05: a causal softmax spreads a few percent over every earlier key, and shading that
# makes the whole lower triangle look like signal. No '-' among the shades: the score map uses it for
# "no such head", and one symbol must not mean two things.
_SHADES = {"unicode": _scale(" ░▒▓█", (0.05, 0.25, 0.5, 0.75)),
           "ascii": _scale(" .:;=+*#%@", (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9))}
_EIGHTHS = (0.05, 0.12, 0.25, 0.38, 0.5, 0.62, 0.75, 0.88)  # eighths rounded to 2 decimals, same blank floor
_SPARK = {"unicode": _scale(" ▁▂▃▄▅▆▇█", _EIGHTHS), "ascii": _scale(" _.-=+*#@", _EIGHTHS)}
_BAR = {"unicode": ("█", " ", "│"), "ascii": ("#", " ", "|")}
_TICK = {"unicode": "╵", "ascii": "^"}


class TextPlot(str):
    """A text figure: prints as itself, and IPython shows it without quotes."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def check_view_options(width: Any, charset: Any) -> None:
    """Raise ``InputError`` unless ``width`` (>= MIN_WIDTH) and ``charset`` are usable."""
    check_int("width", width, MIN_WIDTH)
    if charset not in _SHADES:
        raise InputError(f"charset must be 'unicode' or 'ascii', got {charset!r}")


def _done(lines: list[str], width: int) -> TextPlot:
    # labels are escaped where they are laid out; this catches a control in a model name or settings value
    return TextPlot("\n".join(line.rstrip() for line in _wrap([escape_controls(x) for x in lines], width)))


def _shade(value: float, scale: Scale) -> str:
    if math.isnan(value):
        return "?"
    return scale[bisect.bisect_right([lo for lo, _ in scale], value) - 1][1]


def _key(scale: Scale, nan: bool = False) -> list[str]:
    """One legend entry per character of ``scale`` with its value range (``'?'`` too when it appears)."""
    out = []
    for i, (lo, char) in enumerate(scale):
        hi = scale[i + 1][0] if i + 1 < len(scale) else None
        span = f"<{hi:g}" if i == 0 else f">={lo:g}" if hi is None else f"{lo:g}-{hi:g}"
        out.append(f"'{char}' {span}")
    return out + (["'?' no value (NaN)"] if nan else [])


def _name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def _entries(lead: str, entries: Sequence[str], width: int) -> list[str]:
    """``lead`` then ``entries`` two spaces apart, wrapped only between entries: ``_wrap`` breaks at any
    space and would split ``L16H0 0.93`` from its score. Continuation lines start under the first entry."""
    indent = " " * len(lead) if len(lead) + max(map(len, entries), default=0) <= width else "  "
    lines, line, fresh = [], lead, True
    for entry in entries:
        if not fresh and len(line) + 2 + len(entry) > width:
            lines.append(line)
            line, fresh = indent, True
        line += ("" if fresh else "  ") + entry
        fresh = False
    return lines + [line]


def _ruler(start: int, stop: int, factor: int, indent: int, width: int, charset: str) -> list[str]:
    """Tick marks and key numbers under a grid whose column ``c`` holds keys ``start + c * factor`` ...:
    key ``k`` is ticked in column ``(k - start) // factor`` and its number starts there. Ticks fall on
    round keys at least 8 columns apart, so the numbers never run into each other."""
    gap = max(8, len(str(stop - 1)) + 2)
    step = next(s for e in itertools.count() for s in (10**e, 2 * 10**e, 5 * 10**e) if s >= gap * factor)
    room = width - indent
    ticks, numbers, free = [" "] * room, [" "] * room, 0
    keys = range(-(-start // step) * step, stop, step) or [start]  # a narrow window between round keys: its start
    for k in keys:
        c = (k - start) // factor
        ticks[c] = _TICK[charset]
        if c >= free and c + len(str(k)) <= room:  # the last number is dropped rather than cut at the edge
            numbers[c:c + len(str(k))] = str(k)
            free = c + len(str(k)) + 1
    return [" " * indent + "".join(ticks), " " * indent + "".join(numbers)]


def _tokens(tokens: Any, n: int) -> list | None:
    tokens = tokens.tolist() if isinstance(tokens, torch.Tensor) else tokens
    if tokens is not None and len(tokens) != n:
        raise InputError(f"tokens has {len(tokens)} entries but the pattern covers {n} positions")
    return None if tokens is None else list(tokens)


def _window(n: int, window: tuple[int, int] | None) -> tuple[int, int]:
    if window is None:
        return 0, n
    try:
        start, stop = (int(x) for x in window)
    except (TypeError, ValueError):
        raise InputError(f"window must be a (start, stop) pair, got {window!r}") from None
    if not 0 <= start < stop <= n or stop - start < 2:
        raise InputError(f"window ({start}, {stop}) must satisfy 0 <= start < stop <= {n} and cover >= 2 positions")
    return start, stop


def plot_attention_pattern(
    attention: Any,
    tokens: Sequence[Any] | None = None,
    width: int = 80,
    *,
    window: tuple[int, int] | None = None,
    charset: Charset = "unicode",
    title: str | None = None,
) -> TextPlot:
    """One head's attention ``[seq, seq]`` as a shaded grid: rows are queries, columns keys.
    ``tokens`` (ids or strings, ``[seq]``) label the rows."""
    check_view_options(width, charset)
    A = square_attention(attention)
    n = A.shape[0]
    tokens = _tokens(tokens, n)
    start, stop = _window(n, window)
    A = A[start:stop, start:stop]
    label_w = 0 if tokens is None else min(10, max(display_width(escape_label(t)) for t in tokens[start:stop]))
    num_w = len(str(stop - 1))
    head_w = num_w + (label_w + 1 if label_w else 0) + 2  # "q label |": the grid's first column
    factor = max(1, math.ceil(A.shape[0] / (width - head_w - 1)))
    grid = block_max(A, factor)
    shades = _SHADES[charset]
    lines = [title] if title else []
    scale = ", downsampled x%d (block max)" % factor if factor > 1 else ""
    lines.append(f"queries {start}..{stop - 1} (rows) x keys {start}..{stop - 1} (columns){scale}")
    for r in range(grid.shape[0]):
        q = start + r * factor
        name = "" if not label_w else " " + fit_width(escape_label(tokens[q]), label_w)  # columns, not code points
        row = "".join(_shade(float(v), shades) for v in grid[r])
        lines.append(f"{q:>{num_w}}{name} {_BAR[charset][2]}{row}")
    lines += _ruler(start, stop, factor, head_w, width, charset)
    lines += _entries("key: ", _key(shades, bool(grid.isnan().any())) + [f"'{_TICK[charset]}' key position"], width)
    return _done(lines, width)


def plot_head_scores(
    scores: Sequence[dict],
    threshold: float = 0.4,
    width: int = 80,
    *,
    metric: str = "overall_score",
    top: int | None = 20,
    charset: Charset = "unicode",
) -> TextPlot:
    """Horizontal bars of ``metric`` for each head (dicts with ``layer``, ``head`` and the metric, e.g.
    ``[s.to_dict() for s in result.head_scores]``), sorted descending, the threshold marked."""
    check_view_options(width, charset)
    check_probability("threshold", threshold)
    rows = []
    for d in scores:
        try:
            value = d[metric]
            rows.append((float("nan") if value is None else float(value), int(d["layer"]), int(d["head"])))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"each score needs 'layer', 'head' and {metric!r}; got {d!r:.80}") from None
    if not rows:
        raise InputError("no head scores to plot")
    rows.sort(key=lambda r: (-(r[0] if not math.isnan(r[0]) else -1), r[1], r[2]))
    shown = rows if top is None else rows[:top]
    full, empty, mark = _BAR[charset]
    name_w = max(len(_name(layer, head)) for _, layer, head in shown)
    bar_w = width - max(16, name_w + 10)
    cut = min(bar_w - 1, round(threshold * bar_w))  # threshold 1.0 marks the last column
    lines = [f"{metric} (threshold {threshold:.2f} at '{mark}'), top {len(shown)} of {len(rows)}"]
    for value, layer, head in shown:
        filled = 0 if math.isnan(value) else round(min(1.0, max(0.0, value)) * bar_w)
        bar = [full if i < filled else empty for i in range(bar_w)]
        if cut < bar_w and bar[cut] == empty:
            bar[cut] = mark
        lines.append(f"{_name(layer, head):<{name_w}} {value:5.3f} {''.join(bar)}")
    return _done(lines, width)


def plot_induction_stripe(
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
    pattern, 1 with BOS): the stripe stands out as the upper sparkline."""
    check_view_options(width, charset)
    A = square_attention(attention)
    n = A.shape[0]
    check_period(period, offset, n)
    tokens = _tokens(tokens, n)
    q, stripe, rest, _ = stripe_profile(A, period, offset)
    room = width - 12
    factor = max(1, math.ceil(len(q) / room))
    spark = _SPARK[charset]

    def line(v: torch.Tensor) -> str:
        pad = (-len(v)) % factor
        v = torch.nn.functional.pad(v, (0, pad)).view(-1, factor).mean(-1)
        return "".join(_shade(float(x), spark) for x in v)

    lines = [
        f"induction stripe k = q - {period - 1} (period {period}), queries {offset + period}..{n - 1}"
        + (f", {factor} per column (mean)" if factor > 1 else ""),
        f"stripe mean {float(stripe.mean()):.3f}, max elsewhere in the row: mean {float(rest.mean()):.3f}",
        f"stripe    {_BAR[charset][2]}{line(stripe)}",
        f"elsewhere {_BAR[charset][2]}{line(rest)}",
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
            lines.append(f"no query has an earlier copy {period} positions back: the tokens do not repeat with this period")
    return _done(lines + _entries("key: ", _key(spark), width), width)


def plot_score_map(result: Any, metric: str = "overall_score", width: int = 80, *, charset: Charset = "unicode") -> TextPlot:
    """Layer x head map of ``metric`` in characters; detected heads in brackets (3-character cells)
    where the width allows, otherwise one character per head and the detected heads listed below."""
    check_view_options(width, charset)
    matrix = result.score_matrix(metric)
    detected = set(result.induction_heads)
    n_layers, n_heads = result.n_layers, result.n_heads
    shades = _SHADES[charset]
    name_w = len(f"L{n_layers - 1}")
    lead = name_w + 2  # "L12 |"
    cell = 3 if lead + 3 * n_heads <= width else 1
    per_row = max(1, (width - lead) // cell)
    lines = [f"{metric} by layer (rows) x head (columns)" + ("" if cell == 3 else "; detected listed below")]
    absent = unmeasured = False
    for first in range(0, n_heads, per_row):
        heads = range(first, min(n_heads, first + per_row))
        if cell == 3:
            lines.append(" " * lead + "".join(f"{h:>2} " for h in heads))
        else:  # one character per head: head numbers and ticks above the block, so a column can be read
            lines += [f"heads {first}..{heads[-1]}:", *reversed(_ruler(first, heads[-1] + 1, 1, lead, width, charset))]
        for layer in range(n_layers):
            cells = []
            for h in heads:
                if not result.has_head(layer, h):
                    absent = True
                    cells.append(" - " if cell == 3 else "-")
                    continue
                c = _shade(float(matrix[layer][h]), shades)
                unmeasured |= c == "?"
                cells.append((f"[{c}]" if (layer, h) in detected else f" {c} ") if cell == 3 else c)
            lines.append(f"{f'L{layer}':<{name_w}} {_BAR[charset][2]}" + "".join(cells))
    if cell == 1 and detected:
        lines += _entries("detected: ", [_name(l, h) for l, h in sorted(detected)], width)
    key = _key(shades, unmeasured) + (["[x] detected"] if cell == 3 else [])
    lines += _entries("key: ", key + (["'-' no such head (no attention there)"] if absent else []), width)
    return _done(lines, width)


def _bar10(value: float) -> str:
    filled = 0 if math.isnan(value) else round(min(1.0, max(0.0, value)) * 10)
    return "#" * filled + "-" * (10 - filled)


def create_analysis_report(result: Any, detailed: bool = False, width: int = 80, *, top: int = 10,
                           charset: Charset = "ascii", decimals: int = 3) -> TextPlot:
    """The analysis report in the original format; ``detailed=True`` adds the per-metric table, the
    layer x head map, previous-token heads, the settings and the seed. ``decimals``: of the top-head
    scores (2 gives text that is identical across CPUs and BLAS builds, e.g. for checked notebooks)."""
    check_view_options(width, charset)
    check_int("top", top, 1)
    check_int("decimals", decimals, 0, 6)
    kind = result.settings.get("kind")
    retrieval = kind == "retrieval"
    title = {"retrieval": "RETRIEVAL HEAD ANALYSIS REPORT", "text": "INDUCTION ON TEXT REPORT"}.get(
        kind, "INDUCTION HEAD ANALYSIS REPORT")
    lines = [title, "=" * len(title), "Model Info:", f"model: {result.model_name}", f"n_layers: {result.n_layers}",
             f"n_heads: {result.n_heads}", "Detection Summary:", f"Threshold: {result.threshold:.2f}",
             f"Heads detected: {result.num_heads_detected}"]
    if retrieval:
        accuracy = result.settings.get("needle_accuracy", float("nan"))
        lines.append(f"Needle accuracy: {accuracy:.2f} (needle tokens the model reproduced)")
        if not accuracy >= 0.5:
            lines.append("warning: the model rarely repeats the needle, so few steps could show a copy; retrieval "
                         "scores are uninformative: use longer contexts or a longer needle")
    if kind == "text":
        st = result.settings
        lines.append(f"Scored queries: {st.get('scored_queries')} (tokens seen earlier in their document) of "
                     f"{st.get('tokens')} tokens in {st.get('documents')} documents; score = prefix matching")
    if result.induction_heads:
        lines += _entries("Retrieval heads: " if retrieval else "Induction heads: ",
                          [_name(l, h) for l, h in result.induction_heads], width)
    tops = result.get_top_heads(top)
    w = max(len(_name(s.layer, s.head)) for s in tops)
    lines.append("Top Heads by Score:")
    lines += [f"{_name(s.layer, s.head) + ':':<{w + 1}} {s.overall_score:.{decimals}f} [{_bar10(s.overall_score)}]"
              for s in tops]
    if detailed and retrieval:
        lines += ["", "Retrieval score (needle tokens copied / needle length) with its 95% CI over the runs:"]
        lines += [f"{_name(s.layer, s.head):<{w}}  {s.overall_score:.3f}  [{s.ci_low:.3f},{s.ci_high:.3f}]"
                  for s in tops]
    elif detailed:
        lines += ["", "Per-Head Metrics (top heads):"] + _metrics_table(result, tops, w)
    if detailed:
        lines += ["", "Layer x Head Map:"] + plot_score_map(result, width=width, charset=charset).splitlines()
    if detailed and not retrieval:
        prev = result.previous_token_heads(0.4)
        entries = [f"{_name(l, h)} {result.score(l, h).previous_token:.2f}" for l, h in prev[:8]]
        lines += ["", "Previous-Token Heads (>= 0.40):"] + (_entries("", entries, width) if entries else ["none"])
    if detailed:
        lines += ["", "Settings:"] + [f"{k}: {v}" for k, v in sorted(result.settings.items())]
        lines.append(f"Seed: {result.seed}")
    return _done(lines, width)


def _metrics_table(result: Any, tops: Sequence[Any], w: int) -> list[str]:
    """The detailed report's per-head table; head and CI columns padded to their widest entry (a
    negative CI bound is one character wider) so every column lines up under its heading."""
    causal = any(s.causal_effect is not None for s in result.head_scores)
    cis = [f"[{s.ci_low:.3f},{s.ci_high:.3f}]" for s in tops]
    ci_w = max(map(len, cis + ["95% CI"]))
    lines = [f"{'head':<{w}}  overall  {'95% CI':<{ci_w}}  prefix contrast copying prev   dup"
             + ("    ablation" if causal else "")]
    for s, ci in zip(tops, cis):
        dup = "  -  " if s.duplicate_token is None else f"{s.duplicate_token:.3f}"
        effect = "" if not causal else ("       -" if s.causal_effect is None else f"  {s.causal_effect:+.3f}")
        contrast = "  -  " if math.isnan(s.contrast) else f"{s.contrast:.3f}"  # no control on text
        lines.append(f"{_name(s.layer, s.head):<{w}}  {s.overall_score:.3f}    {ci:<{ci_w}}  {s.prefix_matching:.3f}  "
                     f"{contrast}    {s.copying:.3f}   {s.previous_token:.3f}  {dup}" + effect)
    return lines


def plot_circuit(circuit: Any, n: int = 10, width: int = 80, *, charset: Charset = "unicode") -> TextPlot:
    """The ``n`` strongest edges of a ``causal.CircuitResult``: earlier head -> induction head, with the
    drop of the induction head's prefix matching when the earlier head is ablated."""
    check_view_options(width, charset)
    edges = circuit.top(n)
    if not edges:
        raise InputError("the circuit has no edges (no earlier head was ablated)")
    full = _BAR[charset][0]
    src_w = max(len(_name(*src)) for src, _, _ in edges)
    dst_w = max(len(_name(*dst)) for _, dst, _ in edges)
    bar_w = max(5, width - src_w - dst_w - 22)
    peak = max(max(e[2] for e in edges), 1e-9)
    lines = ["previous-token -> induction circuit: prefix-matching drop when the earlier head is ablated"]
    lines += _entries("baseline: ", [f"{_name(l, h)} {v:.2f}" for (l, h), v in sorted(circuit.baseline.items())], width)
    for src, dst, drop in edges:
        bar = full * max(0, round(max(0.0, drop) / peak * bar_w))
        lines.append(f"{_name(*src):<{src_w}} -> {_name(*dst):<{dst_w}} {drop:+.3f} {bar}")
    return _done(lines, width)


def _wrap(lines: list[str], width: int) -> list[str]:
    """Break over-long lines at spaces (a settings value, a long model name) instead of cutting them;
    a word longer than the line is cut at the width."""
    out = []
    for line in lines:
        while len(line) > width:
            cut = line.rfind(" ", 3, width)  # after a continuation line's indent, or no progress
            cut = cut if cut > 2 else width
            out.append(line[:cut].rstrip())
            line = "  " + line[cut:].lstrip()
        out.append(line)
    return out
