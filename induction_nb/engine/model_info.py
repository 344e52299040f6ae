"""Facts about a model that input checks need: the torch module under a wrapper, vocab size, context
length, device and dtype. Read from a HuggingFace ``config`` where there is one, from the modules
(first ``nn.Embedding``, a ``block_size`` attribute) otherwise; ``None`` where nothing says."""

from __future__ import annotations

import weakref
from typing import Any

import torch

from ..errors import InputError
from .wrappers import execution_device

__all__ = [
    "as_nnsight",
    "torch_module",
    "vocab_size",
    "max_positions",
    "model_device",
    "model_dtype",
    "model_name",
    "n_layers",
    "n_heads",
    "module_heads",
    "name_model",
]


def torch_module(model: Any) -> torch.nn.Module:
    """The ``torch.nn.Module`` behind an nnsight wrapper, or ``model`` itself."""
    inner = getattr(model, "_module", None)
    if isinstance(inner, torch.nn.Module):
        return inner
    if isinstance(model, torch.nn.Module):
        return model

    raise InputError(
        f"expected a torch.nn.Module, a HuggingFace model or an nnsight model, got {type(model).__name__}; "
        "load one with induction_nb.load_model(...)"
    )


def as_nnsight(model: Any) -> Any:
    """Wrap a plain torch module with ``nnsight.NNsight``; nnsight models are returned as they are."""
    if isinstance(getattr(model, "_module", None), torch.nn.Module):
        return model
    module = torch_module(model)
    import warnings

    import nnsight

    with warnings.catch_warnings():
        # nnsight renames submodules called like its own attributes (BERT's `output`); sites.envoy_at copes
        warnings.filterwarnings("ignore", message="Module .* has a submodule named")
        return nnsight.NNsight(module)


def _config_value(module: torch.nn.Module, *names: str) -> int | None:
    configs = [getattr(module, "config", None)]
    for part in ("text_config", "decoder"):  # a multimodal model's language model; EncoderDecoderModel's decoder
        configs.append(getattr(configs[0], part, None) if configs[0] is not None else None)
    for config in configs:
        if config is None:
            continue
        for name in names:
            try:
                value = getattr(config, name, None)
            except (
                Exception
            ):  # a per-layer attribute (transformers' AmbiguousGlobalPerLayerAttributeError): no one value
                value = None
            if isinstance(value, int) and value > 0:
                return value
    return None


def n_layers(module: torch.nn.Module) -> int | None:
    """The config's layer count (``None`` without a config that says)."""
    return _config_value(module, "num_hidden_layers", "n_layer", "num_layers", "n_layers")


def n_heads(module: torch.nn.Module) -> int | None:
    """Query heads per layer: the config's count, else the first module attribute that says."""
    value = _config_value(module, "num_attention_heads", "n_head", "num_heads", "n_heads")
    if value is not None:
        return value
    for m in module.modules():
        for name in ("n_heads", "num_heads", "n_head"):
            value = getattr(m, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def module_heads(attention: torch.nn.Module) -> int | None:
    """The query heads an attention module states itself (``num_heads``, ``n_heads``, ``n_head``...), or
    ``None``: per layer, for models whose layers differ in head count (OpenELM-style, hybrids)."""
    for name in ("num_heads", "n_heads", "n_head", "num_attention_heads", "num_q_heads"):
        value = getattr(attention, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def vocab_size(module: torch.nn.Module) -> int | None:
    value = _config_value(module, "vocab_size", "n_vocab", "d_vocab")
    if value is not None:
        return value
    get = getattr(module, "get_input_embeddings", None)
    if callable(get):
        try:
            emb = get()
        except Exception:  # some models raise NotImplementedError here
            emb = None
        if isinstance(emb, torch.nn.Embedding):
            return emb.num_embeddings
    for m in module.modules():
        if isinstance(m, torch.nn.Embedding):
            return m.num_embeddings
    return None


def max_positions(module: torch.nn.Module) -> int | None:
    value = _config_value(
        module, "max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "block_size", "max_target_positions"
    )  # max_target_positions: the decoder of an encoder-decoder (Whisper), where the tokens go
    if value is not None:
        return value
    for name in ("block_size", "max_seq_len", "max_len"):
        value = getattr(module, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def model_device(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        if p.device.type == "meta":  # offloaded: where its hooks compute (a remote model stays on meta)
            return execution_device(module) or p.device
        return p.device
    return torch.device("cpu")


def model_dtype(module: torch.nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


# Names we gave models we loaded (the embedded model's config names its cache folder); weak keys, so
# that nothing is written onto the model object and a freed model drops its entry.
_NAMES: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


def name_model(module: torch.nn.Module, name: str) -> None:
    _NAMES[module] = name


def model_name(model: Any) -> str:
    module = torch_module(model)
    tagged = _NAMES.get(module)
    if tagged is not None:
        return tagged
    config = getattr(module, "config", None)
    name = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
    return str(name) if name else type(module).__name__
