"""PatternGenerator: the original snippets, where the induction targets are, controls, bad input."""

import pytest
import torch

from induction_nb import PATTERN_NAMES, InputError, PatternGenerator
from induction_nb.metrics import match_mask


def test_original_snippets():
    gen = PatternGenerator(vocab_size=50, device="cpu")
    pattern = gen.generate("repeated", seq_len=64, n_repeats=4)
    assert pattern.tokens.shape == (8, 64) and pattern.period == 16
    assert torch.equal(pattern.tokens[:, :16], pattern.tokens[:, 48:])
    pattern = gen.generate("abab", seq_len=64)
    assert pattern.period == 2 and (pattern.tokens[:, 2:] == pattern.tokens[:, :-2]).all()
    pattern = gen.generate("copy", seq_len=64)
    all_patterns = gen.generate_all(seq_len=64)
    assert set(all_patterns) == set(PATTERN_NAMES) - {"natural"}
    assert all(p.tokens.shape == (8, 64) for p in all_patterns.values())


def test_repeated_targets_are_the_stripe():
    p = PatternGenerator(vocab_size=100, seed=1).generate("repeated", seq_len=20, batch_size=3)
    M = p.match_mask
    q = torch.arange(10, 20)
    assert M.sum() == 3 * 10 and M[:, q, q - 9].all(), "exactly one target per repeated token, at q - P + 1"
    assert p.targets[:, :10].sum() == 0
    assert (p.tokens >= 10).all() and (p.tokens < 100).all(), "default range skips the lowest tenth"


def test_copy_layout():
    gen = PatternGenerator(vocab_size=100, seed=2)
    p = gen.generate("copy", seq_len=21, batch_size=2)
    n = 10
    assert (p.tokens[:, n] == gen.sep_token_id).all()
    assert torch.equal(p.tokens[:, :n], p.tokens[:, n + 1 : 2 * n + 1]) and p.period == n + 1


def test_random_has_no_match_and_bigram_has_some():
    gen = PatternGenerator(vocab_size=200, seed=3)
    assert match_mask(gen.generate("random", seq_len=40).tokens).sum() == 0
    bigram = gen.generate("bigram", seq_len=64, batch_size=4)
    assert (match_mask(bigram.tokens).sum((1, 2)) > 0).all()


def test_bos_and_exclusions():
    gen = PatternGenerator(vocab_size=60, bos_token_id=0, exclude=[10, 11, 12], seed=0)
    p = gen.generate("repeated", seq_len=30, batch_size=4)
    assert p.tokens.shape == (4, 31) and (p.tokens[:, 0] == 0).all() and p.offset == 1
    assert not torch.isin(p.tokens[:, 1:], torch.tensor([0, 10, 11, 12])).any()
    assert not match_mask(p.tokens)[:, :, 0].any()


def test_control_keeps_positions_but_breaks_matches():
    gen = PatternGenerator(vocab_size=100, bos_token_id=1, seed=4)
    p = gen.generate("repeated", seq_len=24, batch_size=3)
    c = gen.control_for(p)
    assert c.shape == p.tokens.shape and torch.equal(c[:, :13], p.tokens[:, :13])
    assert match_mask(c).sum() == 0


def test_natural_uses_the_tokenizer():
    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [10 + (ord(ch) % 50) for ch in text]}

    gen = PatternGenerator(vocab_size=100, tokenizer=Tok(), seed=0)
    p = gen.generate("natural", seq_len=40, batch_size=2)
    assert p.period == 20 and torch.equal(p.tokens[:, :20], p.tokens[:, 20:])
    assert len(p.meta["passages"]) == 2


def test_deterministic_per_seed():
    a = PatternGenerator(vocab_size=100, seed=5).generate_all(seq_len=32)
    b = PatternGenerator(vocab_size=100, seed=5).generate_all(seq_len=32)
    c = PatternGenerator(vocab_size=100, seed=6).generate("repeated", seq_len=32)
    assert all(torch.equal(a[k].tokens, b[k].tokens) for k in a)
    assert not torch.equal(a["repeated"].tokens, c.tokens)


@pytest.mark.parametrize(
    "kwargs,call,match",
    [
        ({"vocab_size": 1}, None, "vocab_size must be an integer >= 2"),
        ({"vocab_size": 50}, ("zigzag", 32, {}), "unknown pattern 'zigzag'; valid names: repeated, abab"),
        ({"vocab_size": 50}, ("repeated", 64, {"n_repeats": 1}), "n_repeats must be an integer >= 2"),
        ({"vocab_size": 50}, ("repeated", 7, {"n_repeats": 4}), "too short for pattern 'repeated'"),
        ({"vocab_size": 50}, ("copy", 2, {}), "too short for pattern 'copy'"),
        ({"vocab_size": 50}, ("natural", 32, {}), "needs a tokenizer"),
        ({"vocab_size": 50, "low": 40, "high": 60}, None, r"must lie inside the vocabulary \[0, 50\)"),
    ],
)
def test_bad_input(kwargs, call, match):
    with pytest.raises(InputError, match=match):
        gen = PatternGenerator(**kwargs)
        name, seq_len, extra = call
        gen.generate(name, seq_len=seq_len, **extra)


@pytest.mark.parametrize("n_repeats", [2, 3])
def test_derangement_control_for_small_vocabularies(n_repeats):
    """With too few ids for a fresh control, each later block is a permutation of the block before it with
    no token in its old place: the stripe positions hold no prefix match, the first block is kept."""
    gen = PatternGenerator(vocab_size=15, seed=2)  # ids [1, 15): 14 usable
    p = gen.generate("repeated", seq_len=12 * n_repeats, batch_size=4, n_repeats=n_repeats)
    assert gen.control_kind(p) == "derangement"
    c = gen.control_for(p)
    assert torch.equal(c[:, :12], p.tokens[:, :12]) and torch.isin(c, gen.pool).all()
    stripe = match_mask(p.tokens)
    assert stripe.any() and not (stripe & match_mask(c)).any(), "no prefix match where the probe has one"
    for row in c:  # each later block is a permutation of the first
        for r in range(1, n_repeats):
            assert sorted(row[12 * r : 12 * (r + 1)].tolist()) == sorted(row[:12].tolist())


def test_probe_length_adapts_to_the_vocabulary():
    assert PatternGenerator(50000).probe_length(None) == (128, None)
    length, why = PatternGenerator(100).probe_length(None)
    assert length == 90 and "90" in why and "fresh" in why
    length, why = PatternGenerator(15).probe_length(None)
    assert length == 28 and "derangement" in why
    assert PatternGenerator(100).probe_length(64) == (64, None)
    with pytest.raises(InputError, match="fewer than 2 usable token ids"):
        PatternGenerator(2, low=1, high=2)
