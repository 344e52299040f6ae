"""Models as researchers hold them (engine/wrappers.py): PEFT adapters, accelerate offloading, torch.compile,
nnsight wrappers, and discovery's word when a probe could not run. Every expected value comes from the plain
model: HF eager ``output_attentions=True``, or a torch forward pre-hook that zeroes one head's slice of the
output projection's input on a plain (merged) copy."""

import copy

import nnsight
import pytest
import torch
from entry_points import ENTRY_POINTS
from hook_reference import hook_ablation
from tiny_models import make_hf, random_tokens, save_with_words

from induction_nb import (
    InductionHeadDetector,
    RemoteConfig,
    ablate_heads,
    capture_attention,
    copying_dla,
    head_effects,
    icl_score,
    load_model,
)
from induction_nb.errors import AttentionNotFoundError, InputError, RemoteExecutionError

LAYER, HEAD, D_HEAD = 1, 2, 48 // 6  # llama_gqa: hidden 48, 6 query heads


def _hook_reference(plain: torch.nn.Module, length: int = 24, batch: int = 4) -> tuple[float, float]:
    """(clean, ablated) loss on the repeated half of ablate_heads' probe, head (LAYER, HEAD) removed by a
    torch pre-hook that zeroes its slice of ``o_proj``'s input on ``plain`` (a model with no wrapper)."""
    probe = InductionHeadDetector(plain, batch_size=batch).generator().generate("repeated", length, batch)
    tokens = probe.tokens
    positions = torch.arange(probe.offset + probe.period, tokens.shape[1] - 1)
    proj = plain.model.layers[LAYER].self_attn.o_proj
    cols = slice(HEAD * D_HEAD, (HEAD + 1) * D_HEAD)
    return hook_ablation(proj, tokens, positions, cols, lambda t: plain(t).logits)


