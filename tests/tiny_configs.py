"""A tiny random model of any architecture transformers ships, built from its config with no download:
about 2 layers x 4 heads, hidden 64, vocabulary 128. Used by the architecture sweep (bench/arch_sweep.py)
and by the tests of each capture kind. Hybrid models keep enough layers to hold every layer type of their
default pattern; a few configs whose structure the generic shrinking cannot express get overrides."""

from __future__ import annotations

VOCAB = 128

# generic size knobs: every alias a config may use for the same quantity
_SMALL = {
    "vocab_size": VOCAB,
    "n_vocab": VOCAB,
    "hidden_size": 64,
    "n_embd": 64,
    "d_model": 64,
    "dim": 64,
    "hidden_dim": 64,
    "embed_dim": 64,
    "num_hidden_layers": 2,
    "n_layer": 2,
    "num_layers": 2,
    "n_layers": 2,
    "decoder_layers": 2,
    "encoder_layers": 2,
    "num_attention_heads": 4,
    "n_head": 4,
    "num_heads": 4,
    "n_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_attention_heads": 4,
    "intermediate_size": 128,
    "ffn_dim": 128,
    "n_inner": 128,
    "decoder_ffn_dim": 128,
    "encoder_ffn_dim": 128,
    "d_ff": 128,
    "ffn_hidden_size": 128,
    "head_dim": 16,
    "d_kv": 16,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
    "kv_lora_rank": 16,
    "q_lora_rank": 16,
    "max_position_embeddings": 128,
    "n_positions": 128,
    "n_ctx": 128,
    "max_seq_len": 128,
    "num_experts": 4,
    "num_local_experts": 4,
    "n_routed_experts": 4,
    "moe_num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_topk": 2,
    "top_k": 2,
    "moe_intermediate_size": 32,
    "n_shared_experts": 1,
    "first_k_dense_replace": 1,
    "n_group": 1,
    "topk_group": 1,
    "embedding_size": 64,
    "word_embed_proj_dim": 64,
    "projection_dim": 64,
}


# configs whose structure the generic shrinking cannot express (a nested per-layer spec)
_OVERRIDES = {
    "gpt_neo": {"attention_types": [[["global", "local"], 1]], "window_size": 4},
    "big_bird": {"attention_type": "original_full"},  # block-sparse attention returns no weights
    "bamba": {"attn_layer_indices": [1]},
}


def tiny_config(model_type: str, sub_configs: tuple[str, ...] = ()):
    """The config of ``model_type`` shrunk to about 2 layers x 4 heads, hidden 64, vocab 128 (sub-configs too:
    every ``*_config`` and those named in ``sub_configs``). Hybrid models keep enough layers to hold every
    layer type of their default pattern."""
    from transformers import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type]
    config = cls(**{**_shrunk_kwargs(cls(), sub_configs), **_OVERRIDES.get(model_type, {})})
    config.use_cache = False
    return config


# set whenever the config has the attribute, even where its default is None (derived later, or required)
_FORCE = {"head_dim": 16, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "rotary_dim": 8}
_TOKEN_IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def _n_layers_for(config) -> int:
    """Layers to keep: 2, or the shortest prefix of ``layer_types`` holding every type, or enough for two
    attention layers of a periodic hybrid (``attn_layer_period`` / ``attn_layer_offset``)."""
    types = getattr(config, "layer_types", None)
    if isinstance(types, (list, tuple)) and types:
        wanted = set(types)
        for n in range(2, len(types) + 1):
            if set(types[:n]) == wanted:
                return n
    period, offset = getattr(config, "attn_layer_period", None), getattr(config, "attn_layer_offset", None)
    if isinstance(period, int) and isinstance(offset, int):
        return offset + period + 1
    return 2


def _get(config, name: str):
    """``config.name``, or ``None`` where the config refuses a global value (a per-layer attribute of a
    heterogeneous config, e.g. Gemma 4's ``head_dim``): such attributes are left as the config has them."""
    try:
        return getattr(config, name, None)
    except Exception:
        return None


def _has(config, name: str) -> bool:
    try:
        return hasattr(config, name)
    except Exception:
        return False


def _shrunk_kwargs(config, sub_configs: tuple[str, ...] = ()) -> dict:
    import inspect

    params = inspect.signature(type(config).__init__).parameters
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    amap = getattr(config, "attribute_map", {})
    default_layers = _get(config, "num_hidden_layers")
    n_layers = _n_layers_for(config)
    kwargs = {}

    def put(name, value):
        real = amap.get(name, name)
        if real in params or accepts_any:
            kwargs[real] = value

    for name, value in _SMALL.items():
        current = _get(config, amap.get(name, name))
        if isinstance(current, int) and not isinstance(current, bool):
            put(name, n_layers if value == 2 and "layer" in name else value)
    for name, value in _FORCE.items():
        if _has(config, name) and not isinstance(_get(config, name), (list, dict)):
            put(name, value)
    if _has(config, "num_key_value_heads"):
        kv, heads = _get(config, "num_key_value_heads"), _get(config, "num_attention_heads")
        put("num_key_value_heads", 4 if kv is None or kv == heads else 2)
    for name, value in list(vars(config).items()):
        if name.endswith("_token_id") and isinstance(value, int) and value >= VOCAB:
            put(name, _TOKEN_IDS.get(name, VOCAB - 1))
        elif isinstance(value, list) and isinstance(default_layers, int) and len(value) == default_layers > n_layers:
            put(name, value[:n_layers])  # per-layer lists (layer_types, mlp_only_layers ...)
    for sub, child in list(vars(config).items()):  # sub-configs: text, vision, encoder, patcher ...
        named = sub.endswith("_config") or sub in sub_configs
        if named and hasattr(child, "to_dict") and (sub in params or accepts_any):
            kwargs[sub] = {**child.to_dict(), **_shrunk_kwargs(child, sub_configs)}
    return kwargs


def build(model_type: str, family: str = "causal", backend: str = "eager"):
    """A tiny random model of ``model_type`` for ``family`` ("causal", "masked" or "seq2seq": transformers'
    seq-to-seq LM auto mapping) under ``backend``."""
    import torch
    from transformers.models.auto import modeling_auto as auto

    mapping = {
        "causal": auto.MODEL_FOR_CAUSAL_LM_MAPPING,
        "masked": auto.MODEL_FOR_MASKED_LM_MAPPING,
        "seq2seq": auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
    }[family]
    # an encoder-decoder's halves as sub-configs named "encoder" and "decoder" (T5Gemma), shrunk as well
    config = tiny_config(model_type, ("encoder", "decoder") if family == "seq2seq" else ())
    config._attn_implementation = backend
    for sub in ("text_config", "vision_config", "audio_config"):
        child = getattr(config, sub, None)
        if child is not None and hasattr(child, "_attn_implementation"):
            child._attn_implementation = backend
    cls = mapping[type(config)]
    expected = getattr(cls, "config_class", None)
    text = getattr(config, "text_config", None)
    if isinstance(expected, type) and not isinstance(config, expected) and isinstance(text, expected):
        config = text  # the auto mapping names the text model of a multimodal config
    torch.manual_seed(0)
    model = cls(config)
    return model.eval()
