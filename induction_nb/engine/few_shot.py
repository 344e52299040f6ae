"""The model-side half of few-shot in-context learning and function-vector heads: the answer's probability at
each prompt's final token under an intervention, and each head's output there.

Prompts are right-padded (``probes.few_shot``): the real tokens never see the padding in causal attention,
so no mask is passed; the answer is read at each prompt's own final position ``last[b]``. One forward runs
several *copies* of the prompts, each with its own intervention: heads removed (zero or mean, every
position), heads' edges knocked out before the softmax (``engine.knockout``) and heads' final-token outputs
set to a given vector (the function-vector patch of Todd et al., ICLR 2024). Only ``[copies, prompts]``
numbers leave the trace, so all of it runs with ``remote=``. The attribution form estimates every head's
patch effect from one forward and one backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from .ablator import Ablator, head_blocks, place_knockout
from .attribution import graph_head_outputs
from .engine import cut_heads, head_outputs
from .knockout import KnockPlan, edge_mask
from .outputs import logits_of
from .sites import envoy_at

__all__ = ["Copy", "answer_scores", "final_outputs", "attributed_patch_effects", "check_right_padding", "prompt_mask"]


@dataclass(frozen=True)
class Copy:
    """One copy's intervention: ``ablate`` heads removed (``method`` of the call), ``knockout`` heads' induction
    edges (or the call's ``edges``) removed before the softmax, ``patch`` heads' final-token outputs replaced
    by the call's ``vectors``."""

    ablate: tuple[tuple[int, int], ...] = ()
    knockout: tuple[tuple[int, int], ...] = ()
    patch: tuple[tuple[int, int], ...] = ()


def prompt_mask(tokens: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """``bool [n, seq]``: the real tokens of right-padded prompts whose final token is at ``last`` ``[n]``."""
    return torch.arange(tokens.shape[1])[None, :] <= last[:, None]


def _answer(output: Any, last: torch.Tensor, answer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inside a trace: ``P(answer[r])`` at ``last[r]`` and whether it is the top prediction, ``[rows]`` each."""
    logits = logits_of(output)
    rows = torch.arange(logits.shape[0], device=logits.device)
    picked = logits[rows, last.to(logits.device)].float()
    target = answer.to(logits.device)[:, None]
    return picked.softmax(-1).gather(-1, target)[:, 0].cpu(), (picked.argmax(-1, keepdim=True) == target)[:, 0].cpu()


def _set_final(model: Any, tracer: Any, path: str, call: int, blocks: list, n: int, last: torch.Tensor, vec) -> None:
    """Inside a trace: for each ``(copy, cols)`` block, the head outputs of copy ``copy`` at each prompt's
    final position set to ``vec[cols]`` (``vec`` ``[width]``, or ``[n, width]``: one vector per prompt)."""
    if call:
        for _ in tracer.iter[call]:
            _set_final(model, tracer, path, 0, blocks, n, last, vec)
        return
    z = envoy_at(model, path).input
    at = last.to(z.device)
    rows = torch.arange(n, device=z.device)
    for copy, cols in blocks:
        z[rows + copy * n, at, cols] = (vec[..., cols]).to(z.device, z.dtype)


def check_right_padding(ab: Ablator, tokens: torch.Tensor, last: torch.Tensor) -> bool:
    """Right padding is only harmless where the final token cannot see it (causal attention). Proven on the
    shortest prompt: its answer logits with two different paddings must agree (one forward of two rows);
    ``InputError`` otherwise. Returns whether a proof ran (``False``: no prompt is padded, nothing to prove)."""
    import nnsight

    r = int(last.argmin())
    if int(last[r]) == tokens.shape[1] - 1:
        return False
    pair = tokens[r].repeat(2, 1)
    pair[1, int(last[r]) + 1 :] = tokens[r, int(last[r])]  # another padding token than row 0's
    model, at = ab.model, last[r]
    try:
        with torch.no_grad(), ab.trace(pair) as tracer:  # noqa: F841 (the trace context)
            seen = nnsight.save(logits_of(model.output)[:, at].float().cpu())
    except Exception as e:
        raise ab.engine.translate(e) from e
    if not torch.allclose(seen[0], seen[1], atol=1e-4, rtol=1e-4):
        raise InputError(
            "the prompts are right-padded and this model's final token sees the padding (bidirectional "
            "attention): few-shot accuracy and function-vector scores are defined for causal language models; "
            "use tasks of one length (the abstract tasks) or a causal model"
        )
    return True


def answer_scores(
    ab: Ablator,
    tokens: torch.Tensor,
    last: torch.Tensor,
    answer: torch.Tensor,
    copies: list[Copy],
    method: str = "mean",
    means: dict | None = None,
    edges: Any = None,
    vectors: dict[int, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward over ``len(copies)`` copies of the prompts ``tokens`` ``[n, seq]`` (right-padded, final
    token at ``last`` ``[n]``): ``(P(answer) [copies, n], top-1 hit [copies, n])``. ``means``: each layer's
    mean head output ``[width]`` for ``method="mean"``; ``edges``: the knockout's (default induction, on the
    real tokens); ``vectors``: ``{layer: [width] or [n, width]}`` for the patched heads."""
    import nnsight

    n, d = tokens.shape[0], ab.d_head
    cuts, knocks = head_blocks([c.ablate for c in copies], [c.knockout for c in copies], n, d)
    patches: dict[int, list] = {}
    for i, copy in enumerate(copies):
        for l, h in copy.patch:
            patches.setdefault(l, []).append((i, slice(h * d, (h + 1) * d)))
    if knocks:
        edges = edge_mask(edges, tokens, prompt_mask(tokens, last))
    big = tokens.repeat(len(copies), 1)
    at, target = last.repeat(len(copies)), answer.repeat(len(copies))
    order = [s for s in ab.sites if s.layer in set(cuts) | set(knocks) | set(patches)]
    model, paths = ab.model, ab.paths  # the trace body ships plain locals (remote runs)
    try:
        with torch.no_grad(), ab.trace(big) as tracer:
            for site in order:
                if site.layer in knocks:
                    place_knockout(model, tracer, site, KnockPlan(knocks[site.layer], edges, len(copies)))
                if site.layer in cuts:
                    values = None if method == "zero" else means[site.layer]
                    cut_heads(model, tracer, paths[site.layer], site.call, cuts[site.layer], values)
                if site.layer in patches:
                    vec = vectors[site.layer]
                    _set_final(model, tracer, paths[site.layer], site.call, patches[site.layer], n, last, vec)
            scores = nnsight.save(_answer(model.output, at, target))
    except Exception as e:
        raise ab.engine.translate(e, tuple(order)) from e
    prob, hit = scores
    return prob.reshape(len(copies), n), hit.reshape(len(copies), n)


def final_outputs(ab: Ablator, tokens: torch.Tensor, last: torch.Tensor) -> dict[int, torch.Tensor]:
    """Each layer's head outputs at each prompt's final token, ``{layer: [n, width]}`` (one forward)."""
    import nnsight

    model, paths, sites = ab.model, ab.paths, ab.sites
    rows = torch.arange(tokens.shape[0])
    try:
        with torch.no_grad(), ab.trace(tokens) as tracer:
            out = nnsight.save({})
            for site in sites:
                z = head_outputs(model, tracer, paths[site.layer], site.call)
                out[site.layer] = z[rows.to(z.device), last.to(z.device)].float().cpu()
            tracer.stop()
    except Exception as e:
        raise ab.engine.translate(e, sites) from e
    return dict(out)


def attributed_patch_effects(
    ab: Ablator, tokens: torch.Tensor, last: torch.Tensor, answer: torch.Tensor, vectors: dict[int, torch.Tensor]
) -> torch.Tensor:
    """Attribution patching (Nanda 2023) of the function-vector patch: for every head at once, the first-order
    change of ``P(answer)`` when its final-token output is set to ``vectors[layer]`` (``[width]`` or
    ``[n, width]``): ``(vec - z) . dP/dz``
    at ``last``, from one forward and one backward over ``tokens``. Returns ``[n, layer, head]`` (layers in
    run order)."""
    import nnsight

    n, d, n_heads = tokens.shape[0], ab.d_head, ab.n_heads
    model, paths, sites = ab.model, ab.paths, ab.sites
    rows = torch.arange(n)
    try:
        with torch.enable_grad(), ab.trace(tokens) as tracer:
            saved = nnsight.save([])
            outputs = graph_head_outputs(model, tracer, sites, paths)
            logits = logits_of(model.output)
            picked = logits[rows.to(logits.device), last.to(logits.device)].float().softmax(-1)
            p = picked.gather(-1, answer.to(logits.device)[:, None]).sum()
            grads = torch.autograd.grad(p, outputs, allow_unused=True)
            for site, z, g in zip(sites, outputs, grads):
                if g is None:
                    saved.append(torch.zeros(n, n_heads))
                    continue
                at = last.to(z.device)
                here = rows.to(z.device)
                delta = (vectors[site.layer].to(z.device, z.dtype) - z[here, at].detach()) * g[here, at]
                saved.append(delta.float().view(n, n_heads, d).sum(-1).cpu())
    except Exception as e:
        raise ab.engine.translate(e, tuple(sites)) from e
    return torch.stack(list(saved), 1)
