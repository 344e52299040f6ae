"""What views compute from one head's pattern: the induction stripe's profile along the repeat, and a
long pattern pooled by block maximum so that a one-position stripe stays visible when drawn small."""

from __future__ import annotations

import torch

__all__ = ["stripe_profile", "block_max"]


def stripe_profile(A: torch.Tensor, period: int, offset: int = 0) -> tuple[torch.Tensor, ...]:
    """One head ``A[seq, seq]`` along the induction stripe: for the repeat's queries ``q >= offset + period``,
    ``(q, A[q, q - period + 1], the largest weight elsewhere in the row, the mean weight elsewhere)``."""
    q = torch.arange(offset + period, A.shape[0])
    k = q - period + 1
    stripe = A[q, k]
    rest = A[q].clone()
    rest[torch.arange(len(q)), k] = float("nan")
    rest_max = torch.nan_to_num(rest, nan=-1.0).amax(-1).clamp_min(0)
    rest_mean = torch.nansum(rest, -1) / q.clamp_min(1).float()  # the q + 1 keys up to q, less the stripe key
    return q, stripe, rest_max, rest_mean


def block_max(A: torch.Tensor, factor: int) -> torch.Tensor:
    """``A [n, n]`` pooled to ``[ceil(n / factor)]^2`` by the maximum of each ``factor x factor`` block: a
    stripe one position wide stays visible when a long pattern is drawn small. A new tensor."""
    if factor == 1:
        return A
    pad = (-A.shape[0]) % factor
    A = torch.nn.functional.pad(A, (0, pad, 0, pad))
    return torch.nn.functional.max_pool2d(A[None, None], factor)[0, 0]
