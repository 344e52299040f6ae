"""Views of the weights' evidence (``analysis.weights_evidence.WeightEvidence``; Elhage et al. 2021, Olsson et
al. 2022): ``text_weight_evidence``, a terminal table of the top heads by OV copying and QK matching and of
the top induction heads' K-composing earlier heads; ``plot_k_composition``, a matplotlib heatmap of a
composition matrix (later head x earlier head). Pure drawing: the evidence is read through its public
attributes (``heads``, ``ov_copying``, ``qk_matching``, ``qk_source``, ``composition(kind)``, ``composing``,
``baseline``, ``notes``); nothing here runs a model.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._validate import check_int
from ..errors import InputError
from .style import CMAP, HIGHLIGHT, ONE_COLUMN, axes_or_new, style
from .text_kit import BAR, Charset, TextPlot, check_view_options, finish, head_name, wrap

__all__ = ["text_weight_evidence", "plot_k_composition", "induction_ranking"]

_NAMES = {"k": "K-composition", "q": "Q-composition", "v": "V-composition"}


def _check(evidence: Any) -> None:
    if not all(hasattr(evidence, a) for a in ("heads", "ov_copying", "qk_matching", "composition", "baseline")):
        raise InputError(f"expected the result of weight_evidence(model), got {type(evidence).__name__}")


def induction_ranking(evidence: Any, by: str = "matching") -> list[tuple[tuple[int, int], float]]:
    """Heads ranked as induction heads by their weights, highest first: ``by="matching"``, their QK matching
    score (on SmolLM2-135M it puts 4 of the 5 behaviourally detected heads in its top 8, whose direct-path OV
    copying is low: 0.27 to 0.59, one negative); ``by="both"``, the smaller of OV copying and QK matching (an
    induction head both matches and copies). Heads without the score(s) are left out."""
    _check(evidence)
    if by not in ("matching", "both"):
        raise InputError(f"by must be 'matching' or 'both', got {by!r}")
    ranked = []
    for head, match in evidence.qk_matching.items():
        value = min(evidence.ov_copying.get(head, float("nan")), match) if by == "both" else match
        if not math.isnan(value) and not math.isnan(match):
            ranked.append((head, value))
    return sorted(ranked, key=lambda e: -e[1])


def _bar(value: float, width: int, charset: str) -> str:
    return BAR[charset][0] * max(0, round(max(0.0, value) * width))


def _scores(title: str, top: list, width: int, charset: str, source: dict | None = None) -> list[str]:
    lines = [title]
    if not top:
        return lines + ["  (no head has a score)"]
    bar_w = max(5, width - 30)
    for head, value in top:
        via = f" via {head_name(*source[head])}" if source and head in source else ""
        lines.append(f"  {head_name(*head):<7} {value:+.3f}{via:<10} {_bar(value, bar_w, charset)}")
    return lines


def text_weight_evidence(
    evidence: Any, top: int = 10, width: int = 80, *, n_sources: int = 3, charset: Charset = "unicode"
) -> TextPlot:
    """The weights' evidence as text: the ``top`` heads by OV copying and by QK matching (scores in [-1, 1],
    bars for the positive part), then the ``top`` induction heads (``induction_ranking``: by QK matching, their
    OV copying beside it) with their ``n_sources`` strongest K-composing earlier heads (score, and score / the
    random baseline), then what the scores leave out for this model. Raises ``InputError`` for anything but a
    ``WeightEvidence``.

    Pure drawing: the evidence (``weight_evidence``; Elhage et al. 2021, Olsson et al. 2022) is read through
    its public attributes; nothing here runs a model. A head that writes nothing has no OV copying (``-``).

    Args:
        evidence: a ``WeightEvidence``, from ``weight_evidence(model)``.
        top: how many heads each list shows, best first (default 10).
        width: the widest line, in characters (at least 40; default 80); longer lines are wrapped.
        n_sources: how many K-composing earlier heads to name per induction head (default 3).
        charset: ``"unicode"`` (default) or ``"ascii"`` (plain ASCII, for logs and old terminals).

    Returns:
        TextPlot: a header (heads, layers, tokens, the random K-composition baseline and its sd), the OV
            copying list, the QK matching list (each head ``via`` the earlier head it is matched through),
            the induction heads with their K-composing sources (``L0H0 0.158 (2.1x)``: score, and score / the
            random baseline) and the notes (``left out / folded``); no line is wider than ``width``.

    Raises:
        InputError: when ``evidence`` is not a ``WeightEvidence``, ``top`` or ``n_sources`` is not a positive
            integer, ``width`` is not an integer >= 40 or ``charset`` is neither ``"unicode"`` nor
            ``"ascii"``.

    Examples:
        >>> from induction_nb import HandBuiltInduction, text_weight_evidence, weight_evidence
        >>> evidence = weight_evidence(HandBuiltInduction(), compositions="k", n_baseline=8)  # no forward pass
        >>> print(text_weight_evidence(evidence, top=1))  # L1H0 copies, and matches through L0H0
        the weights' evidence (no forward pass): 8 heads in 2 layers, 40 tokens; random
          K-composition baseline 0.0... (sd 0.0...)
        <BLANKLINE>
        OV copying: Re(sum eigenvalues) / sum |eigenvalues| of W_E W_OV W_U (1: copies)
          L1H0    +1.000           ██████████...
        <BLANKLINE>
        QK matching: the same score of W_E W_QK (W_E W_OV of its top K-composing
          earlier head)^T
          L1H0    +1.000 via L0H0  ██████████...
        <BLANKLINE>
        induction heads by QK matching (and their OV copying) <- top K-composing
          earlier heads (x baseline):
          L1H0    QK +1.000 OV +1.000 <- L0H0 0.1... (...x)
        <BLANKLINE>
        left out / folded:
        ...
    """
    _check(evidence)
    check_view_options(width, charset)
    check_int("top", top, minimum=1)
    check_int("n_sources", n_sources, minimum=1)
    n_layers = len({l for l, _ in evidence.heads})
    lines = [
        f"the weights' evidence (no forward pass): {len(evidence.heads)} heads in {n_layers} layers, "
        f"{len(evidence.tokens)} tokens; random K-composition baseline {evidence.baseline:.3f} "
        f"(sd {evidence.baseline_std:.3f})",
        "",
    ]
    lines += _scores(
        "OV copying: Re(sum eigenvalues) / sum |eigenvalues| of W_E W_OV W_U (1: copies)",
        evidence.top_copying(top),
        width,
        charset,
    )
    lines.append("")
    lines += _scores(
        "QK matching: the same score of W_E W_QK (W_E W_OV of its top K-composing earlier head)^T",
        evidence.top_matching(top),
        width,
        charset,
        evidence.qk_source,
    )
    lines += [
        "",
        "induction heads by QK matching (and their OV copying) <- top K-composing earlier heads (x baseline):",
    ]
    ranked = induction_ranking(evidence)[:top]
    for head, value in ranked:
        sources = [
            f"{head_name(*src)} {score:.3f} ({ratio:.1f}x)" for src, score, ratio in evidence.composing(head, n_sources)
        ]
        copy = evidence.ov_copying.get(head, float("nan"))
        copy_text = f"{copy:+.3f}" if not math.isnan(copy) else f"{'-':>6}"  # a head that writes nothing
        lines.append(f"  {head_name(*head):<7} QK {value:+.3f} OV {copy_text} <- " + ("  ".join(sources) or "(none)"))
    if not ranked:
        lines.append("  (no head has a QK matching score)")
    if evidence.notes:
        lines += ["", "left out / folded:"] + wrap([f"  - {note}" for note in evidence.notes], width)
    return finish(lines, width)


def plot_k_composition(evidence: Any, ax: Any = None, *, kind: str = "k", ratio: bool = False) -> Any:
    """Heatmap of the ``kind`` composition (``"k"``, ``"q"``, ``"v"``): later heads (rows, from the second
    layer) x earlier heads (columns, up to the last but one), scores in [0, 1] (``ratio``: divided by the
    random baseline; colours up to the largest score), blank where undefined, the baseline marked on the
    colour bar; the cell of the top induction head (``induction_ranking``: by QK matching) and its strongest
    composing earlier head outlined. Returns the Axes.

    Pure drawing: the evidence (``weight_evidence``; Elhage et al. 2021, Olsson et al. 2022) is read through
    its public attributes. Every head is named on the axes where there are 32 or fewer, else the first
    head of each layer.

    Args:
        evidence: a ``WeightEvidence``, from ``weight_evidence(model)`` (with ``kind`` among its
            ``compositions``).
        ax: a matplotlib Axes to draw into; ``None`` (default): a new one-column figure.
        kind: which composition: ``"k"`` (default; K-composition, the induction mechanism), ``"q"`` or
            ``"v"``.
        ratio: colour by score / the random baseline (the baseline at 1 on the colour bar) instead of the
            score (default ``False``).

    Returns:
        matplotlib.axes.Axes: the Axes drawn into (its figure, with the colour bar, is ``ax.figure``).

    Raises:
        InputError: when ``evidence`` is not a ``WeightEvidence``, ``kind`` is not ``"k"``, ``"q"`` or
            ``"v"`` or was not computed (``weight_evidence(model, compositions=...)``), or the model has
            fewer than two attention layers.

    Examples:
        >>> from induction_nb import HandBuiltInduction, plot_k_composition, weight_evidence
        >>> evidence = weight_evidence(HandBuiltInduction(), compositions="k", n_baseline=8)
        >>> ax = plot_k_composition(evidence)
        >>> ax.get_title()
        'K-composition (random baseline 0.0...)'
        >>> [t.get_text() for t in ax.get_yticklabels()]  # later heads (rows)
        ['L1H0', 'L1H1', 'L1H2', 'L1H3']
        >>> [t.get_text() for t in ax.get_xticklabels()]  # earlier heads (columns)
        ['L0H0', 'L0H1', 'L0H2', 'L0H3']
    """
    _check(evidence)
    M = evidence.composition(kind).float()
    layers = sorted({l for l, _ in evidence.heads})
    if len(layers) < 2:
        raise InputError("composition needs two attention layers or more")
    rows = [i for i, (l, _) in enumerate(evidence.heads) if l != layers[0]]
    cols = [i for i, (l, _) in enumerate(evidence.heads) if l != layers[-1]]
    M = M[rows][:, cols] / (evidence.baseline if ratio else 1.0)
    ax = axes_or_new(ax, ONE_COLUMN)
    high = float(torch.nan_to_num(M, nan=0.0).max())
    with style():
        image = ax.imshow(M.numpy(), cmap=CMAP, vmin=0.0, vmax=max(high, 1e-6), aspect="auto", interpolation="nearest")
        _head_ticks(ax.set_xticks, ax.set_xticklabels, [evidence.heads[i] for i in cols], rotation=90)
        _head_ticks(ax.set_yticks, ax.set_yticklabels, [evidence.heads[i] for i in rows], rotation=0)
        _outline_top(ax, evidence, rows, cols, kind)
        ax.set_xlabel("earlier head (writes)")
        ax.set_ylabel("later head (reads)")
        ax.set_title(f"{_NAMES.get(kind, kind)} (random baseline {evidence.baseline:.3f})")
        bar = ax.figure.colorbar(image, ax=ax, shrink=0.9, label="x baseline" if ratio else "score")
        bar.ax.axhline(1.0 if ratio else evidence.baseline, color=HIGHLIGHT, linewidth=1.0)
    return ax


def _outline_top(ax: Any, evidence: Any, rows: list[int], cols: list[int], kind: str) -> None:
    ranked = induction_ranking(evidence)
    if not ranked:
        return
    head = ranked[0][0]
    sources = evidence.composing(head, 1, kind)
    if not sources or evidence.heads.index(head) not in rows:
        return
    from matplotlib.patches import Rectangle

    y, x = rows.index(evidence.heads.index(head)), cols.index(evidence.heads.index(sources[0][0]))
    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor=HIGHLIGHT, linewidth=1.2))


def _head_ticks(set_ticks: Any, set_labels: Any, heads: list, rotation: int) -> None:
    """Every head named where they are few (32 or fewer), else the first head of each layer."""
    if len(heads) <= 32:
        set_ticks(range(len(heads)))
        set_labels([head_name(*h) for h in heads], fontsize=5, rotation=rotation)
        return
    firsts = [i for i, (l, _) in enumerate(heads) if i == 0 or heads[i - 1][0] != l]
    set_ticks(firsts)
    set_labels([f"L{heads[i][0]}" for i in firsts], fontsize=6, rotation=rotation)
