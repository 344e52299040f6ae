"""The model-side halves of the dual-route measurements (token vs concept induction; Feucht, Todd, Wallace
and Bau, COLM 2025, "The Dual-Route Model of Induction", arXiv 2504.03022): value-weighted attention on
chosen keys, and one head's output patched from a clean run into a corrupted one.

Both run inside one trace and return per-head numbers only (a remote run ships no activations): the
value-weighted weights ``[batch, layer, head, keys]`` and the probabilities of target tokens after each
patch. Value vectors are the ones the attention call itself received (``SiteKind.values``, proven by
``pattern @ values`` reproducing the call's output); a site that does not pass them (a bare softmax) is
refused with the fix. Patching happens at the output projection's input, one head's slice at one
position per sequence; the clean copy runs in the same forward (its rows are never written), so many
heads are patched per forward and exactly (no estimate).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError
from .ablator import Ablator
from .attribution import graph_head_outputs
from .batch import Batch
from .engine import Engine, read_layer
from .outputs import logits_of
from .sites import Site, envoy_at
from .tracing import mha_fastpath_off

__all__ = ["value_weighted_keys", "patched_probabilities", "attributed_probabilities"]


class _ValueWeightedKeys:
    """Inside the trace: for each sequence ``b``, the value-weighted attention of query ``queries[b]`` on
    keys ``keys[b]``: ``A[q, k] |v_k| / sum_j A[q, j] |v_j|``, and the plain weights ``A[q, k]``, as
    ``[2, batch, head, keys]``."""

    accepts_values = True

    def __init__(self, queries: torch.Tensor, keys: torch.Tensor, need_values: bool = True):
        self.queries, self.keys, self.need_values = queries, keys, need_values

    def __call__(self, layer: int, pattern: torch.Tensor, values: torch.Tensor | None) -> torch.Tensor:
        if values is None and self.need_values:
            raise InputError(
                f"layer {layer}: value-weighted attention needs each head's value vectors for the tokens' keys, which "
                "this attention site does not pass (a bare softmax, or keys beyond the tokens); pass "
                "weighting='attention' for plain attention weights, or sites=CustomSites(..., values=...)"
            )
        b, device = pattern.shape[0], pattern.device
        rows = pattern[torch.arange(b, device=device), :, self.queries.to(device)]  # [batch, head, k]
        weighted = rows
        if values is not None:
            weighted = rows * values[..., : rows.shape[-1], :].norm(dim=-1)
            total = weighted.sum(-1, keepdim=True)  # 0 where the head writes nothing: undefined, NaN
            weighted = weighted / torch.where(total > 0, total, torch.nan)
        keys = self.keys.to(device)[:, None, :].expand(b, rows.shape[1], -1)
        # the weight each query puts on keys after it: 0 where the attention is causal (checked by the caller)
        later = torch.arange(rows.shape[-1], device=device)[None, :] > self.queries.to(device)[:, None]
        ahead = (rows * later[:, None, :]).sum(-1, keepdim=True).expand_as(keys)
        return torch.stack([weighted.gather(-1, keys), rows.gather(-1, keys), ahead]).float().cpu()


def value_weighted_keys(
    engine: Engine,
    batch: Batch,
    queries: torch.Tensor,
    keys: torch.Tensor,
    need_values: bool = True,
    sites: tuple[Site, ...] | None = None,
) -> tuple[torch.Tensor, dict[int, int]]:
    """One forward over ``batch`` (``[batch, seq]``, padded or not): per layer and head, the value-weighted
    and the plain attention of query position ``queries[b]`` on key positions ``keys[b]`` (``[batch, m]``).
    Returns ``([3, batch, layer, head, m], heads)``: index 0 value-weighted, 1 plain, 2 the query's weight on
    keys after it (the same for every ``m``; 0 in causal attention); ``heads``: ``{layer: its heads}``, the
    model's layer indices in the order of the layer axis (a layer with fewer heads is NaN beyond them).
    ``InputError`` where a site passes no values (``need_values=False``: both indices hold the plain
    weights there) or a query attends to later keys."""
    import nnsight

    sites = engine.sites() if sites is None else sites  # named sites (CustomSites(..., values=...)) or found
    reduce = _ValueWeightedKeys(queries, keys, need_values)
    n, n_tokens = batch.tokens.shape
    model, tolerance, valid = engine.model, engine.tolerance, batch.mask  # the trace body ships plain locals
    try:
        with torch.no_grad(), mha_fastpath_off(), engine.trace(batch) as tracer:
            out = nnsight.save([])
            for site in sites:
                out.append(read_layer(model, tracer, site, tolerance, reduce, n_tokens, n, valid))
            tracer.stop()
    except Exception as e:
        raise engine.translate(e, sites) from e
    if any(float(x[2].max()) > 1e-6 for _, x, _ in out if x is not None):  # the query row itself, not a flag
        raise InputError(
            "token and concept induction are defined for causal (decoder-only) attention; this model's attention "
            "sees future tokens"
        )
    got = [(layer, x) for layer, x, _ in out if x is not None]
    width = max(x.shape[2] for _, x in got)  # layers with fewer heads (OpenELM-style) padded with NaN
    grid = [torch.nn.functional.pad(x, (0, 0, 0, width - x.shape[2]), value=float("nan")) for _, x in got]
    return torch.stack(grid, dim=2), {layer: x.shape[2] for layer, x in got}


def _patch(model: Any, tracer: Any, path: str, call: int, blocks: list, n: int, positions: torch.Tensor) -> None:
    """Inside a trace: for each ``(copy, cols)`` block, the head outputs of copy ``copy`` (rows ``copy * n``
    onwards) at each sequence's ``positions[b]`` set to the clean copy's (rows ``0..n``) in ``cols``."""
    if call:
        for _ in tracer.iter[call]:
            _patch(model, tracer, path, 0, blocks, n, positions)
        return
    z = envoy_at(model, path).input
    clean = torch.arange(n, device=z.device)
    at = positions.to(z.device)
    for copy, cols in blocks:
        z[clean + copy * n, at, cols] = z[clean, at, cols]


def _probabilities(output: Any, at: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Inside a trace: ``P(targets[r, j])`` at position ``at[r, j]`` of each row ``r``: ``[rows, j]``."""
    logits = logits_of(output)
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    picked = logits[rows, at.to(logits.device)].float().softmax(-1)  # [rows, j, vocab]
    return picked.gather(-1, targets.to(logits.device)[..., None])[..., 0].cpu()


