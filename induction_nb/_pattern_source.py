"""Where a view's attention patterns come from: the model (captured on demand, one layer per capture,
cached), or, for a bare ``DetectionResult``, the heads it kept (``detect(keep_patterns=...)``).

``Patterns`` holds one layer on one pattern: ``attention [example, head, q, k]`` (NaN-free; heads that
were not kept are absent from ``heads``), ``tokens [example, seq]``, the period of the repeat and the
tokens before it (``offset``), and for documents the real-token ``mask [example, seq]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .errors import InputError

__all__ = ["Patterns", "PatternSource"]


@dataclass(frozen=True)
class Patterns:
    attention: torch.Tensor  # [example, head, q, k]
    tokens: torch.Tensor  # [example, seq]
    heads: frozenset[int]
    period: int | None = None
    offset: int = 0
    mask: torch.Tensor | None = None  # [example, seq] real tokens (documents), None when unpadded

    def example(self, i: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(attention [q, k], tokens [q])`` of example ``i``, padding cut off."""
        A, t = self.attention[i, head], self.tokens[i]
        if self.mask is not None:
            real = self.mask[i]
            return A[real][:, real], t[real]
        return A, t


class PatternSource:
    """Patterns for ``result``'s heads: from ``engine`` (an ``Engine``, or None: the kept heads only)."""

    def __init__(self, result: Any, engine: Any, *, seed: int, n_examples: int, sequence_length: int,
                 texts: Any = None, text_length: int = 256):
        self.result, self.engine, self.seed = result, engine, seed
        self.n_examples, self.sequence_length = n_examples, sequence_length
        self.texts, self.text_length = texts, text_length
        self._cache: dict[tuple[str, int], Patterns] = {}
        self._docs = None

    def kept(self) -> set[tuple[int, int]]:
        """Heads whose patterns the result holds (shown without running anything)."""
        return set(self.result.kept_patterns) if self.result.kept_tokens is not None else set()

    def ready(self, name: str) -> set[tuple[int, int]]:
        """Heads shown on pattern ``name`` without running the model: kept or already captured."""
        done = {(l, h) for (n, l), p in self._cache.items() if n == name for h in p.heads}
        return done | (self.kept() if name == "repeated" else set())

    def can_show(self, name: str, layer: int, head: int) -> bool:
        return self.engine is not None or (name == "repeated" and (layer, head) in self.kept())

    def n_examples_of(self, name: str) -> int:
        """Examples on pattern ``name``: those captured (fewer documents than ``n_examples`` give fewer),
        else those a capture will give."""
        for (n, _), p in self._cache.items():
            if n == name:
                return int(p.attention.shape[0])
        if self.engine is None:
            return 1 if self.result.kept_tokens is None else int(self.result.kept_tokens.shape[0])
        return self.n_examples

    def get(self, name: str, layer: int, head: int) -> Patterns:
        """Layer ``layer``'s patterns on ``name``; ``InputError`` naming the ways to get them when the
        result holds none for ``(layer, head)`` and there is no model."""
        if (name, layer) in self._cache and head in self._cache[(name, layer)].heads:
            return self._cache[(name, layer)]
        if self.engine is None:
            return self._kept(layer, head)
        self._cache[(name, layer)] = self._text(layer) if name == "text" else self._probe(name, layer)
        return self._cache[(name, layer)]

    def _kept(self, layer: int, head: int) -> Patterns:
        r = self.result
        heads = {h for (l, h) in self.kept() if l == layer}
        if head not in heads:
            kept = ", ".join(f"L{l}H{h}" for l, h in sorted(self.kept())) or "none"
            raise InputError(
                f"this result holds no attention patterns for L{layer}H{head} (kept: {kept}): pass the model, "
                f"HeadExplorer(result, model=model), or detect with keep_patterns=[({layer}, {head})]")
        first = r.kept_patterns[(layer, min(heads))]
        stacked = torch.zeros(first.shape[0], r.n_heads, *first.shape[1:])
        for h in heads:
            stacked[:, h] = r.kept_patterns[(layer, h)]
        st = r.settings
        period = int(st.get("sequence_length", 2)) // int(st.get("n_repeats", 2))
        offset = int(r.kept_tokens.shape[1]) - int(st.get("sequence_length", r.kept_tokens.shape[1]))
        patterns = Patterns(stacked, r.kept_tokens, frozenset(heads), period, max(0, offset))
        self._cache[("repeated", layer)] = patterns
        return patterns

    def _all_heads(self, layer: int) -> frozenset[int]:
        return frozenset(h for h in range(self.result.n_heads) if self.result.has_head(layer, h))

    def _probe(self, name: str, layer: int) -> Patterns:
        from .capture import capture_attention

        probe = self.engine.generator(self.seed).generate(name, self.sequence_length, self.n_examples)
        captured = capture_attention(self.engine, probe.tokens, layers=[layer])
        return Patterns(captured.pattern[:, 0].cpu(), probe.tokens.cpu(), self._all_heads(layer), probe.period,
                        probe.offset)

    def _text(self, layer: int) -> Patterns:
        from .capture import capture_attention
        from .on_text import tokenize_documents

        if self._docs is None:  # read and tokenized once, not per layer
            length = min(self.text_length, self.engine.max_positions or self.text_length)
            self._docs = tokenize_documents(self.engine, self.texts, length, "truncate")[: self.n_examples]
        captured = capture_attention(self.engine, self._docs, layers=[layer])
        mask = captured.attention_mask
        mask = (torch.ones(captured.tokens.shape, dtype=torch.bool) if mask is None else mask.bool()).cpu()
        return Patterns(captured.pattern[:, 0].cpu(), captured.tokens.cpu(), self._all_heads(layer), None, 0, mask)
