"""The detector and analyzer: the original API verbatim, ground truth, determinism, bad input."""

import pytest
import torch
from handbuilt import HandBuiltInduction
from tiny_models import EncoderStack, NanoGPT, make_hf, make_jamba

from induction_nb import InputError, capture_attention, detect_induction_heads

PERIOD = 16


@pytest.fixture(scope="module")
def toy():
    return HandBuiltInduction(period=PERIOD)


def test_hand_built_transformer_finds_exactly_its_induction_head(toy):
    from induction_head_detector import detect_induction_heads

    result = detect_induction_heads(toy, threshold=0.4, sequence_length=2 * PERIOD)
    assert result.induction_heads == [(1, 0)]
    s = result.score(1, 0)
    assert s.prefix_matching > 0.9 and s.contrast > 0.85 and s.copying > 0.85 and s.overall_score > 0.75
    assert s.ci_low <= s.overall_score <= s.ci_high
    assert result.previous_token_heads() == [(0, 0)]
    positional = result.score(1, 1)
    assert positional.prefix_matching > 0.95, "the positional head sits on the stripe..."
    assert positional.contrast < 0.05 and positional.overall_score < 0.05, "...but not because of the tokens"


def test_analyzer_on_the_hand_built_model(toy):
    from induction_head_detector import InductionHeadAnalyzer

    analyzer = InductionHeadAnalyzer(toy)
    induction_heads = analyzer.find_induction_heads(threshold=0.4, sequence_length=2 * PERIOD)
    assert induction_heads == [(1, 0)]
    behavior = analyzer.analyze_head(1, 0, sequence_length=2 * PERIOD)
    assert behavior.induction_stripe_score > 0.9 and behavior.previous_token_score < 0.2
    assert analyzer.analyze_head(0, 0, sequence_length=2 * PERIOD).previous_token_score > 0.99


def test_analyze_head_attention_snippet(toy):
    from induction_head_detector import PatternGenerator, analyze_head_attention

    gen = PatternGenerator(vocab_size=40, seed=0)
    tokens = gen.generate("repeated", seq_len=32, batch_size=1).tokens[0]
    attention_pattern = capture_attention(toy, tokens).head(1, 0)
    behavior = analyze_head_attention(attention_pattern, tokens, period=16)  # [seq, seq], [seq]
    print(f"Diagonal score: {behavior.diagonal_score:.3f}")
    print(f"Induction stripe: {behavior.induction_stripe_score:.3f}")
    # the first block has no match: those rows spread over the prefix, only row 0 sits on itself
    assert behavior.diagonal_score < 0.2
    assert behavior.induction_stripe_score > 0.9 and behavior.prefix_matching > 0.9
    assert behavior.copying > 0.9 and behavior.previous_token_score < 0.2
    off_by_one = analyze_head_attention(attention_pattern, tokens, period=17)  # the literal reading of the seed
    assert off_by_one.induction_stripe_score < 0.1


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_hf("gpt2", "eager"),
        lambda: make_hf("llama_gqa", "sdpa"),
        lambda: make_hf("gpt_neox", "eager"),
        lambda: NanoGPT(flash=True, block_size=64).eval(),
        lambda: EncoderStack(causal=True).eval(),
    ],
    ids=["gpt2", "llama_gqa", "gpt_neox", "nanogpt", "encoder_stack"],
)
def test_random_init_models_have_no_induction_head(make):
    from induction_nb import detect_induction_heads

    torch.manual_seed(0)
    result = detect_induction_heads(make(), threshold=0.4, sequence_length=40)
    assert result.num_heads_detected == 0
    assert max(s.overall_score for s in result.head_scores) < 0.2


def test_deterministic_for_a_seed(toy):
    from induction_nb import InductionHeadDetector

    a = InductionHeadDetector(toy, seed=3).detect(sequence_length=32).to_dict()
    b = InductionHeadDetector(toy, seed=3).detect(sequence_length=32).to_dict()
    c = InductionHeadDetector(toy, seed=4).detect(sequence_length=32).to_dict()
    assert a == b and a != c


def test_chunking_does_not_change_the_scores(toy):
    from induction_nb import InductionHeadDetector

    one = InductionHeadDetector(toy, batch_size=5, chunk_size=8).detect(sequence_length=32)
    many = InductionHeadDetector(toy, batch_size=5, chunk_size=2, progress=False).detect(sequence_length=32)
    for x, y in zip(one.head_scores, many.head_scores):
        assert x.overall_score == pytest.approx(y.overall_score, abs=1e-6)
        assert x.previous_token == pytest.approx(y.previous_token, abs=1e-6)


def test_keep_patterns_only_for_requested_heads(toy):
    from induction_nb import InductionHeadDetector

    det = InductionHeadDetector(toy, batch_size=3)
    result = det.detect(sequence_length=32, keep_patterns=[(1, 0)])
    assert set(result.kept_patterns) == {(1, 0)}
    kept = result.kept_patterns[(1, 0)]
    probe = det.generator().generate("repeated", 32, 3)
    torch.testing.assert_close(kept, capture_attention(toy, probe.tokens).pattern[:, 1, 0])
    with pytest.raises(InputError, match=r"keep_patterns \[\(5, 0\)\] out of range"):
        det.detect(sequence_length=32, keep_patterns=[(5, 0)])


