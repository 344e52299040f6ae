"""The intervention machine: one forward pass with chosen heads removed, attention reduced and next-token
log-probabilities computed inside the trace.

Heads are removed at the *input* of the attention output projection (``o_proj`` / ``c_proj`` /
``out_proj`` / ``dense``), sliced by head: that input is the concatenation of the heads' outputs, so one
slice is exactly one head (slicing the projection's *output* would not isolate a head). ``"zero"`` sets
the slice to 0, ``"mean"`` to its mean over a clean run, ``"corrupt"`` to its output on a corrupted run.
Many ablations share one forward: the batch is repeated and each copy removes its own heads. Only
per-sequence numbers leave the trace, so all of it runs the same with ``remote=``. The studies built on it
(``ablate_heads``, ``head_effects``, ``find_circuit``, ``copying_dla``) live in ``induction_nb.causal``.
Limits: a model whose output projection is not a module called on the concatenated head outputs
(``nn.MultiheadAttention``, fused kernels) needs ``projections=`` naming such a module per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import torch

from .._validate import check_heads
from ..errors import InputError
from .batch import Batch
from .engine import Engine, cut_heads, head_outputs, read_layer
from .knockout import Edges, KnockPlan, edge_mask
from .outputs import next_token_logprobs
from .sites import envoy_at, op_node
from .wrappers import adapted_layer

__all__ = ["Ablator", "AblationMethod", "ABLATION_METHODS", "per_plan", "readout", "place_knockout", "head_blocks"]

AblationMethod = Literal["zero", "mean", "corrupt", "knockout"]
ABLATION_METHODS = ("zero", "mean", "corrupt", "knockout")


class Ablator:
    """Cuts heads of one model inside its forward passes: the engine's attention layers, each layer's
    output projection (``projections=`` overrides, one module path per layer) and the head width."""

    def __init__(self, model: Any, projections: Sequence[str] | None = None, remote: Any = False):
        self.engine = Engine.of(model, remote)
        self.model, self.module, self.remote = self.engine.model, self.engine.module, self.engine.remote
        self.sites = self.engine.sites()
        self.layers = self.engine.layers  # the model's layer indices, in run order
        self.n_layers = self.engine.n_layers
        named = None if projections is None else [adapted_layer(self.module, p) for p in projections]
        self.paths, self.d_head = self.engine.projections(named)
        self.n_heads = self.engine.n_heads
        counts = {l: n for l, n in self.engine.heads_per_layer().items() if n is not None}
        if any(n != self.n_heads for n in counts.values()):  # one width per head is how heads are sliced
            raise InputError(
                f"the layers have different head counts ({counts}, the config says {self.n_heads}); the ablation "
                f"tools slice every layer's heads alike ({self.n_heads} of width {self.d_head}) and would cut the "
                "wrong features: run them on a model whose layers and config agree on one head count"
            )

    def check_heads(self, heads: Any, name: str = "heads") -> list[tuple[int, int]]:
        """``heads`` as ``(layer, head)`` pairs of this model, each named once, or ``InputError``."""
        return check_heads(name, heads, {l: self.n_heads for l in self.layers}, unique=True)

    @property
    def heads(self) -> list[tuple[int, int]]:
        """Every head, in run order."""
        return [(l, h) for l in self.layers for h in range(self.n_heads)]

    def trace(self, tokens: torch.Tensor) -> Any:
        return self.engine.trace(tokens)

    def run(
        self,
        tokens: torch.Tensor,
        plans: list[list[tuple[int, int]]],
        method: str,
        means: dict | None,
        positions: torch.Tensor | None = None,
        read: dict[int, Any] | None = None,
        mask: torch.Tensor | None = None,
        knock: list[list[tuple[int, int]]] | None = None,
        edges: Edges | torch.Tensor | None = None,
    ) -> tuple[Any, list]:
        """One forward over ``len(plans)`` copies of ``tokens``: copy ``i`` has the heads of ``plans[i]``
        removed. ``positions``: queries whose next-token log-probability and top-1 hit are computed inside
        the trace (``([copies * batch, len(positions)], same)``; only these numbers leave the model, so a
        remote run ships no logits). ``read``: ``{layer: reducer}`` of attention patterns to reduce in the
        same trace. ``mask`` ``[batch, seq]``: a padded batch's real tokens (the caller drops the numbers
        at padding). ``knock``: per copy, heads whose ``edges`` (an ``engine.knockout.Edges``, default
        ``"induction"``, or its ``bool [batch, q, k]``) are knocked out before the softmax (composes with the
        copy's removed heads); ``method="knockout"`` knocks out the plans' heads instead of removing them.
        Returns the next-token numbers (``None`` without ``positions``) and the reductions."""
        import nnsight

        b = tokens.shape[0]
        if method == "knockout":
            plans, knock = [[] for _ in plans], plans
        if knock is not None and any(knock) and not isinstance(edges, torch.Tensor):
            edges = edge_mask(edges, tokens, mask)
        model, paths = self.model, self.paths
        cuts, knocks = head_blocks(plans, knock or [], b, self.d_head)
        read = read or {}
        order = [s for s in self.sites if s.layer in set(cuts) | set(read) | set(knocks)]
        for site in order:
            if site.layer in knocks and site.kind.knockout is None:
                raise _refusal(site)
        big = tokens.repeat(len(plans), 1)
        batch, n_tokens = big.shape
        valid = None if mask is None else mask.repeat(len(plans), 1)
        run = big if mask is None else Batch(big, valid)
        scores = None  # only values saved inside the trace come back out of it
        try:
            with torch.no_grad(), self.engine.trace(run) as tracer:
                reduced = nnsight.save([])
                for site in order:
                    if site.layer in knocks:  # first: a read of this site sees the knocked pattern
                        place_knockout(model, tracer, site, KnockPlan(knocks[site.layer], edges, len(plans)))
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
        if method in ("zero", "knockout"):
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

    def means(
        self, tokens: torch.Tensor, mask: torch.Tensor | None = None, *, right_padded: bool = False
    ) -> dict[int, torch.Tensor]:
        """Mean of each layer's head outputs over batch and positions (real tokens only, with ``mask``),
        for mean ablation. ``right_padded``: the padding follows the real tokens, which causal attention
        never lets them see, so the tokens run as they are (no attention mask) and ``mask`` only weighs."""
        import nnsight

        model, paths, sites = self.model, self.paths, self.sites
        weight = torch.ones(tokens.shape, device=tokens.device) if mask is None else mask.float()
        run = tokens if mask is None or right_padded else Batch(tokens, mask)
        try:
            with torch.no_grad(), self.engine.trace(run) as tracer:
                out = nnsight.save({})
                for site in sites:
                    z = head_outputs(model, tracer, paths[site.layer], site.call).float()
                    out[site.layer] = (z * weight[..., None]).sum(dim=(0, 1)) / weight.sum()
        except Exception as e:
            raise self.engine.translate(e, sites) from e
        return dict(out)


def head_blocks(plans: list, knock: list, b: int, d: int) -> tuple[dict, dict]:
    """Per layer: the ``(rows, cols)`` blocks of the head outputs each plan removes, and the ``(copy, head)``
    pairs whose edges each copy knocks out."""
    cuts: dict[int, list[tuple[slice, slice]]] = {}
    for i, plan in enumerate(plans):
        for l, h in plan:
            cuts.setdefault(l, []).append((slice(i * b, (i + 1) * b), slice(h * d, (h + 1) * d)))
    knocks: dict[int, list[tuple[int, int]]] = {}
    for i, plan in enumerate(knock):
        for l, h in plan:
            knocks.setdefault(l, []).append((i, h))
    return cuts, knocks


def per_plan(values: torch.Tensor, n_plans: int) -> torch.Tensor:
    """``[plans * batch, positions]`` -> mean per plan ``[plans]``."""
    return values.float().reshape(n_plans, -1).mean(-1)


class _ArgmaxReducer:
    """Inside the trace: the arg-max key of some heads' rows."""

    def __init__(self, heads: list[int]):
        self.heads = heads

    def __call__(self, layer: int, pattern: torch.Tensor) -> torch.Tensor:
        return pattern[:, self.heads].argmax(-1).cpu()  # [batch, heads, q]


def readout(ab: Ablator, tokens: torch.Tensor, by_layer: dict[int, list[int]], norm_path: str | None) -> dict:
    """One trace: each layer's arg-max keys of the chosen heads (``("argmax", layer)``: ``[batch, heads, q]``),
    its head outputs (``("z", layer)``: ``[batch, seq, width]``) and the input of the module at ``norm_path``
    (``"final"``)."""
    import nnsight

    model_nn, paths = ab.model, ab.paths
    order = [s for s in ab.sites if s.layer in by_layer]
    batch, n_tokens = tokens.shape
    try:
        with torch.no_grad(), ab.trace(tokens) as tracer:
            got = nnsight.save({})
            for site in order:
                layer = site.layer
                got[("argmax", layer)] = read_layer(
                    model_nn, tracer, site, 1e-3, _ArgmaxReducer(by_layer[layer]), n_tokens, batch
                )[1]
                got[("z", layer)] = head_outputs(model_nn, tracer, paths[layer], site.call).float().clone()
            if norm_path is not None:
                got["final"] = envoy_at(model_nn, norm_path).input.float().clone()
            else:
                tracer.stop()
    except Exception as e:
        raise ab.engine.translate(e, tuple(order)) from e
    return dict(got)


def place_knockout(model: Any, tracer: Any, site: Any, plan: KnockPlan) -> None:
    """Inside a trace: rewrite the inputs of ``site``'s attention call (its ``call``-th application) so that
    the plan's edges are removed before the softmax (``SiteKind.knockout``); ``InputError`` for a kind that
    cannot take the edit."""
    if site.call:
        for _ in tracer.iter[site.call]:
            place_knockout(model, tracer, replace(site, call=0), plan)
        return
    if site.kind.knockout is None:
        raise _refusal(site)
    envoy = envoy_at(model, site.path)
    node = op_node(envoy, site.op)
    args, kwargs = node.inputs
    node.inputs = site.kind.knockout(args, kwargs, envoy._module, plan)


def _refusal(site: Any) -> InputError:
    return InputError(
        f"edge knockout cannot be placed before the softmax of the {site.kind.name!r} attention site of layer "
        f"{site.layer}: {site.kind.knockout_refusal} Load the model with attn_implementation='eager' or 'sdpa'"
    )
