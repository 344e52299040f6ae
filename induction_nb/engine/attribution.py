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

``atp_star_effects``: the same forward and backward, with every layer's attention inputs kept so that the
query/key routes of the chosen target heads are recomputed exactly (``engine.atp_star``, AtP*); still only
``[layer, head]`` numbers leave the trace.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError
from .atp_star import QKMap, capture_target, check_map, qk_route, target_bounds, target_weights
from .engine import head_outputs
from .outputs import logits_of
from .sites import envoy_at

__all__ = [
    "attribution_effects",
    "atp_star_effects",
    "GradGate",
    "repeat_half_loss",
    "gradient_leaf",
    "graph_head_outputs",
]


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


def atp_star_effects(
    engine: Any,
    sites: tuple,
    paths: dict,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    replacement: dict[int, Any] | None,
    maps: dict[int, QKMap],
    max_targets: int,
    graddrop: bool = False,
) -> dict[str, dict[int, torch.Tensor]]:
    """One forward and one backward: ``{"plain", "corrected", "missed"}``, each ``{layer: [head]}``: plain
    attribution, the query/key-route correction (``exact - linear`` summed over the chosen targets) and the
    bound on what the targets left out could still move (module docstring). At most ``max_targets`` target
    heads, chosen by their bound. ``graddrop``: also ``"graddrop"``, AtP*'s GradDrop score (``_graddrop``),
    one more backward per attention layer."""
    import nnsight

    model, batch = engine.model, tokens.shape[0]
    if any(s.call for s in sites):
        raise InputError("atp*: a layer's attention module runs more than once per forward; use 'attribution'")
    try:
        with torch.enable_grad(), engine.trace(tokens) as tracer:
            saved = nnsight.save({})
            targets, outputs, gates = [], [], torch.ones(len(sites))
            for i, s in enumerate(sites):
                targets.append(capture_target(model, s, maps[s.layer].norm_path, batch))
                z = (
                    gradient_leaf(model, tracer, paths[s.layer], 0)
                    if i == 0
                    else head_outputs(model, tracer, paths[s.layer])
                )
                outputs.append(z)
                if graddrop:
                    projection = envoy_at(model, paths[s.layer])
                    projection.output = GradGate.apply(projection.output, gates, i)
            loss = repeat_half_loss(model.output, tokens, positions)
            grads = torch.autograd.grad(loss, outputs, allow_unused=True, retain_graph=graddrop)
            dz = [
                ((0 if replacement is None else replacement[s.layer].to(z.device)) - z.detach()).float()
                for s, z in zip(sites, outputs)
            ]  # each head's change [batch, seq, head * d_head], shared by every estimate below
            saved.update(_corrections(sites, targets, outputs, grads, dz, maps, max_targets))
            if graddrop:
                saved["graddrop"] = _graddrop(sites, loss, outputs, gates, dz, maps)
    except InputError:
        raise
    except Exception as e:
        raise engine.translate(e, tuple(sites)) from e
    return dict(saved)


class GradGate(torch.autograd.Function):
    """Identity forward; backward scales the gradient by ``gates[i]``, read when the backward runs (GradDrop)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, gates: torch.Tensor, i: int) -> torch.Tensor:
        ctx.gates, ctx.i = gates, i
        return x.clone()  # not a view: the model may write into its output in place

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        return grad * ctx.gates[ctx.i].to(grad), None, None


def _per_head(dz: torch.Tensor, g: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[head]``: the first-order loss change ``dz . g`` summed over batch and positions, per head."""
    return (dz * g.float()).sum((0, 1)).view(n_heads, -1).sum(-1).cpu()


def _graddrop(sites, loss, outputs, gates, dz, maps) -> dict:
    """AtP*'s GradDrop (Kramár et al. 2024): the attribution estimate again with the gradient through layer
    ``l``'s attention output dropped, for every ``l``; per head ``sum_l |estimate_l| / (L - 1)``. Paths that
    cancel in the plain estimate show here (a magnitude, for choosing what to verify). The MLPs' outputs are
    not dropped: attention layers are what every site names."""
    total = {s.layer: torch.zeros(maps[s.layer].W_O.shape[0]) for s in sites}
    for i in range(len(sites)):
        gates.fill_(1.0)
        gates[i] = 0.0
        grads = torch.autograd.grad(loss, outputs, allow_unused=True, retain_graph=i < len(sites) - 1)
        for s, d, g in zip(sites, dz, grads):
            if g is not None:
                total[s.layer] += _per_head(d, g, len(total[s.layer])).abs()
    return {layer: t / max(1, len(sites) - 1) for layer, t in total.items()}


def _corrections(sites, targets, outputs, grads, dz, maps, max_targets) -> dict:
    """Inside the trace, after the backward: plain estimates, corrections and missed bounds per layer."""
    layers = [s.layer for s in sites]
    grads = [torch.zeros_like(z) if g is None else g.detach() for z, g in zip(outputs, grads)]
    H = {layer: maps[layer].W_O.shape[0] for layer in layers}
    plain = {layer: _per_head(d, g, H[layer]) for layer, d, g in zip(layers, dz, grads)}
    with torch.no_grad():
        for i in range(1, len(sites)):
            check_map(targets[i], maps[layers[i]], layers[i])
        weights = {i: target_weights(targets[i], grads[i]) for i in range(1, len(sites))}
        bounds = {i: target_bounds(targets[i], weights[i]) for i in range(1, len(sites))}
    ranked = sorted(((float(b[t]), i, t) for i, b in bounds.items() for t in range(len(b))), reverse=True)
    chosen = {}
    for _, i, t in ranked[:max_targets]:
        chosen.setdefault(i, []).append(t)
    left = {i: b.clone() for i, b in bounds.items()}
    for i, heads in chosen.items():
        left[i][heads] = 0.0
    corrected = {layer: torch.zeros(H[layer]) for layer in layers}
    missed = {layer: torch.zeros(H[layer]) for layer in layers}
    with torch.no_grad():
        for i, heads in chosen.items():
            for j in range(i):
                args = (dz[j], maps[layers[j]], targets[i], maps[layers[i]], weights[i], sorted(heads))
                exact, linear = qk_route(*args)
                corrected[layers[j]] += (exact - linear).cpu()
    for i, b in left.items():
        for j in range(i):
            missed[layers[j]] += float(b.sum())
    return {"plain": plain, "corrected": corrected, "missed": missed}
