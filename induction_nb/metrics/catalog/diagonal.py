"""Diagonal (self) score: ``mean_q A[q, q]``, the attention each token keeps on itself."""

from __future__ import annotations

from ..queries import KeySumMetric, Queries
from ..registry import register


@register
class Diagonal(KeySumMetric):
    name = "diagonal"
    label = "diagonal"
    short = "diag"
    description = "attention from each token to itself"
    source = "induction_nb: a companion score (this module)"
    order = 60
    table = False

    def pairs(self, queries: Queries):
        b, q = queries.real.T.nonzero(as_tuple=True)[::-1]  # sorted by q
        return b, q, q
