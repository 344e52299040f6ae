"""The key sets the metrics sum attention over, built from token ids alone.

* ``match_mask(tokens)``: ``M[b, q, k] = t[k-1] == t[q]`` for ``1 <= k <= q``: the induction targets, the
  token *after* an earlier copy of the current token (on a repeated block of period ``P`` the stripe at
  ``k = q - P + 1``, offset ``-(P-1)``). ``duplicate_mask``: the earlier copies themselves.
* ``token_pairs(tokens, kind)``: the same sets as index lists ``(batch, q, k)`` without the ``[T, T]`` mask.
* ``stripe_attention(A, M)``: the mean over scored queries (non-empty ``M(q)``) of ``sum_{k in M(q)} A[q, k]``,
  for any mask a caller holds (the prefix-matching score with ``M = match_mask(tokens)``).
* ``all_mass(A, sink)``: each key's share of the whole softmax where a learned sink takes part of a row.

Every function returns new tensors and never modifies its inputs.
"""

from __future__ import annotations

import torch

__all__ = ["match_mask", "duplicate_mask", "token_pairs", "stripe_attention", "all_mass", "masked_mean"]


def match_mask(tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, seq] -> [batch, q, k]`` bool: ``t[k-1] == t[q]`` and ``1 <= k <= q``."""
    b, n = tokens.shape
    mask = torch.zeros(b, n, n, dtype=torch.bool, device=tokens.device)
    mask[:, :, 1:] = tokens[:, :, None] == tokens[:, None, :-1]
    return mask & torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()


def duplicate_mask(tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, seq] -> [batch, q, k]`` bool: an earlier copy of the current token, ``t[k] == t[q]``, ``k < q``."""
    n = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]
    return same & torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril(-1)


def token_pairs(tokens: torch.Tensor, kind: str = "match") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The nonzero entries ``(batch, q, k)`` of ``match_mask`` (``kind="match"``: ``t[k-1] == t[q]``,
    ``1 <= k <= q``) or of ``duplicate_mask`` (``"duplicate"``: ``t[k] == t[q]``, ``k < q``), without
    building the ``[batch, T, T]`` mask: each position is paired with the earlier positions holding its
    token (a stable sort groups them). Sorted by ``q``, then by ``batch`` and ``k``. On the CPU."""
    bs, qs, ks = [], [], []
    for b, t in enumerate(tokens.cpu()):
        values, order = torch.sort(t, stable=True)  # equal tokens grouped, in position order
        n = t.shape[0]
        new = torch.ones(n, dtype=torch.bool)
        new[1:] = values[1:] != values[:-1]
        start = torch.where(new, torch.arange(n), torch.zeros(n, dtype=torch.long)).cummax(0).values
        earlier = torch.arange(n) - start  # how many earlier positions hold the same token
        total = int(earlier.sum())
        first = torch.repeat_interleave(start, earlier)
        within = torch.arange(total) - torch.repeat_interleave(torch.cumsum(earlier, 0) - earlier, earlier)
        q, k = torch.repeat_interleave(order, earlier), order[first + within]
        bs.append(torch.full((total,), b, dtype=torch.long))
        qs.append(q)
        ks.append(k + 1 if kind == "match" else k)
    b, q, k = torch.cat(bs), torch.cat(qs), torch.cat(ks)
    order = torch.argsort(q, stable=True)
    return b[order], q[order], k[order]


def masked_mean(values: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [batch, q, X]`` over the queries where ``scored [batch, q]``: ``[batch, X]``, NaN
    where a sequence has none."""
    w = scored.float().unsqueeze(-1)
    total = (values * w).sum(1)
    count = w.sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def stripe_attention(A: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over scored queries (``mask [batch, q, k]`` has a key) of the attention ``A [batch, ..., q, k]``
    on the masked keys: ``[batch, ...]`` (float32; NaN where a sequence has no scored query). Only the
    masked entries are gathered: no temporary as large as ``A``."""
    rest = tuple(A.shape[1:-2])
    flat = A.reshape(A.shape[0], -1, A.shape[-2], A.shape[-1])
    b, x, n_q, _ = flat.shape
    bi, qi, ki = mask.nonzero(as_tuple=True)
    out = torch.zeros(b * n_q, x, dtype=torch.float32, device=A.device)
    out.index_add_(0, bi * n_q + qi, flat[bi, :, qi, ki].float())
    return masked_mean(out.view(b, n_q, x), mask.any(-1)).view(b, *rest)


def all_mass(A: torch.Tensor, sink: torch.Tensor) -> torch.Tensor:
    """``A [batch, head, q, k]`` as each key's share of the whole softmax, a learned sink included:
    ``A / rowsum(A) * (1 - sink)`` with ``sink [batch, head, q]`` (the same as ``A`` where the model's
    weights already are such shares, as gpt-oss's; rescaled where the kernel renormalised them over the
    tokens, as granite's). A new tensor; ``A`` is not modified."""
    rows = A.sum(-1, keepdim=True).clamp_min(1e-30)
    return A / rows * (1 - sink.to(A.dtype))[..., None]
