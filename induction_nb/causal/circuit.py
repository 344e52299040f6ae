"""The previous-token -> induction circuit: which earlier heads feed each induction head.

Each candidate head of an earlier layer is removed in turn (zero or mean ablation at its output
projection's input, as in ``causal``) and the drop of each induction head's prefix-matching score is
measured in the same forward pass (K-composition: a previous-token head writes the ``t[k-1]`` that an
induction head's keys read). Many candidates share one forward: each copy of the batch removes one.
Limits: first-order in the sense that heads are removed one at a time; paths through several heads are
not separated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_choice
from ..analysis.detector import InductionHeadDetector
from ..engine.ablator import AblationMethod, Ablator
from ..errors import InputError
from ..metrics import match_mask, stripe_attention
from .probe import repeat_probe

__all__ = ["CircuitResult", "find_circuit"]


@dataclass(frozen=True)
class CircuitResult:
    """Prefix-matching drop of each induction head when one earlier head is removed."""

    edges: tuple[tuple[tuple[int, int], tuple[int, int], float], ...]  # (earlier head, induction head, drop)
    baseline: dict  # induction head -> prefix matching without ablation
    n_forward: int

    def top(self, n: int = 10) -> list[tuple[tuple[int, int], tuple[int, int], float]]:
        return sorted(self.edges, key=lambda e: -e[2])[:n]

    def feeding(self, induction_head: tuple[int, int], n: int = 3) -> list[tuple[tuple[int, int], float]]:
        return [(src, drop) for src, dst, drop in self.top(len(self.edges)) if dst == induction_head][:n]


def find_circuit(
    model: Any,
    induction_heads: Sequence[tuple[int, int]] | None = None,
    *,
    candidates: Sequence[tuple[int, int]] | None = None,
    method: AblationMethod = "zero",
    sequence_length: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    chunk: int = 32,
    projections: Sequence[str] | None = None,
    remote: Any = False,
) -> CircuitResult:
    """For each earlier-layer head (``candidates``, default all), remove it and measure how much each
    induction head's prefix-matching score drops (K-composition: previous-token heads feed induction
    heads). Default induction heads: the detector's."""
    check_choice("ablation method", method, ("zero", "mean"))  # patterns: no corrupt run; whole heads
    ab = Ablator(model, projections, remote)
    tokens, _, _ = repeat_probe(ab, sequence_length, batch_size, seed, tool="find_circuit")
    if induction_heads is None:  # the detector scores the same length the circuit is measured on
        sequence_length = tokens.shape[1] - (ab.engine.generator(seed).bos_token_id is not None)
        detector = InductionHeadDetector(ab.model, seed=seed, batch_size=batch_size, remote=remote)
        induction_heads = detector.detect(sequence_length=sequence_length).induction_heads
        if not induction_heads:
            raise InputError("the detector finds no induction head in this model; pass induction_heads=[...]")
    targets = ab.check_heads(induction_heads)
    top_layer = max(l for l, _ in targets)
    pool = ab.check_heads(candidates) if candidates is not None else [(l, h) for l, h in ab.heads if l < top_layer]
    pool = [(l, h) for l, h in pool if l < top_layer]
    means = ab.means(tokens) if method == "mean" else None
    match = match_mask(tokens)
    by_layer: dict[int, list[int]] = {}
    for l, h in targets:
        by_layer.setdefault(l, []).append(h)
    per_forward = max(1, chunk // batch_size - 1)
    drops: list[tuple[tuple[int, int], tuple[int, int], float]] = []
    baseline: dict = {}
    n_forward = int(method == "mean")
    for i in range(0, max(1, len(pool)), per_forward):
        group = pool[i : i + per_forward]
        plans = [[]] + [[h] for h in group]
        reducers = {l: _StripeReducer(match, hs, len(plans)) for l, hs in by_layer.items()}
        _, reduced = ab.run(tokens, plans, method, means, read=reducers)
        n_forward += 1
        scores = {(layer, h): value[:, j] for layer, value, _ in reduced for j, h in enumerate(by_layer[layer])}
        for target, per_copy in scores.items():
            baseline[target] = float(per_copy[0])
            for k, src in enumerate(group):
                if src[0] < target[0]:
                    drops.append((src, target, float(per_copy[0] - per_copy[k + 1])))
    return CircuitResult(tuple(drops), baseline, n_forward)


class _StripeReducer:
    """Inside the trace: prefix matching of some heads of a layer, per copy of the batch ``[copies, heads]``."""

    def __init__(self, match: torch.Tensor, heads: list[int], copies: int):
        self.match, self.heads, self.copies = match, heads, copies

    def __call__(self, layer: int, pattern: torch.Tensor) -> torch.Tensor:
        b = self.match.shape[0]
        match = self.match.to(pattern.device).repeat(self.copies, 1, 1)
        values = stripe_attention(pattern[:, self.heads], match)  # [copies * b, heads]
        return values.view(self.copies, b, len(self.heads)).mean(1).cpu()
