"""Views of token vs concept induction (a ``DualRouteResult`` from ``concept_induction``; Feucht, Todd,
Wallace and Bau, COLM 2025, arXiv 2504.03022): the two routes side by side in the terminal
(``text_dual_route``) and the paper's figure, every head's token score against its concept score
(``plot_dual_route``), the best heads of each route labelled, with their 95% intervals as error bars.
Both read the result's heads only (any ``ScanResult`` whose heads carry ``token_induction`` and
``concept_induction``)."""

from __future__ import annotations

from typing import Any

from .._validate import check_int
from ..errors import InputError
from ..metrics import REGISTRY
from .placement import label_points
from .style import BLUE, GREY, HIGHLIGHT, ONE_COLUMN, axes_or_new, shared_legend, style

__all__ = ["text_dual_route", "plot_dual_route"]

_ROUTES = ("token_induction", "concept_induction")
_EFFECT = {"token_induction": "token_effect", "concept_induction": "concept_effect"}


def _check(result: Any) -> None:
    have = getattr(result, "metrics", ())
    if not all(m in have for m in _ROUTES):
        raise InputError(
            f"this view needs token and concept induction scores (concept_induction(model)); "
            f"{type(result).__name__} carries {', '.join(have) or 'none'}"
        )


def _cell(score: Any, metric: str) -> str:
    """``value [low, high]``; probability changes in scientific notation (one head's patch moves little)."""
    fmt = _scientific if REGISTRY[metric].signed else REGISTRY[metric].format
    text = fmt(score.values.get(metric))
    low, high = score.intervals.get(metric, (None, None))
    if low is None or low != low:
        return text
    return f"{text} [{fmt(low)}, {fmt(high)}]"


def _scientific(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:+.1e}"


def text_dual_route(result: Any, top: int = 10) -> str:
    """The ``top`` heads of each route, best first: the score with its 95% interval and, where measured,
    the patching effect (probability change) with its interval; then the heads both top sets share.

    The two routes are token induction (value-weighted attention on the start of an earlier random-token
    word: copies verbatim) and concept induction (on the end of an earlier multi-token word: copies its
    meaning); Feucht, Todd, Wallace and Bau, COLM 2025, arXiv 2504.03022. Patching effects are printed in
    scientific notation (one head's patch moves the probability little).

    Args:
        result: a ``DualRouteResult`` from ``concept_induction``, or any ``ScanResult`` whose heads carry
            ``token_induction`` and ``concept_induction``.
        top: how many heads of each route to list (default 10).

    Returns:
        str: plain text, one block per route (``Top 10 heads by token induction (...):`` then one line per
            head: its name, score ``[low, high]`` and, where measured, ``effect`` ``[low, high]``), then
            ``Shared by both top-10 sets: N (heads)``. No width limit: lines are as long as they need.

    Raises:
        InputError: when the result does not carry both ``token_induction`` and ``concept_induction`` (e.g.
            a ``detect_induction_heads`` result: run ``concept_induction(model)``), or ``top`` is not a
            positive integer.

    Examples:
        >>> from induction_nb import HandBuiltInduction, concept_induction, text_dual_route
        >>> words = [[5, 6], [7, 8, 9], [10, 11, 12, 13], [14, 15, 16, 17, 18]]  # multi-token words, as ids
        >>> result = concept_induction(HandBuiltInduction(), words, n_probes=4, n_boot=20, weighting="attention")
        >>> print(text_dual_route(result, top=3))  # L1H0, the induction head, copies tokens verbatim
        Top 3 heads by token induction (...):
              L1H0  1.000 [1.000, 1.000]   effect ...
        ...
        Top 3 heads by concept induction (...):
        ...
        Shared by both top-3 sets: ...
    """
    _check(result)
    top = check_int("top", top, 1)
    lines = []
    for metric in _ROUTES:
        lines.append(f"Top {top} heads by {REGISTRY[metric].label} ({REGISTRY[metric].description}):")
        for s in result.get_top_heads(top, metric):
            effect = _EFFECT[metric]
            extra = f"   effect {_cell(s, effect)}" if effect in s.values else ""
            lines.append(f"  {s.name:>8}  {_cell(s, metric)}{extra}")
        lines.append("")
    token = [s.name for s in result.get_top_heads(top, "token_induction")]
    concept = {s.name for s in result.get_top_heads(top, "concept_induction")}
    shared = [n for n in token if n in concept]
    lines.append(f"Shared by both top-{top} sets: {len(shared)}" + (f" ({', '.join(shared)})" if shared else ""))
    return "\n".join(lines)


