"""Where a score series shows a phase change: the rule ``formation`` marks, stated so it can be checked.

Olsson et al. (2022) see induction heads form in a *phase change*: within a short stretch of training the best
head's induction score jumps while the in-context-learning score improves. Here the stretch is the *rise
window* of the best head's score (the maximum over heads at each checkpoint): from the last checkpoint at or
below 20% of its rise to the first at or above 80%, the rise measured from the first checkpoint to the series'
maximum. The window is called a phase change only where

* the rise is at least ``min_rise`` (0.2 by default; induction scores are in [0, 1]), and
* the window covers at most ``max_share`` (a quarter by default) of the training span in steps and, where the
  checkpoints are log-spaced (Pythia's: 0, 1, 2, 4 ... 512, 1000, 2000 ...), also in log steps (a log axis alone
  would call any late, slow rise abrupt: the early decades hold most of it).

Limits: checkpoints are points, so a window is at least one checkpoint interval wide (a sparse series cannot
show an abrupt change); a score that rises, falls and rises again gets the window of its first full rise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError

__all__ = ["RiseWindow", "rise_window", "log_spaced"]


@dataclass(frozen=True)
class RiseWindow:
    """The best head's rise window across checkpoints, and whether it is a phase change.

    ``FormationResult.window`` (``formation``). The best head's rise: ``start`` and ``end`` (training steps;
    checkpoint indices ``i_start``, ``i_end``), ``rise`` (score, first checkpoint to maximum), ``share`` (the
    window's share of the training span, in log steps where ``log_steps``, else in steps), ``linear_share``
    (in steps), ``abrupt`` (the rule holds: a phase change), ``icl_share``: the share of the ICL score's net
    improvement (first to last checkpoint) that happens inside the window, clipped to [0, 1] (NaN where it
    does not improve by at least 0.01 nats), ``log_steps``: whether the checkpoints are log-spaced.

    The rule (Olsson et al. 2022): the window runs from the last checkpoint at or below 20% of the rise to
    the first at or above 80%, the rise measured from the first checkpoint to the series' maximum (the best
    head's score: the maximum over heads at each checkpoint). It is a phase change only where the rise is at
    least ``min_rise`` (0.2 by default; induction scores are in [0, 1]) and the window covers at most
    ``max_share`` (a quarter by default) of the training span in steps and, where the checkpoints are
    log-spaced (Pythia's: 0, 1, 2, 4 ... 512, 1000, 2000 ...), also in log steps. Limits: checkpoints are
    points, so a window is at least one checkpoint interval wide (a sparse series cannot show an abrupt
    change); a score that rises, falls and rises again gets the window of its first full rise.

    Attributes:
        start: the training step where the window starts (the last checkpoint at or below 20% of the rise).
        end: the training step where it ends (the first checkpoint at or above 80% of the rise).
        i_start: the checkpoint index of ``start``.
        i_end: the checkpoint index of ``end``.
        rise: the best score's rise, first checkpoint to maximum (score units, 0-1 for induction scores).
        share: the window's share of the training span (0-1), in log steps (``log10(step + 1)``) where
            ``log_steps``, else in steps.
        abrupt: whether the rule holds (``rise >= min_rise``, and both shares ``<= max_share``): a phase
            change.
        icl_share: the share (0-1) of the ICL score's net improvement, first to last checkpoint, that happens
            inside the window (clipped to [0, 1]); NaN where the ICL score does not improve by at least
            0.01 nats or none was given.
        log_steps: whether the checkpoints are log-spaced (then ``share`` is in log steps).
        linear_share: the window's share of the training span in steps (0-1).

    Examples:
        >>> import torch
        >>> from induction_nb import HandBuiltInduction, formation
        >>> final = HandBuiltInduction()  # stands for the last checkpoint; the others learnt nothing
        >>> blank = {k: torch.zeros_like(v) for k, v in final.state_dict().items()}
        >>> result = formation([blank, blank, final.state_dict()], model=final, steps=[0, 900, 1000],
        ...                    cache_dir=False, sequence_length=24, batch_size=2, n_bootstrap=10)
        >>> window = result.window
        >>> (window.start, window.end), (window.i_start, window.i_end)
        ((900, 1000), (1, 2))
        >>> window.linear_share, window.log_steps, window.abrupt  # a tenth of training: a phase change
        (0.1, False, True)
        >>> window.rise > 0.5, window.icl_share  # all of the ICL gain falls inside it
        (True, 1.0)
    """

    start: int
    end: int
    i_start: int
    i_end: int
    rise: float
    share: float
    abrupt: bool
    icl_share: float
    log_steps: bool
    linear_share: float


def log_spaced(steps: Sequence[int]) -> bool:
    """Whether checkpoints at ``steps`` are spaced on a log scale (the largest positive step over 100 times
    the smallest, and the largest gap between checkpoints, the last one aside, over 4 times the smallest): then
    spans are also measured in ``log10(step + 1)``."""
    positive = [s for s in steps if s > 0]
    if len(positive) < 3 or positive[-1] < 100 * positive[0]:
        return False
    gaps = [b - a for a, b in zip(steps[:-2], steps[1:-1])]  # not the last: a run's final step is arbitrary
    return bool(gaps) and max(gaps) > 4 * min(gaps)


def rise_window(
    steps: Sequence[int],
    best: Sequence[float],
    icl: Sequence[float] | None = None,
    *,
    min_rise: float = 0.2,
    max_share: float = 0.25,
    log_steps: bool | None = None,
) -> RiseWindow | None:
    """The rise window of the score series ``best`` (one value per checkpoint at ``steps``, increasing; NaN
    gives ``None``) and, with ``icl`` (nats per checkpoint), the share of its improvement inside the window.
    ``None`` where the score never rises by ``min_rise`` or fewer than 2 checkpoints are given."""
    if len(best) != len(steps) or (icl is not None and len(icl) != len(steps)):
        n_icl = len(best) if icl is None else len(icl)
        raise InputError(f"{len(steps)} steps, {len(best)} scores, {n_icl} ICL scores: give one each per checkpoint")
    if any(b <= a for a, b in zip(steps[:-1], steps[1:])):
        raise InputError(f"steps must increase, got {list(steps)}: sort the checkpoints by step")
    if len(best) < 2 or any(math.isnan(v) for v in best):
        return None
    log = log_spaced(steps) if log_steps is None else log_steps
    low, high = best[0], max(best)
    rise = high - low
    if rise <= 0 or rise < min_rise:
        return None
    i_end = next(i for i, v in enumerate(best) if v >= low + 0.8 * rise)
    i_start = max(i for i in range(i_end) if best[i] <= low + 0.2 * rise)
    linear = _share([float(s) for s in steps], i_start, i_end)
    share = _share([math.log10(s + 1) for s in steps], i_start, i_end) if log else linear
    icl_share = float("nan")
    if icl is not None and icl[-1] < icl[0] - 0.01:  # more negative: more in-context learning
        icl_share = min(1.0, max(0.0, (icl[i_end] - icl[i_start]) / (icl[-1] - icl[0])))
    abrupt = linear <= max_share and share <= max_share
    return RiseWindow(
        int(steps[i_start]), int(steps[i_end]), i_start, i_end, float(rise), share, abrupt, icl_share, log, linear
    )


def _share(axis: list[float], i: int, j: int) -> float:
    span = axis[-1] - axis[0]
    return float((axis[j] - axis[i]) / span) if span > 0 else 1.0