def test_several_patterns_pool_their_sequences(toy):
    from induction_nb import InductionHeadDetector

    result = InductionHeadDetector(toy, batch_size=4).detect(sequence_length=32, patterns=["repeated", "copy", "abab"])
    assert result.induction_heads == [(1, 0)] and result.settings["patterns"] == ["repeated", "copy", "abab"]


@pytest.mark.parametrize(
    "kwargs,detect_kwargs,match",
    [
        ({"threshold": 1.5}, {}, r"threshold must be a number in \[0, 1\]"),
        ({"threshold": -0.1}, {}, r"threshold must be a number in \[0, 1\]"),
        ({"vocab_size": 1}, {}, "vocab_size must be an integer >= 2"),
        ({"vocab_size": 41}, {}, r"vocab_size 41 is larger than the model's vocabulary \(40\)"),
        ({}, {"patterns": ["spiral"]}, "unknown pattern 'spiral'; valid names"),
        ({}, {"patterns": ["random"]}, "has no period"),
        ({}, {"sequence_length": 3}, "too short for pattern 'repeated'"),
        ({}, {"n_repeats": 1}, "n_repeats must be an integer >= 2"),
        ({}, {"sequence_length": 64}, r"sequence_length=64 exceeds the model's 48 positions; pass sequence_length=36"),
        (
            {"vocab_size": 20},
            {"sequence_length": 48},
            "needs 24 distinct token ids per block, but only 18 .*sequence_length=18",
        ),
        ({}, {"patterns": []}, "no patterns"),
        ({}, {"sequence_length": 32.0}, "sequence_length must be a positive integer, got 32.0"),
        ({"batch_size": 0}, {}, "batch_size must be a positive integer"),
    ],
)
def test_bad_input(toy, kwargs, detect_kwargs, match):
    from induction_nb import InductionHeadDetector

    with pytest.raises(InputError, match=match):
        InductionHeadDetector(toy, **kwargs).detect(**detect_kwargs)


def test_sequence_longer_than_the_model_positions():
    from induction_nb import InductionHeadDetector

    with pytest.raises(InputError, match="exceeds the model's 64 positions"):
        InductionHeadDetector(make_hf("gpt2")).detect(sequence_length=70)


@pytest.mark.parametrize(
    "attention,tokens,period,match",
    [
        (torch.ones(4, 5) / 5, torch.arange(4), None, "square"),
        (torch.eye(4), torch.arange(5), None, "tokens must be"),
        (torch.eye(4), torch.arange(4), 4, "period must be an integer in"),
        (torch.eye(4), torch.arange(4), 0, "period must be an integer in"),
        (torch.eye(4) * float("nan"), torch.arange(4), None, "NaN"),
        (torch.eye(4), torch.tensor([1.5, 2.5, 1.7, 2.2]), None, "integer token ids"),
        (torch.ones(1, 1), torch.arange(1), None, "at least 2 positions"),
    ],
)
def test_analyze_head_attention_bad_input(attention, tokens, period, match):
    from induction_nb import analyze_head_attention

    with pytest.raises(InputError, match=match):
        analyze_head_attention(attention, tokens, period=period)


# --- the real model ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_original_snippets_and_reference_heads(smollm2, capsys):
    from induction_head_detector import InductionHeadDetector, detect_induction_heads

    model = smollm2
    result = detect_induction_heads(model, threshold=0.4)
    print(f"Found {result.num_heads_detected} induction heads")
    for layer, head in result.induction_heads:
        print(f" Layer {layer}, Head {head}")
    detector = InductionHeadDetector(model, threshold=0.3)
    result = detector.detect(sequence_length=64)
    for score in result.get_top_heads(n=5):
        print(f"L{score.layer}H{score.head}: {score.overall_score:.3f}")
    out = capsys.readouterr().out
    assert "Found" in out and "L18H6" in out

    full = detect_induction_heads(model, threshold=0.4)
    reference = [(18, 6), (17, 3), (17, 4), (17, 5), (18, 7)]  # metrics.md, by prefix-matching
    assert [(s.layer, s.head) for s in full.get_top_heads(5, metric="prefix_matching")] == reference
    assert set(full.induction_heads[:5]) == set(reference) and full.induction_heads[0] == (18, 6)
    assert full.score(18, 6).overall_score > 0.8 and full.score(16, 0).previous_token > 0.8


