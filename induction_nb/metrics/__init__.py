"""What a head's attention scores: pure tensor math on patterns ``[batch, ..., q, k]`` and token ids, with no
model and no nnsight (the bottom of the house: every other group may use it).

The registry (``REGISTRY``: one ``Metric`` object per score, in display order, each with every path that
computes it) is filled from ``metrics/catalog/`` when this package is imported. ``per_sequence``,
``RowScorer``, ``lse_scores`` and ``document_sums`` compute every registered pattern metric along one path;
``head_means`` and ``bootstrap_head`` turn per-sequence values into a head's scores and intervals;
``n_prefix_metric(n)`` names n-prefix matching's metric for ``n`` in ``1 .. N_PREFIX_MAX``.
Definitions: each metric's own module in ``catalog/`` (its docstring and ``source``).
"""

from . import catalog  # noqa: F401  (registers every metric)
from .catalog.n_prefix_matching import N_PREFIX_MAX, n_prefix_metric
from .heads import combine_heads, head_means
from .keys import all_mass, duplicate_mask, match_mask, stripe_attention, token_pairs
from .paths import RowScorer, document_sums, lse_scores, pattern_metric_list, pattern_metrics, per_sequence
from .queries import ArgmaxMetric, KeySumMetric, PatternMetric, Queries
from .registry import (
    REGISTRY,
    RESERVED,
    HeadMetric,
    Metric,
    control_key,
    get_metric,
    is_metric_name,
    label,
    metric_names,
    register,
    unregister,
)
from .stats import bootstrap_head, bootstrap_mean, bootstrap_ratio
from .stripe import block_max, stripe_profile

__all__ = [
    "ArgmaxMetric",
    "HeadMetric",
    "KeySumMetric",
    "Metric",
    "N_PREFIX_MAX",
    "PatternMetric",
    "Queries",
    "REGISTRY",
    "RESERVED",
    "RowScorer",
    "all_mass",
    "block_max",
    "bootstrap_head",
    "bootstrap_mean",
    "bootstrap_ratio",
    "combine_heads",
    "control_key",
    "document_sums",
    "duplicate_mask",
    "get_metric",
    "head_means",
    "is_metric_name",
    "label",
    "lse_scores",
    "match_mask",
    "metric_names",
    "n_prefix_metric",
    "pattern_metric_list",
    "pattern_metrics",
    "per_sequence",
    "register",
    "stripe_attention",
    "stripe_profile",
    "token_pairs",
    "unregister",
]
