"""Attention-site discovery and the CustomSites escape hatch."""

import nnsight
import pytest
import torch
from tiny_models import LensAttention, MixerModel, make_hf, random_tokens

from induction_nb import AttentionNotFoundError, CustomSites, capture_attention
from induction_nb.engine.discovery import find_sites
from induction_nb.engine.sites import envoy_at


def _mixer_reference(model: MixerModel, tokens: torch.Tensor) -> torch.Tensor:
    out, x = [], model.embed(tokens)
    with torch.no_grad():
        for m in model.mixers:
            B, T, C = x.shape
            q = m.wq(x).view(B, T, 2, -1).transpose(1, 2)
            k = m.wk(x).view(B, T, 2, -1).transpose(1, 2)
            s = (q @ k.transpose(-1, -2)) / 4.0 + torch.full((T, T), float("-inf")).triu(1)
            out.append(torch.softmax(s, -1))
            x = x + m(x)
    return torch.stack(out, 1)


def test_unrecognisable_attention_names_the_class_and_the_escape_hatch():
    with pytest.raises(AttentionNotFoundError) as e:
        capture_attention(MixerModel().eval(), random_tokens())
    msg = str(e.value)
    assert "MixerModel" in msg and "TokenMixer" in msg and "CustomSites" in msg


def test_escape_hatch_reads_an_assignment_inside_forward():
    torch.manual_seed(0)
    model = MixerModel().eval()
    tokens = random_tokens(batch=2, seq=7)
    sites = CustomSites("mixers.{layer}", n_layers=2, op="mixing_0", causal=True)  # `mixing = e / e.sum(...)`
    got = capture_attention(model, tokens, sites=sites)
    torch.testing.assert_close(got.pattern, _mixer_reference(model, tokens), atol=1e-5, rtol=0)
    assert got.causal and got.sites[1].path == "mixers.1"


def test_escape_hatch_with_a_reader_function_and_explicit_paths():
    torch.manual_seed(0)
    model = MixerModel().eval()
    tokens = random_tokens(batch=1, seq=6)

    def from_scores(args, kwargs, output):  # the op `s_1` is the max-subtracted score; softmax it ourselves
        T = output.shape[-1]
        return torch.softmax(output + torch.full((T, T), float("-inf")).triu(1), -1)

    sites = CustomSites(["mixers.0", "mixers.1"], op="s_1", read=from_scores)
    got = capture_attention(model, tokens, sites=sites)
    torch.testing.assert_close(got.pattern, _mixer_reference(model, tokens), atol=1e-5, rtol=0)
    assert got.causal, "causality inferred from the pattern when not declared"


class LensModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(97, 16)
        self.blocks = torch.nn.ModuleList(torch.nn.ModuleDict({"attn": LensAttention()}) for _ in range(2))

    def forward(self, tokens):
        x = self.embed(tokens)
        for b in self.blocks:
            x = x + b["attn"](x)
        return x


def test_transformerlens_style_hook_pattern():
    torch.manual_seed(0)
    model = LensModel().eval()
    tokens = random_tokens(batch=2, seq=8)
    kept = []
    hooks = [
        b["attn"].hook_pattern.register_forward_hook(lambda m, i, o: kept.append(o.detach())) for b in model.blocks
    ]
    with torch.no_grad():
        model(tokens)
    for h in hooks:
        h.remove()
    got = capture_attention(model, tokens, sites=CustomSites("blocks.{layer}.attn.hook_pattern", n_layers=2))
    torch.testing.assert_close(got.pattern, torch.stack(kept, 1), atol=0, rtol=0)


@pytest.mark.parametrize(
    "sites,match",
    [
        (CustomSites("blocks.attn", n_layers=2), "template containing '{layer}'"),
        (CustomSites([]), "no module paths"),
        (CustomSites(["blocks.0.attn.hook_pattern"], read="logits"), "must be 'output', 'input' or a function"),
    ],
)
def test_bad_custom_sites(sites, match):
    with pytest.raises(ValueError, match=match):
        capture_attention(LensModel().eval(), random_tokens(), sites=sites)


def test_custom_reader_returning_garbage_is_named():
    from induction_nb import CaptureCheckError

    sites = CustomSites(["blocks.0.attn.hook_pattern"], read=lambda a, k, o: o.sum(1))
    with pytest.raises(CaptureCheckError, match=r"layer 0: the custom reader .* must return a pattern tensor"):
        capture_attention(LensModel().eval(), random_tokens(), sites=sites)


def test_sites_are_found_by_behaviour_and_cached():
    model = make_hf("llama_gqa", "sdpa")
    nn_model = nnsight.NNsight(model)
    sites = find_sites(nn_model, model, random_tokens(batch=1, seq=6))
    assert [s.path for s in sites] == ["model.layers.0.self_attn", "model.layers.1.self_attn"]
    assert sites[0].kind == "hf_interface" and sites[0].op.startswith("attention_interface_")
    assert find_sites(nn_model, model, random_tokens(batch=1, seq=6)) is sites


def test_inner_self_attention_wins_over_its_wrapper():
    bert = make_hf("bert_encoder", "sdpa")
    p = capture_attention(bert, random_tokens())
    assert p.sites[0].path == "encoder.layer.0.attention.self" and not p.causal


def test_envoy_at_reaches_submodules_named_like_nnsight_attributes():
    bert = make_hf("bert_encoder", "eager")
    envoy = envoy_at(nnsight.NNsight(bert), "encoder.layer.0.output")
    assert envoy._module is bert.encoder.layer[0].output


def test_a_broken_forward_is_reported_as_such():
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(97, 8)
            self.attn = torch.nn.Linear(8, 8)

        def forward(self, tokens):
            raise RuntimeError("kaput")

    with pytest.raises(AttentionNotFoundError, match="forward pass fails.*kaput"):
        capture_attention(Broken().eval(), random_tokens())
