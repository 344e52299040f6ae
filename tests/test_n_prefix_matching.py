"""n-prefix matching on hand-made patterns: the targets of ``t[k-n .. k-1] == t[q-n+1 .. q]`` worked out by
hand (n = 1 .. 4), where 1-token contexts are ambiguous and longer contexts are not; ``n_prefix_metric`` and
its bad n; hand-made heads on the ngram probe; the detector on it, and the views that put n side by side.
(Its paths are held equal to each other with every registered metric's: tests/test_metric_paths.py.)"""

import math

import pytest
import torch
from prefix_targets import targets

from induction_nb import InputError, PatternGenerator, create_analysis_report, detect_induction_heads, text_n_prefix
from induction_nb.metrics import N_PREFIX_MAX, REGISTRY, Queries, n_prefix_metric

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


def test_a_bos_and_the_first_repeated_token_are_not_2_prefixtargets():
    """[BOS] r1..r4 r1..r4: the repeat's first token follows r4, not BOS, so it is no 2-prefix query; the
    rest of the repeat is."""
    block = [5, 6, 7, 8]
    tokens = torch.tensor([[1, *block, *block]])
    b, q, k = REGISTRY["prefix_matching_2"].pairs(Queries(tokens))
    assert q.tolist() == [6, 7, 8] and (q - k).tolist() == [3, 3, 3]


# n = 4 by hand. position  0  1  2  3  4  5  6  7  8  9 10 11 12 13 14
#                token     D  A  B  C  X  E  A  B  C  Y  D  A  B  C  Z
# "A B C" occurs after D (at 0) and after E (at 5): only the copy at 0 shares the last 4 tokens of q = 13
TOKENS4 = torch.tensor([[4, 1, 2, 3, 9, 5, 1, 2, 3, 8, 4, 1, 2, 3, 7]])


def test_n4_targets_by_hand():
    t = TOKENS4
    assert [(q, k) for q, k in _pairs_of("prefix_matching", t)] == [
        (6, 2), (7, 3), (8, 4), (10, 1), (11, 2), (11, 7), (12, 3), (12, 8), (13, 4), (13, 9)
    ]  # fmt: skip
    # n = 2: q=6 has "E A", the A at 1 follows D: no; q=10 has "Y D", the D at 0 has nothing before it: no
    assert _pairs_of("prefix_matching_2", t) == [(7, 3), (8, 4), (11, 2), (12, 3), (12, 8), (13, 4), (13, 9)]
    # n = 3: q=8 "A B C" (6..8) = t[1..3]; q=12 "D A B" = t[0..2], not t[5..7] "E A B"; q=13 "A B C" twice
    assert _pairs_of("prefix_matching_3", t) == [(8, 4), (12, 3), (13, 4), (13, 9)]
    # n = 4: q=13 "D A B C" (10..13) = t[0..3] only; q=8 "E A B C" is not "D A B C"
    assert _pairs_of("prefix_matching_4", t) == [(13, 4)]


def test_n4_scores_by_hand():
    A = torch.eye(15)[None, None].clone()  # every query on itself (no target)...
    A[0, 0, 13] = 0
    A[0, 0, 13, 4], A[0, 0, 13, 9] = 0.6, 0.4  # ...but q = 13: 0.6 on its 4-prefix target, 0.4 on the other copy
    of = {n: REGISTRY[n_prefix_metric(n)].of(A, TOKENS4).item() for n in (1, 2, 3, 4)}
    assert of[4] == pytest.approx(0.6), "one scored query (13), 0.6 on its one target"
    assert of[3] == pytest.approx(1 / 3), "scored 8, 12, 13: 13 puts 1.0 on its targets 4 and 9"
    assert of[2] == pytest.approx(1 / 5) and of[1] == pytest.approx(1 / 7)


def _pairs_of(name, tokens):
    b, q, k = REGISTRY[name].pairs(Queries(tokens))
    return sorted(zip(q.tolist(), k.tolist()))


def test_n_prefix_metric_names_and_bad_n():
    assert [n_prefix_metric(n) for n in (1, 2, 3, 4)] == [
        "prefix_matching", "prefix_matching_2", "prefix_matching_3", "prefix_matching_4"
    ]  # fmt: skip
    assert n_prefix_metric(torch.tensor(3)) == "prefix_matching_3" and N_PREFIX_MAX == 4
    assert all(n_prefix_metric(n) in REGISTRY for n in range(1, N_PREFIX_MAX + 1))
    for bad in (0, 5, -1, 2.0, "2", None, True):
        with pytest.raises(InputError, match=r"n \(the n-prefix context length\) must be an integer in 1\.\.4"):
            n_prefix_metric(bad)


