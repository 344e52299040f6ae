"""Retrieval heads on models whose answer is known: the hand-built transformer's induction head is the one
head that copies the needle out of the haystack, and removing it breaks the needle; the real SmolLM2 has
a few retrieval heads whose removal hurts far more than as many random heads of the same layers."""

import random

import pytest
import torch

from induction_nb import InputError, RetrievalResult, needle_accuracy, retrieval_heads
from induction_nb.analysis.retrieval import needle_cases
from induction_nb.analysis.toy import HandBuiltInduction
from induction_nb.engine.engine import Engine

HAYSTACK = list(range(4, 20)) * 2  # ids 4..19; the needle and the marker come from the rest of the vocabulary
KWARGS = dict(lengths=[40], depths=[0.2, 0.5, 0.8], needle_length=4, haystack=HAYSTACK, n_bootstrap=50)


@pytest.fixture(scope="module")
def toy():
    return HandBuiltInduction(period=16)


def test_needles_hold_no_haystack_token_and_sit_at_their_depth(toy):
    cases = needle_cases(Engine.of(toy), [40, 44], [0.0, 0.5, 1.0], 4, seed=3, haystack=HAYSTACK)
    assert len(cases) == 6
    for c in cases:
        ids = c.tokens[0]
        assert ids.shape[0] == c.length and torch.equal(ids[c.start : c.start + 4], c.answer)
        assert not torch.isin(c.answer, torch.tensor(HAYSTACK)).any()
    starts = [c.start for c in cases[:3]]
    assert starts == sorted(starts) and starts[0] < starts[-1]


def test_the_induction_head_is_the_retrieval_head(toy):
    result = retrieval_heads(toy, **KWARGS)
    assert isinstance(result, RetrievalResult) and result.settings["needle_accuracy"] == 1.0
    top = result.get_top_heads(1)[0]
    assert (top.layer, top.head) == (1, 0) and top.overall_score >= 0.75
    others = [s.overall_score for s in result.head_scores if (s.layer, s.head) != (1, 0)]
    assert max(others) < 0.25
    assert result.induction_heads == [(1, 0)], "threshold 0.1, as Wu et al."


def test_removing_the_retrieval_head_breaks_the_needle(toy):
    kwargs = {k: v for k, v in KWARGS.items() if k != "n_bootstrap"}
    assert needle_accuracy(toy, **kwargs) == 1.0
    assert needle_accuracy(toy, [(1, 0)], **kwargs) < 0.3
    assert needle_accuracy(toy, [(1, 2)], **kwargs) == 1.0  # a head that writes nothing


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lengths=[4000]), "exceeds the model's 48 positions"),
        (dict(lengths=[40], needle_length=30), "longer than the haystack"),
        (dict(depths=[1.5]), r"depth must be a number in \[0, 1\]"),
        (dict(depths=[-0.1]), r"depth must be a number in \[0, 1\]"),
        (dict(haystack=None), "needs the model's tokenizer.*pass haystack="),
        (dict(haystack="some words"), "haystack must be a non-empty list of token ids, got 'some words'"),
        (dict(haystack=[]), "haystack must be a non-empty list of token ids"),
        (dict(haystack=[[4, 5], [6, 7]]), r"haystack must hold token ids \(integers >= 0\) in one flat list"),
        (dict(haystack=[4, -1, 5]), r"haystack must hold token ids \(integers >= 0\)"),
        (dict(haystack=torch.ones(2, 8, dtype=torch.long)), "in one flat list"),
        (dict(haystack=[5, 6, 2**70]), r"haystack holds id 1180591620717411303424, outside the model's vocabulary of"),
        (dict(n_bootstrap=0), "n_bootstrap must be a positive integer, got 0"),  # was quantile's RuntimeError
        (dict(n_bootstrap=2.5), "n_bootstrap must be a positive integer"),
        (dict(seed="a"), "seed must be an integer >= 0, got 'a'"),
        (dict(seed=-1), "seed must be an integer >= 0"),
    ],
)
def test_bad_input(toy, kwargs, match):
    with pytest.raises(InputError, match=match):
        retrieval_heads(toy, **{**KWARGS, **kwargs})


def test_a_tensor_haystack_reads_as_its_ids(toy):
    as_list = needle_cases(Engine.of(toy), [40], [0.5], 4, seed=3, haystack=HAYSTACK)[0]
    as_tensor = needle_cases(Engine.of(toy), [40], [0.5], 4, seed=3, haystack=torch.tensor(HAYSTACK))[0]
    as_range = needle_cases(Engine.of(toy), [40], [0.5], 4, seed=3, haystack=range(4, 20))[0]
    assert torch.equal(as_list.tokens, as_tensor.tokens)
    assert torch.equal(as_range.tokens, needle_cases(Engine.of(toy), [40], [0.5], 4, 3, list(range(4, 20)))[0].tokens)


