"""Every head's causal effect: exact ablation, or attribution patching checked against it.

``head_effects(model)`` removes each head in turn and measures the loss increase on the repeated half of
repeated random sequences (``estimator="exact"``: heads packed several per forward, one per copy of the
batch). ``estimator="attribution"`` estimates all of them from one forward and one backward
(``attribution.py``: Nanda 2023; Kramár et al. 2024), and ``verify_top=k`` measures the estimate's top ``k``
heads exactly beside it, so the user sees where the first-order estimate holds. ``method``: what replaces
a head's output, ``"zero"``, ``"mean"`` (its mean over the clean batch) or ``"corrupt"`` (its output on
the same batch with the repeat broken).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._validate import check_choice, check_int
from ..engine.ablator import ABLATION_METHODS, Ablator, per_plan
from ..engine.attribution import attribution_effects
from ..engine.knockout import Edges, check_edges
from ..errors import InputError
from .probe import repeat_probe

__all__ = ["HeadEffects", "head_effects", "ESTIMATORS", "spearman", "top_recall"]

Estimator = Literal["exact", "attribution"]
ESTIMATORS = ("exact", "attribution")


@dataclass(frozen=True)
class HeadEffects:
    """``effects`` ``[layer, head]``: the loss increase (nats) when each head is removed (exact, or the
    attribution estimate), NaN where a layer has no attention. ``n_forward``: forward passes, a backward
    counted as two (its measured cost on a CPU is 1.5-2.5 forwards). ``exact`` ``[layer, head]``: the
    heads measured exactly (all with ``estimator="exact"``, the top ``verify_top`` of the estimate
    otherwise; NaN elsewhere). Unpacks as ``effects, n_forward = head_effects(...)``."""

    effects: torch.Tensor
    n_forward: int
    estimator: str
    method: str
    exact: torch.Tensor
    verified: tuple[tuple[int, int], ...] = ()

    def __iter__(self):
        return iter((self.effects, self.n_forward))

    def __getitem__(self, i: int) -> Any:
        return (self.effects, self.n_forward)[i]

    def __len__(self) -> int:
        return 2

    def agreement(self) -> dict[str, float]:
        """Over the heads measured exactly: Spearman correlation of estimate and exact effect, and the
        largest absolute gap (nats)."""
        known = ~torch.isnan(self.exact)
        est, ex = self.effects[known], self.exact[known]
        return {
            "heads": int(known.sum()),
            "spearman": spearman(est, ex),
            "max_abs_gap": float((est - ex).abs().max()) if len(est) else float("nan"),
        }


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors (ties broken by position); NaN below 3 values."""
    a, b = a.flatten().double(), b.flatten().double()
    if len(a) < 3:
        return float("nan")
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def top_recall(estimate: torch.Tensor, exact: torch.Tensor, k: int = 10, within: int = 20) -> float:
    """Share of the ``k`` heads with the largest exact effect found among the estimate's top ``within``."""
    keep = ~torch.isnan(exact) & ~torch.isnan(estimate)
    idx = keep.flatten().nonzero().flatten()
    top_exact = set(idx[exact.flatten()[idx].argsort(descending=True)[:k]].tolist())
    top_est = set(idx[estimate.flatten()[idx].argsort(descending=True)[:within]].tolist())
    return len(top_exact & top_est) / max(1, len(top_exact))


def head_effects(
    model: Any,
    method: str = "zero",
    *,
    estimator: Estimator = "exact",
    verify_top: int = 0,
    edges: Edges | None = None,
    sequence_length: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    chunk: int | None = None,
    projections: Sequence[str] | None = None,
    progress: bool | None = None,
    remote: Any = False,
) -> HeadEffects:
    """Loss increase on the repeated half when each head alone is removed (see the module docstring).

    Exact: heads are packed ``chunk // batch_size`` per forward pass (default 32 sequences per forward).
    On a CPU a forward's cost grows with its batch, so packing can only save the per-forward overhead:
    on SmolLM2 (2 cores) it measured 192 s against 220 s for one head per forward in one idle run, and
    lost in a run with other load; it pays on a GPU and over NDIF (fewer requests). The real saving is
    ``estimator="attribution"`` (76x faster than the loop, ``bench/bench_attribution.py``).

    Attribution: one clean forward and one backward (plus a mean or corrupted forward for those
    methods), then exact ablation of the ``verify_top`` heads with the largest estimates *in magnitude*
    (a large negative estimate is as suspect as a large positive one: the first-order estimate misses
    effects through saturated attention, e.g. previous-token heads).

    ``method="knockout"``: each head's ``edges`` (default ``"induction"``) knocked out instead of the head
    removed (``engine.knockout``; exact only).

    Raises ``InputError`` for an unknown ``estimator`` or ``method``, ``verify_top`` outside
    ``[0, heads]``, or a model whose output projections cannot be found (``projections=``)."""
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("ablation method", method, ABLATION_METHODS)
    check_edges(method, edges, estimator)
    ab = Ablator(model, projections, remote)
    check_int("verify_top", verify_top, 0, len(ab.heads))
    chunk = 32 if chunk is None else check_int("chunk", chunk, 1)
    tokens, positions, _ = repeat_probe(ab, sequence_length, batch_size, seed, tool="head_effects")
    replacement, n_forward = ab.replacement(tokens, int(positions[0]), method, seed)
    exact = torch.full((ab.n_layers, ab.n_heads), float("nan"))
    if estimator == "exact":
        n = _exact(ab, tokens, positions, method, replacement, ab.heads, exact, chunk, batch_size, progress, edges)
        return HeadEffects(exact.clone(), n_forward + n, estimator, method, exact, tuple(ab.heads))
    per_layer = attribution_effects(
        ab.engine, tuple(ab.sites), ab.paths, ab.d_head, ab.n_heads, tokens, positions, replacement
    )
    estimate = torch.full((ab.n_layers, ab.n_heads), float("nan"))
    for layer, values in per_layer.items():
        estimate[layer] = values
    n_forward += 3  # the clean forward and its backward (two forward-equivalents)
    top = sorted(ab.heads, key=lambda lh: -abs(float(estimate[lh])))[:verify_top]
    if top:
        n_forward += _exact(ab, tokens, positions, method, replacement, top, exact, chunk, batch_size, progress)
    return HeadEffects(estimate, n_forward, estimator, method, exact, tuple(top))


def _exact(
    ab: Ablator,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    method: str,
    replacement: Any,
    heads: list,
    out: torch.Tensor,
    chunk: int,
    batch_size: int,
    progress: bool | None,
    edges: Edges | None = None,
) -> int:
    """Each of ``heads`` removed alone, ``chunk // batch_size`` per forward; writes ``out[l, h]``."""
    per_forward = max(1, chunk // batch_size)
    groups = [heads[i : i + per_forward] for i in range(0, len(heads), per_forward)]
    if progress or (progress is None and len(groups) > 4):
        from tqdm.auto import tqdm

        groups = tqdm(groups, desc="ablating heads", unit="forward")
    baseline = None
    for group in groups:
        plans = ([[]] if baseline is None else []) + [[h] for h in group]  # the clean copy rides in the first
        (lp, _), _ = ab.run(tokens, plans, method, replacement, positions, edges=edges)
        losses = -per_plan(lp, len(plans))
        if baseline is None:
            baseline, losses = losses[0], losses[1:]
        for i, (l, h) in enumerate(group):
            out[l, h] = losses[i] - baseline
    if not groups:
        raise InputError("no head to ablate")
    return len(groups)
