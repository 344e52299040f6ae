"""n-prefix matching (higher-order, n-gram induction; Akyurek et al., ICML 2024, arXiv 2401.12973): the
attention on the token after an earlier copy of the last ``n`` tokens. Key ``k`` is a target of query ``q``
when ``t[k-n .. k-1] == t[q-n+1 .. q]``; ``n = 1`` is prefix matching (``prefix_matching``), here ``n = 2``,
``3`` and ``4``; ``n_prefix_metric(n)`` names the metric of each ``n`` in ``1 .. 4`` (the one check of an
``n`` wherever the package takes one). A query is scored where it has such a target. On a repeated random
block the n-token contexts are as unique as the 1-token ones, so the scores follow prefix matching (less
the repeat's first ``n - 1`` queries); a probe whose 1-token contexts recur with different continuations
separates them (the ``ngram`` probe, ``probes.ngram``). Not in the report's default table (``text_n_prefix``
shows n side by side, the report's ``metrics=`` adds columns); in JSON, DataFrames and the explorer.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...errors import InputError
from ..queries import KeySumMetric, Queries
from ..registry import register

__all__ = ["N_PREFIX_MAX", "n_prefix_metric"]

N_PREFIX_MAX = 4  # n-prefix matching is registered for n = 1 .. N_PREFIX_MAX


def n_prefix_metric(n: Any) -> str:
    """The registered metric of n-prefix matching for ``n`` in ``1 .. 4``: ``"prefix_matching"`` for 1,
    ``"prefix_matching_<n>"`` above. ``InputError`` naming the range for anything else (0, 5, 2.0, True).

    n-prefix matching (higher-order, n-gram induction; Akyurek et al., ICML 2024, "In-Context Language
    Learning", arXiv 2401.12973) is the attention on the token after an earlier copy of the last ``n``
    tokens: key ``k`` is a target of query ``q`` when ``t[k-n .. k-1] == t[q-n+1 .. q]``. Use the name this
    returns wherever the package takes a metric (``get_top_heads(metric=...)``, ``HeadScore.values``, the
    report's ``metrics=``); ``text_n_prefix`` shows ``n = 1 .. 4`` side by side. On a repeated random
    block the n-token contexts are as unique as the 1-token ones, so the scores follow prefix matching;
    the ``ngram`` probe (``PatternGenerator(...).generate("ngram")``) separates them.

    Args:
        n: the context length, an integer (any object with ``__index__``, not a ``bool``) in ``1 .. 4``.

    Returns:
        str: the registered metric's name: ``"prefix_matching"``, ``"prefix_matching_2"``,
        ``"prefix_matching_3"`` or ``"prefix_matching_4"``.

    Raises:
        InputError: when ``n`` is not an integer in ``1 .. 4`` (0, 5, a float such as 2.0, ``True``); the
            message names the range.

    Examples:
        >>> from induction_nb import n_prefix_metric
        >>> [n_prefix_metric(n) for n in (1, 2, 3, 4)]
        ['prefix_matching', 'prefix_matching_2', 'prefix_matching_3', 'prefix_matching_4']
        >>> n_prefix_metric(5)
        Traceback (most recent call last):
        ...
        induction_nb.errors.InputError: n (the n-prefix context length) must be an integer in 1..4, got 5; ...

        Every scan carries these metrics; on the hand-built model's repeated block, L1H0 matches the last
        two tokens as well as the last one:

        >>> from induction_nb import HandBuiltInduction, detect_induction_heads
        >>> result = detect_induction_heads(HandBuiltInduction(), sequence_length=32, batch_size=2)
        >>> round(result.score(1, 0).values[n_prefix_metric(2)], 1)
        1.0
    """
    if isinstance(n, bool) or not hasattr(n, "__index__") or not 1 <= int(n) <= N_PREFIX_MAX:
        raise InputError(
            f"n (the n-prefix context length) must be an integer in 1..{N_PREFIX_MAX}, got {n!r}; "
            f"n-prefix matching is registered for n = 1 (prefix_matching) to {N_PREFIX_MAX}"
        )
    return "prefix_matching" if int(n) == 1 else f"prefix_matching_{int(n)}"


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


@register
class PrefixMatching4(_NPrefixMatching):
    n = 4
    name = "prefix_matching_4"
    label = "4-prefix matching"
    short = "prefix4"
    description = "attention on the token after an earlier copy of the last 4 tokens"
    order = 13
