"""Olsson et al.'s co-perturbation (argument 2): change the architecture so that induction heads can form
earlier, and see whether the in-context-learning gain moves with them.

``compare_smeared_keys(seeds)`` trains ``train_induction_model`` with and without *smeared keys* (each key a
learned mix of its own and the previous position's key, so one layer can match a previous token) from the same
seeds, same data and same settings, and reads two steps from each run's checkpoints:

* ``formed``: the first checkpoint at which the detector finds an induction head (``TrainingRun.phase_change_step``);
* ``icl``: the first checkpoint whose loss on the repeated tokens is at least ``icl_drop`` (1 nat) below the
  first checkpoint's: the in-context-learning gain (on this data only induction can predict the repeats).

``None`` where it never happens within the run. Two-layer models form induction heads either way (a
previous-token head feeds the induction head); one-layer models can only with smeared keys, which is the
sharpest form of the claim. Limits: the synthetic data and tiny models of ``analysis.training``, not natural
text; steps are resolved to the checkpoint interval (``every``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._validate import check_choice, check_int
from ..errors import InputError
from .training import TrainingRun, train_induction_model

__all__ = ["SmearedKeysComparison", "compare_smeared_keys", "earlier_than", "icl_step"]


def icl_step(run: TrainingRun, drop: float = 1.0) -> int | None:
    """The first checkpoint step whose repeated-token loss is ``drop`` nats below the first checkpoint's."""
    first = run.checkpoints[0].repeat_loss
    return next((c.step for c in run.checkpoints if c.repeat_loss <= first - drop), None)


