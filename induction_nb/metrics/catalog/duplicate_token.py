"""Duplicate-token score: the attention a token puts on its own earlier copies, ``t[k] == t[q]``, ``k < q``,
over the queries that have one (a duplicate-token head; the literal reading of the original spec's
offset, ``k = q - P``, lands here, not on the induction stripe)."""

from __future__ import annotations

from ..queries import KeySumMetric, Queries
from ..registry import register


@register
class DuplicateToken(KeySumMetric):
    name = "duplicate_token"
    label = "duplicate token"
    short = "dup"
    description = "attention from a token to its own earlier copies"
    source = "Wang et al. 2022, Interpretability in the Wild (IOI), arXiv 2211.00593"
    order = 50

    def pairs(self, queries: Queries):
        return queries.token_pairs("duplicate")
