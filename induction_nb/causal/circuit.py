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

from .._validate import check_choice, check_int
from ..analysis.detector import InductionHeadDetector
from ..engine.ablator import AblationMethod, Ablator
from ..errors import InputError
from ..metrics import match_mask, stripe_attention
from .probe import repeat_probe

__all__ = ["CircuitResult", "find_circuit"]


@dataclass(frozen=True)
class CircuitResult:
    """Prefix-matching drop of each induction head when one earlier head is removed.

    Returned by ``find_circuit``; ``text_circuit`` and ``plot_circuit_graph`` draw it. Prefix matching is
    the attention (0-1) each query of the repeated random sequences gives the token after an earlier copy
    of itself, averaged over queries and sequences; a large drop when a head is removed means the induction
    head reads that head's output (K-composition).

    Attributes:
        edges: ``(earlier head, induction head, drop)`` for every candidate in an earlier layer than the
            induction head: ``(layer, head)``, ``(layer, head)`` and the prefix-matching score without the
            earlier head minus with it removed (positive: the earlier head feeds the induction head).
        baseline: ``{induction head: prefix-matching score (0-1) with no head removed}``.
        n_forward: forward passes the call ran (a mean ablation's clean run included; the detector's
            forwards, where it chose the induction heads, not counted).

    Examples:
        >>> from induction_nb import HandBuiltInduction, find_circuit
        >>> circuit = find_circuit(HandBuiltInduction(), [(1, 0)], sequence_length=32)
        >>> circuit.baseline[(1, 0)] > 0.9, circuit.n_forward
        (True, 1)
        >>> [(src, round(drop, 1)) for src, drop in circuit.feeding((1, 0), n=2)]
        [((0, 0), 0.9), ((0, 1), 0.0)]
    """

    edges: tuple[tuple[tuple[int, int], tuple[int, int], float], ...]  # (earlier head, induction head, drop)
    baseline: dict  # induction head -> prefix matching without ablation
    n_forward: int

    def top(self, n: int = 10) -> list[tuple[tuple[int, int], tuple[int, int], float]]:
        """The ``n`` edges ``(earlier head, induction head, drop)`` with the largest drops, largest first (ties
        in the order of ``edges``); ``InputError`` where ``n`` is not an integer >= 0."""
        return sorted(self.edges, key=lambda e: -e[2])[: check_int("n", n, 0)]

    def feeding(self, induction_head: tuple[int, int], n: int = 3) -> list[tuple[tuple[int, int], float]]:
        """The ``n`` earlier heads ``(head, drop)`` whose removal lowers ``induction_head``'s prefix matching
        most, largest drop first; ``InputError`` where ``n`` is not an integer >= 0."""
        n = check_int("n", n, 0)
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
    """Which earlier heads feed each induction head: the drop of its prefix matching when each is removed.

    For each earlier-layer head (``candidates``, default all), remove it and measure how much each
    induction head's prefix-matching score drops (K-composition: previous-token heads feed induction
    heads). Default induction heads: the detector's. Heads are removed one at a time at their output
    projection's input, many candidates sharing one forward (each copy of the batch removes one); paths
    through several heads are not separated.

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); in eval mode.
        induction_heads: the heads whose prefix matching is measured, ``(layer, head)`` pairs; ``None``
            (default) for the heads ``detect_induction_heads`` finds at the same sequence length.
        candidates: the heads removed one at a time, ``(layer, head)`` pairs; ``None`` (default) for every
            head of a layer before the last induction head's. Candidates at or after that layer are dropped;
            a drop is reported only for an induction head in a later layer than the candidate.
        method: what replaces a removed head's output: ``"zero"`` (default) or ``"mean"`` (its mean over
            the clean batch, one more forward).
        sequence_length: tokens per random sequence (a block then its repeat); ``None`` for the default
            (64, or what the model's positions allow).
        batch_size: random sequences (default 4).
        seed: seed of the random sequences (and of the detector's).
        chunk: sequences per forward: each forward holds the clean batch and ``chunk // batch_size - 1``
            ablated copies (at least one); default 32.
        projections: one output-projection module path per attention layer, where it cannot be found
            (see ``ablate_heads``); ``None`` to find it.
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF.

    Returns:
        CircuitResult: every ``(earlier head, induction head, drop)`` edge, each induction head's
            prefix-matching score without ablation, and the forward passes used.

    Raises:
        InputError: for an ablation method other than ``"zero"`` or ``"mean"``, bad heads in
            ``induction_heads`` or ``candidates`` (out of range, not integers, a head named twice), a model in which the
            detector finds no induction head (pass ``induction_heads=[...]``), a ``sequence_length`` the
            model cannot take (the message names one that works), or a model in training mode.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the attention patterns inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, find_circuit
        >>> model = HandBuiltInduction()  # L0H0 previous-token head, L1H0 induction head
        >>> circuit = find_circuit(model, [(1, 0)], sequence_length=32)
        >>> src, dst, drop = circuit.top(1)[0]
        >>> src, dst, drop > 0.5  # the previous-token head feeds the induction head
        ((0, 0), (1, 0), True)
    """
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
