"""Fuzzy copying (``fuzzy_copy``; Olsson et al. 2022, line 4: the same heads copy fuzzily), against
independent references: the probe's own invariants (no exact match between the blocks, targets after the
earlier form of the query's word), the target attention read by hand from ``capture_attention``, patterns
built by hand (a head on the fuzzy targets scores 1, a uniform head the mean of ``1 / (q + 1)``), the
hand-built transformer's exact-match induction head (high on the exact control, low fuzzily), and the bad
inputs the issue names. Tiny models with a word-level tokenizer that knows each word in two cases."""

from __future__ import annotations

import importlib

import pytest
import torch
from tiny_models import make_hf
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from induction_nb import capture_attention
from induction_nb.analysis import FuzzyCopyResult, HandBuiltInduction, fuzzy_copy
from induction_nb.errors import InputError
from induction_nb.probes.fuzzy import WordPair, candidate_words, fuzzy_probes, word_pairs

fc = importlib.import_module("induction_nb.analysis.fuzzy")
WORDS = candidate_words()[:20]  # the shipped passages' first words: the ones the default word list reads


def _tokenizer(words=WORDS, forms=("lower", "capitalize"), fold: bool = False) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: ids 0-2 special, then each word in each of ``forms``."""
    vocab = {"<unk>": 0, "<eos>": 1, "<pad>": 2}
    for w in words:
        for form in forms:
            vocab.setdefault(getattr(w, form)(), len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if fold:
        core.normalizer = normalizers.Lowercase()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<eos>", pad_token="<pad>")


def _with_tokenizer(model, tokenizer):
    model.tokenizer = tokenizer
    return model


@pytest.fixture(scope="module")
def worded():
    return _with_tokenizer(make_hf("llama_gqa"), _tokenizer())  # BOS 1 (the config's)


def test_word_pairs_keep_one_token_forms_with_distinct_ids():
    tok = _tokenizer(WORDS[:6])
    pairs = word_pairs(tok, WORDS[:8])  # the last two are unknown: <unk>, never a form
    assert [(p.form1, p.form2) for p in pairs] == [(w, w.capitalize()) for w in WORDS[:6]]
    assert [(p.id1, p.id2) for p in pairs] == [(3 + 2 * i, 4 + 2 * i) for i in range(6)]
    assert word_pairs(tok, WORDS[:6], exclude=[3]) == pairs[1:]  # the BOS is no form
    assert word_pairs(_tokenizer(fold=True), WORDS) == []  # case-folding: both forms one id


def test_the_blocks_share_no_token_and_each_target_follows_the_earlier_form():
    pairs = word_pairs(_tokenizer(), WORDS)
    probes = fuzzy_probes(pairs, 5, 8, bos=1, seed=3)
    word = {p.id1: p.form1 for p in pairs} | {p.id2: p.form1 for p in pairs}
    assert probes.fuzzy.shape == probes.exact.shape == (5, 17) and probes.queries.shape == (5, 7)
    for fuzzy, exact, queries, targets in zip(probes.fuzzy, probes.exact, probes.queries, probes.targets):
        first, second = fuzzy[1:9].tolist(), fuzzy[9:].tolist()
        assert fuzzy[0] == exact[0] == 1 and not set(first) & set(second) and len(set(first)) == 8
        assert exact[:9].tolist() == fuzzy[:9].tolist() and sorted(exact[9:].tolist()) == sorted(first)
        for q, k in zip(queries.tolist(), targets.tolist()):
            assert 1 < k <= 8 < q and word[int(fuzzy[k - 1])] == word[int(fuzzy[q])] and fuzzy[k - 1] != fuzzy[q]
            assert exact[k - 1] == exact[q]  # the control: the same target by an exact match
        assert len(set(queries.tolist())) == 7
    bad = [WordPair("a", "A", 5, 6), WordPair("b", "B", 6, 7), *pairs[:6]]  # 6 is both a form 1 and a form 2
    with pytest.raises(RuntimeError, match="exact match between its blocks"):
        for seed in range(20):
            fuzzy_probes(bad, 4, 8, None, seed)


def test_scores_equal_the_target_attention_read_by_hand(worded):
    result = fuzzy_copy(worded, n_probes=4, n_boot=50, seed=2)
    probes = fuzzy_probes(word_pairs(worded.tokenizer, exclude=[1]), 4, 20, 1, 2)
    assert isinstance(result, FuzzyCopyResult) and result.length == 41 and result.layers == (0, 1)
    assert result.queries == 19 and len(result.words) == 20
    for tokens, got, low, high in (
        (probes.fuzzy, result.scores, result.ci_low, result.ci_high),
        (probes.exact, result.exact, result.exact_ci_low, result.exact_ci_high),
    ):
        pattern = capture_attention(worded, tokens).pattern  # [batch, layer, head, q, k]
        rows = torch.arange(4)[:, None]
        on = pattern[rows, :, :, probes.queries, probes.targets]  # [batch, m, layer, head]
        want = on.mean(1).mean(0)
        assert got.shape == (2, 6) and torch.allclose(got, want, atol=1e-6)
        assert (low <= got + 1e-6).all() and (got <= high + 1e-6).all()
    assert result.top(2) == sorted(result.top(12), key=lambda x: -x[1])[:2] and len(result.top(100)) == 12


def _fake_stream(pairs, uniform_layer=1, ahead=0.0):
    """A ``stream_attention`` stand-in: layer 1 only (layer 0 is absent: NaN), head 0 all on the position after
    the earlier form (either) of the query's word, head 1 uniform over the keys it may see."""
    word = {p.id1: i for i, p in enumerate(pairs)} | {p.id2: i for i, p in enumerate(pairs)}

    def stream(engine, tokens, reducer, sites=None):
        b, t = tokens.shape
        pattern = torch.zeros(b, 2, t, t)
        pattern[:, 1] = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
        for s in range(b):
            ids = tokens[s].tolist()
            for q in range(t):
                earlier = [k + 1 for k in range(q - 1) if word.get(ids[k], -1) == word.get(ids[q], -2)]
                pattern[s, 0, q, earlier[0] if earlier else q] = 1.0
        pattern[:, 1, :-1, -1] += ahead  # a glimpse of the last key from every earlier row (bidirectional)
        return [reducer(uniform_layer, pattern)]

    return stream


