"""Causal evidence on models whose answer is known: the hand-built transformer (its induction head and the
previous-token head feeding it), and the real SmolLM2 (top heads against random heads of the same layers)."""

import random

import pytest
import torch
from tiny_models import EncoderStack, NanoGPT

from induction_nb import (
    InputError,
    ablate_heads,
    create_analysis_report,
    detect_induction_heads,
    find_circuit,
    head_effects,
    icl_score,
    text_circuit,
)
from induction_nb.analysis.toy import HandBuiltInduction

PERIOD = 16


@pytest.fixture(scope="module")
def toy():
    return HandBuiltInduction(period=PERIOD)


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_ablating_the_induction_head_destroys_repeated_accuracy(toy, method):
    hit = ablate_heads(toy, [(1, 0)], method, sequence_length=2 * PERIOD)
    assert hit.baseline_accuracy > 0.9 and hit.ablated_accuracy < 0.2
    assert hit.effect > 0.5 and hit.natural_effect is None  # no tokenizer, no natural text
    miss = ablate_heads(toy, [(1, 2)], method, sequence_length=2 * PERIOD)
    assert abs(miss.effect) < 1e-4 and miss.ablated_accuracy == miss.baseline_accuracy


def test_every_head_in_few_forwards(toy):
    effects, n_forward = head_effects(toy, sequence_length=2 * PERIOD, batch_size=4, chunk=16)
    assert effects.shape == (2, 4) and n_forward == 2  # 8 heads, 4 per forward (the clean copy in the first)
    assert effects[1, 0] > 0.5 and effects[0, 0] > 0.5, "the induction head and the head it depends on"
    others = effects.clone()
    others[1, 0] = others[0, 0] = 0
    assert others.abs().max() < 1e-4


def test_individual_effects_match_the_joint_call(toy):
    r = ablate_heads(toy, [(0, 0), (1, 0)], individually=True, sequence_length=2 * PERIOD)
    effects, _ = head_effects(toy, sequence_length=2 * PERIOD, batch_size=8)
    assert r.per_head[(1, 0)] == pytest.approx(float(effects[1, 0]), abs=1e-5)
    assert r.per_head[(0, 0)] == pytest.approx(float(effects[0, 0]), abs=1e-5)


def test_in_context_learning_score(toy):
    intact = icl_score(toy, sequence_length=2 * PERIOD)
    ablated = icl_score(toy, ablate=[(1, 0)], sequence_length=2 * PERIOD)
    assert intact["repeated"] < -0.5, "later tokens are predicted better: the model uses its context"
    assert abs(ablated["repeated"]) < 0.05


def test_circuit_finds_the_previous_token_head(toy):
    circuit = find_circuit(toy, sequence_length=2 * PERIOD)
    (src, dst, drop) = circuit.top(1)[0]
    assert (src, dst) == ((0, 0), (1, 0)) and drop > 0.5
    assert circuit.baseline[(1, 0)] > 0.9 and circuit.feeding((1, 0))[0][0] == (0, 0)
    assert all(d < 1e-4 for s, _, d in circuit.edges if s != (0, 0))
    text = text_circuit(circuit, width=60)
    assert "L0H0 -> L1H0 +0.9" in text and max(map(len, text.splitlines())) <= 60


def test_result_carries_causal_effects(toy):
    effects, _ = head_effects(toy, sequence_length=2 * PERIOD)
    result = detect_induction_heads(toy, sequence_length=2 * PERIOD).with_causal_effects(effects)
    assert result.score(1, 0).causal_effect == pytest.approx(float(effects[1, 0]))
    assert "ablation" in create_analysis_report(result, detailed=True)
    again = type(result).from_dict(result.to_dict())
    assert again.score(1, 0).causal_effect == pytest.approx(float(effects[1, 0]))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: ablate_heads(m, [(2, 0)]), r"heads \[\(2, 0\)\] out of range: the model has 2 layers x 4 heads"),
        (lambda m: ablate_heads(m, []), "the head list is empty"),
        (lambda m: ablate_heads(m, [(1, 0)], "shuffle"), "unknown ablation method 'shuffle'; use one of zero, mean"),
        (lambda m: head_effects(m, "noise"), "unknown ablation method"),
        (lambda m: icl_score(m, ablate=[(0, 9)]), "out of range"),
    ],
)
def test_bad_input(toy, call, match):
    with pytest.raises(InputError, match=match):
        call(toy)


