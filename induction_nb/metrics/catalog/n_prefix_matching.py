"""n-prefix matching (higher-order, n-gram induction; Akyurek et al., ICML 2024, arXiv 2401.12973): the
attention on the token after an earlier copy of the last ``n`` tokens. Key ``k`` is a target of query ``q``
when ``t[k-n .. k-1] == t[q-n+1 .. q]``; ``n = 1`` is prefix matching (``prefix_matching``), here ``n = 2``
and ``3``. A query is scored where it has such a target. On a repeated random block the n-token contexts
are as unique as the 1-token ones, so the scores follow prefix matching (less the repeat's first ``n - 1``
queries); a probe whose 1-token contexts recur with different continuations separates them. Not in the
report's table (kept for the views that compare n side by side); in JSON, DataFrames and the explorer.
"""

from __future__ import annotations

from typing import ClassVar

from ..queries import KeySumMetric, Queries
from ..registry import register


class _NPrefixMatching(KeySumMetric):
    n: ClassVar[int] = 2
    source = "Akyurek et al. 2024, In-Context Language Learning, arXiv 2401.12973"
    table = False

    def pairs(self, queries: Queries):
        b, q, k = queries.token_pairs("match")  # t[k-1] == t[q]: the n = 1 targets, sorted by q
        tokens = queries.tokens
        for j in range(1, self.n):  # and the j tokens before each agree
            ok = (q - j >= 0) & (k - 1 - j >= 0)
            b, q, k = b[ok], q[ok], k[ok]
            ok = tokens[b, q - j] == tokens[b, k - 1 - j]
            b, q, k = b[ok], q[ok], k[ok]
        return b, q, k


@register
class PrefixMatching2(_NPrefixMatching):
    n = 2
    name = "prefix_matching_2"
    label = "2-prefix matching"
    short = "prefix2"
    description = "attention on the token after an earlier copy of the last 2 tokens"
    order = 11


@register
class PrefixMatching3(_NPrefixMatching):
    n = 3
    name = "prefix_matching_3"
    label = "3-prefix matching"
    short = "prefix3"
    description = "attention on the token after an earlier copy of the last 3 tokens"
    order = 12