def _eager_attentions(plain: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack(plain(tokens, output_attentions=True).attentions, dim=1).float()


# -- PEFT -----------------------------------------------------------------------------------------------------


def _adapted(use_dora: bool = False) -> torch.nn.Module:
    """llama_gqa with every linear layer adapted, adapters non-zero (init_lora_weights=False)."""
    from peft import LoraConfig, get_peft_model

    model = make_hf("llama_gqa")
    torch.manual_seed(1)
    config = LoraConfig(target_modules="all-linear", init_lora_weights=False, use_dora=use_dora)
    return get_peft_model(model, config).eval()


@pytest.mark.parametrize("variant", ["lora", "dora", "lora_merged"])
def test_peft_ablation_equals_a_hook_on_the_merged_model(variant):
    adapted = _adapted(use_dora=variant == "dora")
    merged = copy.deepcopy(adapted).merge_and_unload().eval()  # a plain LlamaForCausalLM with B A folded in
    if variant == "lora_merged":
        adapted.merge_adapter()  # adapter layers kept, their weights merged into the base
    clean, ablated = _hook_reference(merged)
    got = ablate_heads(adapted, [(LAYER, HEAD)], sequence_length=24, batch_size=4)
    assert got.baseline_loss == pytest.approx(clean, abs=1e-5)
    assert got.ablated_loss == pytest.approx(ablated, abs=1e-5) and abs(got.effect) > 1e-4
    base_clean, _ = _hook_reference(make_hf("llama_gqa"))
    assert abs(base_clean - clean) > 1e-3, "the adapters must change the model, or this test shows nothing"


def test_peft_projection_can_be_named_and_every_causal_tool_runs():
    adapted = _adapted()
    merged = copy.deepcopy(adapted).merge_and_unload().eval()
    named = [n for n, _ in adapted.named_modules() if n.endswith("self_attn.o_proj")]
    assert len(named) == 2 and all(not n.endswith("base_layer") for n in named)
    got = ablate_heads(adapted, [(LAYER, HEAD)], sequence_length=24, batch_size=4, projections=named)
    assert got.ablated_loss == pytest.approx(_hook_reference(merged)[1], abs=1e-5)
    # naming the adapter's base layer means the adapter: its direct logits include B A (below)
    bases = [f"{n}.base_layer" for n in named]
    via_base = copying_dla(adapted, [(LAYER, HEAD)], sequence_length=24, batch_size=4, projections=bases)[0]
    effects, _ = head_effects(adapted, sequence_length=24, batch_size=4)
    assert effects.shape == (2, 6) and float(effects[LAYER, HEAD]) == pytest.approx(got.effect, abs=1e-5)
    assert set(icl_score(adapted, sequence_length=24, batch_size=4)) == {"repeated", "natural"}
    # the direct logits of an adapted head are the merged projection's (B A included), read from the plain copy
    want = copying_dla(merged, [(LAYER, HEAD)], sequence_length=24, batch_size=4)[0]
    dla = copying_dla(adapted, [(LAYER, HEAD)], sequence_length=24, batch_size=4)[0]
    assert dla.mean_z == pytest.approx(want.mean_z, abs=1e-4) and dla.top_k_rate == pytest.approx(want.top_k_rate)
    assert via_base.mean_z == pytest.approx(want.mean_z, abs=1e-4)
    # naming a branch inside the adapter (lora_A) means the adapter too: never the branch alone
    branches = [f"{n}.lora_A.default" for n in named]
    via_branch = ablate_heads(adapted, [(LAYER, HEAD)], sequence_length=24, batch_size=4, projections=branches)
    assert via_branch.ablated_loss == pytest.approx(_hook_reference(merged)[1], abs=1e-5)


def test_peft_capture_equals_eager_on_the_merged_model():
    adapted = _adapted()
    merged = copy.deepcopy(adapted).merge_and_unload().eval()
    tokens = random_tokens()
    torch.testing.assert_close(capture_attention(adapted, tokens).pattern, _eager_attentions(merged, tokens))


# -- accelerate offloading ------------------------------------------------------------------------------------


def _offload(kind: str, model: torch.nn.Module, tmp_path) -> object:
    from accelerate import cpu_offload, disk_offload

    if kind == "disk":
        disk_offload(model, str(tmp_path / "offload"), execution_device="cpu")
    else:
        cpu_offload(model, execution_device="cpu")
    assert any(p.device.type == "meta" for p in model.parameters())
    return nnsight.NNsight(model) if kind == "cpu_nnsight" else model


@pytest.mark.parametrize("kind", ["cpu", "disk", "cpu_nnsight"])
def test_offloaded_model_captures_like_the_plain_one(kind, tmp_path):
    model = make_hf("llama_gqa")
    plain = copy.deepcopy(model)
    held = _offload(kind, model, tmp_path)
    tokens = random_tokens()
    got = capture_attention(held, tokens)
    torch.testing.assert_close(got.pattern, _eager_attentions(plain, tokens), atol=1e-6, rtol=0)
    result = ablate_heads(held, [(LAYER, HEAD)], sequence_length=24, batch_size=4)
    clean, ablated = _hook_reference(plain)
    assert result.baseline_loss == pytest.approx(clean, abs=1e-5)
    assert result.ablated_loss == pytest.approx(ablated, abs=1e-5)


def test_offloaded_model_reads_its_weights_for_direct_logits(tmp_path):
    model = make_hf("llama_gqa")
    plain = copy.deepcopy(model)
    held = _offload("cpu", model, tmp_path)
    want = copying_dla(plain, [(LAYER, HEAD)], sequence_length=24, batch_size=4)[0]
    got = copying_dla(held, [(LAYER, HEAD)], sequence_length=24, batch_size=4)[0]
    assert got.mean_z == pytest.approx(want.mean_z, abs=1e-5) and got.median_rank == want.median_rank


# -- torch.compile --------------------------------------------------------------------------------------------


def test_compiled_copy_keeps_working_and_both_capture():
    """The eager backend compiles without a C++ toolchain; inductor was checked by hand (same result)."""
    model = make_hf("llama_gqa")
    plain = copy.deepcopy(model)
    compiled = torch.compile(model, backend="eager")
    tokens = random_tokens()
    with torch.no_grad():
        before = compiled(tokens).logits
    want = _eager_attentions(plain, tokens)
    torch.testing.assert_close(capture_attention(model, tokens).pattern, want, atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(compiled(tokens).logits, before, atol=0, rtol=0)
    torch.testing.assert_close(capture_attention(compiled, tokens).pattern, want, atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(compiled(tokens).logits, before, atol=0, rtol=0)
    got = ablate_heads(compiled, [(LAYER, HEAD)], sequence_length=24, batch_size=4)
    assert got.ablated_loss == pytest.approx(_hook_reference(plain)[1], abs=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(compiled(tokens).logits, before, atol=0, rtol=0)


def test_a_model_with_parts_compiled_on_their_own_is_refused_with_the_fix():
    model = make_hf("llama_gqa")
    model.model.layers[1] = torch.compile(model.model.layers[1], backend="eager")
    with pytest.raises(InputError, match=r"compiled on their own \(model.layers.1\).*torch.compile\(model\)"):
        capture_attention(model, random_tokens())


# -- nnsight models -------------------------------------------------------------------------------------------


def test_nnsight_models_work_with_the_causal_tools(tmp_path):
    model = make_hf("llama_gqa")
    plain = copy.deepcopy(model)
    clean, ablated = _hook_reference(plain)
    for held in (nnsight.NNsight(model), load_model(save_with_words(tmp_path / "m", attn_implementation="eager"))):
        got = ablate_heads(held, [(LAYER, HEAD)], sequence_length=24, batch_size=4)
        assert got.baseline_loss == pytest.approx(clean, abs=1e-5)
        assert got.ablated_loss == pytest.approx(ablated, abs=1e-5)
        effects, _ = head_effects(held, sequence_length=24, batch_size=4)
        assert float(effects[LAYER, HEAD]) == pytest.approx(ablated - clean, abs=1e-5)


# -- every entry point on every wrapper ------------------------------------------------------------------------


def _held(kind: str, tmp_path) -> object:
    if kind in ("lora", "dora"):
        return _adapted(use_dora=kind == "dora")
    model = make_hf("llama_gqa")
    if kind == "compiled":
        return torch.compile(model, backend="eager")
    if kind == "nnsight":
        return nnsight.NNsight(model)
    return _offload("cpu", model, tmp_path)


@pytest.mark.parametrize("kind", ["lora", "dora", "offloaded", "compiled", "nnsight"])
def test_every_entry_point_runs_on_every_wrapper(kind, tmp_path):
    held = _held(kind, tmp_path)
    failed = {}
    for name, call in ENTRY_POINTS.items():
        try:
            call(held)
        except Exception as e:  # collected, so that one run names every entry point that fails
            failed[name] = f"{type(e).__name__}: {str(e)[:200]}"
    assert not failed, failed


# -- discovery: "not attention" against "the probe could not run" ---------------------------------------------


class _Attention(torch.nn.Module):
    def __init__(self, d: int = 16):
        super().__init__()
        self.qkv = torch.nn.Linear(d, 3 * d)

    def forward(self, x):
        # fails only inside an nnsight trace (plain calls run): stands for a forward that cannot run under a
        # trace (a device, a kernel), which says nothing about what it computes
        state = self.__dict__.get("__nnsight__")  # nnsight 0.8.1's per-module state, routes to running traces
        if state is not None and state.active()[0] is not None:
            raise RuntimeError("simulated: the kernel is not available")
        q, k, v = self.qkv(x).chunk(3, -1)
        weights = torch.softmax(q @ k.transpose(-1, -2), -1)
        return weights @ v


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(32, 16)
        self.attn = _Attention()

    def forward(self, tokens):
        return self.attn(self.embed(tokens))


def test_a_probe_that_cannot_run_is_not_called_not_attention():
    with pytest.raises(AttentionNotFoundError, match="could not run.*simulated: the kernel") as caught:
        capture_attention(_Tiny().eval(), torch.tensor([[1, 2, 3, 4, 5, 6]]))
    assert "CustomSites" in str(caught.value) and isinstance(caught.value.__cause__, RuntimeError)
    assert "no attention found" not in str(caught.value)


class _NotAttention(torch.nn.Module):
    """Named like attention, computes an MLP: its probes run and find nothing."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.up = torch.nn.Linear(d, 2 * d)
        self.down = torch.nn.Linear(2 * d, d)

    def forward(self, x):
        if x.shape[0] > 1000:  # a branch never taken: nnsight's OutOfOrderError, not a failure
            x = torch.tanh(x)
        return self.down(torch.relu(self.up(x)))


def test_a_module_that_is_not_attention_is_still_called_so():
    tiny = _Tiny().eval()
    tiny.attn = _NotAttention().eval()
    with pytest.raises(AttentionNotFoundError, match="no attention found in _Tiny.*_NotAttention"):
        capture_attention(tiny, torch.tensor([[1, 2, 3, 4, 5, 6]]))


def test_an_unresolvable_remote_host_is_named(tmp_path):
    model = load_model(save_with_words(tmp_path / "m"))
    remote = RemoteConfig(host="https://induction-nb-test.invalid", api_key="unused-key-123", model_key="test-model")
    with pytest.raises(RemoteExecutionError, match="induction-nb-test.invalid.*does not resolve") as caught:
        capture_attention(model, random_tokens(), remote=remote)
    assert caught.value.kind == "unreachable"


def test_a_model_compiled_in_place_is_refused_with_the_fix():
    """``module.compile()`` (in place, no wrapper to look through): refused, naming torch.compile(model)."""
    model = make_hf("llama_gqa")
    model.compile(backend="eager")
    with pytest.raises(
        InputError, match=r"compiled in place with \.compile\(\) \(the model\).*torch\.compile\(model\)"
    ):
        capture_attention(model, random_tokens())
    part = make_hf("llama_gqa")
    part.model.layers[1].compile(backend="eager")
    with pytest.raises(InputError, match=r"compiled in place with \.compile\(\) \(model\.layers\.1\)"):
        ablate_heads(part, [(0, 0)], batch_size=2)