def test_a_2_prefix_head_and_a_plain_head_on_the_ngram_probe():
    """Hand-made heads on the ngram probe: a 2-prefix head (all its attention on each query's one 2-prefix
    target, else on BOS) scores 1 at n = 2 and 3; a plain induction head (attention spread evenly over the
    prefix-matching targets) scores 1 at n = 1 and 1/k at n >= 2, k its query's number of targets (2 or 3
    here). At n = 1 the 2-prefix head scores the share of prefix-matching queries that have a 2-prefix target
    (its target is one of them): first-block queries recur with no 2-prefix target."""
    p = PatternGenerator(vocab_size=100, seed=0, bos_token_id=0).generate("ngram", seq_len=32, batch_size=2)
    t, T = p.tokens, p.tokens.shape[1]
    one, two = targets("prefix_matching", t), targets("prefix_matching_2", t)
    heads = torch.zeros(2, 2, T, T)  # [batch, head (0: 2-prefix, 1: plain), q, k]
    heads[:, :, :, 0] = 1
    for (b, q), ks in two.items():
        heads[b, 0, q] = 0
        heads[b, 0, q, ks] = 1.0
    for (b, q), ks in one.items():
        heads[b, 1, q] = 0
        heads[b, 1, q, ks] = 1 / len(ks)
    score = {n: REGISTRY[n_prefix_metric(n)].of(heads, t, first_query=2).mean(0) for n in (1, 2, 3)}
    share = len(two) / len(one)
    split = sum(1 / len(one[key]) for key in two) / len(two)  # the plain head's mean 1/k at n = 2
    assert score[2][0] == pytest.approx(1.0) and score[3][0] == pytest.approx(1.0)
    assert score[1][0] == pytest.approx(share, abs=0.05) and share == pytest.approx(0.625)  # 15 of 24 queries
    assert score[1][1] == pytest.approx(1.0)
    assert score[2][1] == pytest.approx(split, abs=0.02) and 1 / 3 <= split <= 0.5
    assert score[3][1] < 0.5


@pytest.fixture(scope="module")
def ngram_scan():
    from handbuilt import HandBuiltInduction

    return detect_induction_heads(
        HandBuiltInduction(period=16), sequence_length=32, patterns=["ngram"], batch_size=4, n_bootstrap=50
    )


def test_the_detector_runs_the_ngram_probe(ngram_scan):
    """The hand-built induction head (attention spread over every key after a copy of t[q]) is a plain
    induction head: ~1 at n = 1, split at n >= 2 on the ngram probe."""
    s = ngram_scan.score(1, 0)
    assert ngram_scan.settings["patterns"] == ["ngram"] and ngram_scan.settings["control"] == ["rewired"]
    assert s.prefix_matching > 0.9 and 0.3 < s.prefix_matching_2 < 0.5 and 0.3 < s.prefix_matching_3 < 0.5
    assert s.contrast > 0.4, "the rewired control moves t[q] off the probe's targets"


def test_text_n_prefix_side_by_side(ngram_scan):
    text = text_n_prefix(ngram_scan, top=3)
    lines = text.splitlines()
    assert lines[2].split() == ["head", "n=1", "n=2", "n=3", "n=4"] and lines[3].startswith("L1H0  0.9")
    assert "probes: ngram" in lines[1] and all(len(x) <= 80 for x in lines)
    chosen = text_n_prefix(ngram_scan, [(0, 0), (1, 0)], ns=[1, 2], decimals=2).splitlines()
    assert chosen[2].split() == ["head", "n=1", "n=2"] and [x.split()[0] for x in chosen[3:5]] == ["L0H0", "L1H0"]
    s = ngram_scan.score(1, 0)
    assert chosen[4].split()[1:] == [f"{s.prefix_matching:.2f}", f"{s.prefix_matching_2:.2f}"]
    for ns, match in (([5], "integer in 1..4"), ([None], "integer in 1..4"), ([], "non-empty"), ("12", "non-empty")):
        with pytest.raises(InputError, match=match):
            text_n_prefix(ngram_scan, ns=ns)


def test_the_report_shows_n_prefix_columns_when_asked(ngram_scan):
    plain = create_analysis_report(ngram_scan, detailed=True)
    asked = create_analysis_report(ngram_scan, detailed=True, metrics=[n_prefix_metric(n) for n in (2, 3)])
    assert "prefix2" not in plain and "prefix2" in asked and "prefix3" in asked
    assert create_analysis_report(ngram_scan, detailed=True, metrics=None) == plain
    with pytest.raises(InputError, match="pass detailed=True"):
        create_analysis_report(ngram_scan, metrics=["prefix_matching_2"])
    with pytest.raises(InputError, match="has no 'nope'"):
        create_analysis_report(ngram_scan, detailed=True, metrics=["nope"])
