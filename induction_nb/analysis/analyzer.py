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
    """Detection plus a closer look at single heads of one model.

    The original spec's class: an ``InductionHeadDetector`` for ``model`` (``detect``,
    ``find_induction_heads``) and one head's pattern on a generated sequence (``head_attention``) with what
    it does there (``analyze_head``, see ``analyze_head_attention``). The last detection is kept in
    ``result``.

    Args:
        model: the model to study: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` such as ``HandBuiltInduction``, or a name or path (see ``load_model``).
        **detector_kwargs: settings of the ``InductionHeadDetector`` (``threshold``, ``batch_size``,
            ``chunk_size``, ``seed``, ``vocab_size``, ``bos``, ``n_bootstrap``, ``progress``, ``remote``,
            ``stack``, ``intervals``); its defaults otherwise.

    Raises:
        InputError: for a detector setting out of range (see ``InductionHeadDetector``).
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.

    Examples:
        >>> from induction_nb import HandBuiltInduction, InductionHeadAnalyzer
        >>> analyzer = InductionHeadAnalyzer(HandBuiltInduction(), batch_size=4, n_bootstrap=100)
        >>> analyzer.find_induction_heads(sequence_length=32)
        [(1, 0)]
        >>> behavior = analyzer.analyze_head(1, 0, sequence_length=32)  # a 16-token block, repeated
        >>> behavior.induction_stripe_score > 0.9, behavior.previous_token < 0.2
        (True, True)
        >>> analyzer.analyze_head(0, 0, sequence_length=32).previous_token > 0.9  # the previous-token head
        True
    """

    def __init__(self, model: Any, **detector_kwargs):
        self.detector = InductionHeadDetector(model, **detector_kwargs)
        self.model = self.detector.model
        self.result: DetectionResult | None = None

    def detect(self, **kwargs) -> DetectionResult:
        """Run the detector (``InductionHeadDetector.detect``) and keep its result in ``self.result``.

        Args:
            **kwargs: ``sequence_length``, ``n_repeats``, ``patterns``, ``keep_patterns`` of
                ``InductionHeadDetector.detect``.

        Returns:
            DetectionResult: every head's scores.
        """
        self.result = self.detector.detect(**kwargs)
        return self.result

    def find_induction_heads(self, threshold: float = 0.4, **kwargs) -> list[tuple[int, int]]:
        """``(layer, head)`` of the heads whose overall score reaches ``threshold``, best first.

        Runs ``detect`` (and keeps its result); ``threshold`` here replaces the detector's for this list.

        Args:
            threshold: overall score in [0, 1] a head must reach (default 0.4).
            **kwargs: passed to ``detect`` (``sequence_length``, ``n_repeats``, ``patterns``, ...).

        Returns:
            list[tuple[int, int]]: the detected heads, best first.
        """
        threshold = check_probability("threshold", threshold)
        result = self.detect(**kwargs)
        return [(s.layer, s.head) for s in result.get_top_heads() if s.overall_score >= threshold]

    def head_attention(
        self, layer: int, head: int, pattern: str = "repeated", sequence_length: int | None = None, index: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, Pattern]:
        """The ``[q, k]`` attention of one head on sequence ``index`` of a generated pattern, its tokens ``[q]``
        and the pattern. ``sequence_length``: ``None`` for 64 tokens or what the model allows.

        Args:
            layer: the model's layer index.
            head: the head within the layer.
            pattern: the probe pattern's name (default ``"repeated"``).
            sequence_length: tokens of the sequence; ``None``: 64 or what the model allows.
            index: which generated sequence (default 0, the first).

        Returns:
            tuple[torch.Tensor, torch.Tensor, Pattern]: the attention ``[q, k]``, the tokens ``[q]`` and the
                generated ``Pattern`` (its ``period`` and ``offset``).
        """
        sequence_length, _ = self.detector.engine.probe_length(sequence_length, preferred=64, tool="analyze_head")
        probe = self.detector.generator().generate(pattern, sequence_length, max(index + 1, 1))
        captured = capture_attention(self.detector.engine, probe.tokens[index : index + 1], layers=[layer])
        return captured.head(layer, head), probe.tokens[index], probe

    def analyze_head(
        self, layer: int, head: int, pattern: str = "repeated", sequence_length: int | None = None
    ) -> HeadBehavior:
        """What head ``(layer, head)`` does on a generated sequence: ``analyze_head_attention`` of its
        pattern, with the probe's period and offset (so the induction stripe is scored).

        Args:
            layer: the model's layer index.
            head: the head within the layer.
            pattern: the probe pattern's name (default ``"repeated"``).
            sequence_length: tokens of the sequence; ``None``: 64 or what the model allows.

        Returns:
            HeadBehavior: every pattern metric and the ``induction_stripe_score``.
        """
        attention, tokens, probe = self.head_attention(layer, head, pattern, sequence_length)
        return analyze_head_attention(attention, tokens, period=probe.period, offset=probe.offset)


def analyze_head_attention(
    attention_pattern: Any, tokens: Any, period: int | None = None, *, offset: int = 0
) -> HeadBehavior:
    """Scores of one head on one sequence, from its attention pattern and the sequence's tokens.

    ``attention_pattern`` ``[seq, seq]`` (rows = queries), ``tokens`` ``[seq]``. ``period``: where given,
    ``induction_stripe_score`` is the mean of ``A[q, q - period + 1]`` over the repeat's queries
    ``q >= offset + period`` (the induction stripe, offset ``-(period-1)``); ``offset``: tokens before the
    pattern starts (1 with a BOS token), also skipped by the previous-token score. The other metrics use
    the match set of ``tokens`` and need no period; NaN where a metric scores no query of this sequence.

    Args:
        attention_pattern: one head's attention ``[seq, seq]`` (rows = queries, each row a distribution over
            keys), floats: a tensor or anything ``torch.as_tensor`` reads (e.g. ``capture_attention(...)``'s
            ``head(layer, head)``).
        tokens: the sequence's integer token ids ``[seq]``.
        period: the repeat's period ``P`` (e.g. 16 for a 16-token block repeated); ``None`` (the default):
            no ``induction_stripe_score``. Between 1 and ``seq - offset - 1``.
        offset: tokens before the pattern starts (default 0; 1 with a BOS token), between 0 and ``seq - 2``.

    Returns:
        HeadBehavior: every pattern metric of the registry in ``values`` (prefix matching, copying,
            previous-token, duplicate-token, diagonal, n-prefix matching; NaN where undefined) and the
            ``induction_stripe_score`` (``None`` without a period).

    Raises:
        InputError: for a pattern that is not square and finite (or does not hold floats), tokens of
            another length or dtype (they must be integer ids ``[seq]``), an offset or period out of range.

    Examples:
        >>> import torch
        >>> from induction_nb import analyze_head_attention
        >>> tokens = torch.tensor([5, 6, 7, 8, 5, 6, 7, 8])  # a 4-token block, repeated
        >>> A = torch.zeros(8, 8)
        >>> A[0, 0] = A[1, 0] = A[2, 1] = A[3, 2] = 1.0  # the first block: previous token
        >>> for q in range(4, 8):
        ...     A[q, q - 3] = 1.0  # the repeat: the token after the earlier copy (the induction stripe)
        >>> behavior = analyze_head_attention(A, tokens, period=4)
        >>> behavior.induction_stripe_score, behavior.prefix_matching
        (1.0, 1.0)
    """
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
