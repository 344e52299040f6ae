"""Prefix matching (the induction score): at a token ``[A]``, the attention on the token right after each
earlier ``[A]``, ``mean over scored q of sum_{k in M(q)} A[q, k]`` with ``M(q) = {k : t[k-1] == t[q], 1 <= k <= q}``.

Olsson et al. (2022), "In-context learning and induction heads" (erratum of 2022-09-20 for the offset);
TransformerLens' head detector and ARENA 1.2 read the same stripe, ``k = q - P + 1`` on a block of period
``P``. Only queries with a target are scored (not TransformerLens' default, which divides by every row).
Also read on the control batch at the probe's positions: the contrast is the difference.
"""

from __future__ import annotations

from ..queries import KeySumMetric, Queries
from ..registry import register


@register
class PrefixMatching(KeySumMetric):
    name = "prefix_matching"
    label = "prefix matching"
    short = "prefix"
    description = "attention from a token to the token right after its earlier copies"
    source = "Olsson et al. 2022, In-context Learning and Induction Heads (erratum 2022-09-20)"
    order = 10
    threshold_line = True
    controlled = True

    def pairs(self, queries: Queries):
        return queries.token_pairs("match")
