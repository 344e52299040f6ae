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
    """``seeds``; ``plain`` and ``smeared``: the runs (one per seed, in order); ``formed`` and ``icl``:
    ``{"plain": [step or None per seed], "smeared": [...]}``; ``n_layers``, ``steps`` (training length),
    ``every`` (checkpoint interval), ``icl_drop`` (nats). ``earlier``: seeds where smeared keys formed an
    induction head at an earlier checkpoint than plain keys (or formed one where plain keys did not);
    ``later``: the reverse."""

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
    """Train ``train_induction_model`` from each of ``seeds`` with and without smeared keys (``n_layers``
    layers, ``steps`` steps, checkpoints ``every`` steps; ``train_kwargs``: its other settings) and compare
    when induction heads and the ICL gain appear (see the module docstring). Cost: ``2 len(seeds)`` training
    runs (about a minute each on a CPU core for the defaults). Raises ``InputError`` for no seeds, repeated
    seeds, a ``smeared_keys`` in ``train_kwargs``, or settings ``train_induction_model`` refuses."""
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
