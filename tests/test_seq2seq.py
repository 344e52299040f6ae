"""Encoder-decoder models (engine/seq2seq.py): each attention stack captured on its own, against HF eager.

The independent reference is the model's own ``output_attentions=True`` forward with the tokens as
``decoder_input_ids`` (the toolkit's documented convention): ``decoder_attentions`` for the default stack,
``encoder_attentions`` for ``stack="encoder"``, ``cross_attentions`` for ``stack="cross"``. Layer counts
come from the configs. The tiny models have more encoder layers than decoder layers (and, for BART, fewer
decoder heads), so that a stack mixed into another's grid, or labelled from the wrong stack, shows.
"""

import pytest
import torch
import transformers
from tiny_configs import build, tiny_config
from tiny_models import make_hf, random_tokens

from induction_nb import capture_attention, detect_induction_heads
from induction_nb.engine import Engine, Site
from induction_nb.errors import InputError

VOCAB = 97
N_ENC, N_DEC = 3, 2
SIZES = {
    "t5": dict(d_model=32, d_kv=8, d_ff=64, num_heads=4, num_layers=N_ENC, num_decoder_layers=N_DEC),
    "bart": dict(
        d_model=32,
        encoder_layers=N_ENC,
        decoder_layers=N_DEC,
        encoder_attention_heads=4,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
    ),
}
CONFIGS = {"t5": "T5Config", "bart": "BartConfig"}
MODELS = {"t5": "T5ForConditionalGeneration", "bart": "BartForConditionalGeneration"}


def make_seq2seq(arch: str, backend: str = "eager") -> torch.nn.Module:
    config = getattr(transformers, CONFIGS[arch])(
        vocab_size=VOCAB, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **SIZES[arch]
    )
    config._attn_implementation = backend
    torch.manual_seed(0)
    return getattr(transformers, MODELS[arch])(config).eval()


def eager_outputs(model, tokens, mask=None):
    """HF's own weights: the eager twin of ``model`` (same weights) run on the tokens as decoder input."""
    twin = make_seq2seq("t5" if "T5" in type(model).__name__ else "bart", "eager")
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        return twin(
            input_ids=tokens,
            attention_mask=mask,
            decoder_input_ids=tokens,
            decoder_attention_mask=mask,
            output_attentions=True,
        )


