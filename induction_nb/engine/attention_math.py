"""Attention weights recomputed from the inputs of an attention call.

Used where a kernel does not return its weights (``sdpa``, flash, ``F.scaled_dot_product_attention``):
the pattern is rebuilt from the query, key, mask and scaling that the kernel received, in float32,
following the semantics of HuggingFace's ``eager_attention_forward`` and of
``torch.nn.functional.scaled_dot_product_attention``: grouped key heads are repeated, ``softcap`` is
applied before the mask, a boolean mask means "may attend", a float mask is added, ``sliding_window``
is honoured when no materialised mask carries it, ``position_bias`` is added, and attention sinks
(``s_aux``) take their share of the softmax denominator. Dropout is not modelled (capture runs in eval).
"""

from __future__ import annotations

import math

import torch

from ..errors import CaptureCheckError

__all__ = ["attention_from_qk", "repeat_kv_heads"]


def repeat_kv_heads(key: torch.Tensor, n_query_heads: int) -> torch.Tensor:
    """``[batch, kv_heads, k, d] -> [batch, n_query_heads, k, d]`` (grouped-query attention)."""
    n_kv = key.shape[1]
    if n_kv == n_query_heads:
        return key
    if n_query_heads % n_kv:
        raise CaptureCheckError(
            f"{n_query_heads} query heads cannot share {n_kv} key/value heads evenly: the model's head counts "
            "(config or module attributes) do not match its projections; name the sites with sites=CustomSites(...)"
        )
    return key.repeat_interleave(n_query_heads // n_kv, dim=1)


def attention_from_qk(
    query: torch.Tensor,
    key: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    scaling: float | None = None,
    is_causal: bool = False,
    softcap: float | None = None,
    sliding_window: int | None = None,
    position_bias: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
    return_sink: bool = False,
    q_offset: int = 0,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax attention weights ``[batch, head, q, k]`` (float32) from ``query [batch, head, q, d]``
    and ``key [batch, kv_head, k, d]``.

    ``is_causal`` applies a causal mask aligned top-left, as ``F.scaled_dot_product_attention`` does, and is
    ignored when ``mask`` is given (the mask then already encodes causality, as in HF's eager path).
    ``sinks``: learned sink logits, one per head ``[head]`` (gpt-oss) or per query ``[batch, head, q, 1]``;
    they join each row's softmax but belong to no key, so the rows sum to less than 1.
    ``return_sink``: also return the sink's share of each row ``[batch, head, q]`` (``None`` without sinks).
    ``q_offset``: the position of the first query row (a block of rows of a longer pattern), for the
    causal mask and the sliding window.
    """
    q = query.float()
    k = repeat_kv_heads(key.float(), q.shape[1])
    if scaling is None:
        scaling = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q, k.transpose(-1, -2))
    scores.mul_(scaling)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if position_bias is not None:
        scores = scores + position_bias.float()
    n_q, n_k = scores.shape[-2:]
    if mask is not None:
        mask = mask[..., :n_k]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.float()
    elif is_causal:
        _mask_causal_(scores, q_offset, sliding_window)
    if sinks is None:
        pattern = torch.softmax(scores, dim=-1)
        return (pattern, None) if return_sink else pattern
    both = torch.softmax(torch.cat([scores, sink_logits(sinks, scores)], dim=-1), dim=-1)
    pattern, sink = both[..., :-1], both[..., -1]
    return (pattern, sink) if return_sink else pattern


def _mask_causal_(scores: torch.Tensor, q_offset: int, window: int | None) -> None:
    """In place: ``-inf`` where key ``k`` lies after query ``q_offset + i`` (or ``window`` or more before
    it). Only the columns that hold such keys are touched: a block of rows of a long causal pattern has
    its future keys in its last columns only."""
    n_q, n_k = scores.shape[-2:]
    qi = torch.arange(q_offset, q_offset + n_q, device=scores.device)[:, None]
    first = q_offset + 1  # the first row's first future key
    if first < n_k:
        ki = torch.arange(first, n_k, device=scores.device)[None, :]
        scores[..., first:].masked_fill_(ki > qi, float("-inf"))
    if window is not None:
        last = min(n_k, q_offset + n_q - int(window))  # keys before this are out of some row's window
        if last > 0:
            ki = torch.arange(0, last, device=scores.device)[None, :]
            scores[..., :last].masked_fill_(qi - ki >= int(window), float("-inf"))


def sink_logits(sinks: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Sink logits broadcast to one extra key column ``[batch, head, q, 1]`` of ``scores``."""
    b, h, n_q, _ = scores.shape
    s = sinks.float()
    if s.dim() == 1:  # one learned logit per head
        s = s.reshape(1, -1, 1, 1)
    elif s.dim() == 3:  # [batch, head, q]
        s = s[..., None]
    return s.expand(b, h, n_q, 1)