def test_a_head_on_the_targets_scores_one_and_a_uniform_head_the_inverse_positions(worded, monkeypatch):
    pairs = word_pairs(worded.tokenizer, exclude=[1])
    monkeypatch.setattr(fc, "stream_attention", _fake_stream(pairs))
    result = fuzzy_copy(worded, n_probes=3, length=17, n_boot=20)
    probes = fuzzy_probes(pairs, 3, 8, 1, 0)
    uniform = float((1.0 / (probes.queries + 1)).mean())
    for grid in (result.scores, result.exact, result.ci_low, result.exact_ci_high):
        assert grid[0].isnan().all()  # a layer without attention
    assert result.scores[1, 0] == pytest.approx(1.0) and result.exact[1, 0] == pytest.approx(1.0)
    assert result.scores[1, 1] == pytest.approx(uniform, abs=1e-6) == result.exact[1, 1]
    assert 0.05 < uniform < 0.15 and result.top(1) == [((1, 0), pytest.approx(1.0))]
    monkeypatch.setattr(fc, "stream_attention", _fake_stream(pairs, ahead=0.5))
    with pytest.raises(InputError, match="attends to keys after the query"):
        fuzzy_copy(worded, n_probes=3, length=17, n_boot=20)


def test_an_exact_match_induction_head_does_not_copy_fuzzily():
    """The hand-built L1H0 matches token one-hots exactly: near 1 on the control, near chance fuzzily; the
    positional L1H1 (offset -15) follows neither, the second block being shuffled."""
    model = _with_tokenizer(HandBuiltInduction(), _tokenizer(WORDS[:18]))  # 39 of its 40 ids
    result = fuzzy_copy(model, n_probes=4, n_boot=20)
    assert result.length == 36 and len(result.words) == 18
    assert result.exact[1, 0] > 0.95 and result.scores[1, 0] < 0.1, (result.exact[1, 0], result.scores[1, 0])
    assert result.exact[1, 1] < 0.2 and result.scores[1, 1] < 0.2


