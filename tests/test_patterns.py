"""PatternGenerator: the original snippets, where the induction targets are, controls, bad input; the ngram
probe's guarantee and its control."""

import pytest
import torch
from prefix_targets import targets

from induction_nb import EXTRA_PATTERN_NAMES, PATTERN_NAMES, InputError, PatternGenerator
from induction_nb.metrics import match_mask
from induction_nb.probes.ngram import ngram_alphabet
from induction_nb.probes.patterns import _NAME_SALT


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


@pytest.mark.parametrize("bos,seq_len", [(None, 28), (0, 32), (0, 65)])
def test_ngram_probe_guarantee(bos, seq_len):
    """Every query with a 3-prefix target has >= 2 prefix-matching targets holding >= 2 different tokens
    (its 1-token context is ambiguous) and exactly one 2-prefix and one 3-prefix target, the same key on the
    stripe q - period + 1; those are the second block's queries after its first two. No query of the first
    block has a 2-prefix target."""
    gen = PatternGenerator(vocab_size=100, seed=3, bos_token_id=bos)
    p = gen.generate("ngram", seq_len=seq_len, batch_size=3)
    t, P, o = p.tokens, p.period, p.offset
    assert p.meta["alphabet"] == ngram_alphabet(P) and p.name not in PATTERN_NAMES and "ngram" in EXTRA_PATTERN_NAMES
    assert torch.equal(t[:, o : o + P], t[:, o + P : o + 2 * P]), "the block, repeated"
    one, two, three = (targets(n, t) for n in ("prefix_matching", "prefix_matching_2", "prefix_matching_3"))
    in_second = range(o + P + 2, o + 2 * P)
    blocks = {key: keys for key, keys in three.items() if key[1] < o + 2 * P}  # a 65th token: a third block
    assert sorted(blocks) == [(b, q) for b in range(3) for q in in_second]
    for b, q in blocks:
        keys = one[(b, q)]
        assert len(keys) >= 2 and len(set(t[b, keys].tolist())) >= 2, "1-token context: ambiguous"
        assert two[(b, q)] == three[(b, q)] == [q - P + 1], "2- and 3-token contexts: one target each"
    assert all(q >= o + P + 1 for _, q in two) and any(q < o + P for _, q in one), "first block: n = 1 only"
    if seq_len == 65:  # one token past two blocks: its context closes a block, which occurred once before
        assert two[(0, o + 2 * P)] == three[(0, o + 2 * P)] == [o + P + 1]


def test_ngram_control_rewires_the_same_tokens():
    """The control keeps the first block and holds the probe's own tokens after it (per block, the same
    counts), with no 2-prefix target anywhere while the 1-token contexts stay ambiguous."""
    gen = PatternGenerator(vocab_size=100, seed=1, bos_token_id=0)
    p = gen.generate("ngram", seq_len=32, batch_size=3)
    c = gen.control_for(p)
    start = p.offset + p.period
    assert (
        gen.control_kind(p) == "rewired"
        and c.shape == p.tokens.shape
        and torch.equal(c[:, :start], p.tokens[:, :start])
    )
    for row, probe in zip(c, p.tokens):
        assert sorted(row[start:].tolist()) == sorted(probe[start:].tolist()) and not torch.equal(row, probe)
    assert not targets("prefix_matching_2", c), "no 2-token context repeats"
    one = targets("prefix_matching", c)
    assert all(len(set(c[b, one[(b, q)]].tolist())) >= 2 for b in range(3) for q in range(start, c.shape[1]))
    assert torch.equal(c, gen.control_for(p)), "deterministic"


def test_the_ngram_probe_leaves_the_other_patterns_as_they_were():
    """'ngram' is generated by name only: generate_all and PATTERN_NAMES are the six as before, whose salts
    (random streams) are unchanged."""
    assert PATTERN_NAMES == ("repeated", "abab", "copy", "random", "natural", "bigram")
    assert {n: _NAME_SALT[n] for n in PATTERN_NAMES} == {n: 1009 * (i + 1) for i, n in enumerate(PATTERN_NAMES)}
    gen = PatternGenerator(vocab_size=100, seed=5)
    assert "ngram" not in gen.generate_all(seq_len=32)
    a, b = gen.generate("ngram", seq_len=40, batch_size=2), gen.generate("ngram", seq_len=40, batch_size=2)
    assert torch.equal(a.tokens, b.tokens) and a.period == 20


@pytest.mark.parametrize(
    "kwargs,n_repeats,match",
    [
        ({"vocab_size": 100}, 2, "too short for pattern 'ngram': it needs at least 28 tokens"),
        ({"vocab_size": 100}, 1, "n_repeats must be an integer >= 2"),
        ({"vocab_size": 20, "low": 2, "high": 10}, 2, "needs 10 distinct token ids, but only 8 .* seq_len <= 36"),
    ],
)
def test_ngram_bad_input(kwargs, n_repeats, match):
    seq_len = 60 if "low" in kwargs else 20
    with pytest.raises(InputError, match=match):
        PatternGenerator(**kwargs).generate("ngram", seq_len=seq_len, n_repeats=n_repeats)


@pytest.mark.parametrize(
    "name,extra,match",
    [
        ("bigram", {"n_bigram": 3}, r"pattern 'bigram' takes no keyword 'n_bigram'; .*n_bigrams"),
        ("repeated", {"n_bigrams": 3}, r"pattern 'repeated' takes no keyword 'n_bigrams'; .*n_repeats"),
        ("abab", {"period": 3}, "pattern 'abab' takes no keyword 'period'"),
        ("bigram", {"n_bigrams": 0}, "n_bigrams must be a positive integer"),
    ],
)
def test_generate_refuses_unknown_keywords(name, extra, match):
    """A typo in a pattern's own setting is refused with the settings it takes, never silently ignored."""
    with pytest.raises(InputError, match=match):
        PatternGenerator(vocab_size=100).generate(name, seq_len=32, **extra)
    assert PatternGenerator(vocab_size=100).generate("bigram", seq_len=32, n_bigrams=2).meta["n_bigrams"] == 2