@dataclass(frozen=True)
class SmearedKeysComparison:
    """The outcome of ``compare_smeared_keys``: Olsson et al.'s co-perturbation (2022, "In-context Learning and
    Induction Heads", arXiv 2209.11895, argument 2), plain keys against smeared keys from the same seeds.

    ``seeds``; ``plain`` and ``smeared``: the runs (one per seed, in order); ``formed`` and ``icl``:
    ``{"plain": [step or None per seed], "smeared": [...]}``; ``n_layers``, ``steps`` (training length),
    ``every`` (checkpoint interval), ``icl_drop`` (nats). ``earlier``: seeds where smeared keys formed an
    induction head at an earlier checkpoint than plain keys (or formed one where plain keys did not);
    ``later``: the reverse. ``median(which, kind)`` gives the median step over the seeds where it happened;
    ``str()`` prints the per-seed table.

    Attributes:
        seeds: the training seeds, distinct, in the order they were run (one plain and one smeared run each).
        n_layers: attention layers of every trained ``AttentionOnly`` model.
        steps: training length of every run, in optimiser steps.
        every: the checkpoint interval in steps (checkpoints at step 0, every ``every`` steps and the last);
            the steps in ``formed`` and ``icl`` are resolved to it.
        icl_drop: the drop of the repeated-token loss below the first checkpoint's, in nats, that counts as the
            in-context-learning gain.
        formed: ``{"plain": [...], "smeared": [...]}``, one entry per seed: the first checkpoint step at which
            the detector finds an induction head (``TrainingRun.phase_change_step``), ``None`` where it never
            does within the run.
        icl: ``{"plain": [...], "smeared": [...]}``, one entry per seed: the first checkpoint step whose
            repeated-token loss is at least ``icl_drop`` nats below the first checkpoint's, ``None`` where never.
        plain: the ``TrainingRun`` of each seed with plain keys (checkpoints, final model, weights per
            checkpoint), in the order of ``seeds``; left out of comparisons and of the repr.
        smeared: the ``TrainingRun`` of each seed with smeared keys, as ``plain``.
        train_kwargs: the other settings passed through to ``train_induction_model`` (e.g. ``batch_size``).
        earlier: (property) the number of seeds where smeared keys formed an induction head at an earlier
            checkpoint than plain keys, or formed one where plain keys did not.
        later: (property) the number of seeds where plain keys formed one earlier (the reverse of ``earlier``).

    Examples:
        ``compare_smeared_keys`` builds it; here one is written by hand (no runs kept) to show how the steps read:

        >>> from induction_nb import SmearedKeysComparison
        >>> comparison = SmearedKeysComparison(
        ...     seeds=(0, 1, 2), n_layers=2, steps=2000, every=100, icl_drop=1.0,
        ...     formed={"plain": [None, 900, 700], "smeared": [400, 500, 800]},
        ...     icl={"plain": [None, 1000, 700], "smeared": [400, 600, 800]}, plain=(), smeared=(),
        ... )
        >>> comparison.earlier, comparison.later  # seed 0: smeared formed, plain never; seed 1 earlier; seed 2 later
        (2, 1)
        >>> comparison.median("smeared"), comparison.median("smeared", "icl")
        (500, 600)
        >>> print(comparison)
        Smeared keys vs plain keys: 2-layer models, 2000 steps, checkpoints every 100; ...
               0         never / never             400 / 400
        ...
          smeared keys earlier in 2/3 seeds, later in 1
    """

    seeds: tuple[int, ...]
    n_layers: int
    steps: int
    every: int
    icl_drop: float
    formed: dict
    icl: dict
    plain: tuple[TrainingRun, ...] = field(compare=False, repr=False)
    smeared: tuple[TrainingRun, ...] = field(compare=False, repr=False)
    train_kwargs: dict = field(default_factory=dict)

    @property
    def earlier(self) -> int:
        return sum(earlier_than(s, p) for s, p in zip(self.formed["smeared"], self.formed["plain"]))

    @property
    def later(self) -> int:
        return sum(earlier_than(p, s) for s, p in zip(self.formed["smeared"], self.formed["plain"]))

    def median(self, which: Literal["plain", "smeared"], kind: Literal["formed", "icl"] = "formed") -> float | None:
        """The median step of ``which`` (``"plain"``/``"smeared"``) over the seeds where ``kind`` happened
        (``"formed"``: an induction head; ``"icl"``: the ICL gain); ``InputError`` for other names."""
        check_choice("which", which, ("plain", "smeared"))
        check_choice("kind", kind, ("formed", "icl"))
        values = [v for v in getattr(self, kind)[which] if v is not None]
        return statistics.median(values) if values else None

    def __str__(self) -> str:
        lines = [
            f"Smeared keys vs plain keys: {self.n_layers}-layer models, {self.steps} steps, checkpoints every "
            f"{self.every}; steps at which an induction head is first detected / the repeated-token loss is "
            f"{self.icl_drop:g} nat below its start",
            f"  {'seed':>6}  {'plain: head / ICL':>20}  {'smeared: head / ICL':>20}",
        ]
        for i, seed in enumerate(self.seeds):
            p = f"{_s(self.formed['plain'][i])} / {_s(self.icl['plain'][i])}"
            s = f"{_s(self.formed['smeared'][i])} / {_s(self.icl['smeared'][i])}"
            lines.append(f"  {seed:>6}  {p:>20}  {s:>20}")
        for which in ("plain", "smeared"):
            n = sum(v is not None for v in self.formed[which])
            lines.append(
                f"  {which}: formed in {n}/{len(self.seeds)} seeds, median step {_s(self.median(which))} "
                f"(ICL gain: {_s(self.median(which, 'icl'))})"
            )
        lines.append(f"  smeared keys earlier in {self.earlier}/{len(self.seeds)} seeds, later in {self.later}")
        return "\n".join(lines)


def earlier_than(a: int | None, b: int | None) -> bool:
    """Whether step ``a`` came before step ``b`` (``None``: never; something beats never)."""
    return a is not None and (b is None or a < b)


def _s(step: float | None) -> str:
    return "never" if step is None else f"{step:g}"


