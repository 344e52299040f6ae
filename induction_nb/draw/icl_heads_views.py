"""The figure of the induction-vs-function-vector protocol (an ``ICLHeads`` from ``icl_heads``; Yin &
Steinhardt, ICML 2025, arXiv 2502.14010; Crosbie & Shutova, NAACL Findings 2025): three panels, few-shot
accuracy and the token-loss ICL score against the share of heads removed (top induction heads, top FV
heads, the induction heads' edges knocked out, random heads: mean and range over seeds; the clean model
dashed), and every head's induction score against its FV score with both kinds' top heads marked. Reads
the result's public attributes only."""

from __future__ import annotations

from typing import Any

from .._validate import check_int
from ..errors import InputError
from .placement import label_points
from .style import BLUE, GREY, HIGHLIGHT, panel_axes, pyplot, shared_legend, style

__all__ = ["plot_icl_heads"]

_KINDS = (
    ("induction", HIGHLIGHT, "top induction heads", "o"),
    ("fv", BLUE, "top FV heads", "s"),
    ("knockout", "#7a0177", "induction edges knocked out", "^"),
    ("random", GREY, "random heads", "x"),
)


_OFFSET = {"induction": -0.09, "fv": -0.03, "knockout": 0.03, "random": 0.09}  # of a fraction: markers apart


def _series(result: Any, kind: str, value: str) -> tuple[list, list, list, list]:
    """Per fraction: x, the mean over conditions of ``value`` and its error bar: the range over the random
    sets, or one condition's 95% interval over prompts (accuracy; the ICL score has none)."""
    xs, ys, lo, hi = [], [], [], []
    for f in result.fractions:
        conditions = [c for c in result.condition(kind, f) if getattr(c, value) is not None]
        if not conditions:
            continue
        got = [getattr(c, value) for c in conditions]
        xs.append(100 * f * (1 + _OFFSET[kind]))
        ys.append(sum(got) / len(got))
        low, high = min(got), max(got)
        if len(conditions) == 1 and value == "accuracy":
            low, high = conditions[0].interval
        lo.append(max(0.0, ys[-1] - low))
        hi.append(max(0.0, high - ys[-1]))
    return xs, ys, lo, hi


def plot_icl_heads(result: Any, axes: Any = None, *, label_top: int = 3) -> Any:
    """Three panels (module docstring) side by side, into ``axes`` (three Axes) or a new figure 7.2 x 2.6
    inches. Few-shot accuracy is the mean over tasks (fraction of prompts, 0-1), its error bars the 95%
    interval over prompts for the top heads and the knockout, the range over the random sets for random
    heads; ICL scores in nats (late minus early loss on repeated random tokens; more negative = more
    in-context learning), error bars the range over the random sets. The kinds' markers sit slightly apart
    around each fraction. ``label_top``: heads of each kind labelled in the scatter.
    Raises ``InputError`` for anything but an ``icl_heads`` result. Returns the Figure.

    Args:
        result: an ``ICLHeads`` (``icl_heads(model)``), or any object with its public attributes
            (``conditions``, ``fv_result``, ``fractions``, ``induction``, ``condition(kind, fraction)``).
        axes: three matplotlib Axes, left to right: a sequence or an array of any shape (read in row order;
            Axes after the third are left alone); ``None`` (default): a new figure
            7.2 x 2.6 inches.
        label_top: how many heads of each kind (top induction, top FV) are marked and labelled
            ``L{layer}H{head}`` in the scatter (an integer >= 0; default 3).

    Returns:
        Figure: the figure of the three panels (the first Axes' figure): few-shot accuracy and the ICL score
            against the heads removed (% of all heads), the clean model dashed, one legend above both; every
            head's induction (prefix-matching) score against its FV score (change in probability).

    Raises:
        InputError: when ``result`` is not an ``icl_heads`` result, when ``axes`` holds fewer than three
            Axes, or when ``label_top`` is not an integer >= 0.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, icl_heads, plot_icl_heads
        >>> model = HandBuiltInduction()  # L1H0 is an induction head
        >>> scan = detect_induction_heads(model, sequence_length=32)
        >>> result = icl_heads(  # tiny settings: one head of the 8 removed per condition
        ...     model, "repetition", fractions=(0.125,), n_random=1, shots=2, n_prompts=2, verify_top=1,
        ...     batch_size=2, induction=scan,
        ... )
        >>> fig = plot_icl_heads(result)
        >>> [ax.get_ylabel() for ax in fig.axes]
        ['few-shot accuracy', 'ICL score (nats, repeated tokens)', 'FV score (P change)']
    """
    if not hasattr(result, "conditions") or not hasattr(result, "fv_result"):
        raise InputError(f"plot_icl_heads takes the result of icl_heads(model), got {type(result).__name__}")
    check_int("label_top", label_top, 0)
    if axes is not None:
        axes = panel_axes(axes, 3, "plot_icl_heads")
    plt = pyplot()
    with style():
        if axes is None:
            fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.6), layout="constrained")
        fig = axes[0].figure
        clean = result.condition("clean")[0]
        for ax, value, label, base in (
            (axes[0], "accuracy", "few-shot accuracy", clean.accuracy),
            (axes[1], "icl_repeated", "ICL score (nats, repeated tokens)", clean.icl_repeated),
        ):
            ax.axhline(base, color="black", linestyle="--", linewidth=0.8, label="clean model")
            for kind, color, name, marker in _KINDS:
                xs, ys, lo, hi = _series(result, kind, value)
                if xs:
                    ax.errorbar(
                        xs, ys, yerr=[lo, hi], color=color, marker=marker, markersize=4, linewidth=1, label=name
                    )
            ax.set_xlabel("heads removed (% of all heads)")
            ax.set_ylabel(label)
        _scatter(axes[2], result, label_top)
        shared_legend(*axes[:2])
    return fig


def _scatter(ax: Any, result: Any, label_top: int) -> None:
    ind, fv = result.induction, result.fv_result.scores
    layers = result.fv_result.layers or tuple(range(ind.shape[0]))
    ax.scatter(ind.flatten().tolist(), fv.flatten().tolist(), s=6, color=GREY, alpha=0.6, linewidths=0)
    marked = []
    for scores, color in ((ind, HIGHLIGHT), (fv, BLUE)):
        order = scores.nan_to_num(nan=-1e9).flatten().argsort(descending=True, stable=True)[:label_top].tolist()
        for i in order:
            r, h = divmod(i, ind.shape[1])
            ax.scatter([float(ind[r, h])], [float(fv[r, h])], s=14, color=color, zorder=3)
            marked.append(((float(ind[r, h]), float(fv[r, h])), f"L{layers[r]}H{h}"))
    label_points(ax, [p for p, _ in marked], [n for _, n in marked], fontsize=6)
    ax.set_xlabel("induction score (prefix matching)")
    ax.set_ylabel("FV score (P change)")
