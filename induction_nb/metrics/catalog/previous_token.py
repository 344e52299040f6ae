"""Previous-token score: ``mean_q A[q, q-1]`` over the queries from ``first_query`` on (1, or 2 after a BOS
token, whose successor has no real previous token). The head that, by K-composition, lets an induction
head's keys read the token before each position (Elhage et al. 2021)."""

from __future__ import annotations

import torch

from ..queries import KeySumMetric, Queries
from ..registry import register


@register
class PreviousToken(KeySumMetric):
    name = "previous_token"
    label = "previous token"
    short = "prev"
    description = "attention from each token to the one before it"
    source = "Elhage et al. 2021, A Mathematical Framework for Transformer Circuits"
    order = 40

    def pairs(self, queries: Queries):
        real = queries.real
        ok = torch.zeros_like(real)
        start = max(1, queries.first_query)
        ok[:, start:] = real[:, start:] & real[:, start - 1 : -1]
        b, q = ok.T.nonzero(as_tuple=True)[::-1]  # sorted by q
        return b, q, q - 1
