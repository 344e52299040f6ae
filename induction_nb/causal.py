"""Causal evidence: head ablation, every head's effect, and the in-context-learning score.

Heads are removed at the *input* of the attention output projection (``o_proj`` / ``c_proj`` /
``out_proj`` / ``dense``), sliced by head: that input is the concatenation of the heads' outputs, so
one slice is exactly one head (slicing the projection's *output* would not isolate a head).
``"zero"`` sets the slice to 0; ``"mean"`` to its mean over the batch and positions of a clean run.
Many ablations share one forward pass: the batch is repeated, and each copy ablates its own heads.
Losses are measured on the repeated half of repeated random sequences (the tokens an induction head
can predict) and on the shipped natural-text passages.
All of it runs locally or with ``remote=`` (NDIF): the losses are computed inside the trace, so only
per-sequence numbers come back. Limits: models whose output projection is not a module called on the concatenated head outputs
(``nn.MultiheadAttention``, fused kernels) need ``projections=`` naming such a module per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch

from ._engine import Batch, Engine, cut_heads, head_outputs, next_token_logprobs, read_layer
from ._validate import check_choice, check_heads
from .errors import InputError

__all__ = ["AblationResult", "ablate_heads", "icl_score", "Ablator", "repeat_probe", "per_plan", "ABLATION_METHODS"]

AblationMethod = Literal["zero", "mean", "corrupt"]
ABLATION_METHODS = ("zero", "mean", "corrupt")


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


class Ablator:
    """Cuts heads of one model inside its forward passes: the engine's attention layers, each layer's
    output projection (``projections=`` overrides, one module path per layer) and the head width."""

    def __init__(self, model: Any, projections: Sequence[str] | None = None, remote: Any = False):
        self.engine = Engine.of(model, remote)
        self.model, self.module, self.remote = self.engine.model, self.engine.module, self.engine.remote
        self.sites = self.engine.sites()
        self.layers = self.engine.layers  # the model's layer indices, in run order
        self.n_layers = self.engine.n_layers
        self.paths, self.d_head = self.engine.projections(list(projections) if projections is not None else None)
        self.n_heads = self.engine.n_heads

    def check_heads(self, heads: Any, name: str = "heads") -> list[tuple[int, int]]:
        return check_heads(name, heads, {l: self.n_heads for l in self.layers})

    @property
    def heads(self) -> list[tuple[int, int]]:
        """Every head, in run order."""
        return [(l, h) for l in self.layers for h in range(self.n_heads)]

    def trace(self, tokens: torch.Tensor) -> Any:
        return self.engine.trace(tokens)

    def run(self, tokens: torch.Tensor, plans: list[list[tuple[int, int]]], method: str, means: dict | None,
            positions: torch.Tensor | None = None, read: dict[int, Any] | None = None,
            mask: torch.Tensor | None = None) -> tuple[Any, list]:
        """One forward over ``len(plans)`` copies of ``tokens``: copy ``i`` has the heads of ``plans[i]``
        removed. ``positions``: queries whose next-token log-probability and top-1 hit are computed inside
        the trace (``([copies * batch, len(positions)], same)``; only these numbers leave the model, so a
        remote run ships no logits). ``read``: ``{layer: reducer}`` of attention patterns to reduce in the
        same trace. ``mask`` ``[batch, seq]``: a padded batch's real tokens (the caller drops the numbers
        at padding). Returns the next-token numbers (``None`` without ``positions``) and the reductions."""
        import nnsight

        b = tokens.shape[0]
        model, paths, d = self.model, self.paths, self.d_head
        cuts: dict[int, list[tuple[slice, slice]]] = {}
        for i, plan in enumerate(plans):
            for l, h in plan:
                cuts.setdefault(l, []).append((slice(i * b, (i + 1) * b), slice(h * d, (h + 1) * d)))
        read = read or {}
        order = [s for s in self.sites if s.layer in set(cuts) | set(read)]
        big = tokens.repeat(len(plans), 1)
        batch, n_tokens = big.shape
        valid = None if mask is None else mask.repeat(len(plans), 1)
        run = big if mask is None else Batch(big, valid)
        scores = None  # only values saved inside the trace come back out of it
        try:
            with torch.no_grad(), self.engine.trace(run) as tracer:
                reduced = nnsight.save([])
                for site in order:
                    if site.layer in read:
                        reduced.append(read_layer(model, tracer, site, 1e-3, read[site.layer], n_tokens, batch, valid))
                    if site.layer in cuts:
                        values = None if method == "zero" else means[site.layer]
                        cut_heads(model, tracer, paths[site.layer], site.call, cuts[site.layer], values)
                if positions is None:
                    tracer.stop()
                else:
                    scores = nnsight.save(next_token_logprobs(model.output, big, positions))
        except Exception as e:
            raise self.engine.translate(e, tuple(order)) from e
        return scores, list(reduced)

    def replacement(self, tokens: torch.Tensor, first: int, method: str, seed: int) -> tuple[Any, int]:
        """What replaces a head's output under ``method``, and the forwards it cost: nothing (zero), each
        layer's mean ``[width]``, or each layer's outputs ``[batch, seq, width]`` on ``tokens`` with
        positions ``first..`` shuffled (seeded): the repeat broken, the prefix the same (corrupt)."""
        if method == "zero":
            return None, 0
        if method == "mean":
            return self.means(tokens), 1
        g = torch.Generator().manual_seed(seed + 1)
        corrupted = tokens.clone()
        pool = tokens[:, first:].flatten()
        corrupted[:, first:] = pool[torch.randperm(len(pool), generator=g).to(pool.device)].view(tokens.shape[0], -1)
        return self.outputs(corrupted), 1

    def outputs(self, tokens: torch.Tensor) -> dict[int, torch.Tensor]:
        """Each layer's head outputs ``[batch, seq, width]`` on ``tokens`` (for corrupted patching)."""
        import nnsight

        model, paths, sites = self.model, self.paths, self.sites
        try:
            with torch.no_grad(), self.engine.trace(tokens) as tracer:
                out = nnsight.save({})
                for site in sites:
                    out[site.layer] = head_outputs(model, tracer, paths[site.layer], site.call).float().cpu()
                tracer.stop()
        except Exception as e:
            raise self.engine.translate(e, sites) from e
        return dict(out)

    def means(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        """Mean of each layer's head outputs over batch and positions (real tokens only, with ``mask``),
        for mean ablation."""
        import nnsight

        model, paths, sites = self.model, self.paths, self.sites
        weight = torch.ones(tokens.shape, device=tokens.device) if mask is None else mask.float()
        try:
            with torch.no_grad(), self.engine.trace(tokens if mask is None else Batch(tokens, mask)) as tracer:
                out = nnsight.save({})
                for site in sites:
                    z = head_outputs(model, tracer, paths[site.layer], site.call).float()
                    out[site.layer] = (z * weight[..., None]).sum(dim=(0, 1)) / weight.sum()
        except Exception as e:
            raise self.engine.translate(e, sites) from e
        return dict(out)


def per_plan(values: torch.Tensor, n_plans: int) -> torch.Tensor:
    """``[plans * batch, positions]`` -> mean per plan ``[plans]``."""
    return values.float().reshape(n_plans, -1).mean(-1)


def repeat_probe(ab: Ablator, sequence_length: int, batch_size: int, seed: int):
    """``(tokens [batch, seq], the repeat's query positions, (natural tokens, their positions) or None)``:
    repeated random blocks (BOS first where the model has one) and, with a tokenizer, repeated natural
    passages. The positions are the queries predicting the repeat's 2nd..last token (its first token
    follows nothing that repeats)."""
    gen = ab.engine.generator(seed)
    probe = gen.generate("repeated", sequence_length, batch_size)
    tokens = ab.engine.check_tokens(probe.tokens)
    repeat_half = torch.arange(probe.offset + probe.period, tokens.shape[1] - 1)
    natural = None
    if ab.engine.tokenizer is not None:
        text = gen.generate("natural", sequence_length, min(batch_size, 5), n_repeats=2)
        natural = (ab.engine.check_tokens(text.tokens),
                   torch.arange(text.offset + text.period, text.tokens.shape[1] - 1))
    return tokens, repeat_half, natural


def ablate_heads(model: Any, heads: Sequence[tuple[int, int]], method: AblationMethod = "zero", *,
                 individually: bool = False, sequence_length: int = 64, batch_size: int = 8, seed: int = 0,
                 projections: Sequence[str] | None = None, remote: Any = False) -> AblationResult:
    """Remove ``heads`` together (and, with ``individually``, each alone) and measure the loss increase on
    the repeated half of repeated random sequences and on natural text (first passage half)."""
    check_choice("ablation method", method, ABLATION_METHODS)
    ab = Ablator(model, projections, remote)
    heads = ab.check_heads(heads)
    tokens, positions, natural = repeat_probe(ab, sequence_length, batch_size, seed)
    means, n_forward = ab.replacement(tokens, int(positions[0]), method, seed)
    plans = [[], heads] + ([[h] for h in heads] if individually else [])
    (lp, hit), _ = ab.run(tokens, plans, method, means, positions)
    losses, accuracy = -per_plan(lp, len(plans)), per_plan(hit, len(plans))
    nat_base = nat_abl = None
    n_forward += 1
    if natural is not None:  # the repeated half of natural passages; mean/corrupt with their own values
        text, text_positions = natural
        text_means, extra = ab.replacement(text, int(text_positions[0]), method, seed)
        (lp, _), _ = ab.run(text, [[], heads], method, text_means, text_positions)
        nat = -per_plan(lp, 2)
        nat_base, nat_abl = float(nat[0]), float(nat[1])
        n_forward += 1 + extra
    per_head = {h: float(losses[2 + i] - losses[0]) for i, h in enumerate(heads)} if individually else None
    return AblationResult(tuple(heads), method, float(losses[0]), float(losses[1]), nat_base, nat_abl, per_head,
                          n_forward, seed, float(accuracy[0]), float(accuracy[1]))


def icl_score(model: Any, *, ablate: Sequence[tuple[int, int]] = (), method: AblationMethod = "zero",
              sequence_length: int = 64, batch_size: int = 8, seed: int = 0,
              projections: Sequence[str] | None = None, remote: Any = False, texts: Any = None,
              **text_kwargs: Any) -> Any:
    """In-context-learning score (Olsson et al. 2022): mean loss at late tokens minus mean loss at early
    tokens (negative: the model uses its context). On repeated random tokens early = the first block,
    late = the repeat; on natural text early = tokens 1-10, late = the last 10 of each passage half:
    ``{"repeated": float, "natural": float | None}``. ``ablate``: heads removed while measuring.

    With ``texts`` (your documents: anything ``load_texts`` reads), Olsson et al.'s own definition on
    them: a ``loss_curve.LossCurve`` (loss by position, ``icl_score`` = loss at token 500 minus token 50
    with its bootstrap interval); ``text_kwargs`` go to ``loss_curve.loss_by_position`` (``early``,
    ``late``, ``window``, ``max_length``, ``overflow``, ``n_bootstrap``, ``progress``); ``batch_size`` is the
    documents per batch, ``sequence_length`` unused. Raises ``InputError`` where no document reaches the
    late token."""
    if texts is not None:
        from .loss_curve import loss_by_position, require_long_documents

        curve = loss_by_position(model, texts, ablate=ablate, method=method, batch_size=batch_size, seed=seed,
                                 projections=projections, remote=remote, **text_kwargs)
        require_long_documents(curve)
        return curve
    check_choice("ablation method", method, ABLATION_METHODS)
    ab = Ablator(model, projections, remote)
    plan = ab.check_heads(ablate) if ablate else []
    if sequence_length < 24:
        raise InputError(f"icl_score needs sequence_length >= 24 to have early and late windows, got {sequence_length}")
    tokens, late, natural = repeat_probe(ab, sequence_length, batch_size, seed)
    means = ab.replacement(tokens, int(late[0]), method, seed)[0] if plan else None
    start = int(late[0]) - (tokens.shape[1] - 1 - int(late[0]))
    early = torch.arange(max(1, start), int(late[0]))
    out = {"repeated": _late_minus_early(ab, tokens, early, late, plan, method, means), "natural": None}
    if natural is not None:  # a passage's first 10 predictions against the last 10 of its first copy
        text, repeat = natural
        end = int(repeat[0]) - 1
        text_means = ab.replacement(text, int(repeat[0]), method, seed)[0] if plan else None
        out["natural"] = _late_minus_early(ab, text, torch.arange(1, 11), torch.arange(end - 10, end), plan,
                                           method, text_means)
    return out


def _late_minus_early(ab: Ablator, tokens: torch.Tensor, early: torch.Tensor, late: torch.Tensor,
                      plan: list, method: str, means: dict | None) -> float:
    (lp, _), _ = ab.run(tokens, [plan], method, means, torch.cat([early, late]))
    return float(-lp[:, len(early):].mean() + lp[:, : len(early)].mean())
