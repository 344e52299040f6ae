"""Attention patterns a result holds: one layer's patterns on one probe (``Patterns``), and the heads a
detection kept (``detect(keep_patterns=...)``), so that views can show them without running the model.

``Patterns``: ``attention [example, head, q, k]`` (heads that were not kept are zero and absent from
``heads``), ``tokens [example, seq]``, the period of the repeat and the tokens before it (``offset``), and
for documents the real-token ``mask [example, seq]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError

__all__ = ["Patterns", "kept_heads", "kept_layer"]


@dataclass(frozen=True)
class Patterns:
    """One layer's patterns on one probe (see the module docstring)."""

    attention: torch.Tensor  # [example, head, q, k]
    tokens: torch.Tensor  # [example, seq]
    heads: frozenset[int]
    period: int | None = None
    offset: int = 0
    mask: torch.Tensor | None = None  # [example, seq] real tokens (documents), None when unpadded
    name: str = "repeated"  # the probe pattern (or "text")

    def example(self, i: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(attention [q, k], tokens [q])`` of example ``i``, padding cut off."""
        A, t = self.attention[i, head], self.tokens[i]
        if self.mask is not None:
            real = self.mask[i]
            return A[real][:, real], t[real]
        return A, t


def kept_heads(result: Any) -> set[tuple[int, int]]:
    """``(layer, head)`` of the heads whose patterns ``result`` holds."""
    kept = getattr(result, "kept_patterns", None) or {}
    return set(kept) if getattr(result, "kept_tokens", None) is not None else set()


def kept_layer(result: Any, layer: int, head: int) -> Patterns:
    """The patterns ``result`` kept of ``layer`` on its (first) probe pattern (every kept head of the layer);
    ``InputError`` naming the ways to get them when ``(layer, head)`` was not kept."""
    kept = kept_heads(result)
    heads = {h for (l, h) in kept if l == layer}
    if head not in heads:
        names = ", ".join(f"L{l}H{h}" for l, h in sorted(kept)) or "none"
        raise InputError(
            f"this result holds no attention patterns for L{layer}H{head} (kept: {names}): pass the model, "
            f"HeadExplorer(result, model=model), or detect with keep_patterns=[({layer}, {head})]"
        )
    first = result.kept_patterns[(layer, min(heads))]
    stacked = torch.zeros(first.shape[0], result.n_heads, *first.shape[1:])
    for h in heads:
        stacked[:, h] = result.kept_patterns[(layer, h)]
    st, tokens = result.settings, result.kept_tokens
    where = st.get("kept") or {}  # the detector records the kept pattern; older results: the repeated probe
    period = where.get("period", int(st.get("sequence_length", 2)) // int(st.get("n_repeats", 2)))
    offset = where.get("offset", max(0, int(tokens.shape[1]) - int(st.get("sequence_length", tokens.shape[1]))))
    return Patterns(stacked, tokens, frozenset(heads), period, offset, name=where.get("pattern", "repeated"))