def test_unsliceable_output_projection_says_what_to_do():
    with pytest.raises(InputError, match="nn.MultiheadAttention applies its out_proj functionally.*projections="):
        ablate_heads(EncoderStack(causal=True).eval(), [(0, 0)], sequence_length=16)
    model = NanoGPT(flash=True, block_size=64).eval()
    for block in model.h:  # rename the projection: nothing we know to look for
        block.attn.mix = block.attn.c_proj
        del block.attn.c_proj
        block.attn.forward = _forward_with_mix(block.attn)
    with pytest.raises(InputError, match="cannot find the output projection .*pass projections="):
        ablate_heads(model, [(0, 0)], sequence_length=16)
    paths = [f"h.{i}.attn.mix" for i in range(3)]
    assert ablate_heads(model, [(0, 0)], sequence_length=16, projections=paths).n_forward == 1


def _forward_with_mix(attn):
    original = type(attn).forward

    def forward(x):
        attn.c_proj = attn.mix
        try:
            return original(attn, x)
        finally:
            del attn.c_proj

    return forward


@pytest.mark.slow
def test_smollm2_top_heads_matter_more_than_random_heads_of_the_same_layers(smollm2):
    result = detect_induction_heads(smollm2)
    top = result.induction_heads[:5]
    rng = random.Random(0)
    layers = [l for l, _ in top]
    pool = [(l, h) for l in sorted(set(layers)) for h in range(9) if (l, h) not in top]
    control = rng.sample(pool, 5)
    hit = ablate_heads(smollm2, top, sequence_length=64, batch_size=8, seed=0)
    miss = ablate_heads(smollm2, control, sequence_length=64, batch_size=8, seed=0)
    print(
        f"top 5 {top}: +{hit.effect:.3f} nats (natural {hit.natural_effect:+.3f}); "
        f"random 5 {control}: +{miss.effect:.3f} (natural {miss.natural_effect:+.3f})"
    )
    assert hit.effect > 0.5 and hit.effect > 5 * max(miss.effect, 0.01)
    assert hit.ablated_accuracy < hit.baseline_accuracy - 0.2
    icl = icl_score(smollm2, sequence_length=64, batch_size=8)
    icl_ablated = icl_score(smollm2, ablate=top, sequence_length=64, batch_size=8)
    assert icl["repeated"] < icl_ablated["repeated"] and icl["natural"] is not None


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_ablation_matches_an_independent_hook_on_a_model_where_every_head_writes(method):
    """A random tiny llama (all heads write everywhere): the loss with head (1, 2) removed equals the loss
    computed with a plain torch pre-hook that edits o_proj's input slice itself."""
    from tiny_models import make_hf

    from induction_nb import InductionHeadDetector

    model = make_hf("llama_gqa", "eager")
    got = ablate_heads(model, [(1, 2)], method, sequence_length=24, batch_size=4)
    probe = InductionHeadDetector(model, batch_size=4).generator().generate("repeated", 24, 4)
    tokens, d = probe.tokens, 48 // 6
    positions = torch.arange(probe.offset + probe.period, tokens.shape[1] - 1)
    proj = model.model.layers[1].self_attn.o_proj
    seen = []
    grab = proj.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    with torch.no_grad():
        model(tokens)
    grab.remove()
    mean = seen[0].mean(dim=(0, 1))[2 * d : 3 * d]

    def cut(module, args):
        z = args[0].clone()
        z[:, :, 2 * d : 3 * d] = 0 if method == "zero" else mean
        return (z,)

    def loss() -> float:
        with torch.no_grad():
            lp = torch.log_softmax(model(tokens).logits[:, positions], -1)
        return float(-lp.gather(-1, tokens[:, positions + 1, None]).mean())

    clean = loss()
    hook = proj.register_forward_pre_hook(cut)
    ablated = loss()
    hook.remove()
    assert got.baseline_loss == pytest.approx(clean, abs=1e-5)
    assert got.ablated_loss == pytest.approx(ablated, abs=1e-5) and abs(got.effect) > 1e-4


