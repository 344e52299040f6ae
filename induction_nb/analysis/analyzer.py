"""A closer look at single heads (the original spec's ``InductionHeadAnalyzer`` and ``analyze_head_attention``):
one head's pattern on a generated sequence, and what it does there, every pattern metric of the registry
(``metrics.pattern_metrics``) plus the mean weight on the induction stripe of a known period.
"""

from __future__ import annotations

from typing import Any

import torch

from .._validate import check_int, check_probability, square_attention
from ..engine.capture import capture_attention
from ..errors import InputError
from ..metrics import pattern_metrics
from ..probes.patterns import Pattern
from .detector import InductionHeadDetector
from .head_score import HeadBehavior
from .results import DetectionResult

__all__ = ["InductionHeadAnalyzer", "analyze_head_attention"]


class InductionHeadAnalyzer:
    """Detection plus a closer look at single heads of one model."""

    def __init__(self, model: Any, **detector_kwargs):
        self.detector = InductionHeadDetector(model, **detector_kwargs)
        self.model = self.detector.model
        self.result: DetectionResult | None = None

    def detect(self, **kwargs) -> DetectionResult:
        self.result = self.detector.detect(**kwargs)
        return self.result

    def find_induction_heads(self, threshold: float = 0.4, **kwargs) -> list[tuple[int, int]]:
        """``(layer, head)`` of the heads whose overall score reaches ``threshold``, best first."""
        threshold = check_probability("threshold", threshold)
        result = self.detect(**kwargs)
        return [(s.layer, s.head) for s in result.get_top_heads() if s.overall_score >= threshold]

    def head_attention(
        self, layer: int, head: int, pattern: str = "repeated", sequence_length: int | None = None, index: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, Pattern]:
        """The ``[q, k]`` attention of one head on sequence ``index`` of a generated pattern, its tokens ``[q]``
        and the pattern. ``sequence_length``: ``None`` for 64 tokens or what the model allows."""
        sequence_length, _ = self.detector.engine.probe_length(sequence_length, preferred=64, tool="analyze_head")
        probe = self.detector.generator().generate(pattern, sequence_length, max(index + 1, 1))
        captured = capture_attention(self.detector.engine, probe.tokens[index : index + 1], layers=[layer])
        return captured.head(layer, head), probe.tokens[index], probe

    def analyze_head(
        self, layer: int, head: int, pattern: str = "repeated", sequence_length: int | None = None
    ) -> HeadBehavior:
        attention, tokens, probe = self.head_attention(layer, head, pattern, sequence_length)
        return analyze_head_attention(attention, tokens, period=probe.period, offset=probe.offset)


def analyze_head_attention(
    attention_pattern: Any, tokens: Any, period: int | None = None, *, offset: int = 0
) -> HeadBehavior:
    """Scores of one head on one sequence: ``attention_pattern`` ``[seq, seq]`` (rows = queries), ``tokens``
    ``[seq]``. ``period``: where given, ``induction_stripe_score`` is the mean of ``A[q, q - period + 1]``
    over the repeat's queries ``q >= offset + period`` (the induction stripe, offset ``-(period-1)``);
    ``offset``: tokens before the pattern starts (1 with a BOS token), also skipped by the
    previous-token score. The other metrics use the match set of ``tokens`` and need no period; NaN where
    a metric scores no query of this sequence. ``InputError`` for a pattern that is not square and finite,
    tokens of another length or dtype, an offset or period out of range."""
    raw = torch.as_tensor(attention_pattern)
    if not raw.is_floating_point():
        raise InputError(f"attention_pattern must hold floats, got {raw.dtype}")
    A = square_attention(raw)
    t = torch.as_tensor(tokens)
    if t.dim() != 1 or t.shape[0] != A.shape[0]:
        raise InputError(
            f"tokens must be [seq] with seq = {A.shape[0]} (the pattern's size), got shape {tuple(t.shape)}"
        )
    if t.dtype == torch.bool or t.is_floating_point():
        raise InputError(f"tokens must be integer token ids, got dtype {t.dtype}")
    check_int("offset", offset, 0, A.shape[0] - 2)
    if not torch.isfinite(A).all():
        raise InputError("attention_pattern contains NaN or inf")
    n = A.shape[0]
    if period is not None:
        check_int("period", period, 1, n - offset - 1)
    stripe = None
    if period is not None:
        q = torch.arange(offset + period, n)
        stripe = float(A[q, q - period + 1].float().mean())
    return HeadBehavior(pattern_metrics(A.float(), t.long(), 1 + offset), stripe)
