"""Metrics computed from attention, query by query, and every path that computes them.

A ``PatternMetric`` is defined per query: which queries of a sequence are *scored*, and the value each
scored query gets. A sequence's score is the mean over its scored queries; on padded documents the sums
and counts are kept so scores can be pooled over documents. Two families cover every metric so far:

* ``KeySumMetric``: the attention a query puts on a set of keys, given as ``pairs(queries) -> (b, q, k)``
  (prefix matching: the keys right after earlier copies; previous token: ``q - 1``; ...). Scored: the
  queries that have a key. ``controlled`` metrics are also read on a control batch at the probe's keys.
* ``ArgmaxMetric``: whether the key a query attends to most counts (``hit``), on the queries it
  ``scored``s (copying: the attended token is the one that comes next).

The family implements the paths from that definition, so a metric defines nothing else: ``dense`` (a
pattern ``[n, X, T, T]`` held whole), ``rows_*`` (blocks of query rows, ``engine.rows``: long context) and
``lse`` (single weights from the flash kernel's row logsumexp, ``engine.rows.LseScores``). Each returns the
per-query values ``[n, T, X]`` (float32, 0 where not scored); ``metrics.paths`` drives them over every
registered metric, and tests hold them equal to each other. A family's path may be overridden by a faster
one, as long as it stays equal. Padding (``valid``) never takes part: padded ids are unique negative
numbers (``padded_ids``) and keys or queries at padding are never in a pair.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .keys import masked_mean, token_pairs
from .registry import Metric

__all__ = ["Queries", "PatternMetric", "KeySumMetric", "ArgmaxMetric", "padded_ids", "following_tokens"]


def padded_ids(tokens: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``tokens [n, T]`` with every padding position given an id no real token has (unique, negative), so
    that padding matches nothing."""
    if valid is None:
        return tokens
    fill = -1 - torch.arange(tokens.numel(), device=tokens.device).view(tokens.shape)
    return torch.where(valid, tokens, fill)


def following_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """``t[q + 1]`` for each query ``[n, T]`` (-1 past the end)."""
    return torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], -1)], dim=1)


