"""Paper figures (matplotlib) of a scan and of single heads: score heatmaps, the metric scatter, a mosaic of
several models, one head's pattern, its stripe profile, heads side by side. (The causal evidence's figures
are ``draw.evidence_figures``.)

One house style (``style()``): the colour-blind-safe, perceptually uniform ``cividis`` map, DejaVu
Sans at paper sizes, figure sizes for one column (3.3 in) and two columns (6.8 in). Every plotting
function takes ``ax=None`` (a new figure in the house size) and returns the Axes (``plot_mosaic``:
the Figure). Legends sit above the axes, clear of data, labels and tick labels (``shared_legend``, also
for a notebook's own twin axes or panels); point labels do not overlap (``draw.placement``). ``save_figure``
writes PDF/SVG/PNG with no software version, date or random id in the bytes, so a figure is
byte-identical from run to run. matplotlib is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from .._validate import check_int, check_period, square_attention
from ..errors import InputError
from ..metrics import REGISTRY, block_max, label, stripe_profile
from .labels import shorten
from .placement import label_points, legend_above
from .style import (
    BLUE,
    CMAP,
    GREY,
    HIGHLIGHT,
    ONE_COLUMN,
    TWO_COLUMN,
    axes_or_new,
    pyplot,
    save_figure,
    shared_legend,
    style,
)

__all__ = [
    "plot_score_heatmap",
    "plot_attention_heatmap",
    "plot_metric_scatter",
    "plot_stripe_profile",
    "plot_mosaic",
    "compare_heads",
    "save_figure",
    "style",
    "shared_legend",
    "ONE_COLUMN",
    "TWO_COLUMN",
    "CMAP",
]


def _matrix(result: Any, metric: str) -> torch.Tensor:
    if not hasattr(result, "score_matrix"):
        raise InputError(
            f"a figure of heads needs a scan result (detect_induction_heads, ...), got {type(result).__name__}"
        )
    if not result.head_scores:
        raise InputError("the result is empty (no head scores): run detect() first")
    values = result.score_matrix(metric)
    return torch.tensor([[float("nan") if v is None else float(v) for v in row] for row in values])


def plot_score_heatmap(
    result: Any,
    metric: str = "overall_score",
    ax: Any = None,
    *,
    outline_detected: bool = True,
    colorbar: bool = True,
    title: str | None = None,
    legend: bool = True,
    vmax: float | None = None,
) -> Any:
    """Layer (rows) x head (columns) map of ``metric`` in [0, 1]; detected heads outlined, the outline named
    by a legend above the map (``legend=False``: none, e.g. when the caller draws one for several maps). A
    signed metric (the ablation effect) gets a diverging map centred on 0, to ``vmax`` (default: its
    largest ``|value|``).

    Args:
        result: a scan result with at least one head score (``detect_induction_heads``, ``detect_on_text``,
            ``retrieval_heads``, ``load_result``...: a ``ScanResult``).
        metric: the metric to map, by name (default ``"overall_score"``): any metric the result measured
            (``result.metrics``, e.g. ``"prefix_matching"``, ``"previous_token"``, ``"causal_effect"``). A share
            in [0, 1] is drawn with ``cividis`` from 0 to 1; a signed metric on the diverging map.
        ax: the matplotlib Axes to draw into; ``None`` (default): a new figure one column wide (3.3 in).
        outline_detected: outline the cells of the detected heads (``result.induction_heads``: overall score at
            or above the result's threshold); default ``True``.
        colorbar: add a colour bar beside the map, labelled with the metric and its unit; default ``True``.
        title: the title; ``None`` (default): ``"{model name}: {the metric's label}"``.
        legend: name the outline in a legend above the map (drawn only where a head is detected and outlined);
            ``False``: none.
        vmax: the top of a signed metric's diverging scale (``-vmax`` to ``vmax``); ``None`` (default): its
            largest ``|value|``. Not used for a metric in [0, 1].

    Returns:
        Axes: the Axes drawn into (``ax``, else the new figure's; the Figure is ``ax.figure``): one cell per head,
            layers as rows and heads as columns, blank (NaN) where the model has no such head or no value.

    Raises:
        InputError: when ``result`` is not a scan result or holds no head scores, when it did not measure
            ``metric`` (the message lists the metrics it has), or when a signed ``metric`` has no value for any
            head.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, plot_score_heatmap
        >>> model = HandBuiltInduction()  # 2 layers x 4 heads; L1H0 is an induction head
        >>> result = detect_induction_heads(model, sequence_length=32)
        >>> ax = plot_score_heatmap(result)
        >>> ax.get_title()
        'HandBuiltInduction: overall score'
        >>> len(ax.patches)  # one outlined cell: the detected head L1H0
        1
    """
    M = _matrix(result, metric)
    ax = axes_or_new(ax, ONE_COLUMN)
    low, high, cmap = 0.0, 1.0, CMAP
    if REGISTRY[metric].signed:
        if torch.isnan(M).all():
            raise InputError(f"this result has no value of {metric!r} for any head")
        high = vmax if vmax is not None else float(torch.nan_to_num(M, nan=0.0).abs().max())
        high = max(1e-6, high)
        low, cmap = -high, "PuOr_r"
    with style():
        image = ax.imshow(M.numpy(), cmap=cmap, vmin=low, vmax=high, aspect="auto", interpolation="nearest")
        if outline_detected:
            from matplotlib.patches import Rectangle

            for layer, head in result.induction_heads:
                ax.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor=HIGHLIGHT, linewidth=1.2))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        _ticks(ax.set_xticks, result.n_heads)
        _ticks(ax.set_yticks, result.n_layers)
        ax.set_title(title if title is not None else f"{result.model_name}: {label(metric)}")
        if colorbar:
            ax.figure.colorbar(image, ax=ax, label=_axis_label(metric), shrink=0.9)
        if outline_detected and legend and result.induction_heads:
            legend_above([ax], [_outline()], [_detected(result)], frameon=False)
    return ax


def _outline() -> Any:  # a legend proxy for the outlines around detected heads' cells
    from matplotlib.patches import Patch

    return Patch(fill=False, edgecolor=HIGHLIGHT, linewidth=1.2)


def _detected(result: Any) -> str:
    return f"detected (overall >= {result.threshold:.2f})"


def _ticks(setter: Any, n: int) -> None:
    step = max(1, math.ceil(n / 12))
    setter(range(0, n, step))


def plot_attention_heatmap(
    attention: Any,
    tokens: Sequence[Any] | None = None,
    ax: Any = None,
    *,
    period: int | None = None,
    window: tuple[int, int] | None = None,
    highlight_stripe: bool = True,
    title: str | None = None,
    max_cells: int = 512,
    offset: int = 0,
) -> Any:
    """One head's pattern ``[seq, seq]`` (rows: queries, columns: keys), token labels when given and the
    window is small enough to read them, the induction stripe ``k = q - period + 1`` outlined over the
    repeat's queries ``q >= offset + period`` (``offset``: tokens before the pattern, 1 with BOS; drawn as
    a line over long windows). A window longer than ``max_cells`` positions is pooled by the block maximum
    (a 4k-token pattern as 512 x 512 cells, a one-position stripe still visible); the title says so.

    Args:
        attention: one head's pattern ``[seq, seq]`` (``seq >= 2``; rows: queries, columns: keys, weights in
            [0, 1]): a tensor or anything ``torch.as_tensor`` reads, e.g. one sequence of ``capture_head``.
        tokens: one label per position (token ids or strings, each shortened to 10 characters), shown on both
            axes where the window spans at most 40 positions; ``None`` (default): position numbers only.
        ax: the matplotlib Axes to draw into; ``None`` (default): a new square figure one column wide (3.3 in).
        period: the repeat's period in tokens, in [1, seq - 1]: outlines the induction stripe
            ``k = q - period + 1``, named in a legend above the cells; ``None`` (default): no stripe.
        window: ``(start, stop)``, the positions shown (``start`` included, ``stop`` not); ``None`` (default): all.
        highlight_stripe: draw the stripe where ``period`` is given; default ``True``.
        title: the title; ``None`` (default): none, or ``"attention"`` where the window is pooled (the title
            then ends with ``" (block max over f x f)"``).
        max_cells: the most cells drawn along each side (default 512); a longer window is pooled by the block
            maximum over ``ceil(length / max_cells)`` positions.
        offset: tokens before the pattern (default 0; 1 with a BOS token): the stripe covers the queries
            ``q >= offset + period``.

    Returns:
        Axes: the Axes drawn into (``ax``, else the new figure's), holding the heatmap; its figure also holds the
            colour bar ("attention", or "attention (block max)" where pooled).

    Raises:
        InputError: when ``attention`` is not a square ``[seq, seq]`` matrix or covers fewer than 2 positions,
            when ``tokens`` does not have ``seq`` entries, when ``window`` does not satisfy
            ``0 <= start < stop <= seq``, when ``period`` is not an integer in [1, seq - 1], ``offset`` not
            one in [0, seq - 1], or ``max_cells`` not a positive integer.

    Examples:
        >>> from induction_nb import HandBuiltInduction, PatternGenerator, capture_head, plot_attention_heatmap
        >>> model = HandBuiltInduction()  # L1H0 is an induction head
        >>> probe = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=1)  # 16 tokens, twice
        >>> probe.period
        16
        >>> attention = capture_head(model, probe.tokens, 1, 0)[0]  # L1H0's pattern [32, 32]
        >>> ax = plot_attention_heatmap(attention, period=probe.period, title="L1H0")
        >>> ax.get_legend_handles_labels()[1]
        ['induction stripe (k = q - 15)']
    """
    A = square_attention(attention)
    n = A.shape[0]
    if tokens is not None and len(tokens) != n:
        raise InputError(f"tokens has {len(tokens)} entries but the pattern covers {n} positions")
    start, stop = window if window is not None else (0, n)
    if not 0 <= start < stop <= n:
        raise InputError(f"window ({start}, {stop}) must satisfy 0 <= start < stop <= {n}")
    if period is not None:
        check_int("period", period, 1, n - 1)
    check_int("offset", offset, 0, n - 1)
    check_int("max_cells", max_cells, 1)
    factor = max(1, math.ceil((stop - start) / max_cells))
    ax = axes_or_new(ax, (ONE_COLUMN[0], ONE_COLUMN[0]))
    with style():
        shown = block_max(A[start:stop, start:stop], factor)
        end = start + shown.shape[0] * factor
        extent = (start - 0.5, end - 0.5, end - 0.5, start - 0.5)
        image = ax.imshow(shown.numpy(), cmap=CMAP, vmin=0, vmax=1, extent=extent, interpolation="nearest")
        if period is not None and highlight_stripe:
            _stripe(ax, start, stop, period, offset)
        if tokens is not None and stop - start <= 40:
            labels = [_token_label(t) for t in list(tokens)[start:stop]]
            ax.set_xticks(range(start, stop), labels, rotation=90)
            ax.set_yticks(range(start, stop), labels)
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
        pooled = f" (block max over {factor} x {factor})" if factor > 1 else ""
        if title or pooled:
            ax.set_title((title or "attention") + pooled)
        ax.figure.colorbar(image, ax=ax, label="attention" + (" (block max)" if factor > 1 else ""), shrink=0.8)
        if period is not None and highlight_stripe and ax.get_legend_handles_labels()[0]:
            shared_legend(ax)  # above the cells: inside, it would hide part of the pattern
    return ax


def _stripe(ax: Any, start: int, stop: int, period: int, offset: int = 0) -> None:
    """The induction stripe ``k = q - period + 1`` of the repeat's queries inside the window: outlined
    cells, or a line when the window is too long for cells to read."""
    q = [q for q in range(max(start, offset + period), stop) if start <= q - period + 1 < stop]
    if not q:
        return
    k = [x - period + 1 for x in q]
    label = f"induction stripe (k = q - {period - 1})"
    if stop - start <= 256:
        ax.scatter(
            k,
            q,
            s=max(2.0, 600.0 / (stop - start)),
            marker="s",
            facecolors="none",
            edgecolors=HIGHLIGHT,
            linewidths=0.6,
            label=label,
        )
    else:
        ax.plot([k[0], k[-1]], [q[0], q[-1]], color=HIGHLIGHT, linewidth=0.6, linestyle=(0, (2, 3)), label=label)


def _token_label(token: Any) -> str:
    return shorten(token, 10).replace("$", r"\$")  # a $ would start mathtext


def plot_metric_scatter(
    result: Any, x: str = "prefix_matching", y: str = "copying", ax: Any = None, *, label_top: int = 5
) -> Any:
    """Every head as a point (``x`` against ``y``, any two metrics of the result), detected heads
    highlighted, threshold lines on the axes of metrics the threshold is read against, the ``label_top``
    best heads by overall score labelled. Shares run from 0 to 1; a signed metric's axis spans its values.

    Args:
        result: a scan result with at least one head score (``detect_induction_heads``, ``detect_on_text``,
            ``load_result``...).
        x: the metric on the horizontal axis, by name (default ``"prefix_matching"``); any metric the result
            measured (``result.metrics``).
        y: the metric on the vertical axis (default ``"copying"``).
        ax: the matplotlib Axes to draw into; ``None`` (default): a new figure one column wide (3.3 in).
        label_top: how many of the best heads by overall score are labelled ``L{layer}H{head}`` (default 5;
            0: none).

    Returns:
        Axes: the Axes drawn into (``ax``, else the new figure's): other heads grey, detected heads highlighted,
            dashed threshold lines, a legend above the axes.

    Raises:
        InputError: when ``result`` is not a scan result or holds no head scores, when it did not measure ``x``
            or ``y``, or when ``label_top`` is negative.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, plot_metric_scatter
        >>> model = HandBuiltInduction()  # L1H0 is an induction head
        >>> result = detect_induction_heads(model, sequence_length=32)
        >>> ax = plot_metric_scatter(result)
        >>> ax.get_xlabel(), ax.get_ylabel()
        ('prefix matching', 'copying')
        >>> "L1H0" in [text.get_text() for text in ax.texts]  # the best head, labelled
        True
    """
    X, Y = _matrix(result, x).flatten(), _matrix(result, y).flatten()
    detected = torch.zeros_like(X, dtype=torch.bool)
    for layer, head in result.induction_heads:
        detected[layer * result.n_heads + head] = True
    ax = axes_or_new(ax, ONE_COLUMN)
    with style():
        ax.scatter(
            X[~detected].numpy(), Y[~detected].numpy(), s=8, color=GREY, alpha=0.6, linewidths=0, label="other heads"
        )
        ax.scatter(X[detected].numpy(), Y[detected].numpy(), s=14, color=HIGHLIGHT, label=_detected(result))
        lines = [
            line(result.threshold, color="black", linewidth=0.6, linestyle="--", label="_nolegend_")
            for metric, line in ((x, ax.axvline), (y, ax.axhline))
            if REGISTRY[metric].threshold_line
        ]
        if lines:
            lines[0].set_label(f"threshold {result.threshold:.2f}")  # one entry for both lines
        for metric, values, limit in ((x, X, ax.set_xlim), (y, Y, ax.set_ylim)):
            limit(*_axis_range(metric, values))
        ax.set_xlabel(_axis_label(x))
        ax.set_ylabel(_axis_label(y))
        shared_legend(ax)  # before the labels: it changes the axes' height, and so where the points lie
        top = result.get_top_heads(label_top)
        label_points(
            ax,
            [(s.values[x], s.values[y]) for s in top],
            [f"L{s.layer}H{s.head}" for s in top],
            avoid=lines,
            fontsize=6,
        )
    return ax


def _axis_range(metric: str, values: torch.Tensor) -> tuple[float, float]:
    if not REGISTRY[metric].signed:
        return -0.02, 1.02
    finite = values[torch.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (-1.0, 1.0)
    pad = max(1e-6, 0.05 * (hi - lo))
    return min(lo, 0.0) - pad, max(hi, 0.0) + pad


def _axis_label(metric: str) -> str:
    unit = REGISTRY[metric].unit
    return label(metric) + (f" ({unit})" if unit else "")


def plot_stripe_profile(
    attention: Any, period: int, ax: Any = None, *, offset: int = 0, title: str | None = None
) -> Any:
    """Attention on the induction stripe ``A[q, q - period + 1]`` across the repeat's query positions
    (``q >= offset + period``; ``offset`` 1 with a BOS token), against the largest and the mean weight
    elsewhere in each row.

    Args:
        attention: one head's pattern ``[seq, seq]`` (``seq >= 2``; rows: queries, columns: keys), a tensor or
            anything ``torch.as_tensor`` reads, e.g. one sequence of ``capture_head``.
        period: the repeat's period in tokens, in [1, seq - offset - 1] (at least one repeated query).
        ax: the matplotlib Axes to draw into; ``None`` (default): a new figure two columns wide (6.8 in).
        offset: tokens before the pattern, in [0, seq - 2] (default 0; 1 with a BOS token).
        title: the title; ``None`` (default): none.

    Returns:
        Axes: the Axes drawn into (``ax``, else the new figure's): three lines against the query position,
            attention in [0, 1] (on the stripe, the largest weight elsewhere, the mean weight elsewhere, dotted),
            named in a legend above the axes.

    Raises:
        InputError: when ``attention`` is not a square ``[seq, seq]`` matrix or covers fewer than 2 positions, or
            when ``offset`` or ``period`` is out of its range.

    Examples:
        >>> from induction_nb import HandBuiltInduction, PatternGenerator, capture_head, plot_stripe_profile
        >>> model = HandBuiltInduction()  # L1H0 is an induction head
        >>> probe = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=1)  # 16 tokens, twice
        >>> attention = capture_head(model, probe.tokens, 1, 0)[0]  # L1H0's pattern [32, 32]
        >>> ax = plot_stripe_profile(attention, period=probe.period)
        >>> [line.get_label() for line in ax.lines]
        ['on the stripe', 'largest elsewhere', 'mean elsewhere']
        >>> len(ax.lines[0].get_xdata())  # the queries of the repeat: positions 16 to 31
        16
    """
    A = square_attention(attention)
    check_period(period, offset, A.shape[0])
    q, stripe, rest_max, rest_mean = stripe_profile(A, period, offset)
    ax = axes_or_new(ax, (TWO_COLUMN[0], ONE_COLUMN[1]))
    with style():
        ax.plot(q.numpy(), stripe.numpy(), color=HIGHLIGHT, linewidth=1.2, label="on the stripe")
        ax.plot(q.numpy(), rest_max.numpy(), color=BLUE, linewidth=0.9, label="largest elsewhere")
        ax.plot(q.numpy(), rest_mean.numpy(), color=GREY, linewidth=0.9, linestyle=":", label="mean elsewhere")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("query position")
        ax.set_ylabel("attention")
        if title:
            ax.set_title(title)
        shared_legend(ax)  # inside, any place can hide a line: the three range over the whole height
    return ax


def plot_mosaic(
    results: Mapping[str, Any] | Iterable[Any],
    metric: str = "overall_score",
    *,
    ncols: int | None = None,
    width: float = TWO_COLUMN[0],
) -> Any:
    """Score heatmaps of several models side by side with one colour bar (after Neel Nanda's induction
    mosaic). ``results``: ``{title: result}`` or a list of results (titled by model name); a signed metric
    shares one diverging scale, to the largest ``|value|`` of all of them.

    Args:
        results: the scan results to map, as ``{title: result}`` or a list of results (each titled by its
            ``model_name``), drawn in order, row by row.
        metric: the metric to map, by name (default ``"overall_score"``), as in ``plot_score_heatmap``; every
            result must have it.
        ncols: maps per row; ``None`` (default): as many as results, at most 4.
        width: the figure's width in inches (default 6.8, two columns); its height is 2.2 inches per row.

    Returns:
        Figure: one heatmap per result (layer x head, detected heads outlined), empty grid cells hidden, one
            colour bar for all, and where any head is detected one legend entry for the outline above the maps
            (with the threshold where all results share one).

    Raises:
        InputError: when ``results`` is empty, when a result is not a scan result, holds no head scores or
            did not measure ``metric``, or when ``ncols`` is not a positive integer.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, plot_mosaic
        >>> results = {  # the hand-built model with two seeds of its random heads
        ...     f"seed {seed}": detect_induction_heads(HandBuiltInduction(seed=seed), sequence_length=32)
        ...     for seed in (0, 1)
        ... }
        >>> fig = plot_mosaic(results)
        >>> [ax.get_title() for ax in fig.axes]  # two maps and their shared colour bar
        ['seed 0', 'seed 1', '']
    """
    items = list(results.items()) if isinstance(results, Mapping) else [(r.model_name, r) for r in results]
    if not items:
        raise InputError("plot_mosaic needs at least one result (got zero models)")
    ncols = min(4, len(items)) if ncols is None else check_int("ncols", ncols, 1)
    nrows = math.ceil(len(items) / ncols)
    plt = pyplot()
    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, 2.2 * nrows), layout="constrained", squeeze=False)
        image = None
        vmax = max(float(torch.nan_to_num(_matrix(r, metric), nan=0.0).abs().max()) for _, r in items)
        for ax, (name, result) in zip(axes.flat, items):
            plot_score_heatmap(result, metric, ax=ax, colorbar=False, title=name, legend=False, vmax=vmax)
            image = ax.images[0]
        for ax in list(axes.flat)[len(items) :]:
            ax.set_visible(False)
        fig.colorbar(image, ax=axes, label=_axis_label(metric), shrink=0.8)
        detected = [r for _, r in items if r.induction_heads]
        if detected:  # one entry for all maps, in its own row above them (constrained layout keeps it clear)
            name = _detected(detected[0]) if len({r.threshold for r in detected}) == 1 else "detected"
            fig.legend([_outline()], [name], loc="outside upper center", frameon=False)
    return fig


def compare_heads(panels: Sequence[tuple], *, pattern: str = "repeated", width: float = TWO_COLUMN[0]) -> Any:
    """Heads' patterns side by side on the same input: ``panels`` of ``(HeadScore, attention [seq, seq],
    tokens or None, period or None[, offset])``, one heatmap each (token labels up to 20 positions), titled
    with the head's name and the two scores that tell an induction head from a previous-token head, where
    its scan measured them (its overall score otherwise). Returns the Figure (a pyplot figure, like the
    other figures made without ``ax``: Jupyter shows it inline).

    Args:
        panels: one tuple per head, ``(score, attention, tokens, period)`` or ``(score, attention, tokens,
            period, offset)``: ``score`` the head's ``HeadScore`` (``result.score(layer, head)``: it names the
            panel), ``attention`` its pattern ``[seq, seq]``, ``tokens`` one label per position or ``None``,
            ``period`` the repeat's period (its stripe outlined) or ``None``, ``offset`` the tokens before the
            pattern (default 0; 1 with a BOS token). Drawn left to right.
        pattern: the probe's name, said in the figure's title ``"attention on the same '{pattern}' sequence"``
            (default ``"repeated"``).
        width: the figure's width in inches (default 6.8, two columns); its height is ``width / len(panels)``
            plus 0.9 inches.

    Returns:
        Figure: one ``plot_attention_heatmap`` panel per head (with its colour bar), each titled e.g.
            ``"L1H0: prefix 0.97, prev 0.08"``.

    Raises:
        InputError: when ``panels`` is empty, or when a panel's pattern, tokens or period are refused as in
            ``plot_attention_heatmap`` (not square, a wrong number of tokens, a period out of range).

    Examples:
        >>> from induction_nb import HandBuiltInduction, PatternGenerator, capture_head, compare_heads
        >>> from induction_nb import detect_induction_heads
        >>> model = HandBuiltInduction()  # L0H0 is a previous-token head, L1H0 an induction head
        >>> result = detect_induction_heads(model, sequence_length=32)
        >>> probe = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=1)
        >>> panels = [
        ...     (result.score(layer, 0), capture_head(model, probe.tokens, layer, 0)[0], None, probe.period)
        ...     for layer in (1, 0)
        ... ]
        >>> fig = compare_heads(panels)
        >>> [ax.get_title() for ax in fig.axes if ax.get_title()]
        ['L1H0: prefix 0.97, prev 0.08', 'L0H0: prefix 0.00, prev 1.00']
    """
    if not panels:
        raise InputError("compare_heads needs at least one (score, attention, tokens, period) panel")
    with style():
        fig = pyplot().figure(figsize=(width, width / len(panels) + 0.9), layout="constrained")
        for ax, (score, attention, tokens, period, *offset) in zip(
            fig.subplots(1, len(panels), squeeze=False)[0], panels
        ):
            title = f"{score.name}: " + _title_scores(score)
            readable = tokens is not None and len(tokens) <= 20  # a half-width panel fits ~20 token labels
            plot_attention_heatmap(
                attention,
                tokens if readable else None,
                ax,
                period=period,
                title=title,
                offset=offset[0] if offset else 0,
            )
        fig.suptitle(f"attention on the same '{pattern}' sequence", fontsize=9)
    return fig


def _title_scores(score: Any) -> str:
    shown = [m for m in ("prefix_matching", "previous_token") if m in score.values] or ["overall_score"]
    return ", ".join(f"{REGISTRY[m].short} {REGISTRY[m].format(score.values[m], 2)}" for m in shown)
