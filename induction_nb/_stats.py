"""Seeded bootstrap confidence intervals of the overall score over sequences.

Memory: the resampled means are computed a few heads at a time, never ``[n_boot, n_sequences, layer,
head]`` at once (0.5 GB per metric for an 80 x 64-head model): the temporaries stay under ~16 MB whatever
the model's size, and the result is the same as one big computation (same resampling indices).
"""

from __future__ import annotations

import torch

__all__ = ["bootstrap_overall", "bootstrap_ratio"]

_CHUNK_BYTES = 16 << 20


def bootstrap_overall(
    prefix: torch.Tensor, control: torch.Tensor, copy: torch.Tensor, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile interval of ``clamp(mean prefix - mean control, 0, 1) * mean copying`` (see
    ``scores.combine``), resampling sequences with replacement. Inputs ``[n_sequences, ...]`` are paired:
    a sequence and its control are drawn together. Returns ``(low, high)``, each ``[...]``."""
    m, rest = prefix.shape[0], prefix.shape[1:]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(m, (n, m), generator=g)
    flat = [t.reshape(m, -1) for t in (prefix, control, copy)]
    width = flat[0].shape[1]
    step = max(1, _CHUNK_BYTES // max(1, 4 * n * m * 2))  # the gathered [n, m, step] and its NaN mask
    alpha = (1 - level) / 2
    low, high = torch.empty(width), torch.empty(width)
    for start in range(0, width, step):
        cols = slice(start, start + step)
        p, c, y = (torch.nanmean(t[:, cols][idx], dim=1) for t in flat)  # [n, step]
        overall = (p - c).clamp(0, 1) * y
        q = torch.tensor([alpha, 1 - alpha], dtype=overall.dtype)
        low[cols], high[cols] = torch.nanquantile(overall, q, dim=0)
    return low.reshape(rest), high.reshape(rest)


def bootstrap_ratio(sums: torch.Tensor, counts: torch.Tensor, n: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile interval of the pooled mean ``sum(sums) / sum(counts)``, resampling documents (the
    unit whose queries are not independent): ``sums`` ``[docs, ...]``, ``counts`` ``[docs]``. Returns
    ``(low, high)``, each ``[...]``; NaN where a resample holds no counted query."""
    m, rest = sums.shape[0], sums.shape[1:]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(m, (n, m), generator=g)
    flat = sums.reshape(m, -1).double()
    width = flat.shape[1]
    total = counts.double()[idx].sum(1, keepdim=True)  # [n, 1]
    step = max(1, _CHUNK_BYTES // max(1, 8 * n * m))
    alpha = (1 - level) / 2
    low, high = torch.empty(width), torch.empty(width)
    for start in range(0, width, step):
        cols = slice(start, start + step)
        ratio = flat[:, cols][idx].sum(1) / total  # [n, step]; 0/0 -> NaN
        q = torch.tensor([alpha, 1 - alpha], dtype=ratio.dtype)
        low[cols], high[cols] = torch.nanquantile(ratio, q, dim=0).float()
    return low.reshape(rest), high.reshape(rest)