class Queries:
    """The queries of ``n`` sequences: ``tokens [n, T]`` (padding ids from ``padded_ids``), ``valid [n, T]``
    (``None``: no padding) and ``first_query`` (queries before it are not scored by position-based metrics:
    1, or 2 with a BOS token). Pairs and scored masks are computed once per metric and cached."""

    def __init__(self, tokens: torch.Tensor, valid: torch.Tensor | None = None, first_query: int = 1):
        self.tokens, self.valid, self.first_query = tokens, valid, first_query
        self.n, self.T = tokens.shape
        self._cache: dict[Any, Any] = {}

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def real(self) -> torch.Tensor:
        """``[n, T]`` bool: the real tokens."""
        return torch.ones_like(self.tokens, dtype=torch.bool) if self.valid is None else self.valid.to(self.device)

    def cached(self, key: Any, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def token_pairs(self, kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``keys.token_pairs`` of these tokens on their device, cached."""
        return self.cached(("pairs", kind), lambda: tuple(x.to(self.device) for x in token_pairs(self.tokens, kind)))

    def flat(self, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return b * self.T + q

    def has(self, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``[n, T]`` bool: the queries that appear in ``(b, q)``."""
        out = torch.zeros(self.n * self.T, dtype=torch.bool, device=self.device)
        out[self.flat(b, q)] = True
        return out.view(self.n, self.T)


class PatternMetric(Metric):
    """A metric computed from attention, query by query (see the module docstring)."""

    controlled: ClassVar[bool] = False

    def scored(self, queries: Queries) -> torch.Tensor:
        """``[n, T]`` bool: the queries this metric scores."""
        raise NotImplementedError

    def dense(self, A: torch.Tensor, queries: Queries) -> torch.Tensor:
        """Per-query values ``[n, T, X]`` from a whole pattern ``A [n, X, T, T]``."""
        raise NotImplementedError

    def rows_start(self, queries: Queries, width: int) -> Any:
        """The state the row-block path fills, for ``width`` heads."""
        raise NotImplementedError

    def rows_add(self, state: Any, queries: Queries, start: int, block: torch.Tensor, lo: int = 0) -> None:
        """Feed query rows ``start .. start + rows`` over keys ``lo .. lo + width``, ``block [n, X, rows, width]``
        (every other key of these rows is 0)."""
        raise NotImplementedError

    def rows_values(self, state: Any, queries: Queries) -> torch.Tensor:
        """Per-query values ``[n, T, X]`` once every row was fed."""
        raise NotImplementedError

    def lse(self, source: Any, queries: Queries, shift: int = 0, rows: int = 128, chunk: int = 1 << 16) -> torch.Tensor:
        """Per-query values ``[n, T, head]`` of sequences ``shift .. shift + n`` of ``source`` (an
        ``engine.rows.LseScores``: single weights and row arg-maxes, never a row of ``T`` weights at once
        except for the arg-max, ``rows`` query rows at a time)."""
        raise NotImplementedError

    def per_sequence(self, A: torch.Tensor, queries: Queries) -> torch.Tensor:
        """The mean over each sequence's scored queries of ``A [n, X, T, T]``: ``[n, X]`` (NaN where none)."""
        return masked_mean(self.dense(A, queries), self.scored(queries))

    def of(self, A: torch.Tensor, tokens: torch.Tensor | None = None, first_query: int = 1) -> torch.Tensor:
        """This metric of a pattern you hold, ``A [batch, ..., q, k]`` (``tokens [batch, q]`` for a metric that
        reads tokens): ``[batch, ...]``, NaN where a sequence has no scored query. ``A`` is not modified."""
        if tokens is None:
            tokens = torch.arange(A.shape[-1], device=A.device).expand(A.shape[0], -1)
        flat = A.reshape(A.shape[0], -1, A.shape[-2], A.shape[-1])
        return self.per_sequence(flat, Queries(tokens, None, first_query)).view(A.shape[0], *A.shape[1:-2])


class KeySumMetric(PatternMetric):
    """The attention each scored query puts on its keys, ``sum_{(q, k) in pairs} A[q, k]``."""

    required: ClassVar[tuple[str, ...]] = ("pairs",)

    def pairs(self, queries: Queries) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(b, q, k)`` index vectors on ``queries.device``, sorted by ``q``: the keys of each query."""
        raise NotImplementedError

    def _pairs(self, queries: Queries) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return queries.cached(("keysum", self.name), lambda: self.pairs(queries))

    def scored(self, queries: Queries) -> torch.Tensor:
        return queries.cached(("scored", self.name), lambda: queries.has(*self._pairs(queries)[:2]))

    def dense(self, A: torch.Tensor, queries: Queries) -> torch.Tensor:
        b, q, k = self._pairs(queries)
        out = torch.zeros(queries.n * queries.T, A.shape[1], device=A.device)
        out.index_add_(0, queries.flat(b, q).to(A.device), A[b, :, q, k].float())
        return out.view(queries.n, queries.T, -1)

    def rows_start(self, queries: Queries, width: int) -> torch.Tensor:
        return torch.zeros(queries.n * queries.T, width, device=queries.device)

    def rows_add(self, state: torch.Tensor, queries: Queries, start: int, block: torch.Tensor, lo: int = 0) -> None:
        b, q, k = self._pairs(queries)
        first, last = torch.searchsorted(q, torch.tensor([start, start + block.shape[2]], device=q.device)).tolist()
        b, q, k = b[first:last], q[first:last], k[first:last]
        seen = (k >= lo) & (k < lo + block.shape[-1])  # keys outside the columns hold 0
        b, q, k = b[seen], q[seen], k[seen]
        state.index_add_(0, queries.flat(b, q), block[b, :, q - start, k - lo].float())

    def rows_values(self, state: torch.Tensor, queries: Queries) -> torch.Tensor:
        return state.view(queries.n, queries.T, -1)

    def lse(self, source: Any, queries: Queries, shift: int = 0, rows: int = 128, chunk: int = 1 << 16) -> torch.Tensor:
        b, q, k = self._pairs(queries)
        out = torch.zeros(queries.n * queries.T, source.shape[1], device=queries.device)
        for i in range(0, len(b), chunk):  # bounded gathers of [chunk, head, d]
            bb, qq, kk = b[i : i + chunk], q[i : i + chunk], k[i : i + chunk]
            out.index_add_(0, queries.flat(bb, qq), source.entries(bb + shift, qq, kk))
        return out.view(queries.n, queries.T, -1)


class ArgmaxMetric(PatternMetric):
    """Whether the key each scored query attends to most counts: ``hit(queries, key_star) -> [n, T, X]``."""

    required: ClassVar[tuple[str, ...]] = ("scored", "hit")

    def hit(self, queries: Queries, key_star: torch.Tensor) -> torch.Tensor:
        """``key_star [n, X, T]`` (each query's arg-max key) -> ``[n, T, X]`` float, 1 where it counts."""
        raise NotImplementedError

    def dense(self, A: torch.Tensor, queries: Queries) -> torch.Tensor:
        return self.hit(queries, A.argmax(-1))

    def rows_start(self, queries: Queries, width: int) -> torch.Tensor:
        return torch.zeros(queries.n, width, queries.T, dtype=torch.long, device=queries.device)

    def rows_add(self, state: torch.Tensor, queries: Queries, start: int, block: torch.Tensor, lo: int = 0) -> None:
        state[:, :, start : start + block.shape[2]] = block.argmax(-1) + lo

    def rows_values(self, state: torch.Tensor, queries: Queries) -> torch.Tensor:
        return self.hit(queries, state)

    def lse(self, source: Any, queries: Queries, shift: int = 0, rows: int = 128, chunk: int = 1 << 16) -> torch.Tensor:
        n = queries.n
        key_star = torch.zeros(n, source.shape[1], queries.T, dtype=torch.long, device=queries.device)
        wanted = self.scored(queries).any(0).nonzero().flatten().tolist()
        if wanted:  # only the rows some sequence scores: each costs a row of scores
            for start in range(wanted[0], wanted[-1] + 1, rows):
                stop = min(wanted[-1] + 1, start + rows)
                key_star[:, :, start:stop] = source.argmax(slice(shift, shift + n), start, stop)
        return self.hit(queries, key_star)
