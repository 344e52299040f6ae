"""Copying: how often the key a head attends to most holds the token that comes next, ``t[k*] == t[q+1]``
with ``k* = argmax_k A[q, k]``, over the queries with an induction target and a next token. An induction
head on repeated random tokens scores ~1, a previous-token head ~0; chance is ~1/vocab. Attention-only:
whether the head's output raises that token's logit is ``causal.copying_dla``."""

from __future__ import annotations

import torch

from ..queries import ArgmaxMetric, Queries, following_tokens
from ..registry import register


@register
class Copying(ArgmaxMetric):
    name = "copying"
    label = "copying"
    short = "copying"
    description = "how often the most-attended key holds the token that comes next"
    source = "Olsson et al. 2022 (copying); this module"
    order = 30

    def scored(self, queries: Queries) -> torch.Tensor:
        def make():
            has_next = torch.zeros_like(queries.real)
            has_next[:, :-1] = queries.real[:, 1:]
            return queries.has(*queries.token_pairs("match")[:2]) & has_next

        return queries.cached(("scored", self.name), make)

    def hit(self, queries: Queries, key_star: torch.Tensor) -> torch.Tensor:
        n, x, T = key_star.shape
        attended = torch.gather(queries.tokens[:, None, :].expand(n, x, T), 2, key_star)
        return (attended == following_tokens(queries.tokens)[:, None, :]).float().transpose(1, 2)
