"""Every registered pattern metric at once, along one of the paths a pattern can take.

* ``per_sequence``: a pattern held whole, ``[batch, ..., q, k]`` -> ``{metric: [batch, ...]}`` (views, a
  single head, reducers that hold a layer, tests);
* ``RowScorer``: a layer fed block by block of query rows (long context: never ``[head, T, T]``);
* ``lse_scores``: a layer known by its query, key and the flash kernel's row logsumexp;
* ``document_sums``: padded documents, per-document sums and counts, for pooling over documents.

Each returns the mean over each sequence's scored queries of every metric in ``metrics`` (default: every
registered ``PatternMetric``), and, given a control batch, each controlled metric's value on it under
``registry.control_key(name)``. The paths agree up to float summation order (tests/test_metric_paths.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import InputError
from .keys import masked_mean
from .queries import PatternMetric, Queries, padded_ids
from .registry import REGISTRY, control_key, get_metric

__all__ = ["pattern_metric_list", "per_sequence", "RowScorer", "lse_scores", "document_sums", "pattern_metrics"]


def pattern_metric_list(names: Sequence[str] | None = None) -> tuple[PatternMetric, ...]:
    """The registered pattern metrics (``names``: a chosen few), in display order."""
    if names is None:
        return tuple(m for m in REGISTRY.values() if isinstance(m, PatternMetric))
    chosen = tuple(get_metric(n) for n in names)
    if not all(isinstance(m, PatternMetric) for m in chosen):
        raise InputError(
            f"not all of {list(names)} are computed from attention patterns (pattern metrics: "
            f"{[m.name for m in REGISTRY.values() if isinstance(m, PatternMetric)]})"
        )
    return chosen


def per_sequence(
    A: torch.Tensor,
    tokens: torch.Tensor,
    *,
    valid: torch.Tensor | None = None,
    first_query: int = 1,
    control: torch.Tensor | None = None,
    metrics: Sequence[PatternMetric] | None = None,
) -> dict[str, torch.Tensor]:
    """``A [n, ..., T, T]`` on ``tokens [n, T]`` (``valid [n, T]``: a padded batch's real tokens) ->
    ``{metric: [n, ...]}``; ``control`` (same shape as ``A``) adds each controlled metric's control value."""
    metrics = pattern_metric_list() if metrics is None else tuple(metrics)
    rest = tuple(A.shape[1:-2])
    queries = Queries(padded_ids(tokens, valid), valid, first_query)
    out = {}
    for source, suffix in ((A, False), (control, True)):
        if source is None:
            continue
        flat = source.reshape(source.shape[0], -1, source.shape[-2], source.shape[-1])
        for m in metrics:
            if suffix and not m.controlled:
                continue
            out[control_key(m.name) if suffix else m.name] = m.per_sequence(flat, queries).view(A.shape[0], *rest)
    return out


class RowScorer:
    """Every metric of one layer, fed a block of query rows at a time (``engine.rows``): per-query values
    ``[n, T, head]`` are filled block by block, then averaged as ``per_sequence`` averages them. ``tokens``
    ``[n, T]`` are the probes; a control batch may ride along in ``add`` (scored at the probes' positions)."""

    def __init__(
        self, tokens: torch.Tensor, n_heads: int, first_query: int = 1, metrics: Sequence[PatternMetric] | None = None
    ):
        self.metrics = pattern_metric_list() if metrics is None else tuple(metrics)
        self.queries = Queries(tokens, None, first_query)
        self.state = {m.name: m.rows_start(self.queries, n_heads) for m in self.metrics}
        self.control = {m.name: m.rows_start(self.queries, n_heads) for m in self.metrics if m.controlled}

    def add(self, start: int, probe: torch.Tensor, control: torch.Tensor | None = None, lo: int = 0) -> None:
        """Rows ``start .. start + rows`` of the probes' pattern over keys ``lo .. lo + width``
        ``[n, head, rows, width]`` (every other key of these rows is 0), and the control's likewise."""
        for m in self.metrics:
            m.rows_add(self.state[m.name], self.queries, start, probe, lo)
            if control is not None and m.name in self.control:
                m.rows_add(self.control[m.name], self.queries, start, control, lo)

    def finish(self) -> dict[str, torch.Tensor]:
        """``{metric: [n, head]}`` and ``{control_key(metric): [n, head]}`` (NaN where nothing is scored)."""
        q = self.queries
        out = {m.name: masked_mean(m.rows_values(self.state[m.name], q), m.scored(q)) for m in self.metrics}
        for m in self.metrics:
            if m.name in self.control:
                out[control_key(m.name)] = masked_mean(m.rows_values(self.control[m.name], q), m.scored(q))
        return out


def lse_scores(
    source: Any,
    tokens: torch.Tensor,
    first_query: int = 1,
    metrics: Sequence[PatternMetric] | None = None,
    rows: int = 128,
    chunk: int = 1 << 16,
) -> dict[str, torch.Tensor]:
    """Every metric from a layer known by its row logsumexp (``engine.rows.LseScores``): the probes are the
    first ``n = len(tokens)`` sequences of ``source``, their controls the next ``n``. ``{metric: [n, head]}``."""
    metrics = pattern_metric_list() if metrics is None else tuple(metrics)
    queries = Queries(tokens, None, first_query)
    out = {}
    for m in metrics:
        out[m.name] = masked_mean(m.lse(source, queries, 0, rows, chunk), m.scored(queries))
        if m.controlled and source.shape[0] >= 2 * queries.n:
            out[control_key(m.name)] = masked_mean(m.lse(source, queries, queries.n, rows, chunk), m.scored(queries))
    return out


def document_sums(
    A: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor, metrics: Sequence[PatternMetric] | None = None
) -> dict[str, torch.Tensor]:
    """Padded documents: ``A [n, head, T, T]`` (padding rows and columns 0), ``tokens [n, T]``, ``valid [n, T]``
    -> ``{metric: per-document sum over scored queries [n, head]}`` and ``{metric + "_n": count [n]}``, on
    the CPU (pooled and resampled by document by the caller)."""
    metrics = pattern_metric_list() if metrics is None else tuple(metrics)
    queries = Queries(padded_ids(tokens, valid), valid, 1)
    out = {}
    for m in metrics:
        scored = m.scored(queries)
        out[m.name] = (m.dense(A, queries) * scored.float().unsqueeze(-1)).sum(1).cpu()
        out[m.name + "_n"] = scored.sum(1).float().cpu()
    return out


def pattern_metrics(A: torch.Tensor, tokens: torch.Tensor, first_query: int = 1) -> dict[str, float]:
    """Every pattern metric of one head's attention ``A [seq, seq]`` on ``tokens [seq]`` (NaN where no query
    is scored): what a view shows beside a pattern. The contrast needs a control and is left out."""
    values = per_sequence(A[None, None].float(), tokens[None], first_query=first_query)
    return {k: float(v.flatten()[0]) for k, v in values.items()}