def plot_dual_route(result: Any, ax: Any = None, *, label_top: int = 4, intervals: bool = True) -> Any:
    """Every head as a point, token induction score (x) against concept induction score (y), both shares
    of value-weighted attention in [0, 1]: the ``label_top`` best heads of each route highlighted and
    labelled, with their 95% intervals as error bars (``intervals``). Returns the Axes.

    The paper's figure (Feucht, Todd, Wallace and Bau, COLM 2025, arXiv 2504.03022). Heads whose scores are
    undefined (NaN: a head that writes nothing, under value weighting) are left out; both axes run from 0
    to the largest score (x 1.1, at most 1); one legend above the axes.

    Args:
        result: a ``DualRouteResult`` from ``concept_induction``, or any ``ScanResult`` whose heads carry
            ``token_induction`` and ``concept_induction``.
        ax: a matplotlib Axes to draw into; ``None`` (default): a new one-column figure.
        label_top: how many of the best heads of each route to highlight and label (default 4; 0: none).
        intervals: draw the highlighted heads' 95% intervals as error bars (default ``True``).

    Returns:
        matplotlib.axes.Axes: the Axes drawn into (its figure is ``ax.figure``).

    Raises:
        InputError: when the result does not carry both ``token_induction`` and ``concept_induction``
            (run ``concept_induction(model)``), or ``label_top`` is not an integer >= 0.

    Examples:
        >>> from induction_nb import HandBuiltInduction, concept_induction, plot_dual_route
        >>> words = [[5, 6], [7, 8, 9], [10, 11, 12, 13], [14, 15, 16, 17, 18]]  # multi-token words, as ids
        >>> result = concept_induction(HandBuiltInduction(), words, n_probes=4, n_boot=20, weighting="attention")
        >>> ax = plot_dual_route(result, label_top=2)
        >>> ax.get_xlabel()
        'token induction score (weight on start of word)'
        >>> ax.get_ylabel()
        'concept induction score (weight on end of word)'
    """
    _check(result)
    label_top = check_int("label_top", label_top, 0)
    heads = [s for s in result.head_scores if all(s.values.get(m) == s.values.get(m) for m in _ROUTES)]
    best = {m: [(s.layer, s.head) for s in result.get_top_heads(label_top, m)] if label_top else [] for m in _ROUTES}
    ax = axes_or_new(ax, ONE_COLUMN)
    with style():
        rest = [s for s in heads if (s.layer, s.head) not in set(best[_ROUTES[0]]) | set(best[_ROUTES[1]])]
        ax.scatter(*_xy(rest), s=8, color=GREY, alpha=0.6, linewidths=0, label="other heads")
        marked = []
        for metric, color, name in (
            (_ROUTES[0], HIGHLIGHT, "top token heads"),
            (_ROUTES[1], BLUE, "top concept heads"),
        ):
            chosen = [result.score(l, h) for l, h in best[metric]]
            if not chosen:
                continue
            ax.scatter(*_xy(chosen), s=16, color=color, label=name, zorder=3)
            if intervals:
                _error_bars(ax, chosen, color)
            marked += chosen
        top = max([0.05] + [v for s in heads for v in (s.values[_ROUTES[0]], s.values[_ROUTES[1]])])
        ax.set_xlim(0, min(1.0, top * 1.1))
        ax.set_ylim(0, min(1.0, top * 1.1))
        ax.set_xlabel("token induction score (weight on start of word)")
        ax.set_ylabel("concept induction score (weight on end of word)")
        shared_legend(ax)
        unique = list({(s.layer, s.head): s for s in marked}.values())
        label_points(ax, list(zip(*_xy(unique))), [s.name for s in unique], fontsize=6)
    return ax


def _xy(scores: list) -> tuple[list[float], list[float]]:
    return [s.values[_ROUTES[0]] for s in scores], [s.values[_ROUTES[1]] for s in scores]


def _error_bars(ax: Any, scores: list, color: str) -> None:
    x, y = _xy(scores)
    xerr, yerr = [[], []], [[], []]
    for s, xi, yi in zip(scores, x, y):
        for err, metric, v in ((xerr, _ROUTES[0], xi), (yerr, _ROUTES[1], yi)):
            low, high = s.intervals.get(metric, (v, v))
            err[0].append(max(0.0, v - low) if low == low else 0.0)
            err[1].append(max(0.0, high - v) if high == high else 0.0)
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=color, elinewidth=0.6, alpha=0.8, zorder=2)
