"""Attribution patching: every head's ablation effect, to first order, from one forward and one backward.

Nanda (2023), "Attribution patching"; Kramár et al. (2024), "AtP*" (arXiv 2403.00745). Replacing a head's
output ``a`` (its slice of the output projection's input, ``[batch, seq, d_head]``) by ``a'`` changes the
loss by about ``sum over batch and positions of (a' - a) . dL/da``. ``a'`` is 0 (``"zero"``), the head's
mean output over the clean batch (``"mean"``) or its output on a corrupted batch whose repeat is broken
(``"corrupt"``: the repeat's tokens shuffled across the batch's repeats, so that the next token after an
earlier copy is no longer the next token here; the prefix unchanged). One clean forward keeps every head's
output in the autograd graph, the loss on the repeated half is computed inside the trace, and
``torch.autograd.grad`` gives ``dL/da`` for all heads at once (the model's parameters get no ``.grad``);
only ``[layer, head]`` numbers leave the trace, so it runs the same with ``remote=`` (the server must
allow gradients).

Where it fails: the estimate is linear in the head's output but the network after it is not. A head whose
removal changes *which* keys later heads attend to (saturated softmax downstream), or whose effect cancels
across positions or paths, can be ranked wrong; ``head_effects(..., verify_top=k)`` measures the top ``k``
exactly beside the estimate so the user sees where it holds. The first attention layer's head outputs are
made a gradient leaf (same values), so frozen models work; gradients never reach the embeddings.
"""

from __future__ import annotations

from typing import Any

import torch

from .engine import head_outputs
from .outputs import logits_of
from .sites import envoy_at

__all__ = ["attribution_effects", "repeat_half_loss", "gradient_leaf", "graph_head_outputs"]


def repeat_half_loss(output: Any, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Inside the trace: the mean next-token loss at query ``positions``, with its autograd graph."""
    logits = logits_of(output)
    picked = logits[:, positions.to(logits.device)].float()
    target = tokens.to(logits.device)[:, positions.to(logits.device) + 1]
    return -torch.log_softmax(picked, dim=-1).gather(-1, target[..., None]).mean()


def gradient_leaf(model: Any, tracer: Any, path: str, call: int) -> Any:
    """Inside the trace: the head outputs at ``path`` replaced by an identical tensor that requires grad."""
    if call:
        box = []
        for _ in tracer.iter[call]:
            box.append(gradient_leaf(model, tracer, path, 0))
        return box[0]
    envoy = envoy_at(model, path)
    leaf = envoy.input.detach().clone().requires_grad_(True)
    envoy.input = leaf
    return leaf


def graph_head_outputs(model: Any, tracer: Any, sites: tuple, paths: dict) -> list:
    """Inside the trace: every site's head outputs (the input of its output projection) in the autograd
    graph, in run order; the first made a gradient leaf (``gradient_leaf``) so frozen models have a graph."""
    return [
        gradient_leaf(model, tracer, paths[s.layer], s.call)
        if i == 0
        else head_outputs(model, tracer, paths[s.layer], s.call)
        for i, s in enumerate(sites)
    ]


def attribution_effects(
    engine: Any,
    sites: tuple,
    paths: dict,
    d_head: int,
    n_heads: int,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    replacement: dict[int, Any] | None,
) -> dict[int, torch.Tensor]:
    """``{layer: [head]}`` first-order loss change of replacing each head's output by ``replacement[layer]``
    (``None``: zero; a ``[width]`` mean; a ``[batch, seq, width]`` corrupted run). One forward, one backward."""
    import nnsight

    model = engine.model
    try:
        with torch.enable_grad(), engine.trace(tokens) as tracer:  # under a caller's no_grad too
            saved = nnsight.save({})
            outputs = graph_head_outputs(model, tracer, sites, paths)
            loss = repeat_half_loss(model.output, tokens, positions)
            grads = torch.autograd.grad(loss, outputs, allow_unused=True)
            for site, z, g in zip(sites, outputs, grads):
                if g is None:  # no path from this layer to the loss
                    saved[site.layer] = torch.zeros(n_heads)
                    continue
                target = 0 if replacement is None else replacement[site.layer].to(z.device)
                delta = (target - z.detach()) * g  # [batch, seq, width]
                saved[site.layer] = delta.float().sum((0, 1)).view(n_heads, d_head).sum(-1).cpu()
    except Exception as e:
        raise engine.translate(e, tuple(sites)) from e
    return dict(saved)