def test_same_seed_same_result_and_nothing_else_changes(worded):
    before = {k: v.clone() for k, v in worded.state_dict().items()}
    rng = torch.random.get_rng_state()
    a, b = (fuzzy_copy(worded, n_probes=2, length=11, n_boot=20, seed=5) for _ in range(2))
    c = fuzzy_copy(worded, n_probes=2, length=11, n_boot=20, seed=6)
    for name in ("scores", "ci_low", "ci_high", "exact", "exact_ci_low", "exact_ci_high"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.words == b.words and not torch.equal(a.scores, c.scores)
    assert torch.equal(torch.random.get_rng_state(), rng) and not worded.training
    assert all(torch.equal(v, before[k]) for k, v in worded.state_dict().items())


def _short_gpt2():
    import transformers

    config = transformers.GPT2Config(vocab_size=97, n_embd=16, n_layer=1, n_head=2, n_positions=7)
    config._attn_implementation = "eager"
    return _with_tokenizer(transformers.GPT2LMHeadModel(config).eval(), _tokenizer())


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (lambda: make_hf("gpt2"), {}, r"fuzzy copy needs a tokenizer: .*model\.tokenizer ="),
        (lambda: _with_tokenizer(make_hf("gpt2"), _tokenizer(WORDS[:3])), {}, r"too few usable word pairs: .* 3 .*4"),
        (lambda: _with_tokenizer(make_hf("gpt2"), _tokenizer(fold=True)), {}, r"too few .* 0 words .*cased"),
        (lambda: _with_tokenizer(make_hf("gpt2"), _tokenizer(WORDS[:6])), dict(length=14), r"needs 7 .* length<=12"),
        (_short_gpt2, {}, "has 7 positions; the fuzzy-copy probe needs at least 8"),
        (None, dict(length=12), r"does not split into a BOS and two equal blocks .* length=11"),
        (None, dict(length=80), "exceeds the model's 64 positions"),
        (None, dict(n_probes=1), "n_probes"),
        (None, dict(n_boot=0), "n_boot"),
        (None, dict(seed="0"), "seed must be an integer"),
        (None, dict(sites="self_attn"), "sites must be a CustomSites"),
    ],
)
def test_bad_inputs_are_refused_with_the_fix(worded, make, kwargs, match):
    with pytest.raises(InputError, match=match):
        fuzzy_copy(worded if make is None else make(), **kwargs)


def test_given_pairs_run_without_a_tokenizer_and_are_checked():
    from induction_nb import HandBuiltInduction, InputError, fuzzy_copy

    model = HandBuiltInduction()
    pairs = [(i, i + 20) for i in range(2, 12)]  # token ids: "form 2" an unrelated id in a one-hot model
    r = fuzzy_copy(model, pairs=pairs, n_probes=4, n_boot=20, length=16)
    assert r.words[0] in {(str(a), str(b)) for a, b in pairs}
    assert float(r.exact[1, 0]) > 0.9 and float(r.scores[1, 0]) < 0.1  # an exact-match head, no fuzzy match
    for bad, match in [
        ([(2, 2)] * 5, "different tokens"),
        ([(2, 3), (3, 4)], "another pair"),
        ([(2, 99)], "outside the vocabulary"),
        ([("cat", 3)], "no tokenizer"),
        ([(2,)], "two forms"),
        ("cats", "list of"),
    ]:
        with pytest.raises(InputError, match=match):
            fuzzy_copy(model, pairs=bad, n_probes=2, n_boot=5)
