"""Copying by direct logit attribution, on the hand-built model (exact answers) and on SmolLM2."""

import pytest

from induction_nb import InputError, copying_dla
from induction_nb.analysis.toy import HandBuiltInduction


def test_hand_built_induction_head_copies_and_others_do_not():
    scores = {
        (s.layer, s.head): s for s in copying_dla(HandBuiltInduction(16), [(1, 0), (0, 0), (1, 2)], sequence_length=32)
    }
    assert scores[(1, 0)].top_k_rate == 1.0 and scores[(1, 0)].mean_z > 3 and scores[(1, 0)].median_rank == 0
    assert scores[(0, 0)].top_k_rate == 0.0, "the previous-token head writes no logits directly"
    assert scores[(1, 2)].top_k_rate == 0.0 and scores[(1, 2)].mean_z == 0.0


def test_bad_input():
    with pytest.raises(InputError, match="top_k must be a positive integer"):
        copying_dla(HandBuiltInduction(16), [(1, 0)], top_k=0)
    with pytest.raises(InputError, match="out of range"):
        copying_dla(HandBuiltInduction(16), [(3, 0)], sequence_length=32)


@pytest.mark.slow
def test_smollm2_induction_head_raises_the_attended_token_more_than_a_previous_token_head(smollm2):
    scores = {(s.layer, s.head): s for s in copying_dla(smollm2, [(18, 6), (16, 0)])}
    induction, previous = scores[(18, 6)], scores[(16, 0)]
    assert induction.mean_z > 0.5 > previous.mean_z
    assert induction.median_rank < previous.median_rank
