"""engine.modes: a model in train mode, or random in eval mode, is refused the same way by every entry point;
engine.defaults: every tool's default probe fits the model, and advice in a refusal works when followed."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from entry_points import ENTRY_POINTS
from tiny_models import VOCAB, HookPoint, NanoGPT, make_hf, save_with_words

import induction_nb as nb
from induction_nb.errors import InputError

TRAIN_MODE = r"in training mode.*Call model\.eval\(\) first"


@pytest.fixture(scope="module")
def train_mode_gpt2():
    """GPT-2 from its constructor under sdpa (its default), as a training loop leaves it: in train mode."""
    return make_hf("gpt2", "sdpa").train()


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_a_model_in_train_mode(train_mode_gpt2, entry):
    with pytest.raises(InputError, match=TRAIN_MODE):
        ENTRY_POINTS[entry](train_mode_gpt2)
    assert train_mode_gpt2.training  # the mode is the user's: never switched for them


def test_a_submodule_left_in_train_mode_is_named():
    model = make_hf("llama_gqa")
    model.model.layers[1].self_attn.train()
    with pytest.raises(
        InputError, match=r"submodule in training mode \('model\.layers\.1\.self_attn', LlamaAttention\)"
    ):
        nb.ablate_heads(model, [(0, 0)], batch_size=2)


def test_after_eval_the_numbers_repeat_and_equal_a_plain_forward():
    """The reference: the loss of a plain eval-mode forward on the same tokens (no intervention)."""
    model = make_hf("gpt2", "sdpa").train().eval()
    first = nb.ablate_heads(model, [(0, 0)], batch_size=2)
    second = nb.ablate_heads(model, [(0, 0)], batch_size=2)
    assert first.baseline_loss == second.baseline_loss and first.ablated_loss == second.ablated_loss
    gen = nb.PatternGenerator(97, seed=0, bos_token_id=None)
    probe = gen.generate("repeated", 64, 2)
    with torch.no_grad():
        logp = model(probe.tokens).logits.float().log_softmax(-1)
    queries = torch.arange(probe.offset + probe.period, probe.tokens.shape[1] - 1)
    loss = -logp[:, queries].gather(-1, probe.tokens[:, queries + 1, None]).mean()
    assert first.baseline_loss == pytest.approx(float(loss), abs=1e-4)


@pytest.fixture(scope="module")
def dropout_in_eval():
    """nanoGPT passing dropout_p=self.dropout to SDPA whatever the mode: random in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return NanoGPT(flash=True, dropout=0.1).eval()


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_attention_dropout_in_eval(dropout_in_eval, entry):
    state = torch.random.get_rng_state()
    with pytest.raises(
        InputError, match=r"different outputs on two identical calls, first at 'h\.0\.attn' \(NanoAttention\)"
    ):
        ENTRY_POINTS[entry](dropout_in_eval)
    assert torch.equal(state, torch.random.get_rng_state())  # the check's two forwards left the RNG as it was


def test_with_the_dropout_set_to_zero_as_advised_it_runs_and_matches_eager():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = NanoGPT(flash=True, dropout=0.1).eval()
        reference = NanoGPT(flash=False).eval()  # the manual softmax path of the same weights: independent
    for block in model.h:
        block.attn.dropout = 0.0  # the fix the message names
    reference.load_state_dict(model.state_dict())
    tokens = torch.arange(3, 19)[None]
    got = nb.capture_attention(model, tokens).pattern
    want = nb.capture_attention(reference, tokens).pattern
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


# -- defaults that fit ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """The toolkit's own model (33 positions, no BOS; one step: its shape is what counts): the defaults fit it."""
    return nb.train_induction_model(steps=1, every=1).model


CAUSAL_DEFAULTS = {
    "ablate_heads": lambda m, **k: nb.ablate_heads(m, [(1, 0)], **k),
    "icl_score": lambda m, **k: nb.icl_score(m, **k),
    "head_effects": lambda m, **k: nb.head_effects(m, **k),
    "find_circuit": lambda m, **k: nb.find_circuit(m, [(1, 0)], **k),
    "copying_dla": lambda m, **k: nb.copying_dla(m, [(1, 0)], **k),
    "detect_induction_heads": lambda m, **k: nb.detect_induction_heads(m, **k),
    "analyze_head": lambda m, **k: nb.InductionHeadAnalyzer(m).analyze_head(1, 0, **k),
}


@pytest.mark.parametrize("tool", sorted(CAUSAL_DEFAULTS))
def test_defaults_fit_the_trained_model_and_the_advice_works(trained, tool):
    call = CAUSAL_DEFAULTS[tool]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the model has 33 positions: using sequence_length=32"
        call(trained)
    with pytest.raises(InputError, match="exceeds the model's 33 positions") as refused:
        call(trained, sequence_length=64)
    advised = int(re.search(r"pass sequence_length=(\d+)", str(refused.value)).group(1))
    assert advised == 32
    call(trained, sequence_length=advised)  # the advice, followed, works