TOO_LONG = r"sequence_length=100 exceeds the model's 48 positions; pass sequence_length=48 \(the default"


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: icl_score(m, ablate=[(1, 0)], method="shuffle"), "unknown ablation method"),
        (lambda m: find_circuit(m, [(1, 0)], method="shuffle"), "unknown ablation method"),
        (lambda m: icl_score(m, sequence_length=8), "icl_score needs sequence_length >= 24, got 8"),
        (lambda m: ablate_heads(m, [(1.0, 0)]), "integer"),
        (lambda m: ablate_heads(m, [(1, 0)], sequence_length=100), TOO_LONG),
        (lambda m: head_effects(m, sequence_length=100), TOO_LONG),
        (lambda m: ablate_heads(m, [(1, 0)], sequence_length="40"), "sequence_length must be a positive integer"),
        (lambda m: head_effects(m, sequence_length=2), "head_effects needs sequence_length >= 4, got 2"),
        (lambda m: find_circuit(m, [(1, 0)], sequence_length=60), "sequence_length=60 .* pass sequence_length=48"),
    ],
)
def test_more_bad_input(toy, call, match):
    with pytest.raises(InputError, match=match):
        call(toy)


def test_ablating_one_application_of_a_shared_layer():
    """ALBERT runs one layer three times: layer 1 is its second application. Removing head 2 there equals a
    torch pre-hook that edits the output projection's input on that call only (the other calls untouched)."""
    import transformers

    from induction_nb import InductionHeadDetector

    config = transformers.AlbertConfig(
        vocab_size=128,
        hidden_size=64,
        num_attention_heads=4,
        intermediate_size=128,
        num_hidden_layers=3,
        num_hidden_groups=1,
        embedding_size=32,
        initializer_range=0.3,
    )  # large weights: every head matters visibly
    torch.manual_seed(0)
    model = transformers.AlbertForMaskedLM(config).eval()
    got = ablate_heads(model, [(1, 2)], sequence_length=24, batch_size=4)
    probe = InductionHeadDetector(model, batch_size=4).generator().generate("repeated", 24, 4)
    tokens, d = probe.tokens, 64 // 4
    positions = torch.arange(probe.offset + probe.period, tokens.shape[1] - 1)
    proj = model.albert.encoder.albert_layer_groups[0].albert_layers[0].attention.dense

    def manual(which: int) -> float:
        calls = []

        def cut(module, args):
            calls.append(len(calls))
            if len(calls) != which:
                return None
            z = args[0].clone()
            z[:, :, 2 * d : 3 * d] = 0
            return (z,)

        hook = proj.register_forward_pre_hook(cut)
        with torch.no_grad():
            lp = torch.log_softmax(model(tokens).logits[:, positions], -1)
        hook.remove()
        assert len(calls) == 3
        return float(-lp.gather(-1, tokens[:, positions + 1, None]).mean())

    assert got.ablated_loss == pytest.approx(manual(2), abs=1e-6)
    assert abs(got.ablated_loss - manual(1)) > 1e-5 and abs(got.ablated_loss - manual(3)) > 1e-5


DOCS = [[(7 * i + j) % 36 + 4 for j in range(16)] * 2 for i in range(3)]


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda m: icl_score(m, texts=DOCS, sequence_length=32),
            "sequence_length=32 .* does not apply to texts=.*max_length=N",
        ),
        (lambda m: icl_score(m, sequence_length=32, early=4), "icl_score got early, which apply only with texts="),
    ],
)
def test_icl_score_refuses_arguments_it_would_ignore(toy, call, match):
    """``sequence_length`` is the random probes' length: with ``texts`` it was silently ignored; the text
    settings without ``texts`` were too."""
    with pytest.raises(InputError, match=match):
        call(toy)
    curve = icl_score(toy, texts=DOCS, early=4, late=20, max_length=32)  # max_length is the texts' bound
    assert curve.icl_score < -0.5


@pytest.mark.parametrize(
    "call",
    [
        lambda m: ablate_heads(m, [(1, 0), (0, 1), (1, 0)], individually=True),
        lambda m: ablate_heads(m, [(1, 0), (1, 0)]),
        lambda m: icl_score(m, ablate=[(1, 0), (1, 0)], sequence_length=32),
        lambda m: icl_score(m, texts=DOCS, ablate=[(1, 0), (1, 0)], early=4, late=20),
        lambda m: find_circuit(m, [(1, 0), (1, 0)], sequence_length=32),
        lambda m: find_circuit(m, [(1, 0)], candidates=[(0, 0), (0, 0)], sequence_length=32),
    ],
)
def test_a_head_named_twice_is_refused(toy, call):
    """``individually=True`` would measure the repeated head twice (one row each); a joint list that names a
    head twice is a typo: refused by the shared check, naming the head."""
    with pytest.raises(InputError, match=r"names L1H0 more than once|names L0H0 more than once"):
        call(toy)