def patched_probabilities(
    ablator: Ablator,
    clean: Batch,
    corrupt: torch.Tensor,
    position: torch.Tensor,
    plans: list[list[tuple[int, int]]],
    at: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """One forward over ``2 + len(plans)`` copies of ``n`` sequences: the clean run, the corrupted run
    (``corrupt`` ``[n, seq]``, the same padding as ``clean``), then one corrupted copy per plan with each of
    its heads' outputs at ``position[b]`` (``[n]``) replaced by the clean run's. Returns the probability
    of ``targets[b, j]`` at position ``at[b, j]`` (both ``[n, j]``) in every copy: ``[2 + plans, n, j]``."""
    import nnsight

    n, d = clean.tokens.shape[0], ablator.d_head
    blocks: dict[int, list] = {}
    for i, plan in enumerate(plans):
        for l, h in plan:
            blocks.setdefault(l, []).append((2 + i, slice(h * d, (h + 1) * d)))
    copies = 2 + len(plans)
    tokens = torch.cat([clean.tokens, corrupt.to(clean.tokens.device).repeat(copies - 1, 1)])
    mask = None if clean.mask is None else clean.mask.repeat(copies, 1)
    order = [s for s in ablator.sites if s.layer in blocks]
    model, paths = ablator.model, ablator.paths  # the trace body ships plain locals (remote runs)
    at, targets = at.repeat(copies, 1), targets.repeat(copies, 1)
    try:
        with torch.no_grad(), ablator.trace(Batch(tokens, mask)) as tracer:
            for site in order:
                _patch(model, tracer, paths[site.layer], site.call, blocks[site.layer], n, position)
            probs = nnsight.save(_probabilities(model.output, at, targets))
    except Exception as e:
        raise ablator.engine.translate(e, tuple(order)) from e
    return probs.reshape(copies, n, -1)


def attributed_probabilities(
    ablator: Ablator,
    clean: torch.Tensor,
    corrupt: torch.Tensor,
    position: torch.Tensor,
    at: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """Attribution patching (Nanda 2023; Kramár et al. 2024, arXiv 2403.00745) of ``patched_probabilities``:
    for every head at once, the first-order change of ``P(targets[b])`` at ``at[b]`` (both ``[n]``) in the
    corrupted run when the head's output at ``position[b]`` is replaced by the clean run's:
    ``(z_clean - z_corrupt) . dP/dz_corrupt``, from one forward over ``[clean; corrupt]`` and one backward.
    Returns ``[n, layer, head]`` (layers in run order). Exact where the network after the head is linear in
    its output; saturated softmaxes downstream make it wrong (verify the top heads exactly)."""
    import nnsight

    n, d, n_heads = clean.shape[0], ablator.d_head, ablator.n_heads
    model, paths, sites = ablator.model, ablator.paths, ablator.sites
    tokens = torch.cat([clean, corrupt.to(clean.device)])
    rows = torch.arange(n)
    try:
        with torch.enable_grad(), ablator.trace(tokens) as tracer:
            saved = nnsight.save([])
            outputs = graph_head_outputs(model, tracer, sites, paths)
            probs = _probabilities(model.output, at[:, None].repeat(2, 1), targets[:, None].repeat(2, 1))
            grads = torch.autograd.grad(probs[n:].sum(), outputs, allow_unused=True)
            for z, g in zip(outputs, grads):
                if g is None:  # no path from this layer to the prediction
                    saved.append(torch.zeros(n, n_heads))
                    continue
                pos = position.to(z.device)
                delta = (z[rows, pos] - z[rows + n, pos]).detach() * g[rows + n, pos]  # [n, width]
                saved.append(delta.float().view(n, n_heads, d).sum(-1).cpu())
    except Exception as e:
        raise ablator.engine.translate(e, tuple(sites)) from e
    return torch.stack(list(saved), 1)
