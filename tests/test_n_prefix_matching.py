"""n-prefix matching on hand-made patterns: the targets of ``t[k-n .. k-1] == t[q-n+1 .. q]`` worked out by
hand, where 1-token contexts are ambiguous and 2-token contexts are not. (Its paths are held equal to
each other with every registered metric's: tests/test_metric_paths.py.)"""

import math

import pytest
import torch

from induction_nb.metrics import REGISTRY, Queries

#     position  0  1  2  3  4  5  6  7  8
#     token     A  B  X  A  C  Y  B  A  C     (A is followed by B, C and C: its 1-token context is ambiguous)
TOKENS = torch.tensor([[1, 2, 9, 1, 3, 8, 2, 1, 3]])


def _pairs(name):
    b, q, k = REGISTRY[name].pairs(Queries(TOKENS))
    return sorted(zip(q.tolist(), k.tolist()))


def test_targets_by_hand():
    # n = 1 (prefix matching): q=3 (A) -> k=1 (after the A at 0); q=6 (B) -> k=2; q=7 (A) -> k=1, 4;
    # q=8 (C) -> k=5 (after the C at 4)
    assert _pairs("prefix_matching") == [(3, 1), (6, 2), (7, 1), (7, 4), (8, 5)]
    # n = 2: q=7 has context "B A" (t[6], t[7]); before k=1 the context is "- A" (no t[-1]), before k=4 "X A":
    # neither; q=8 has "A C" and k=5 follows "A C" (t[3], t[4]): the one 2-prefix target
    assert _pairs("prefix_matching_2") == [(8, 5)]
    # n = 3: "B A C" at q=8 against "X A C" before k=5: no
    assert _pairs("prefix_matching_3") == []


def test_scores_by_hand():
    A = torch.zeros(1, 1, 9, 9)
    for q in range(9):
        A[0, 0, q, q] = 0.5
        A[0, 0, q, 0] += 0.5
    A[0, 0, 8] = 0
    A[0, 0, 8, 5], A[0, 0, 8, 4] = 0.7, 0.3  # the 2-prefix target gets 0.7
    assert REGISTRY["prefix_matching_2"].of(A, TOKENS).item() == pytest.approx(0.7)
    assert math.isnan(REGISTRY["prefix_matching_3"].of(A, TOKENS).item()), "no query is scored"


def test_a_bos_and_the_first_repeated_token_are_not_2_prefix_targets():
    """[BOS] r1..r4 r1..r4: the repeat's first token follows r4, not BOS, so it is no 2-prefix query; the
    rest of the repeat is."""
    block = [5, 6, 7, 8]
    tokens = torch.tensor([[1, *block, *block]])
    b, q, k = REGISTRY["prefix_matching_2"].pairs(Queries(tokens))
    assert q.tolist() == [6, 7, 8] and (q - k).tolist() == [3, 3, 3]
