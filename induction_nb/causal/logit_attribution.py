"""Copying by direct logit attribution: does a head's own output raise the logit of the token it attends to?

A weight-aware copying measure beside the attention-only one. For each scored query (one with an
earlier copy of its token), the head's output, its slice of the output projection's input through
that slice of the projection, is passed through the final norm (with the norm's scale frozen at the
value the full residual stream had there, the usual DLA convention) and the unembedding. The head
copies when the token it attends to most ranks among the ``top_k`` logits of that contribution.
Limits: a final LayerNorm's centring is applied to the head's contribution too; biases are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_int
from ..engine.ablator import Ablator, readout
from ..engine.wrappers import effective_weight, materialized, remote_only
from ..errors import InputError
from ..metrics import match_mask
from .probe import repeat_probe

__all__ = ["DLAScore", "copying_dla"]

_FINAL_NORMS = (
    "model.norm",
    "transformer.ln_f",
    "gpt_neox.final_layer_norm",
    "model.decoder.final_layer_norm",
    "ln_f",
    "norm",
    "final_layer_norm",
)


@dataclass(frozen=True)
class DLAScore:
    """``top_k_rate``: fraction of scored queries whose attended token ranks in the head's top-k direct
    logits (a head writing nothing ranks nothing). ``mean_z``: mean z-score of that token's direct logit
    among all logits (0: no preference). ``median_rank``: median rank of that token (0 = the top)."""

    layer: int
    head: int
    top_k_rate: float
    mean_z: float
    median_rank: float
    top_k: int


def copying_dla(
    model: Any,
    heads: Sequence[tuple[int, int]],
    *,
    top_k: int = 5,
    sequence_length: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    projections: Sequence[str] | None = None,
    remote: Any = False,
) -> list[DLAScore]:
    """Direct-logit-attribution copying of ``heads`` on repeated random sequences. ``remote``: the
    trace runs on NDIF; the weights are still needed locally, so a meta (remote-only) model is refused."""
    check_int("top_k", top_k, 1)
    ab = Ablator(model, projections, remote)
    heads = ab.check_heads(heads)
    module = ab.module
    if remote_only(module):  # an offloaded model's weights are here, brought in by its hooks
        raise InputError(
            "copying_dla needs the model's weights (output projection, final norm, unembedding), which a remote "
            "model does not hold locally; run it on a local copy of the model (load_model(name))"
        )
    unembed = _unembedding(module)
    norm_path = next((p for p in _FINAL_NORMS if _has(module, p)), None)
    tokens, _, _ = repeat_probe(ab, sequence_length, batch_size, seed, tool="copying_dla")
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)
    got = readout(ab, tokens, by_layer, norm_path)
    scale, weight, centre = _norm_terms(module, norm_path, got.get("final"))
    match = match_mask(tokens)
    scored = match.any(-1)
    scored[:, -1] = False
    b_idx, q_idx = scored.nonzero(as_tuple=True)
    d, out = ab.d_head, []
    for layer, hs in sorted(by_layer.items()):
        # as the layer computes: an adapter's B A (LoRA, DoRA) included, offloaded weights brought in
        matrix = effective_weight(module.get_submodule(ab.paths[layer]))  # [d_model, width]
        for j, h in enumerate(hs):
            w = matrix[:, h * d : (h + 1) * d]  # [d_model, d_head]
            z = got[("z", layer)][b_idx, q_idx, h * d : (h + 1) * d]  # [n, d_head]
            contribution = z @ w.T.float()
            if centre:
                contribution = contribution - contribution.mean(-1, keepdim=True)
            if scale is not None:
                contribution = contribution * scale[b_idx, q_idx, None]
            if weight is not None:
                contribution = contribution * weight
            attended = tokens[b_idx, got[("argmax", layer)][b_idx, j, q_idx]]
            out.append(_score(layer, h, contribution @ unembed.T, attended, top_k))
    return out


def _score(layer: int, head: int, logits: torch.Tensor, attended: torch.Tensor, top_k: int) -> DLAScore:
    """The head's direct logits ``[n, vocab]`` against the tokens it attends to ``[n]``."""
    target = logits.gather(-1, attended[:, None])[:, 0]
    rank = (logits > target[:, None]).sum(-1)
    spread = logits.std(-1)
    z_score = torch.where(spread > 0, (target - logits.mean(-1)) / spread.clamp_min(1e-12), 0.0)
    copies = (rank < top_k) & (z_score > 0)  # ties at zero spread (an empty output) do not copy
    return DLAScore(
        layer, head, float(copies.float().mean()), float(z_score.mean()), float(rank.float().median()), top_k
    )


def _has(module: torch.nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
        return True
    except AttributeError:
        return False


def _unembedding(module: torch.nn.Module) -> torch.Tensor:
    get = getattr(module, "get_output_embeddings", None)
    emb = get() if callable(get) else None
    if emb is None:
        linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        emb = linears[-1] if linears else None
    if emb is None or not hasattr(emb, "weight"):
        raise InputError(f"cannot find the unembedding of {type(module).__name__} (no output embeddings)")
    with materialized(emb):  # offloaded weights brought in (a plain module as it is)
        return emb.weight.detach().float().clone()  # [vocab, d_model]


def _norm_terms(module: torch.nn.Module, path: str | None, final: torch.Tensor | None):
    """Frozen scale ``[batch, seq]``, the norm's weight ``[d_model]`` and whether it centres (LayerNorm)."""
    if path is None or final is None:
        return None, None, False
    norm = module.get_submodule(path)
    eps = getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", 1e-5)
    centre = isinstance(norm, torch.nn.LayerNorm)
    x = final - final.mean(-1, keepdim=True) if centre else final
    scale = torch.rsqrt(x.pow(2).mean(-1) + eps)
    with materialized(norm):
        weight = getattr(norm, "weight", None)
        weight = None if weight is None else weight.detach().float().clone()
    return scale, weight, centre