def test_icl_score_too_short_names_a_length_that_works(trained):
    with pytest.raises(InputError, match="icl_score needs sequence_length >= 24, got 8") as refused:
        nb.icl_score(trained, sequence_length=8)
    advised = int(re.search(r"pass sequence_length=(\d+)", str(refused.value)).group(1))
    assert isinstance(nb.icl_score(trained, sequence_length=advised)["repeated"], float)


def test_a_model_too_small_for_a_tool_says_so():
    model = NanoGPT(flash=True, block_size=16).eval()
    with pytest.raises(
        InputError, match="the model has 16 positions, too few for icl_score, which needs a probe of at least 24"
    ):
        nb.icl_score(model)


def test_retrieval_defaults_fit_a_small_model():
    model = make_hf("gpt2")  # 64 positions: the default lengths (1024, 2048) become (28, 56)
    with pytest.warns(UserWarning, match=r"the model has 64 positions: using lengths=\(28, 56\)"):
        result = nb.retrieval_heads(model, depths=[0.5], haystack=list(range(3, 60)), n_bootstrap=10)
    assert result.settings["lengths"] == [28, 56]


def test_retrieval_needle_advice_works():
    model = NanoGPT(flash=True, block_size=20).eval()
    with pytest.raises(InputError, match="pass a shorter needle_length") as refused:
        nb.needle_accuracy(model, haystack=list(range(3, 60)))
    advised = int(re.search(r"at most (\d+)", str(refused.value)).group(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accuracy = nb.needle_accuracy(model, depths=[0.5], haystack=list(range(3, 60)), needle_length=advised)
    assert 0.0 <= accuracy <= 1.0


class _DropoutPattern(torch.nn.Module):
    """Attention whose pattern goes through a hook point (TransformerLens style), then through dropout
    that ignores the mode."""

    def __init__(self, d: int = 16, heads: int = 2):
        super().__init__()
        self.qkv, self.o, self.heads, self.hook_pattern = (
            torch.nn.Linear(d, 3 * d),
            torch.nn.Linear(d, d),
            heads,
            HookPoint(),
        )

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(x).split(C, -1))
        s = (q @ k.transpose(-1, -2)).masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
        pattern = torch.nn.functional.dropout(self.hook_pattern(torch.softmax(s, -1)), 0.3, training=True)
        return self.o((pattern @ v).transpose(1, 2).reshape(B, T, C))


class _HookModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.head = torch.nn.Embedding(VOCAB, 16), torch.nn.Linear(16, VOCAB)
        self.blocks = torch.nn.ModuleList(torch.nn.ModuleDict({"attn": _DropoutPattern()}) for _ in range(2))

    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = x + block["attn"](x)
        return self.head(x)


def test_named_sites_get_the_same_guard():
    """CustomSites skip discovery, not the check: the forward they are read from is random."""
    model = _HookModel().eval()
    sites = nb.CustomSites("blocks.{layer}.attn.hook_pattern", n_layers=2)
    with pytest.raises(InputError, match=r"different outputs on two identical calls, first at 'blocks\.0\.attn'"):
        nb.capture_attention(model, torch.arange(3, 19)[None], sites=sites)


def test_dropout_switched_on_after_a_first_analysis_is_caught():
    """No verdict is cached: a model analysed clean, then given attention dropout, is refused next time."""
    model = NanoGPT(flash=True).eval()
    nb.ablate_heads(model, [(0, 0)], batch_size=2)
    for block in model.h:
        block.attn.dropout = 0.2
    with pytest.raises(InputError, match="different outputs on two identical calls"):
        nb.ablate_heads(model, [(0, 0)], batch_size=2)


@pytest.mark.parametrize("p", [0.001, 0.1])
def test_small_dropout_under_a_padded_vocabulary_is_caught(p):
    """Logits padded with finfo.min (a padded vocabulary) must not hide a small difference elsewhere."""

    class Padded(NanoGPT):
        def forward(self, tokens):
            out = super().forward(tokens)
            return torch.cat([out, torch.full((*out.shape[:-1], 31), torch.finfo(out.dtype).min)], -1)

    for seed in range(4):  # whatever the global RNG state, the 2 x 32-token check sees the dropout
        torch.manual_seed(seed)
        with pytest.raises(InputError, match="different outputs on two identical calls"):
            nb.ablate_heads(Padded(flash=True, dropout=p).eval(), [(0, 0)], batch_size=2)


def test_an_undispatched_nnsight_model_is_not_called_in_train_mode(tmp_path):
    """nnsight's lazy LanguageModel holds meta weights built in train mode; what runs is loaded in eval mode."""
    import nnsight
    from transformers import PreTrainedTokenizerFast

    path = save_with_words(tmp_path)
    lazy = nnsight.LanguageModel(str(path), tokenizer=PreTrainedTokenizerFast.from_pretrained(path))
    got = nb.ablate_heads(lazy, [(0, 0)], batch_size=2)
    want = nb.ablate_heads(nb.load_model(path), [(0, 0)], batch_size=2)
    assert got.baseline_loss == pytest.approx(want.baseline_loss, abs=1e-6)
    assert got.ablated_loss == pytest.approx(want.ablated_loss, abs=1e-6)
