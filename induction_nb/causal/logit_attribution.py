"""Copying by direct logit attribution: does a head's own output raise the logit of the token it attends to?

A weight-aware copying measure beside the attention-only one. For each scored query (one with an
earlier copy of its token), the head's output, its slice of the output projection's input through
that slice of the projection, is passed through the final norm (with the norm's scale frozen at the
value the full residual stream had there, the usual DLA convention) and the unembedding. The head
copies when the token it attends to most ranks among the ``top_k`` logits of that contribution.

**The final norm** is found by what runs, not by its name: in one local forward, the last norm module
(a class named ``*norm*``) to run before the unembedding whose output is what the unembedding reads (up
to a constant factor: T5's rescaling of tied embeddings). Its per-dimension weight and whether it centres
are read off that forward (the unembedding's input as ``a * normalised(input) + c`` per dimension, for a
LayerNorm's centred or an RMSNorm's plain normalisation, whichever reproduces it): so a ``1 + w``
parameterisation or a rescaling after the norm is included. A model whose unembedding reads no norm's
output has none; one with a final norm that this cannot reproduce is refused, never scored without it.
Limits: a final LayerNorm's centring is applied to the head's contribution too; biases are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_int
from ..engine.ablator import Ablator, readout
from ..engine.seq2seq import plain_forward
from ..engine.wrappers import effective_weight, materialized, remote_only
from ..errors import InputError
from ..metrics import match_mask
from .probe import repeat_probe

__all__ = ["DLAScore", "copying_dla"]

# names a final norm goes by: a model holding one whose norm is not identified by what runs is refused
_FINAL_NORMS = (
    "model.norm",
    "transformer.ln_f",
    "transformer.norm_f",
    "gpt_neox.final_layer_norm",
    "model.decoder.final_layer_norm",
    "model.decoder.layer_norm",
    "model.final_layernorm",
    "decoder.final_layer_norm",
    "ln_f",
    "norm",
    "final_layer_norm",
)
_FIT_TOLERANCE = 1e-2  # relative error of the per-dimension fit that reproduces the unembedding's input


@dataclass(frozen=True)
class DLAScore:
    """``top_k_rate``: fraction of scored queries whose attended token ranks in the head's top-k direct
    logits (a head writing nothing ranks nothing). ``mean_z``: mean z-score of that token's direct logit
    among all logits (0: no preference). ``median_rank``: median rank of that token, the number of other
    tokens whose direct logit is at least as high (0 = alone at the top; ties count against the token, so a
    head writing nothing, whose logits all tie, ranks last: vocabulary size - 1)."""

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
    """Direct-logit-attribution copying of ``heads`` on repeated random sequences.

    A weight-aware copying measure beside the attention-only one. For each scored query (one with an
    earlier copy of its token), the head's output through its slice of the output projection is passed
    through the final norm (its scale frozen at the value the full residual stream had there, the usual DLA
    convention) and the unembedding; the head copies when the token it attends to most ranks among the
    ``top_k`` logits of that contribution. The final norm is found by what runs (see the module
    docstring). ``remote``: the trace runs on NDIF; the weights are still needed locally, so a meta
    (remote-only) model is refused. Limits: a final LayerNorm's centring is applied to the head's
    contribution too; biases are ignored.

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); in eval mode, with its weights here.
        heads: the heads to score, ``(layer, head)`` pairs (0-based).
        top_k: how high (at least 1; default 5) the attended token must rank among the head's direct
            logits to count as copied.
        sequence_length: tokens per random sequence (a block then its repeat); ``None`` for the default
            (64, or what the model's positions allow).
        batch_size: random sequences (default 4).
        seed: seed of the random sequences.
        projections: one output-projection module path per attention layer, where it cannot be found
            (see ``ablate_heads``); ``None`` to find it.
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run the trace on NDIF (the weights
            still read locally).

    Returns:
        list[DLAScore]: one per head, in layer order (heads of a layer in the order given), each with
            ``layer``, ``head``, ``top_k_rate`` (fraction, 0-1, of scored queries whose attended token ranks in
            the head's top-k direct logits; a head writing nothing ranks nothing), ``mean_z`` (mean z-score of
            that token's direct logit among all logits; 0: no preference), ``median_rank`` (median rank of that
            token: the number of other tokens whose direct logit is at least as high, 0 = alone at the top;
            ties count against it, so a head writing nothing ranks last, vocabulary size - 1) and ``top_k``.

    Raises:
        InputError: for ``top_k`` below 1, bad heads (out of range, not integers, an empty list, a head named twice), a
            remote-only model (run it on a local copy: ``load_model(name)``), a model whose unembedding cannot be found,
            a final norm that the unembedding does not read directly or that cannot be reproduced as a per-dimension
            scale, a ``sequence_length`` the model cannot take, or a model in training mode.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, copying_dla
        >>> model = HandBuiltInduction()  # L1H0 induction head; L1H2 writes nothing
        >>> scores = copying_dla(model, [(1, 0), (1, 2)], sequence_length=32)
        >>> [(s.layer, s.head, s.top_k_rate) for s in scores]
        [(1, 0, 1.0), (1, 2, 0.0)]
        >>> scores[0].mean_z > 3  # the attended token's direct logit stands far above the rest
        True
    """
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
    tokens, _, _ = repeat_probe(ab, sequence_length, batch_size, seed, tool="copying_dla")
    norm_path, weight, centre, eps = _final_norm(module, tokens)
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)
    got = readout(ab, tokens, by_layer, norm_path)
    scale = None if norm_path is None else _frozen_scale(got["final"], centre, eps)
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
    # ties count against the token (pessimistic): logits that all tie (a head writing nothing) rank it last,
    # not at the top, and a tie at the k-th place does not count as copying
    rank = (logits >= target[:, None]).sum(-1) - 1
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


def _frozen_scale(final: torch.Tensor, centre: bool, eps: float) -> torch.Tensor:
    """The final norm's scale ``[batch, seq]`` on the residual stream ``final`` it was given."""
    x = final - final.mean(-1, keepdim=True) if centre else final
    return torch.rsqrt(x.pow(2).mean(-1) + eps)


def _is_norm(module: torch.nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def _last_norm_before_unembedding(module: torch.nn.Module, tokens: torch.Tensor) -> tuple | None:
    """One local forward: ``(path, its input, the unembedding's input)`` for the last norm module that ran
    before the unembedding, or ``None`` where none did."""
    emb = module.get_output_embeddings() if callable(getattr(module, "get_output_embeddings", None)) else None
    if emb is None:
        return None
    last: list = [None]
    seen: list = []

    def on_norm(path: str, _m: Any, args: tuple, out: Any) -> None:
        y = out[0] if isinstance(out, tuple) else out
        if args and isinstance(args[0], torch.Tensor) and isinstance(y, torch.Tensor) and y.shape == args[0].shape:
            last[0] = (path, args[0].detach(), y.detach())  # copied once, when the unembedding runs

    def on_unembed(_m: Any, args: tuple) -> None:
        if not seen and args and isinstance(args[0], torch.Tensor):
            seen.append(
                (
                    last[0] and tuple(t if isinstance(t, str) else t.float().clone() for t in last[0]),
                    args[0].detach().float().clone(),
                )
            )

    handles = [m.register_forward_hook(lambda m, a, o, p=p: on_norm(p, m, a, o)) for p, m in module.named_modules()
               if _is_norm(m)]  # fmt: skip
    handles.append(emb.register_forward_pre_hook(on_unembed))
    plain_forward(module, tokens, handles)
    if not seen or seen[0][0] is None:
        return None
    (path, x, y), u = seen[0]
    if y.shape != u.shape or torch.cosine_similarity(y.flatten(), u.flatten(), dim=0) < 1 - 1e-4:
        return None  # the unembedding reads something else than that norm's output
    return path, x, u


def _final_norm(module: torch.nn.Module, tokens: torch.Tensor) -> tuple[str | None, torch.Tensor | None, bool, float]:
    """``(path, per-dimension weight [d_model], centres, eps)`` of the final norm (see the module docstring),
    or ``(None, None, False, 0)`` for a model without one."""
    found = _last_norm_before_unembedding(module, tokens)
    if found is None:
        named = [p for p in _FINAL_NORMS if _has(module, p) and _is_norm(module.get_submodule(p))]
        if named:
            raise InputError(
                f"copying_dla cannot tell which norm {type(module).__name__} applies before its unembedding: "
                f"it has {named[0]!r}, but the unembedding does not read that module's output in a forward "
                "(a projection or other step in between); without the final norm the direct logits would be wrong"
            )
        return None, None, False, 0.0
    path, x, u = found
    norm = module.get_submodule(path)
    eps = next((float(e) for e in (getattr(norm, a, None) for a in ("variance_epsilon", "eps", "epsilon"))
                if isinstance(e, (int, float))), 1e-5)  # fmt: skip
    fits = [(_fit(x, u, centre, eps), centre) for centre in (True, False)]
    (weight, error), centre = min(fits, key=lambda f: f[0][1])
    if error > _FIT_TOLERANCE:
        raise InputError(
            f"copying_dla cannot reproduce the final norm {path!r} ({type(norm).__name__}) as a per-dimension "
            f"scale of its normalised input (relative error {error:.2g}); its direct logits would be wrong"
        )
    return path, weight, centre, eps


def _fit(x: torch.Tensor, u: torch.Tensor, centre: bool, eps: float) -> tuple[torch.Tensor, float]:
    """Least squares ``u ≈ a * n(x) + c`` per dimension (``n``: the norm's normalisation): ``(a, relative
    error)``."""
    n = (x - x.mean(-1, keepdim=True) if centre else x) * _frozen_scale(x, centre, eps)[..., None]
    n, u = n.reshape(-1, n.shape[-1]), u.reshape(-1, u.shape[-1])
    dn, du = n - n.mean(0), u - u.mean(0)
    a = (dn * du).sum(0) / dn.pow(2).sum(0).clamp_min(1e-12)
    error = (du - a * dn).norm() / du.norm().clamp_min(1e-12)
    return a, float(error)