def compare_smeared_keys(
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    *,
    n_layers: int = 2,
    steps: int = 2000,
    every: int = 100,
    icl_drop: float = 1.0,
    progress: bool = False,
    **train_kwargs: Any,
) -> SmearedKeysComparison:
    """Train with and without smeared keys from the same seeds and compare when induction heads form.

    Train ``train_induction_model`` from each of ``seeds`` with and without smeared keys (``n_layers``
    layers, ``steps`` steps, checkpoints ``every`` steps; ``train_kwargs``: its other settings) and compare
    when induction heads and the ICL gain appear (see the module docstring). This is Olsson et al.'s
    co-perturbation (2022, "In-context Learning and Induction Heads", arXiv 2209.11895, argument 2): smeared
    keys (each key a learned mix of its own and the previous position's key) let one layer match a previous
    token, so induction heads, and with them the in-context-learning gain, should appear earlier (and in
    one-layer models at all). Cost: ``2 len(seeds)`` training runs (about a minute each on a CPU core for the
    defaults). Limits: the synthetic data and tiny models of ``train_induction_model``, not natural text;
    steps are resolved to the checkpoint interval ``every``.

    Args:
        seeds: the training seeds (non-negative integers, distinct, at least one); each gives one plain and
            one smeared run with the same initialisation seed, data and settings. Default: ``(0, 1, 2, 3, 4)``.
        n_layers: attention layers of the trained models (default 2: a previous-token head can feed an
            induction head either way; 1: only smeared keys allow induction, the sharpest form of the claim).
        steps: training steps of each run (default 2000).
        every: checkpoint interval in steps (default 100); the steps reported are checkpoint steps.
        icl_drop: how far, in nats, the loss on the repeated tokens must fall below the first checkpoint's to
            count as the in-context-learning gain (a positive number; default 1 nat).
        progress: show a tqdm progress bar per training run (default ``False``).
        **train_kwargs: the other settings of ``train_induction_model`` (``batch_size``, ``seq_len``,
            ``vocab``, ``lr``, ``threshold``, ``n_heads``, ``d_model``), the same for every run; not ``seed``
            or ``smeared_keys``, which this function sets for each run.

    Returns:
        SmearedKeysComparison: per seed, the checkpoint steps at which an induction head is first detected
            (``formed``) and the repeated-token loss first drops ``icl_drop`` nats (``icl``), for plain and
            smeared keys (``None``: never within the run), with every ``TrainingRun`` kept (``plain``,
            ``smeared``) and the counts ``earlier`` / ``later``.

    Raises:
        InputError: for no seeds, repeated seeds or a seed that is not a non-negative integer; a
            ``smeared_keys`` or ``seed`` in ``train_kwargs``; an ``icl_drop`` that is not a positive number;
            or settings ``train_induction_model`` refuses (``steps``/``every`` < 1, ``seq_len`` < 12, a
            ``d_model`` not a multiple of ``n_heads``, a ``vocab`` too small for ``seq_len``, a ``threshold``
            outside [0, 1]).

    Examples:
        >>> from induction_nb import compare_smeared_keys
        >>> comparison = compare_smeared_keys([0], steps=10, every=10, batch_size=16, d_model=32, n_heads=2)
        >>> comparison.seeds, comparison.n_layers, len(comparison.plain), len(comparison.smeared)
        ((0,), 2, 1, 1)
        >>> [run.steps for run in comparison.smeared]
        [(0, 10)]
        >>> sorted(comparison.icl)
        ['plain', 'smeared']

        The full experiment (ten training runs, about ten minutes on a CPU core):

        >>> print(compare_smeared_keys(seeds=range(5), n_layers=1))  # doctest: +SKIP
    """
    seeds = tuple(check_int("seed", s, 0) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"seeds must be distinct and at least one, got {seeds!r}")
    for name in ("smeared_keys", "seed"):
        if name in train_kwargs:
            raise InputError(f"compare_smeared_keys sets {name} for each run itself: pass seeds=[...], not {name}=")
    if not (isinstance(icl_drop, (int, float)) and icl_drop > 0):
        raise InputError(f"icl_drop must be a positive number of nats, got {icl_drop!r}")
    runs: dict[str, list[TrainingRun]] = {"plain": [], "smeared": []}
    for seed in seeds:
        for which in runs:
            runs[which].append(
                train_induction_model(
                    seed,
                    steps=steps,
                    every=every,
                    n_layers=n_layers,
                    smeared_keys=which == "smeared",
                    progress=progress,
                    **train_kwargs,
                )
            )
    formed = {k: [r.phase_change_step for r in v] for k, v in runs.items()}
    icl = {k: [icl_step(r, icl_drop) for r in v] for k, v in runs.items()}
    return SmearedKeysComparison(
        seeds,
        n_layers,
        steps,
        every,
        float(icl_drop),
        formed,
        icl,
        tuple(runs["plain"]),
        tuple(runs["smeared"]),
        dict(train_kwargs),
    )