def test_hybrid_model_heads_carry_the_model_layer_index(tmp_path):
    """Jamba has attention in layers 1 and 3 only: the result names L1/L3 heads, layers 0 and 2 have none."""
    from induction_nb import DetectionResult, create_analysis_report
    from induction_nb.draw.ascii import text_score_map

    model = make_jamba()
    result = detect_induction_heads(model, sequence_length=32, batch_size=2, n_bootstrap=50, keep_patterns=[(3, 1)])
    assert result.layers == [1, 3] and result.n_layers == 4 and len(result.head_scores) == 8
    assert result.has_head(3, 1) and not result.has_head(2, 0)
    assert (3, 1) in result.kept_patterns
    with pytest.raises(InputError, match=r"L2H0 is out of range: the model has attention in layers 1, 3"):
        result.score(2, 0)
    again = DetectionResult.load(result.save(tmp_path / "jamba.json"))
    assert again == result and again.layers == [1, 3]
    grid = text_score_map(result, width=80)
    assert "L2 │ -  -  -  -" in grid and "'-' no such head" in grid
    assert "L3 |" in create_analysis_report(result, detailed=True)
    with pytest.raises(
        InputError,
        match=r"keep_patterns \[\(2, 0\)\] out of range: the model has attention in "
        r"layers 1, 3 \(4 heads each\)",
    ):
        detect_induction_heads(model, sequence_length=32, batch_size=2, keep_patterns=[(2, 0)])


def test_sink_model_scores_over_all_the_mass():
    """gpt-oss's sinks take part of each row: the metrics see each key's share of the whole softmax."""
    from tiny_configs import build

    model = build("gpt_oss")
    result = detect_induction_heads(model, sequence_length=32, batch_size=2, n_bootstrap=50)
    assert result.layers == [0, 1]
    diag = [s.diagonal for s in result.head_scores]
    assert all(0 <= d <= 1 for d in diag)


@pytest.mark.parametrize("vocab", list(range(20, 201, 15)) + [12, 15])
def test_default_call_fits_any_small_vocabulary(vocab):
    """The default call runs on a model with a small vocabulary (or refuses clearly): the probe length
    and control adapt, are recorded in settings and said once in a warning."""
    import transformers

    kind = vocab % 3
    if kind == 0:
        config = transformers.GPTNeoXConfig(
            vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
        )
    elif kind == 1:
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4)
    else:
        config = transformers.LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
        )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = detect_induction_heads(model, batch_size=2, n_bootstrap=20)
    length = result.settings["sequence_length"]
    if length == 128:
        assert "probe_adapted" not in result.settings and not caught
    else:
        assert len(caught) == 1 and result.settings["probe_adapted"] in str(caught[0].message)
    assert len(result.head_scores) == 8


def test_default_call_finds_the_heads_of_a_small_vocabulary_model(toy):
    """The hand-built model (40 ids, 48 positions): the default probe adapts and finds its induction head."""
    import warnings

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = detect_induction_heads(toy)
    assert result.induction_heads == [(1, 0)] and result.settings["sequence_length"] < 128


def test_kept_patterns_are_the_first_patterns_and_say_so(tmp_path):
    """With several probe patterns the kept rows are the first pattern's, labelled with its period: an abab
    probe is drawn with its stripe at period 2, not the repeated probe's."""
    from induction_nb import HandBuiltInduction, InductionHeadDetector

    result = InductionHeadDetector(HandBuiltInduction(period=16), batch_size=2, n_bootstrap=10).detect(
        sequence_length=32, patterns=("abab", "repeated"), keep_patterns=[(1, 0)]
    )
    assert result.kept_patterns[(1, 0)].shape[0] == 2 == result.kept_tokens.shape[0]
    assert result.settings["kept"] == {"pattern": "abab", "period": 2, "offset": 0}  # the toy has no BOS
    kept = result.kept_layer(1, 0)
    assert (kept.name, kept.period, kept.offset) == ("abab", 2, 0)
    page = result.to_html(tmp_path / "r.html").read_text()
    assert "attention on &#x27;abab&#x27;" in page or "attention on 'abab'" in page


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_heads=1), "n_heads must be an integer >= 2, got 1"),  # was an IndexError
        (dict(period=0), r"period must be an integer in \[1, 47\], got 0"),  # wrapped to the last position
        (dict(period=48), r"period must be an integer in \[1, 47\], got 48"),  # no query q = 48 to repeat
        (dict(period=-2), r"period must be an integer in \[1, 47\]"),
        (dict(period=8.0), r"period must be an integer in \[1, 47\]"),
        (dict(seed="a"), "seed must be an integer >= 0"),
    ],
)
def test_the_hand_built_model_refuses_what_it_cannot_build(kwargs, match):
    with pytest.raises(InputError, match=match):
        HandBuiltInduction(**kwargs)


def test_the_hand_built_positional_head_at_the_largest_period():
    """``period=47``: query 47 attends key 1 (``k = q - P + 1``), the one stripe cell that fits."""
    from induction_nb import capture_head

    tokens = torch.arange(48)[None] % 40
    attention = capture_head(HandBuiltInduction(period=47, n_heads=2), tokens, 1, 1)[0]
    assert attention[47].argmax().item() == 1
