"""Where the explorer's attention patterns come from: the model (captured on demand, one layer per
capture, cached), or, for a bare ``DetectionResult``, the heads it kept (``analysis.kept``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..analysis.kept import Patterns
from ..engine.capture import capture_attention
from ..engine.documents import tokenize_documents

__all__ = ["PatternSource"]


class PatternSource:
    """Patterns for ``result``'s heads: from ``engine`` (an ``Engine``, or None: the kept heads only)."""

    def __init__(
        self,
        result: Any,
        engine: Any,
        *,
        seed: int,
        n_examples: int,
        sequence_length: int,
        texts: Any = None,
        text_length: int = 256,
    ):
        self.result, self.engine, self.seed = result, engine, seed
        self.n_examples, self.sequence_length = n_examples, sequence_length
        self.texts, self.text_length = texts, text_length
        self._cache: dict[tuple[str, int], Patterns] = {}
        self._docs = None

    def kept(self) -> set[tuple[int, int]]:
        """Heads whose patterns the result holds (shown without running anything)."""
        return self.result.kept_heads()

    @property
    def kept_pattern(self) -> str:
        """The probe pattern the result's kept patterns were captured on."""
        return (self.result.settings.get("kept") or {}).get("pattern", "repeated")

    def ready(self, name: str) -> set[tuple[int, int]]:
        """Heads shown on pattern ``name`` without running the model: kept or already captured."""
        done = {(l, h) for (n, l), p in self._cache.items() if n == name for h in p.heads}
        return done | (self.kept() if name == self.kept_pattern else set())

    def can_show(self, name: str, layer: int, head: int) -> bool:
        return self.engine is not None or (name == self.kept_pattern and (layer, head) in self.kept())

    def n_examples_of(self, name: str) -> int:
        """Examples on pattern ``name``: those captured (fewer documents than ``n_examples`` give fewer),
        else those a capture will give."""
        for (n, _), p in self._cache.items():
            if n == name:
                return int(p.attention.shape[0])
        if self.engine is None:
            kept = sorted(self.kept())
            return int(self.result.kept_layer(*kept[0]).tokens.shape[0]) if kept else 1
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
        patterns = self.result.kept_layer(layer, head)
        self._cache[(patterns.name, layer)] = patterns
        return patterns

    def _all_heads(self, layer: int) -> frozenset[int]:
        return frozenset(h for h in range(self.result.n_heads) if self.result.has_head(layer, h))

    def _probe(self, name: str, layer: int) -> Patterns:
        probe = self.engine.generator(self.seed).generate(name, self.sequence_length, self.n_examples)
        captured = capture_attention(self.engine, probe.tokens, layers=[layer])
        return Patterns(
            captured.pattern[:, 0].cpu(),
            probe.tokens.cpu(),
            self._all_heads(layer),
            probe.period,
            probe.offset,
            name=name,
        )

    def _text(self, layer: int) -> Patterns:
        if self._docs is None:  # read and tokenized once, not per layer
            length = min(self.text_length, self.engine.max_positions or self.text_length)
            self._docs = tokenize_documents(self.engine, self.texts, length, "truncate")[: self.n_examples]
        captured = capture_attention(self.engine, self._docs, layers=[layer])
        mask = captured.attention_mask
        mask = (torch.ones(captured.tokens.shape, dtype=torch.bool) if mask is None else mask.bool()).cpu()
        return Patterns(
            captured.pattern[:, 0].cpu(), captured.tokens.cpu(), self._all_heads(layer), None, 0, mask, name="text"
        )
