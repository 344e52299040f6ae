"""From per-sequence values to a head's scores: the NaN-aware mean over sequences of every metric, then the
registry's head metrics (contrast, overall score) in display order, each from the means it needs."""

from __future__ import annotations

import torch

from .registry import REGISTRY, HeadMetric

__all__ = ["head_means", "combine_heads"]


def combine_heads(means: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``means`` with every head metric added whose needs are there (works on resampled means too)."""
    out = dict(means)
    pending = [m for m in REGISTRY.values() if isinstance(m, HeadMetric)]
    while pending:  # a head metric may need another (overall needs contrast)
        ready = [m for m in pending if all(n in out for n in m.needs)]
        if not ready:
            break
        for m in ready:
            out[m.name] = m.combine(out)
            pending.remove(m)
    return out


def head_means(per_seq: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{key: [n_sequences, ...]}`` -> ``{key: [...]}``: means over sequences (NaN-aware) and the head metrics."""
    return combine_heads({k: torch.nanmean(v, dim=0) for k, v in per_seq.items()})