def _masked(weights: tuple, mask) -> torch.Tensor:
    """Eager's weights ``[batch, layer, head, q, k]`` with padding rows and columns zeroed (as captured)."""
    w = torch.stack(weights, 1)
    if mask is None:
        return w
    real = mask.bool()
    return w * real[:, None, None, :, None] * real[:, None, None, None, :]


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_each_stack_equals_eager(arch, backend):
    model, tokens = make_seq2seq(arch, backend), random_tokens(2, 10)
    ref = eager_outputs(model, tokens)
    for stack, weights, n_layers in (
        ("decoder", ref.decoder_attentions, N_DEC),
        ("encoder", ref.encoder_attentions, N_ENC),
        ("cross", ref.cross_attentions, N_DEC),
    ):
        got = capture_attention(model, tokens, stack=None if stack == "decoder" else stack)
        assert got.stack == stack
        assert got.layers == tuple(range(n_layers))  # labels per stack, from 0
        torch.testing.assert_close(got.pattern, torch.stack(weights, 1), atol=1e-5, rtol=0)
    assert capture_attention(model, tokens).causal and not capture_attention(model, tokens, stack="encoder").causal


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_padded_batch_feeds_the_mask_to_both_stacks(arch):
    model, tokens = make_seq2seq(arch, "sdpa"), random_tokens(2, 10)
    mask = torch.ones_like(tokens)
    mask[1, 7:] = 0
    ref = eager_outputs(model, tokens, mask)
    for stack, weights in (("decoder", ref.decoder_attentions), ("encoder", ref.encoder_attentions)):
        got = capture_attention(model, tokens, attention_mask=mask, stack=stack)
        torch.testing.assert_close(got.pattern, _masked(weights, mask), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_cross_attention_never_in_the_layer_grid(arch):
    model = make_seq2seq(arch)
    engine = Engine.of(model)
    decoder, encoder, cross = (engine.sites(stack=s) for s in ("decoder", "encoder", "cross"))
    assert {s.stack for s in decoder} == {"decoder"} and {s.stack for s in cross} == {"cross"}
    assert not {s.path for s in cross} & {s.path for s in decoder + encoder}
    assert engine.sites() == decoder and engine.layers == list(range(N_DEC)) and engine.n_layers == N_DEC
    assert [s.layer for s in encoder] == list(range(N_ENC))
    # each decoder site is a module of the decoder itself, each encoder site one of the encoder
    assert all(model.get_submodule(s.path) in set(model.get_decoder().modules()) for s in decoder + cross)
    assert all(model.get_submodule(s.path) in set(model.get_encoder().modules()) for s in encoder)


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_detection_defaults_score_the_decoder(arch):
    model = make_seq2seq(arch, "sdpa")
    result = detect_induction_heads(model, batch_size=2, n_bootstrap=10, sequence_length=20)
    assert result.n_layers == N_DEC and result.settings["stack"] == "decoder"
    assert {s.layer for s in result.head_scores} == set(range(N_DEC))
    decoder_heads = SIZES[arch].get("decoder_attention_heads", SIZES[arch].get("num_heads"))
    assert {s.head for s in result.head_scores} == set(range(decoder_heads))
    encoder = detect_induction_heads(model, batch_size=2, n_bootstrap=10, sequence_length=20, stack="encoder")
    assert encoder.n_layers == N_ENC and {s.layer for s in encoder.head_scores} == set(range(N_ENC))


def test_stack_is_validated_with_the_choices_named():
    model = make_seq2seq("bart")
    with pytest.raises(InputError, match="cross-attention's queries"):
        detect_induction_heads(model, stack="cross")
    with pytest.raises(InputError, match="decoder, encoder"):
        detect_induction_heads(model, stack="middle")
    with pytest.raises(InputError, match="decoder, encoder, cross"):
        capture_attention(model, random_tokens(1, 8), stack="middle")
    with pytest.raises(InputError, match="decoder, encoder, cross"):
        Site(layer=0, path="x", op=None, kind="softmax", stack="middle")


def test_one_stack_models_are_unchanged():
    model, tokens = make_hf("gpt2"), random_tokens(2, 10)
    engine = Engine.of(model)
    assert {s.stack for s in engine.sites()} == {"decoder"}
    assert capture_attention(model, tokens).layers == capture_attention(model, tokens, stack="decoder").layers
    with pytest.raises(InputError, match="not an encoder-decoder"):
        capture_attention(model, tokens, stack="encoder")


@pytest.mark.parametrize("arch", ["mbart", "marian", "pegasus"])
def test_bart_family_decoder_equals_eager(arch):
    config = tiny_config(arch)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.AutoModelForSeq2SeqLM.from_config(config).eval()
    tokens = random_tokens(2, 10)
    with torch.no_grad():
        ref = model(input_ids=tokens, decoder_input_ids=tokens, output_attentions=True)
    got = capture_attention(model, tokens)
    assert got.layers == tuple(range(config.decoder_layers))
    torch.testing.assert_close(got.pattern, torch.stack(ref.decoder_attentions, 1), atol=1e-5, rtol=0)


def _tiny_whisper() -> torch.nn.Module:
    config = transformers.WhisperConfig(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=N_ENC,
        decoder_layers=N_DEC,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=8,
        max_source_positions=16,
        max_target_positions=48,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        suppress_tokens=None,
        begin_suppress_tokens=None,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return transformers.WhisperForConditionalGeneration(config).eval()


def test_whisper_decoder_runs_on_ids_over_blank_audio():
    model, tokens = _tiny_whisper(), random_tokens(2, 10)
    blank = torch.zeros(2, 8, 32)  # the encoder's input the config states: mel bins x 2 * source positions
    with torch.no_grad():
        ref = model(input_features=blank, decoder_input_ids=tokens, output_attentions=True)
    got = capture_attention(model, tokens)
    assert got.layers == tuple(range(N_DEC))
    torch.testing.assert_close(got.pattern, torch.stack(ref.decoder_attentions, 1), atol=1e-5, rtol=0)
    for stack in ("encoder", "cross"):
        with pytest.raises(InputError, match="input_features"):
            capture_attention(model, tokens, stack=stack)
    result = detect_induction_heads(model, batch_size=2, n_bootstrap=10, sequence_length=20)
    assert result.n_layers == N_DEC


@pytest.mark.parametrize("arch", ["fsmt", "t5gemma2"])
def test_unusual_decoders_equal_eager(arch):
    """FSMT runs its attention time-first ``[length, batch, width]``; T5Gemma 2's decoder attends with one
    softmax over its own tokens and then the encoder's (HF's ``decoder_attentions`` are the first part)."""
    model, tokens = build(arch, "seq2seq"), random_tokens(2, 10)
    with torch.no_grad():
        ref = model(tokens, decoder_input_ids=tokens, output_attentions=True)
    for stack, weights in (("decoder", ref.decoder_attentions), ("encoder", ref.encoder_attentions)):
        got = capture_attention(model, tokens, stack=stack)
        assert got.layers == tuple(range(len(weights)))
        torch.testing.assert_close(got.pattern, torch.stack(weights, 1), atol=1e-5, rtol=0)


def test_a_short_first_sequence_still_tells_the_stacks_apart():
    model, tokens = make_seq2seq("bart"), random_tokens(2, 3)  # discovery probes these 3 tokens
    ref = eager_outputs(model, tokens)
    for stack, weights in (("encoder", ref.encoder_attentions), ("decoder", ref.decoder_attentions)):
        got = capture_attention(model, tokens, stack=stack)
        torch.testing.assert_close(got.pattern, torch.stack(weights, 1), atol=1e-5, rtol=0)


def test_detection_probes_start_with_the_decoder_start_token():
    model = make_seq2seq("bart")
    model.config.decoder_start_token_id = 5
    result = detect_induction_heads(model, batch_size=2, n_bootstrap=10, sequence_length=20, keep_patterns=[(0, 0)])
    assert result.settings["bos_token_id"] == 5 and bool((result.kept_tokens[:, 0] == 5).all())


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_ablation_cuts_a_decoder_head_as_a_hook_on_its_output_projection_does(arch):
    """The reference: a plain forward pre-hook zeroing head 1's slice of decoder layer 1's self-attention
    output projection, the tokens given to encoder and decoder as the engine gives them."""
    from hook_reference import hook_ablation

    from induction_nb import InductionHeadDetector, ablate_heads

    model = make_seq2seq(arch)
    got = ablate_heads(model, [(1, 1)], sequence_length=24, batch_size=2)
    probe = InductionHeadDetector(model, batch_size=2).generator().generate("repeated", 24, 2)
    tokens = probe.tokens
    positions = torch.arange(probe.offset + probe.period, tokens.shape[1] - 1)
    if arch == "t5":
        proj, d = model.decoder.block[1].layer[0].SelfAttention.o, 8
    else:
        proj, d = model.model.decoder.layers[1].self_attn.out_proj, model.config.d_model // 2

    clean, ablated = hook_ablation(
        proj, tokens, positions, slice(d, 2 * d), lambda t: model(input_ids=t, decoder_input_ids=t).logits
    )
    assert got.baseline_loss == pytest.approx(clean, abs=1e-5)
    assert got.ablated_loss == pytest.approx(ablated, abs=1e-5) and abs(got.effect) > 1e-5


REFUSED_ON_SEQ2SEQ = ("retrieval_heads", "needle_accuracy", "head_effects(atp*)")


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_every_entry_point_runs_on_an_encoder_decoder(arch):
    import warnings

    from entry_points import ENTRY_POINTS

    model = make_seq2seq(arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-model defaults, needles the random model cannot copy
        for name, call in ENTRY_POINTS.items():
            if name in REFUSED_ON_SEQ2SEQ:  # decoding a needle, AtP*'s routes: not defined for an encoder-decoder
                with pytest.raises(InputError, match="encoder-decoder"):
                    call(model)
                continue
            assert call(model) is not None, name


class _TorchSeq2Seq(torch.nn.Module):
    """A PyTorch nn.Transformer encoder-decoder behind a user's forward(tokens)."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, 32)
        self.transformer = torch.nn.Transformer(
            d_model=32, nhead=4, num_encoder_layers=3, num_decoder_layers=2, dim_feedforward=64, batch_first=True
        )
        self.out = torch.nn.Linear(32, VOCAB)

    def forward(self, tokens):
        x, mask = self.emb(tokens), torch.nn.Transformer.generate_square_subsequent_mask(tokens.shape[1])
        return self.out(self.transformer(x, x, tgt_mask=mask, tgt_is_causal=True))


def test_a_pytorch_transformer_keeps_its_stacks_apart():
    """The reference: each decoder layer's self_attn called again on the input it received, with its own
    weights (need_weights, per head). Before, encoder, decoder and cross-attention were one 6-layer stack."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _TorchSeq2Seq().eval()
    tokens = torch.arange(3, 19)[None]
    got = capture_attention(model, tokens)
    assert got.layers == (0, 1) and all(s.path.endswith("self_attn") and "decoder" in s.path for s in got.sites)
    inputs = []
    hooks = [
        layer.self_attn.register_forward_pre_hook(lambda m, a, kw: inputs.append((a, kw)), with_kwargs=True)
        for layer in model.transformer.decoder.layers
    ]
    with torch.no_grad():
        model(tokens)
    for h in hooks:
        h.remove()
    for i, layer in enumerate(model.transformer.decoder.layers):
        (q, k, v), kw = inputs[i]
        with torch.no_grad():
            _, want = layer.self_attn(
                q, k, v, attn_mask=kw.get("attn_mask"), need_weights=True, average_attn_weights=False
            )
        torch.testing.assert_close(got.pattern[:, i], want, atol=1e-5, rtol=1e-4)
    assert capture_attention(model, tokens, stack="encoder").layers == (0, 1, 2)
    cross = capture_attention(model, tokens, stack="cross").sites
    assert [s.path for s in cross] == [f"transformer.decoder.layers.{i}.multihead_attn" for i in range(2)]


def test_plain_forward_leaves_no_hook_on_the_model_whatever_fails():
    """Hooks registered for one probe forward are removed when the forward, or building its inputs, fails."""
    from induction_nb.engine.seq2seq import plain_forward

    class Fails(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch.nn.Linear(2, 2)

        def forward(self, tokens):
            raise RuntimeError("no forward for ids")

    model = Fails()
    handles = [model.inner.register_forward_hook(lambda *a: None), model.register_forward_pre_hook(lambda *a: None)]
    with pytest.raises(RuntimeError, match="no forward for ids"):
        plain_forward(model, torch.arange(3)[None], handles)
    assert not model.inner._forward_hooks and not model._forward_pre_hooks
    twin = make_seq2seq("t5")
    twin.main_input_name = "input_values"  # an encoder that reads audio samples, not ids
    handle = twin.encoder.register_forward_hook(lambda *a: None)
    with pytest.raises(InputError, match="reads 'input_values', not token ids"):
        plain_forward(twin, torch.arange(3)[None], [handle])
    assert not twin.encoder._forward_hooks
