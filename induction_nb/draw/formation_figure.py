"""The phase-change figure of a ``formation`` scan (Olsson et al. 2022, their figure of argument 1): every head's
induction score over training, the top heads coloured with their 95% intervals, and the ICL score beside it on
the same step axis, the phase-change window shaded in both. Reads the result's fields only (``steps``,
``scores``, ``intervals``, ``icl``, ``window``), so it draws any object that has them.
"""

from __future__ import annotations

from typing import Any

from .._validate import check_int
from ..errors import InputError
from .style import BLUE, GREY, HIGHLIGHT, panel_axes, pyplot, shared_legend, style

__all__ = ["plot_formation"]

_TOP_COLOURS = (HIGHLIGHT, BLUE, "#5d3a9b", "#1b7837", "#b2182b", "#8c510a")


def plot_formation(result: Any, axes: Any = None, *, top: int = 4) -> Any:
    """Two panels side by side, into ``axes`` (two Axes) or a new figure 6.8 x 2.8 inches: left, the induction
    (prefix-matching) score of every head against the training step (grey), the ``top`` heads at the last
    checkpoint coloured with their 95% intervals; right, the ICL score (nats, more negative: more in-context
    learning) with its interval. The rise window is shaded in both (darker where it is a phase change); the step
    axis is logarithmic where the checkpoints are log-spaced (step 0 drawn at 1). Raises ``InputError`` for
    anything but a ``formation`` result or fewer than two Axes. Returns the Figure.

    Args:
        result: a ``FormationResult`` (``formation(checkpoints)``), or any object with its fields (``steps``,
            ``scores``, ``intervals``, ``icl``, ``window``; also read: ``icl_low``, ``icl_high``, ``settings``,
            ``top_heads``).
        axes: two matplotlib Axes, left and right: a sequence or an array of any shape (read in row order, e.g.
            a ``(1, 2)`` grid of ``squeeze=False``; Axes after the second are left alone); ``None`` (default): a
            new figure 6.8 x 2.8 inches whose two panels share the step axis.
        top: how many heads are coloured, the best at the last checkpoint (``result.top_heads(top)``), an
            integer in [0, 6] (default 4).

    Returns:
        Figure: the figure of the two panels (the left Axes' figure), as above, one legend above them (the
            coloured heads ``L{layer}H{head}``, the ICL score, the rise window).

    Raises:
        InputError: when ``result`` is not a ``formation`` result, when ``top`` is not an integer in [0, 6], or
            when ``axes`` holds fewer than two Axes.

    Examples:
        >>> from induction_nb import formation, plot_formation, train_induction_model
        >>> run = train_induction_model(  # a tiny run: checkpoints at steps 0, 1 and 2
        ...     0, steps=2, every=1, batch_size=4, seq_len=24, vocab=32, n_layers=1, n_heads=2, d_model=16
        ... )
        >>> result = formation(run, sequence_length=24, cache_dir=False, batch_size=2, n_bootstrap=20)
        >>> result.steps
        (0, 1, 2)
        >>> fig = plot_formation(result)
        >>> [ax.get_ylabel() for ax in fig.axes]
        ['induction score (prefix matching)', 'ICL score (nats)']
    """
    if not all(hasattr(result, k) for k in ("steps", "scores", "intervals", "icl", "window")):
        raise InputError(f"plot_formation takes the result of formation(checkpoints), got {type(result).__name__}")
    check_int("top", top, 0, len(_TOP_COLOURS))
    if axes is not None:
        axes = panel_axes(axes, 2, "plot_formation")
    plt = pyplot()
    window = result.window
    log = bool(result.settings.get("log_steps"))
    x = [max(s, 1) for s in result.steps] if log else list(result.steps)
    with style():
        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(6.8, 2.8), layout="constrained", sharex=True)
        left, right = axes[0], axes[1]
        grid = result.scores["prefix_matching"]
        low, high = result.intervals["prefix_matching"]
        for l in range(grid.shape[1]):
            for h in range(grid.shape[2]):
                left.plot(x, grid[:, l, h].tolist(), color=GREY, linewidth=0.5, alpha=0.5)
        for (l, h), colour in zip(result.top_heads(top), _TOP_COLOURS):
            left.fill_between(x, low[:, l, h].tolist(), high[:, l, h].tolist(), color=colour, alpha=0.2, linewidth=0)
            left.plot(x, grid[:, l, h].tolist(), color=colour, linewidth=1.2, label=f"L{l}H{h}")
        left.set_ylabel("induction score (prefix matching)")
        left.set_ylim(0, 1)
        right.fill_between(x, result.icl_low.tolist(), result.icl_high.tolist(), color=BLUE, alpha=0.2, linewidth=0)
        right.plot(x, result.icl.tolist(), color=BLUE, linewidth=1.2, label="ICL score")
        right.set_ylabel("ICL score (nats)")
        for ax in (left, right):
            ax.set_xlabel("training step")
            if log:
                ax.set_xscale("log")
            if window is not None:
                span = (max(window.start, 1), window.end) if log else (window.start, window.end)
                name = "phase change" if window.abrupt else "rise (gradual)"
                ax.axvspan(*span, color=HIGHLIGHT, alpha=0.15 if window.abrupt else 0.06, linewidth=0, label=name)
        shared_legend(left, right)
    return left.figure
