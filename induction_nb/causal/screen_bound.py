"""What a screen may have missed: a bound on the effect of every head it did not measure exactly.

Kramár et al. 2024 ("AtP*", arXiv 2403.00745, section on diagnostics): after a screen (an attribution
estimate, its top heads verified by exact ablation), the heads left unverified are removed *together* in
random subsets; a head's effect is at most the smallest ``|effect|`` of a subset that contains it, provided
effects within a subset do not cancel (the method's one assumption, stated with every bound). Each head sits
in ``repeats`` subsets of ``size`` heads (the heads shuffled ``repeats`` times and cut into subsets), so the
cost is ``repeats * ceil(heads / size)`` ablated copies of the batch, packed ``per_forward`` per forward.

The assumption is tested where it can be: each head already measured exactly is also removed in ``repeats``
subsets with ``size - 1`` unverified heads; where such a subset's ``|effect|`` falls below the head's own, the
effects cancelled and the head is named in ``violations`` (then the bound does not hold for this model).
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.ablator import Ablator, per_plan

__all__ = ["subset_bound"]


def subset_bound(
    ab: Ablator,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    method: str,
    replacement: Any,
    heads: list[tuple[int, int]],
    repeats: int,
    size: int,
    seed: int,
    per_forward: int,
    checks: dict[tuple[int, int], float] | None = None,
) -> tuple[torch.Tensor, int, tuple[tuple[int, int], ...]]:
    """``(bound [layer, head], forwards, violations)``: for each of ``heads``, the smallest ``|loss change|``
    (nats) of the random subsets holding it, removed together (NaN for other heads); ``checks``: heads with
    their exact effects, each removed in ``repeats`` subsets with unverified heads to test the assumption."""
    g = torch.Generator().manual_seed(seed)
    subsets = []
    for _ in range(repeats):
        order = torch.randperm(len(heads), generator=g).tolist()
        subsets += [[heads[i] for i in order[j : j + size]] for j in range(0, len(order), size)]
    checked = []
    for lh in checks or {}:
        for _ in range(repeats):
            others = torch.randperm(len(heads), generator=g)[: size - 1].tolist()
            checked.append((lh, [lh] + [heads[i] for i in others]))
    effects, forwards = _removed_together(
        ab, tokens, positions, method, replacement, subsets + [s for _, s in checked], per_forward
    )
    bound = torch.full((ab.n_layers, ab.n_heads), float("nan"))
    for subset, effect in zip(subsets, effects):
        for lh in subset:
            bound[lh] = effect if torch.isnan(bound[lh]) else min(float(bound[lh]), effect)
    violations = {lh for (lh, _), effect in zip(checked, effects[len(subsets) :]) if effect < abs(checks[lh])}
    return bound, forwards, tuple(sorted(violations))


def _removed_together(ab, tokens, positions, method, replacement, subsets, per_forward) -> tuple[list[float], int]:
    """``|loss change|`` of each subset removed together, ``per_forward`` subsets per forward."""
    effects, forwards, baseline = [], 0, None
    for start in range(0, len(subsets), per_forward):
        group = subsets[start : start + per_forward]
        plans = ([[]] if baseline is None else []) + group
        (lp, _), _ = ab.run(tokens, plans, method, replacement, positions)
        losses = -per_plan(lp, len(plans))
        if baseline is None:
            baseline, losses = losses[0], losses[1:]
        effects += (losses - baseline).abs().tolist()
        forwards += 1
    return effects, forwards
