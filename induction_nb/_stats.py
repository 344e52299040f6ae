"""Seeded bootstrap confidence intervals of the overall score over sequences."""

from __future__ import annotations

import torch

__all__ = ["bootstrap_overall"]


def bootstrap_overall(
    prefix: torch.Tensor, control: torch.Tensor, copy: torch.Tensor, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile interval of ``clamp(mean prefix - mean control, 0, 1) * mean copying`` (see
    ``scores.combine``), resampling sequences with replacement. Inputs ``[n_sequences, ...]`` are paired:
    a sequence and its control are drawn together. Returns ``(low, high)``, each ``[...]``."""
    m = prefix.shape[0]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(m, (n, m), generator=g)
    p, c, y = (torch.nanmean(t[idx], dim=1) for t in (prefix, control, copy))  # [n, ...]
    overall = (p - c).clamp(0, 1) * y
    alpha = (1 - level) / 2
    q = torch.tensor([alpha, 1 - alpha], dtype=overall.dtype)
    low, high = torch.nanquantile(overall, q, dim=0)
    return low, high