@pytest.mark.slow
def test_smollm2_retrieval_heads_and_their_causal_effect(smollm2):
    result = retrieval_heads(smollm2, lengths=[512], depths=[0.2, 0.5, 0.8], needle_length=6, n_bootstrap=200)
    top = [(s.layer, s.head) for s in result.get_top_heads(3)]
    assert result.settings["needle_accuracy"] >= 0.8 and result.get_top_heads(1)[0].overall_score > 0.3
    kwargs = dict(lengths=[512], depths=[0.2, 0.5, 0.8], needle_length=6)
    # as many heads of the same layers that do not retrieve (score < 0.1), distinct: SmolLM2's layers 17-18
    # hold several copying heads that back each other up, so a random draw among them is no control
    rng, same_layers = random.Random(0), []
    for layer, _ in top:  # one per top head, in its layer
        pool = [h for h in range(9) if result.score(layer, h).overall_score < 0.1 and (layer, h) not in same_layers]
        same_layers.append((layer, rng.choice(pool)))
    without_top, without_random = (
        needle_accuracy(smollm2, top, **kwargs),
        needle_accuracy(smollm2, same_layers, **kwargs),
    )
    assert without_top < without_random - 0.3, (without_top, without_random)


def test_a_plain_hf_model_decodes_step_by_step():
    """An HF model passed as it is (wrapped with nnsight.NNsight, which cannot trace ``generate``) decodes
    one forward per step instead of failing inside nnsight, and generates what HF's own greedy ``generate``
    does."""
    from tiny_models import make_hf

    from induction_nb.engine.decoding import greedy_decode

    model = make_hf("llama_gqa", "eager")
    plain = Engine.of(model)
    assert not plain.can_generate
    case = needle_cases(plain, [30], [0.5], 3, haystack=list(range(20, 60)))[0]
    result = retrieval_heads(
        model, lengths=[30], depths=[0.5], needle_length=3, haystack=list(range(20, 60)), n_bootstrap=10
    )
    assert isinstance(result, RetrievalResult) and len(result.head_scores) == 2 * 6
    ids, keys = greedy_decode(plain, case.tokens, 3)
    with torch.no_grad():
        reference = model.generate(case.tokens, max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=0)
    assert torch.equal(ids, reference[0, case.tokens.shape[1] :]) and keys.shape == (3, 2, 6)


def test_decoding_ignores_the_models_generation_config(tmp_path):
    """A model saved with a generation_config asking for beam search, a length floor and suppressed tokens,
    loaded with load_model (decoded by generate): the toolkit decodes plain greedy, EOS included, as the
    reference does: an arg-max loop over the plain HF object's logits. needle_accuracy agrees with it too."""
    import json

    from tiny_models import save_with_words

    from induction_nb import load_model
    from induction_nb.engine.decoding import greedy_decode

    path = save_with_words(str(tmp_path))
    config = tmp_path / "generation_config.json"
    settings = json.loads(config.read_text()) if config.exists() else {}
    settings.update(num_beams=3, min_new_tokens=8, repetition_penalty=50.0, suppress_tokens=[46, 53])
    config.write_text(json.dumps(settings))
    loaded = load_model(path)
    engine = Engine.of(loaded)
    assert engine.can_generate
    tokens = torch.tensor([[5, 6, 7, 46, 53, 3, 57, 26, 17, 8, 9, 10, 11, 5, 6, 7]])
    ids, keys = greedy_decode(engine, tokens, 8)
    reference = tokens.clone()
    with torch.no_grad():
        for _ in range(8):
            reference = torch.cat([reference, engine.module(reference).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert ids.tolist() == reference[0, tokens.shape[1] :].tolist() and keys.shape[0] == 8
    assert 2 in ids.tolist()  # this model's EOS is its greedy token at the last step: not suppressed
    assert loaded.generation_config.num_beams == 3  # the model's own config is put back
    kwargs = dict(lengths=[30], depths=[0.2, 0.7], needle_length=4, haystack=list(range(20, 60)))
    assert needle_accuracy(loaded, **kwargs) == needle_accuracy(engine.module, **kwargs)


@pytest.mark.parametrize("arch", ["bart", "t5"])
def test_an_encoder_decoder_is_refused_plain_or_loaded(arch, tmp_path):
    """retrieval_heads and needle_accuracy refuse an encoder-decoder with the toolkit's InputError (not an
    error from inside generate or a tensor op), both as the plain HF object and as loaded by load_model."""
    import ndif_loopback
    import transformers

    from induction_nb import load_model

    torch.manual_seed(0)
    if arch == "bart":
        config = transformers.BartConfig(
            vocab_size=97, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        )  # fmt: skip
        model = transformers.BartForConditionalGeneration(config).eval()
    else:
        config = transformers.T5Config(
            vocab_size=97, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4
        )
        model = transformers.T5ForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path)
    ndif_loopback.write_tokenizer(tmp_path)
    kwargs = dict(lengths=[24], depths=[0.5], haystack=list(range(3, 60)))
    for m in (model, load_model(str(tmp_path))):
        with pytest.raises(InputError, match="encoder-decoder.*decoder-only.*capture"):
            retrieval_heads(m, n_bootstrap=10, **kwargs)
        with pytest.raises(InputError, match="encoder-decoder.*decoder-only.*capture"):
            needle_accuracy(m, **kwargs)
