"""Head ablation and the in-context-learning score.

``ablate_heads`` removes heads (zero, mean or corrupted patching: see ``engine.ablator``) and measures the
loss increase on the repeated half of repeated random sequences (the tokens an induction head can predict)
and on the shipped natural-text passages. ``icl_score`` is Olsson et al.'s in-context-learning score on
the same probes, or on your documents (``causal.loss_curve``). All of it runs locally or with ``remote=``
(NDIF): the losses are computed inside the trace, so only per-sequence numbers come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_choice, check_int
from ..engine.ablator import ABLATION_METHODS, AblationMethod, Ablator, per_plan
from ..engine.knockout import Edges, check_edges
from ..metrics.stats import bootstrap_mean
from .loss_curve import loss_by_position, require_long_documents
from .probe import repeat_probe

__all__ = ["AblationResult", "ablate_heads", "icl_score"]


@dataclass(frozen=True)
class AblationResult:
    """Loss with ``heads`` removed minus loss without, on the repeated half of repeated random
    sequences (``effect``) and on natural text (``natural_effect``, ``None`` without a tokenizer).
    ``per_head``: each head's own effect when ablated alone (``individually=True``). Accuracies: how
    often the top prediction on the repeated half is the next token, without and with the ablation."""

    heads: tuple[tuple[int, int], ...]
    method: str
    baseline_loss: float
    ablated_loss: float
    natural_baseline_loss: float | None
    natural_ablated_loss: float | None
    per_head: dict | None
    n_forward: int
    seed: int
    baseline_accuracy: float = float("nan")
    ablated_accuracy: float = float("nan")

    @property
    def effect(self) -> float:
        return self.ablated_loss - self.baseline_loss

    @property
    def natural_effect(self) -> float | None:
        if self.natural_ablated_loss is None:
            return None
        return self.natural_ablated_loss - self.natural_baseline_loss


def ablate_heads(
    model: Any,
    heads: Sequence[tuple[int, int]],
    method: AblationMethod = "zero",
    *,
    individually: bool = False,
    edges: Edges | None = None,
    sequence_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    projections: Sequence[str] | None = None,
    remote: Any = False,
) -> AblationResult:
    """Remove ``heads`` together (and, with ``individually``, each alone) and measure the loss increase on
    the repeated half of repeated random sequences and on natural text (first passage half).
    ``method="knockout"`` removes only the heads' ``edges`` (default ``"induction"``: each query's edges to
    the tokens after its earlier copies; ``engine.knockout``) before the softmax, the rest of each head kept
    (Crosbie & Shutova 2025). Raises ``InputError`` for bad heads, an unknown method, ``edges`` with
    another method, a ``mask_fn`` result that is not ``bool [batch, q, k]`` or ``[q, k]``, edges that
    select nothing, a query row left with no key it may see, or a kernel that takes no per-edge mask."""
    check_choice("ablation method", method, ABLATION_METHODS)
    check_edges(method, edges)
    ab = Ablator(model, projections, remote)
    heads = ab.check_heads(heads)
    tokens, positions, natural = repeat_probe(ab, sequence_length, batch_size, seed, tool="ablate_heads")
    means, n_forward = ab.replacement(tokens, int(positions[0]), method, seed)
    plans = [[], heads] + ([[h] for h in heads] if individually else [])
    (lp, hit), _ = ab.run(tokens, plans, method, means, positions, edges=edges)
    losses, accuracy = -per_plan(lp, len(plans)), per_plan(hit, len(plans))
    nat_base = nat_abl = None
    n_forward += 1
    if natural is not None:  # the repeated half of natural passages; mean/corrupt with their own values
        text, text_positions = natural
        text_means, extra = ab.replacement(text, int(text_positions[0]), method, seed)
        (lp, _), _ = ab.run(text, [[], heads], method, text_means, text_positions, edges=edges)
        nat = -per_plan(lp, 2)
        nat_base, nat_abl = float(nat[0]), float(nat[1])
        n_forward += 1 + extra
    per_head = {h: float(losses[2 + i] - losses[0]) for i, h in enumerate(heads)} if individually else None
    return AblationResult(
        tuple(heads),
        method,
        float(losses[0]),
        float(losses[1]),
        nat_base,
        nat_abl,
        per_head,
        n_forward,
        seed,
        float(accuracy[0]),
        float(accuracy[1]),
    )


def icl_score(
    model: Any,
    *,
    ablate: Sequence[tuple[int, int]] = (),
    method: AblationMethod = "zero",
    edges: Edges | None = None,
    sequence_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    projections: Sequence[str] | None = None,
    remote: Any = False,
    texts: Any = None,
    n_bootstrap: int | None = None,
    **text_kwargs: Any,
) -> Any:
    """In-context-learning score (Olsson et al. 2022): mean loss at late tokens minus mean loss at early
    tokens (negative: the model uses its context). On repeated random tokens early = the first block,
    late = the repeat; on natural text early = tokens 1-10, late = the last 10 of each passage half:
    ``{"repeated": float, "natural": float | None}``. ``ablate``: heads removed while measuring (or, with
    ``method="knockout"``, their ``edges`` knocked out: see ``ablate_heads``). ``n_bootstrap`` > 0 adds
    ``"repeated_interval"`` and ``"natural_interval"``: 95% bootstrap intervals over the sequences (seeded by
    ``seed``; ``None`` without a tokenizer).

    With ``texts`` (your documents: anything ``load_texts`` reads), Olsson et al.'s own definition on
    them: a ``causal.loss_curve.LossCurve`` (loss by position, ``icl_score`` = loss at token 500 minus token 50
    with its bootstrap interval); ``text_kwargs`` go to ``causal.loss_curve.loss_by_position`` (``early``,
    ``late``, ``window``, ``max_length``, ``overflow``, ``progress``; ``n_bootstrap`` defaults to 1000 there);
    ``batch_size`` is the
    documents per batch, ``sequence_length`` unused. Raises ``InputError`` where no document reaches the
    late token."""
    if texts is not None:
        if n_bootstrap is not None:  # loss_by_position checks it (and its own default is 1000)
            text_kwargs["n_bootstrap"] = n_bootstrap
        curve = loss_by_position(
            model,
            texts,
            ablate=ablate,
            method=method,
            edges=edges,
            batch_size=batch_size,
            seed=seed,
            projections=projections,
            remote=remote,
            **text_kwargs,
        )
        require_long_documents(curve)
        return curve
    check_choice("ablation method", method, ABLATION_METHODS)
    check_edges(method, edges)
    n_bootstrap = check_int("n_bootstrap", 0 if n_bootstrap is None else n_bootstrap, 0)
    ab = Ablator(model, projections, remote)
    return icl_and_loss(ab, ablate, method, edges, sequence_length, batch_size, seed, n_bootstrap)[0]


def icl_and_loss(
    ab: Ablator,
    ablate: Sequence,
    method: str,
    edges: Any,
    sequence_length: Any,
    batch_size: int,
    seed: int,
    n_bootstrap: int = 0,
) -> tuple[dict, float]:
    """``icl_score``'s dict on repeated tokens and passages (with ``n_bootstrap``, their intervals), and the
    mean loss of its late window on the repeated tokens (the repeated half: ``ablate_heads``' loss on the
    same probe), from the same forwards."""
    plan = ab.check_heads(ablate) if ablate else []
    # a first block of >= 12 tokens: early and late windows that do not overlap
    tokens, late, natural = repeat_probe(ab, sequence_length, batch_size, seed, minimum=24, tool="icl_score")
    means = ab.replacement(tokens, int(late[0]), method, seed)[0] if plan else None
    start = int(late[0]) - (tokens.shape[1] - 1 - int(late[0]))
    early = torch.arange(max(1, start), int(late[0]))
    score, loss, rows = _late_minus_early(ab, tokens, early, late, plan, method, means, edges)
    out: dict = {"repeated": score, "natural": None}
    intervals: dict = {"repeated_interval": _interval(rows, n_bootstrap, seed), "natural_interval": None}
    if natural is not None:  # a passage's first 10 predictions against the last 10 of its first copy
        text, repeat = natural
        end = int(repeat[0]) - 1
        text_means = ab.replacement(text, int(repeat[0]), method, seed)[0] if plan else None
        out["natural"], _, rows = _late_minus_early(
            ab, text, torch.arange(1, 11), torch.arange(end - 10, end), plan, method, text_means, edges
        )
        intervals["natural_interval"] = _interval(rows, n_bootstrap, seed)
    if n_bootstrap:
        out.update(intervals)
    return out, loss


def _late_minus_early(
    ab: Ablator,
    tokens: torch.Tensor,
    early: torch.Tensor,
    late: torch.Tensor,
    plan: list,
    method: str,
    means: dict | None,
    edges: Edges | None,
) -> tuple[float, float, torch.Tensor]:
    """The late-minus-early loss, the late window's loss and each sequence's late-minus-early ``[batch]``."""
    (lp, _), _ = ab.run(tokens, [plan], method, means, torch.cat([early, late]), edges=edges)
    late_loss = float(-lp[:, len(early) :].mean())
    rows = lp[:, : len(early)].double().mean(1) - lp[:, len(early) :].double().mean(1)
    return late_loss + float(lp[:, : len(early)].mean()), late_loss, rows


def _interval(rows: torch.Tensor, n_bootstrap: int, seed: int) -> tuple[float, float] | None:
    """A 95% bootstrap interval of the mean of ``rows`` (``None`` for ``n_bootstrap`` 0)."""
    if not n_bootstrap:
        return None
    low, high = bootstrap_mean(rows.float(), n_bootstrap, seed)
    return float(low), float(high)
