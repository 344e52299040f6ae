"""Input checks shared by the single-head views and analyses."""

from __future__ import annotations

from typing import Any

import torch

from .errors import InputError

__all__ = ["square_attention", "check_period"]


def square_attention(attention: Any) -> torch.Tensor:
    """One head's pattern as a float32 CPU tensor ``[seq, seq]`` (seq >= 2), or a clear ``InputError``."""
    A = torch.as_tensor(attention).detach()
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise InputError(f"attention must be a square [seq, seq] matrix, got shape {tuple(A.shape)}")
    if A.shape[0] < 2:
        raise InputError("attention must cover at least 2 positions")
    return A.float().cpu()


def check_period(period: Any, offset: Any, n: int) -> None:
    """``offset`` tokens precede the pattern; ``period`` must leave at least one repeated query."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < n - 1:
        raise InputError(f"offset must be an integer in [0, {n - 2}], got {offset!r}")
    if isinstance(period, bool) or not isinstance(period, int) or not 1 <= period < n - offset:
        raise InputError(f"period must be an integer in [1, {n - offset - 1}], got {period!r}")
