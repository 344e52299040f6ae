"""AtP*'s fix for saturated attention: a head's change carried into later layers' queries and keys, and
those layers' softmax recomputed exactly (Kramár, Lieberum, Shah, Nanda 2024, "AtP*", arXiv 2403.00745).

Plain attribution patching (``engine.attribution``) linearises the whole network after a head. Where a head
acts by moving *which keys a later head attends to* (a previous-token head feeding an induction head by
K-composition), the later head's softmax is saturated, its gradient is ~0, and the head's effect is missed.
For a source head ``h`` (layer ``l``) whose output changes by ``dz`` (``[batch, seq, d_head]``: to zero, its
mean or a corrupted run's value) and a target head ``t`` of a later layer ``l'``:

- the change reaches ``l'``'s residual stream directly as ``dr = dz @ W_O[h]``;
- ``t``'s queries and keys are recomputed from ``r + dr`` exactly: the pre-attention norm (RMSNorm or
  LayerNorm, its scale recomputed from ``|r + dr|``), the projections (norm weight folded,
  ``engine.head_weights``) and rotary embeddings (the ``position_embeddings`` the attention module received);
- ``t``'s pattern is recomputed with the kernel's own mask, scaling, soft-cap, window and sinks
  (``attention_math``), and the change of its output ``(A' - A) V`` is weighed by the loss gradient at ``t``'s
  output ``g``: the *exact* query/key route ``<g, (A' - A) V>``;
- its first-order part ``d/de <g, A(e) V>`` at ``e = 0`` (the softmax's derivative applied to the first-order
  score change) is what plain attribution already counted for that route; the correction is ``exact - linear``.

Target heads are taken in order of a bound on what any source can move through them: ``|<g, (A' - A) V>| <=
sum over rows of (max_k G - min_k G)`` with ``G = g V^T`` (a row of ``A' - A`` sums to zero and has L1 norm at
most 2); the same bound, summed over the targets left out, is reported (a bound on their *exact* route: their
linear part stays in the plain estimate). Before any route is computed, the clean queries and keys recomputed
from the weights must equal what the kernel received (``check_map``, one scalar per layer allowed, a
tolerance set by the model's dtype): a model whose queries are not ``rope(norm(r) W_Q + b)`` (query/key norms,
another rotary form...) is refused, not guessed; so is one where a head's change does not reach the residual
stream as ``dz @ W_O`` (a norm on the attention output, a residual multiplier, post-norm layers).

Left linear: paths through intermediate layers (``h -> MLP -> t``'s keys), the value route, and everything
after ``t``'s output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from .attention_math import attention_from_qk, repeat_kv_heads
from .head_weights import norm_affine, read_head_weights
from .model_info import torch_module
from .sites import envoy_at, op_node
from .wrappers import materialized, unwrap

__all__ = [
    "QKMap",
    "Target",
    "qk_maps",
    "capture_target",
    "check_map",
    "target_weights",
    "target_bounds",
    "qk_route",
    "shifted_patterns",
]

_EPS = ("eps", "variance_epsilon", "epsilon", "layer_norm_eps")


@dataclass(frozen=True)
class QKMap:
    """One attention layer's heads read from its weights (``engine.head_weights``, norm weight folded):
    ``W_Q, W_K`` ``[head, d_model, d_head]`` (key heads expanded to the query heads), ``b_Q, b_K`` ``[head,
    d_head]`` or ``None``, ``W_O`` ``[head, d_head, d_model]``; ``norm``: ``"rms"``, ``"layer"`` or ``None`` (no
    pre-attention norm), its ``eps`` and module ``norm_path``."""

    W_Q: torch.Tensor
    b_Q: torch.Tensor | None
    W_K: torch.Tensor
    b_K: torch.Tensor | None
    W_O: torch.Tensor
    norm: str | None
    eps: float
    norm_path: str | None


@dataclass
class Target:
    """One layer's clean attention as its kernel received it, captured in the trace (float32, detached):
    ``r`` ``[batch, seq, d_model]`` the residual stream entering the norm, ``q, k, v`` ``[batch, head, seq,
    d_head]`` (grouped key/value heads expanded), ``rows`` the kernel's options (``rows.QKRows``), ``rope``
    ``(cos, sin)`` ``[batch, seq, rotary dims]`` or ``None``."""

    r: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    rows: Any
    rope: tuple | None
    pattern: torch.Tensor
    q_scale: float = 1.0
    k_scale: float = 1.0
    dtype: torch.dtype = torch.float32


def qk_maps(model: Any, sites: list) -> dict[int, QKMap]:
    """``{site.layer: QKMap}`` for the attention ``sites`` of ``model``, each matched to its weights by the
    attention module's path (an encoder's layer 0 is not the decoder's)."""
    module = unwrap(torch_module(unwrap(model)))
    config = getattr(module, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        raise InputError(
            "atp* is defined here for decoder-only models (an encoder-decoder's heads reach the decoder through "
            "cross-attention too); use estimator='attribution' with verify_top=k, or 'exact'"
        )
    with materialized(module):  # offloaded weights are meta until brought in: only a remote model's stay meta
        remote = any(p.is_meta for p in module.parameters())
    if remote:
        raise InputError(
            "atp* needs the model's weights here (a remote model's are not loaded): pass the model loaded locally "
            "with remote=..., e.g. head_effects(load_model(name), estimator='atp*', remote=True), or use "
            "estimator='attribution'"
        )
    try:
        weights = read_head_weights(model)
    except InputError as e:
        raise InputError(
            f"atp* recomputes later heads' queries and keys from the weights: {e}; use "
            "estimator='attribution' with verify_top=k, or 'exact'"
        ) from e
    by_path = {lh.path: lh for lh in weights.layers}
    maps = {}
    for site in sites:
        if site.path not in by_path:
            raise InputError(
                f"atp*: no weights read for the attention module {site.path!r} (layer {site.layer}); use "
                "estimator='attribution' with verify_top=k, or 'exact'"
            )
        layer, lh = site.layer, by_path[site.path]
        why = _carry_refusal(module, lh)
        if why:
            raise InputError(
                f"atp* carries a head's change into the residual stream as dz @ W_O, unchanged; in this model "
                f"{why}, so later layers would see the wrong change: use estimator='attribution' with verify_top=k, "
                "or 'exact'"
            )
        kind, eps = None, 0.0
        if lh.norm is not None:
            norm = module.get_submodule(lh.norm)
            with materialized(module):
                kind = norm_affine(norm, lh.W_Q.shape[1])[2]
            eps = next((float(v) for n in _EPS if isinstance(v := getattr(norm, n, None), (int, float))), 0.0)
        maps[layer] = QKMap(
            *(None if w is None else w.detach().float() for w in (lh.W_Q, lh.b_Q, lh.W_K, lh.b_K, lh.W_O)),
            norm=kind,
            eps=eps,
            norm_path=lh.norm,
        )
    return maps


def _carry_refusal(module: torch.nn.Module, lh: Any) -> str | None:
    """Why a head's output does not reach the residual stream as ``dz @ W_O`` (``None``: it does)."""
    path = lh.path.rpartition(".")[0]
    parent = module.get_submodule(path) if path else module
    post = isinstance(getattr(parent, "post_attention_layernorm", None), torch.nn.Module)
    if post and any(hasattr(parent, n) for n in ("pre_feedforward_layernorm", "post_feedforward_layernorm")):
        return "a norm acts on the attention output before the residual add (post_attention_layernorm)"
    config = getattr(module, "config", None)
    for name in ("residual_multiplier", "scale_depth"):
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and value != 1:
            return f"{name}={value} scales each layer's output before the residual add"
    if lh.norm is None and any("norm" in type(m).__name__.lower() for m in parent.modules()):
        return "the layer norms after the residual add (post-norm), not before its attention"
    return None


def capture_target(model: Any, site: Any, norm_path: str | None, batch: int) -> Target:
    """Inside a trace, before the site's output projection is read: the layer's clean attention inputs."""
    attention = envoy_at(model, site.path)
    r = envoy_at(model, norm_path).input if norm_path else None
    a_args, a_kwargs = attention.inputs
    if r is None:
        r = a_args[0] if a_args else a_kwargs["hidden_states"]
    rope = a_kwargs.get("position_embeddings")
    node = op_node(attention, site.op)
    args, kwargs = node.inputs
    output = node.output
    with torch.no_grad():
        try:  # recomputed from the kernel's query and key, never the weights it returned
            read = site.kind.read(args, kwargs, None, attention._module, batch, lazy=True)
        except Exception:  # a kind that needs its output: a bare softmax, nothing to recompute from
            read = None
        rows = None if read is None else read.rows
        if rows is None or not hasattr(rows, "query"):
            raise InputError(
                f"atp*: layer {site.layer}'s attention kernel ({site.kind.name}) does not receive queries and "
                "keys; use estimator='attribution' or 'exact'"
            )
        pattern = rows.full()[0]
        v = site.kind.values(args, kwargs, output, attention._module, read._replace(pattern=pattern))
    if v is None:
        raise InputError(f"atp*: cannot read layer {site.layer}'s value vectors; use estimator='attribution'")
    rope = tuple(t.detach().float() for t in rope) if isinstance(rope, (tuple, list)) and len(rope) == 2 else None
    q, k = rows.query.detach(), rows.key.detach()
    dtype = args[1].dtype if len(args) > 1 and isinstance(args[1], torch.Tensor) else q.dtype
    return Target(r.detach().float(), q, k, v.detach(), rows, rope, pattern.detach(), dtype=dtype)


def _normed(r: torch.Tensor, m: QKMap) -> tuple[torch.Tensor, torch.Tensor]:
    """``(r_hat, scale)``: the norm's input made unit (``[..., d_model]``) and its per-row scale ``[...]``."""
    if m.norm is None:
        return r, torch.ones(r.shape[:-1], device=r.device)
    if m.norm == "layer":
        r = r - r.mean(-1, keepdim=True)
    scale = (r.pow(2).mean(-1) + m.eps).sqrt()
    return r / scale[..., None], scale


def _rope(x: torch.Tensor, rope: tuple | None) -> torch.Tensor:
    """HF's rotary embedding (``x * cos + rotate_half(x) * sin`` on the first ``cos.shape[-1]`` dims) of
    ``x [..., batch, head, seq, d_head]``."""
    if rope is None:
        return x
    cos, sin = (t[:, None] for t in rope)  # [batch, 1, seq, rot]
    n = cos.shape[-1]
    rot, rest = x[..., :n], x[..., n:]
    half = torch.cat([-rot[..., n // 2 :], rot[..., : n // 2]], dim=-1)
    return torch.cat([rot * cos + half * sin, rest], dim=-1)


def _clean_pre(t: Target, m: QKMap, heads: torch.Tensor | None = None) -> tuple:
    """``(q_pre, k_pre, scale)``: queries and keys before rotary, minus their bias, ``[batch, head, seq,
    d_head]`` (``heads`` only), recomputed from the residual stream; the norm's scale ``[batch, seq]``."""
    r_hat, scale = _normed(t.r, m)
    W_Q, W_K = (m.W_Q, m.W_K) if heads is None else (m.W_Q[heads], m.W_K[heads])
    return torch.einsum("bsd,hde->bhse", r_hat, W_Q), torch.einsum("bsd,hde->bhse", r_hat, W_K), scale


def check_map(t: Target, m: QKMap, layer: int) -> None:
    """Raise ``InputError`` unless ``c * rope(norm(r) W + b)`` reproduces the queries and keys the kernel got,
    for one scalar ``c`` each (OPT scales its queries before the kernel); the scalars go into ``t``."""
    q, k, _ = _clean_pre(t, m)
    q = _rope(q + _bias(m.b_Q), t.rope)
    k = _rope(k + _bias(m.b_K), t.rope)
    for name, got, want in (("queries", q, t.q), ("keys", k, repeat_kv_heads(t.k, t.q.shape[1]))):
        if got.shape != want.shape:
            raise InputError(
                f"atp*: layer {layer}'s {name} have shape {tuple(want.shape)}, its weights give "
                f"{tuple(got.shape)}; use estimator='attribution' or 'exact'"
            )
        c = float((got * want).sum() / got.pow(2).sum().clamp_min(1e-30))
        gap = float((c * got - want).abs().max() / want.abs().max().clamp_min(1e-6))
        tolerance = max(2e-3, 4 * torch.finfo(t.dtype).eps)  # the kernel rounds to the model's dtype
        if not gap < tolerance:
            raise InputError(
                f"atp*: layer {layer}'s {name} are not rope(norm(residual) @ W + b) of its weights (relative gap "
                f"{gap:.1e} > {tolerance:.0e} for {t.dtype}: query/key norms, a position bias in the projections or "
                "another rotary form); the query/key route cannot be recomputed: use estimator='attribution' with "
                "verify_top=k, or 'exact'"
            )
        setattr(t, "q_scale" if name == "queries" else "k_scale", c)


def _bias(b: torch.Tensor | None) -> torch.Tensor | float:
    return 0.0 if b is None else b[None, :, None, :]


def target_weights(t: Target, g: torch.Tensor) -> torch.Tensor:
    """``G = g V^T`` ``[batch, head, q, k]``: what moving weight from key to key at each row changes the loss by,
    to first order; ``g`` ``[batch, seq, head * d_head]`` the loss gradient at the heads' outputs."""
    b, h, s, e = t.q.shape
    return torch.einsum("bqhe,bhke->bhqk", g.float().view(b, -1, h, e)[:, :s], t.v[:, :, :s])


def target_bounds(t: Target, G: torch.Tensor) -> torch.Tensor:
    """``[head]``: the most any source can move the loss through each head's pattern *exactly* (the exact
    route, not its difference from the linear one), ``sum over rows of range_k G`` over the keys the row may
    attend to: a row of ``A' - A`` sums to zero and has L1 norm at most 2. A sink (a key outside the tokens)
    counts as a key with ``G = 0``."""
    h, s = t.q.shape[1], t.q.shape[2]
    # the keys each row may attend to: the kernel's mask alone (zero queries), not the weights, which underflow
    allowed = _attend(torch.zeros_like(t.q), t.k, t, torch.arange(h, device=t.q.device), 1)[..., :s, :s] > 0
    hi = G.masked_fill(~allowed, float("-inf")).amax(-1)
    lo = G.masked_fill(~allowed, float("inf")).amin(-1)
    if t.rows.sinks is not None:
        hi, lo = hi.clamp_min(0.0), lo.clamp_max(0.0)
    return (hi - lo).nan_to_num(0.0, posinf=0.0, neginf=0.0).sum((0, 2))


def qk_route(
    dz: torch.Tensor, src: QKMap, t: Target, dst: QKMap, G: torch.Tensor, heads: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(exact, linear)`` ``[source head]``: the loss change through target ``heads``' patterns when each
    source head's output changes by ``dz`` (``[batch, seq, head * d_head]``), with the patterns recomputed
    exactly and to first order; ``G`` ``[batch, head, q, k]`` (``target_weights``) weighs each change."""
    (dq, dk), (lq, lk) = _deltas(dz, src, t, dst, heads)
    T = torch.tensor(heads, device=dz.device)
    H, n = dq.shape[0], t.q.shape[2]
    q0, k0, A0, GT = t.q[:, T], t.k[:, T], t.pattern[:, T, :n, :n], G[:, T]
    A1 = _attend((q0 + dq).flatten(0, 1), (k0 + dk).flatten(0, 1), t, T, H).view(dq.shape[:4] + (-1,))
    exact = ((A1 - A0) * GT).sum((1, 2, 3, 4))
    dl = (lq @ k0.transpose(-1, -2) + q0 @ lk.transpose(-1, -2)) * _score_slope(t, q0, k0)
    dA = A0 * (dl - (A0 * dl).sum(-1, keepdim=True))  # the softmax's first-order change (sinks: dl = 0 there)
    return exact, (dA * GT).sum((1, 2, 3, 4))


def shifted_patterns(dz: torch.Tensor, src: QKMap, t: Target, dst: QKMap, heads: list[int]) -> torch.Tensor:
    """``[source head, batch, target head, q, k]``: the target ``heads``' patterns with each source head's change
    ``dz`` (``[batch, seq, head * d_head]``) added to the residual stream their queries and keys are read from."""
    (dq, dk), _ = _deltas(dz, src, t, dst, heads)
    T = torch.tensor(heads, device=dz.device)
    q, k = (t.q[:, T] + dq).flatten(0, 1), (t.k[:, T] + dk).flatten(0, 1)
    return _attend(q, k, t, T, dq.shape[0]).view(dq.shape[:4] + (-1,))


def _deltas(dz: torch.Tensor, src: QKMap, t: Target, dst: QKMap, heads: list[int]) -> tuple:
    """``((dq, dk), (lq, lk))`` ``[source head, batch, target head, seq, d_head]``: the change of the target
    heads' queries and keys when each source head's change reaches the residual stream, exactly (the norm's
    scale recomputed from ``|r + dr|``) and to first order. Added to the kernel's own queries and keys, so
    that no change gives exactly the kernel's pattern."""
    b, s = dz.shape[:2]
    H, e = src.W_O.shape[:2]
    n = t.q.shape[2]
    dz = dz.float().view(b, s, H, e)[:, :n]
    T = torch.tensor(heads, device=dz.device)
    W_O = src.W_O if dst.norm != "layer" else src.W_O - src.W_O.mean(-1, keepdim=True)
    Rdq = _rope(_project(dz, W_O, dst.W_Q[T]), t.rope) * t.q_scale  # [H, b, T, s, e]
    Rdk = _rope(_project(dz, W_O, dst.W_K[T]), t.rope) * t.k_scale
    if dst.norm is None:
        return (Rdq, Rdk), (Rdq, Rdk)
    q_pre, k_pre, rho = _clean_pre(t, dst, T)
    Rq, Rk = _rope(q_pre, t.rope) * t.q_scale, _rope(k_pre, t.rope) * t.k_scale  # [b, T, s, e]
    r_c = t.r if dst.norm != "layer" else t.r - t.r.mean(-1, keepdim=True)
    r_dr = torch.einsum("bshe,bshe->hbs", dz, torch.einsum("bsd,hed->bshe", r_c, W_O)) / r_c.shape[-1]
    dr2 = torch.einsum("bshe,hed->hbsd", dz, W_O).pow(2).mean(-1)
    new = (rho.pow(2) + 2 * r_dr + dr2).clamp_min(1e-30).sqrt()  # rho^2 holds the norm's eps
    shape = (H, b, 1, n, 1)
    a1, i1 = (rho / new - 1).view(shape), (1 / new).view(shape)
    al, il = (-r_dr / rho.pow(2)).view(shape), (1 / rho).view(1, b, 1, n, 1)
    return (a1 * Rq + i1 * Rdq, a1 * Rk + i1 * Rdk), (al * Rq + il * Rdq, al * Rk + il * Rdk)


def _score_slope(t: Target, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor | float:
    """How the kernel's scores move with ``q . k``: its scaling, times soft-capping's slope where it caps."""
    scaling = t.rows.scaling if t.rows.scaling is not None else q.shape[-1] ** -0.5
    if t.rows.softcap is None:
        return scaling
    capped = torch.tanh(q @ k.transpose(-1, -2) * scaling / t.rows.softcap)
    return scaling * (1 - capped.pow(2))


def _project(dz: torch.Tensor, W_O: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``dz [b, s, H, e] @ W_O[h] @ W[t]`` for every source head ``h`` and target ``t``: ``[H, b, T, s, f]``,
    through the ``[H, e, T, f]`` product of the weights (cheaper than the residual stream's width)."""
    M = torch.einsum("hed,tdf->hetf", W_O, W)
    return torch.einsum("bshe,hetf->hbtsf", dz, M)


def _attend(q: torch.Tensor, k: torch.Tensor, t: Target, T: torch.Tensor, H: int) -> torch.Tensor:
    """The pattern of target heads ``T`` from ``q, k`` ``[H * batch, T, seq, d]`` with the kernel's options."""
    rows = t.rows
    n = q.shape[2]

    def tile(x: torch.Tensor | None) -> torch.Tensor | None:
        if not isinstance(x, torch.Tensor):
            return x
        x = x[..., :n, :n] if x.dim() == 4 else x
        if x.dim() == 4 and x.shape[1] > 1:
            x = x[:, T]
        return x.repeat(H, 1, 1, 1) if x.dim() == 4 and x.shape[0] > 1 else x

    sinks = rows.sinks
    if isinstance(sinks, torch.Tensor):
        sinks = sinks[T] if sinks.dim() == 1 else tile(sinks)
    return attention_from_qk(
        q,
        k,
        mask=tile(rows.mask),
        scaling=rows.scaling,
        is_causal=rows.is_causal and rows.mask is None,
        softcap=rows.softcap,
        sliding_window=rows.window,
        position_bias=tile(rows.bias),
        sinks=sinks,
    )
