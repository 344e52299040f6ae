"""Paper figures of the causal evidence (matplotlib, the house style of ``draw.style``): attribution
estimates against exact ablation, the loss by token position with the ICL score's tokens, the
previous-token -> induction circuit as a graph, and a training run's phase change. Each takes ``ax=None``
(a new figure in the house size) and returns the Axes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._validate import check_int
from ..errors import InputError
from .placement import label_points
from .style import BLUE, CMAP, GREY, HIGHLIGHT, ONE_COLUMN, TWO_COLUMN, axes_or_new, shared_legend, style

__all__ = ["plot_effects_scatter", "plot_loss_curve", "plot_circuit_graph", "plot_training_run"]


def plot_effects_scatter(estimate: Any, exact: Any = None, ax: Any = None, *, label_top: int = 5) -> Any:
    """Attribution estimate against exact ablation effect (nats), one point per head, with the identity
    line: ``estimate`` a ``HeadEffects`` from ``head_effects(..., estimator="attribution")`` (its
    ``verify_top`` heads, or every head of ``exact``, another ``HeadEffects`` or ``[layer, head]``).

    Args:
        estimate: the estimated effects: a ``HeadEffects`` (``head_effects(..., estimator="attribution",
            verify_top=k)``) or its ``[layer, head]`` tensor of effects (nats; then pass ``exact``).
        exact: the exact ablation effects to compare with: another ``HeadEffects`` (``estimator="exact"``) or a
            ``[layer, head]`` tensor (nats, NaN where a head was not measured); ``None`` (default): the
            estimate's own ``exact``, its ``verify_top`` heads.
        ax: the matplotlib Axes to draw into; ``None`` (default): a new figure one column wide (3.3 in).
        label_top: how many heads with the largest exact effect are labelled ``L{layer}H{head}`` (default 5).

    Returns:
        Axes: the Axes drawn into (``ax``, else the new figure's): one point per head with both numbers (x:
            exact effect, y: estimate, both nats), the dotted identity line ``estimate = exact``, a legend
            above the axes.

    Raises:
        InputError: when no head has both an estimate and an exact effect (pass ``verify_top=k`` to
            ``head_effects``, or ``exact=``), when ``estimate`` is a tensor and ``exact`` is not given, when
            the two differ in shape, or when ``label_top`` is not an integer >= 0.

    Examples:
        >>> from induction_nb import HandBuiltInduction, head_effects, plot_effects_scatter
        >>> model = HandBuiltInduction()  # L0H0 feeds the induction head L1H0
        >>> effects = head_effects(model, estimator="attribution", verify_top=3, sequence_length=32)
        >>> ax = plot_effects_scatter(effects)
        >>> len(ax.collections[0].get_offsets())  # the three heads also measured exactly
        3
    """
    check_int("label_top", label_top, 0)
    if exact is None and not hasattr(estimate, "exact"):
        raise InputError(
            "plot_effects_scatter: a tensor of estimates carries no exact effects; pass exact= (a HeadEffects "
            "or a [layer, head] tensor), or pass the HeadEffects of head_effects(..., verify_top=k)"
        )
    est = estimate.effects if hasattr(estimate, "effects") else torch.as_tensor(estimate)
    ref = estimate.exact if exact is None else (exact.effects if hasattr(exact, "effects") else torch.as_tensor(exact))
    if est.shape != ref.shape:
        raise InputError(
            f"the estimate ({tuple(est.shape)}) and exact effects ({tuple(ref.shape)}) must both be [layer, head] "
            "of the same model"
        )
    known = ~torch.isnan(ref) & ~torch.isnan(est)
    if not bool(known.any()):
        raise InputError("no head was measured exactly: pass verify_top=k to head_effects, or exact=")
    x, y = ref[known].float(), est[known].float()
    names = [f"L{l}H{h}" for l, h in known.nonzero().tolist()]
    ax = axes_or_new(ax, ONE_COLUMN)
    with style():
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], color=GREY, linewidth=0.6, linestyle=":", label="estimate = exact")
        ax.scatter(x.numpy(), y.numpy(), s=9, color=BLUE, label="head")
        ax.set_xlabel("exact ablation effect (nats)")
        ax.set_ylabel("attribution estimate (nats)")
        shared_legend(ax)
        top = x.argsort(descending=True, stable=True)[:label_top].tolist()
        label_points(ax, [(float(x[i]), float(y[i])) for i in top], [names[i] for i in top], fontsize=6)
    return ax


def plot_loss_curve(curves: Any, ax: Any = None, *, labels: Iterable[str] | None = None, smooth: int = 9) -> Any:
    """Loss (nats) by token position of one or more ``causal.loss_curve.LossCurve`` (e.g. intact and with the
    induction heads removed), each smoothed by a centred running mean of ``smooth`` tokens, with the
    ICL score's early and late tokens marked.

    Args:
        curves: one ``LossCurve`` (``loss_by_position``) or an iterable of them, drawn in order.
        ax: the matplotlib Axes to draw into; ``None`` (default): a new figure two columns wide (6.8 in).
        labels: one legend name per curve, in order; ``None`` (default): each curve's own description
            (``"intact"``, ``"without 2 heads (zero)"``...).
        smooth: the width of the running mean in tokens, a positive integer (default 9; 1: unsmoothed).

    Returns:
        Axes: the Axes drawn into (``ax``, else the new figure's): one line per curve (loss in nats against the
            token position, from 1), each named with its ICL score in the legend above the axes, and dotted
            vertical lines at the first curve's early and late tokens.

    Raises:
        InputError: when ``curves`` is empty, when ``labels`` does not hold one name per curve, or when
            ``smooth`` is not a positive integer.

    Examples:
        >>> from induction_nb import HandBuiltInduction, PatternGenerator, loss_by_position, plot_loss_curve
        >>> model = HandBuiltInduction()  # L1H0 is an induction head
        >>> documents = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=2).tokens.tolist()
        >>> intact = loss_by_position(model, documents, early=4, late=30)
        >>> without = loss_by_position(model, documents, ablate=[(1, 0)], early=4, late=30)
        >>> ax = plot_loss_curve([intact, without], labels=["intact", "without L1H0"], smooth=3)
        >>> [text.get_text() for text in ax.get_legend().texts]
        ['intact: ICL -0.99', 'without L1H0: ICL ...', "ICL score's early and late tokens"]
    """
    curves = [curves] if hasattr(curves, "loss") else list(curves)
    if not curves:
        raise InputError("plot_loss_curve needs at least one LossCurve")
    check_int("smooth", smooth, 1)
    names = list(labels) if labels is not None else [repr(c).split("(", 1)[1].split(",")[0] for c in curves]
    if len(names) != len(curves):
        raise InputError(f"labels has {len(names)} names for {len(curves)} curves; give one label per curve")
    ax = axes_or_new(ax, (TWO_COLUMN[0], ONE_COLUMN[1]))
    with style():
        for curve, name in zip(curves, names):
            y = curve.loss[1:].double()
            kernel = torch.ones(1, 1, smooth, dtype=torch.float64) / smooth
            padded = torch.nn.functional.pad(y[None, None], (smooth // 2, smooth - 1 - smooth // 2), mode="replicate")
            ax.plot(
                range(1, len(y) + 1),
                torch.nn.functional.conv1d(padded, kernel)[0, 0].numpy(),
                linewidth=1.0,
                label=f"{name}: ICL {curve.icl_score:+.2f}",
            )
        label = "ICL score's early and late tokens"
        for x in (curves[0].early, curves[0].late):
            ax.axvline(x, color=GREY, linewidth=0.6, linestyle=":", label=label)
            label = "_nolegend_"  # one entry for both lines
        ax.set_xlabel("token position")
        ax.set_ylabel("loss (nats)")
        shared_legend(ax)
    return ax


def plot_circuit_graph(circuit: Any, ax: Any = None, *, n: int = 12, n_heads: int | None = None) -> Any:
    """The circuit as a graph: heads placed by layer (y) and head index (x), an arrow from each earlier
    head to the induction head it feeds, width and colour by the prefix-matching drop.

    Args:
        circuit: a ``CircuitResult`` (``find_circuit``): its edges ``(earlier head, induction head,
            prefix-matching drop)``.
        ax: the matplotlib Axes to draw into; ``None`` (default): a new figure one column wide (3.3 in).
        n: how many of the strongest edges are drawn (``circuit.top(n)``, default 12); of those, only the ones
            with a positive drop.
        n_heads: heads per layer, for the extent of the head axis; ``None`` (default): up to the largest head
            index drawn.

    Returns:
        Axes: the Axes drawn into (``ax``, else the new figure's): one arrow per edge (width and colour by its
            drop relative to the strongest), fed induction heads highlighted and earlier heads blue, each
            labelled ``L{layer}H{head}``, layer 0 at the top, a legend above the axes.

    Raises:
        InputError: when ``n`` is not a positive integer, or when none of the ``n`` strongest edges has a
            positive effect.

    Examples:
        >>> from induction_nb import HandBuiltInduction, find_circuit, plot_circuit_graph
        >>> model = HandBuiltInduction()  # the previous-token head L0H0 feeds the induction head L1H0
        >>> circuit = find_circuit(model, sequence_length=32)
        >>> [(source, target) for source, target, _ in circuit.top(1)]
        [((0, 0), (1, 0))]
        >>> ax = plot_circuit_graph(circuit, n_heads=4)
        >>> sorted(text.get_text() for text in ax.texts if text.get_text())
        ['L0H0', 'L1H0']
    """
    edges = [e for e in circuit.top(check_int("n", n, 1)) if e[2] > 0]
    if not edges:
        raise InputError("the circuit has no edge with a positive effect to draw")
    ax = axes_or_new(ax, ONE_COLUMN)
    peak = max(e[2] for e in edges)
    nodes = {e[0] for e in edges} | {e[1] for e in edges}
    with style():
        import matplotlib

        cmap = matplotlib.colormaps[CMAP]
        for (sl, sh), (tl, th), drop in sorted(edges, key=lambda e: e[2]):
            ax.annotate(
                "",
                xy=(th, tl),
                xytext=(sh, sl),
                arrowprops=dict(
                    arrowstyle="-|>",
                    color=cmap(0.25 + 0.75 * drop / peak),
                    lw=0.5 + 2.5 * drop / peak,
                    shrinkA=5,
                    shrinkB=5,
                ),
            )
        targets = {e[1] for e in edges}
        for kind, label, colour in ((True, "induction head (fed)", HIGHLIGHT), (False, "earlier head", BLUE)):
            heads = sorted(n for n in nodes if (n in targets) == kind)
            if heads:
                ax.scatter([h for _, h in heads], [l for l, _ in heads], s=40, zorder=3, color=colour, label=label)
        layers = [l for l, _ in nodes]
        ax.set_ylim(max(layers) + 0.8, min(layers) - 0.8)
        ax.set_xlim(-0.8, (n_heads or max(h for _, h in nodes) + 1) - 0.2)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title("previous-token -> induction heads (arrow: prefix-matching drop)")
        shared_legend(ax)
        ordered = sorted(nodes)
        label_points(ax, [(h, l) for l, h in ordered], [f"L{l}H{h}" for l, h in ordered], marker_pt=3.5, fontsize=6)
    return ax


def plot_training_run(run: Any, ax: Any = None) -> Any:
    """The phase change of a ``train_induction_model`` run: loss on the repeated tokens (nats, left axis)
    and the best head's overall score (right axis, [0, 1]) against the training step, the first checkpoint
    with a detected head dotted, one legend above. Returns the left Axes (the right one is its twin).

    Args:
        run: a ``train_induction_model`` run (``TrainingRun``): its checkpoints' step, loss on the repeated
            tokens and best overall score, and ``phase_change_step`` (the first checkpoint with a detected head,
            or ``None``).
        ax: the matplotlib Axes to draw into (the loss axis); ``None`` (default): a new figure two columns wide
            (6.8 in).

    Returns:
        Axes: the left Axes (loss in nats against the training step); the right twin (best overall score,
            [0, 1]) is the other Axes of ``ax.figure``.

    Raises:
        InputError: when the run has no checkpoints.

    Examples:
        >>> from induction_nb import plot_training_run, train_induction_model
        >>> run = train_induction_model(  # a tiny run: checkpoints at steps 0, 1 and 2
        ...     0, steps=2, every=1, batch_size=4, seq_len=24, vocab=32, n_layers=1, n_heads=2, d_model=16
        ... )
        >>> ax = plot_training_run(run)
        >>> ax.get_ylabel(), len(ax.figure.axes)  # the loss axis and its twin
        ('loss (nats)', 2)
    """
    checkpoints = list(getattr(run, "checkpoints", ()))
    if not checkpoints:
        raise InputError("the training run has no checkpoints to plot")
    steps = [c.step for c in checkpoints]
    ax = axes_or_new(ax, TWO_COLUMN)
    with style():
        ax.plot(steps, [c.repeat_loss for c in checkpoints], color=BLUE, label="loss on repeated tokens")
        ax.set_xlabel("training step")
        ax.set_ylabel("loss (nats)")
        right = ax.twinx()
        right.spines["right"].set_visible(True)  # the house style hides it; this axis needs its line
        right.plot(steps, [c.best_overall for c in checkpoints], color=HIGHLIGHT, label="best induction score")
        right.set_ylabel("best overall score")
        right.set_ylim(0, 1)
        if run.phase_change_step is not None:
            ax.axvline(
                run.phase_change_step,
                color=GREY,
                linewidth=0.6,
                linestyle=":",
                label=f"first detected head (step {run.phase_change_step})",
            )
        shared_legend(ax, right)
    return ax
