"""Every attention head's weights, read from the model's modules: no forward pass, nothing written to the model.

``read_head_weights(model)`` returns ``HeadWeights``: per attention layer (labelled with the model's own
layer index, as the attention sites are: ``model.layers.3.self_attn`` -> 3) the per-head ``W_Q, W_K, W_V``
``[head, d_model, d_head]`` and ``W_O`` ``[head, d_head, d_model]`` with their biases (``engine.head_layouts``:
one reader class per layout; grouped-query key/value heads expanded), the token embedding ``W_E [vocab,
d_model]`` and the unembedding ``W_U [d_model, vocab]``, all in the row-vector convention (``x @ W``).

Folded (``fold_norms=True``): the elementwise weight ``gamma`` of each layer's pre-attention norm (RMSNorm or
LayerNorm: ``input_layernorm``, ``ln_1``, ``self_attn_layer_norm``...) into the rows of ``W_Q, W_K, W_V``
(``diag(gamma) W``), and a LayerNorm's bias ``beta`` into ``b_Q, b_K, b_V`` (``b + beta W``); the final norm's
``gamma`` into the rows of ``W_U``; an embedding scale (Gemma's ``embed_scale``) and an embedding norm
(BLOOM's ``word_embeddings_layernorm``, applied to each row of ``W_E`` exactly) into ``W_E``. ``gamma`` and
``beta`` are measured by running the norm module alone on two probe vectors (Gemma's ``1 + weight`` and
norms without parameters come out right), then checked against the RMSNorm or LayerNorm formula on random
input (``InputError`` where neither fits: pass ``fold_norms=False``).

Left out, and named in ``HeadWeights.notes`` where the model has them: the norms' division by each row's
RMS or standard deviation and LayerNorm's centring (a per-token scalar and a projection, not a fixed
matrix); ``q_norm``/``k_norm`` (``q_layernorm``/``k_layernorm``: queries and keys normalised after the
projection, Qwen3, OLMo 2, Gemma 3, Phi); post-attention output norms (Gemma 2/3's and OLMo 2's
``post_attention_layernorm``); the final norm's bias; rotary position embeddings (see
``analysis.weights_evidence``: the products are the form at relative offset 0); absolute position
embeddings (GPT-2's ``wpe``, OPT's ``embed_positions``) which are not part of ``W_E``; ALiBi's distance bias
and attention logit soft-capping; the score scale ``1/sqrt(d_head)``. Only self-attention layers are read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from .discovery import layer_labels
from .head_layouts import LAYOUTS, Projections, layout_of, row_weight
from .model_info import torch_module, vocab_size
from .models import load_model
from .wrappers import materialized, unwrap

__all__ = ["HeadWeights", "LayerHeads", "read_head_weights", "norm_affine"]

_ATTENTION_CLASS = re.compile(r"attention|attn", re.IGNORECASE)
_PRE_NORMS = ("input_layernorm", "ln_1", "self_attn_layer_norm", "attention_norm", "ln_attn", "attn_norm")
_FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f")
_EMBED_NORMS = ("word_embeddings_layernorm", "embed_layer_norm")
_CROSS = re.compile(r"cross|encoder_attn", re.IGNORECASE)  # cross-attention: not read
_EPS = ("eps", "variance_epsilon", "epsilon", "layer_norm_eps")  # what norms call their epsilon
_QK_NORMS = ("q_norm", "k_norm", "q_layernorm", "k_layernorm", "query_layernorm", "key_layernorm")


@dataclass(frozen=True)
class LayerHeads(Projections):
    """One attention layer's heads (``head_layouts.Projections``: ``W_Q, W_K, W_V [head, d_model, d_head]``,
    ``W_O [head, d_head, d_model]``, biases), norm folded in; ``layer``: the model's layer index; ``path``: the
    attention module; ``layout``: the reader's name; ``norm``: the path of the folded pre-attention norm."""

    layer: int = 0
    path: str = ""
    layout: str = ""
    norm: str | None = None

    @property
    def n_heads(self) -> int:
        return self.W_Q.shape[0]


@dataclass(frozen=True)
class HeadWeights:
    """A model's attention heads and its token (un)embedding, row-vector convention (module docstring).
    ``W_E [vocab, d_model]``, ``W_U [d_model, vocab]``; ``notes``: what was folded and what is left out for
    this model, in words; ``special_ids``: the tokenizer's and config's special token ids."""

    layers: tuple[LayerHeads, ...]
    W_E: torch.Tensor
    W_U: torch.Tensor
    notes: tuple[str, ...]
    special_ids: tuple[int, ...] = ()

    @property
    def heads(self) -> list[tuple[int, int]]:
        """Every ``(layer, head)`` in layer order."""
        return [(l.layer, h) for l in self.layers for h in range(l.n_heads)]

    @property
    def d_model(self) -> int:
        return self.W_E.shape[1]


def read_head_weights(model: Any, *, fold_norms: bool = True, tokenizer: Any = None) -> HeadWeights:
    """``HeadWeights`` of ``model`` (a torch module, an HF or nnsight model, a compiled or PEFT-adapted one, or
    a name/path for ``load_model``). ``tokenizer``: for the special token ids (default: the model's).
    Raises ``InputError`` naming the attention module's class where its layout has no reader
    (``engine.head_layouts``), or where a norm is not an elementwise RMSNorm/LayerNorm (``fold_norms=False``)."""
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    module = unwrap(torch_module(unwrap(model)))
    config = getattr(module, "config", None)
    with torch.no_grad(), materialized(module):
        found = _attention_modules(module)
        notes: list[str] = []
        layers = []
        for label, (path, attention, layout) in zip(layer_labels([p for p, _, _ in found]), found):
            heads = layout.read(attention, config)
            norm = _pre_norm(module, path, notes) if fold_norms else None
            if norm is not None:
                heads = _fold(heads, *norm_affine(module.get_submodule(norm), heads.W_Q.shape[1])[:2])
                notes.append(
                    "pre-attention norm weights folded into W_Q/W_K/W_V (a LayerNorm's bias into b_Q/b_K/b_V); the "
                    "division by each row's RMS or standard deviation and LayerNorm's centring left out"
                )
            layers.append(LayerHeads(**vars(heads), layer=label, path=path, layout=layout.name, norm=norm))
            _layer_notes(module, path, attention, notes)
        W_E, W_U = _embeddings(module, layers[0].W_Q.shape[1], fold_norms, notes)
    _model_notes(module, notes)
    return HeadWeights(tuple(layers), W_E, W_U, tuple(dict.fromkeys(notes)), _special_ids(tokenizer, config))


def _attention_modules(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module, Any]]:
    """``(path, module, layout)`` of every self-attention layer, in module order; ``InputError`` for an
    attention-like module (its class name says attention, it holds weights) that no layout reads."""
    found, candidates = [], []
    for path, m in module.named_modules():
        if any(path.startswith(p + ".") for p, _, _ in found) or _CROSS.search(path.rpartition(".")[2]):
            continue
        layout = layout_of(m)
        if layout is not None:
            found.append((path, m, layout))
        elif _ATTENTION_CLASS.search(type(m).__name__) and any(True for _ in m.parameters()):
            candidates.append((path, m))
    taken = [p for p, _, _ in found]
    # a candidate that holds read layers (the root of a model named "AttentionOnly") is a container, not a layer
    unknown = [
        (p, m)
        for p, m in candidates
        if not any(p == "" or t.startswith(p + ".") or p.startswith(t + ".") for t in taken)
    ]
    if unknown or not found:
        where = f"{type(unknown[0][1]).__name__} at {unknown[0][0]!r}" if unknown else "no attention module"
        raise InputError(
            f"cannot read the attention weights of {type(module).__name__}: {where} has a layout no reader "
            f"knows (readers: {', '.join(LAYOUTS)}). Add one: a HeadLayout subclass with matches() and read(), "
            "decorated with @induction_nb.engine.head_layouts.register_layout"
        )
    return found


def _pre_norm(module: torch.nn.Module, path: str, notes: list[str]) -> str | None:
    """The path of the norm the attention module at ``path`` reads through (named like a pre-attention norm,
    beside it or beside the wrapper that holds it: GPT-Neo's ``attn.attention``), or ``None`` (a post-norm
    layer, OPT with ``do_layer_norm_before=False``, or none)."""
    parent_path = path
    for _ in range(2):
        parent_path = parent_path.rpartition(".")[0]
        parent = module.get_submodule(parent_path) if parent_path else module
        if getattr(parent, "do_layer_norm_before", True) is False:
            notes.append("post-norm layers (the norm after attention, OPT-350m style): no norm folded into W_Q/W_K/W_V")
            return None
        for name in _PRE_NORMS:
            if isinstance(getattr(parent, name, None), torch.nn.Module):
                return f"{parent_path}.{name}" if parent_path else name
        if not parent_path:
            break
    return None


def _fold(heads: Projections, gamma: torch.Tensor, beta: torch.Tensor | None) -> Projections:
    """``diag(gamma) W`` for ``W_Q, W_K, W_V`` and ``b + beta W`` for their biases."""
    parts = {}
    for w, b in (("W_Q", "b_Q"), ("W_K", "b_K"), ("W_V", "b_V")):
        weight, bias = getattr(heads, w), getattr(heads, b)
        parts[w] = weight * gamma.to(weight)[None, :, None]
        if beta is not None and bool(beta.any()):
            shift = torch.einsum("d,hde->he", beta.to(weight), weight)
            parts[b] = shift if bias is None else bias + shift
    return Projections(**{**vars(heads), **parts})


@torch.no_grad()
def norm_affine(norm: torch.nn.Module, width: int) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """``(gamma [width], beta [width] or None, kind)`` of an elementwise norm, measured by running it on probe
    vectors with zero mean (``f(c s) = gamma * s / rms(s) + beta`` for RMSNorm and LayerNorm alike, the norm's
    ``eps`` taken into account where it names one), then
    checked on random input against ``kind``: ``"rms"`` (``x / rms(x) * gamma + beta``) or ``"layer"``
    (``(x - mean) / std * gamma + beta``). Float64. Raises ``InputError`` where neither formula fits."""
    probe = next(norm.parameters(), None)
    dtype = probe.dtype if probe is not None and probe.is_floating_point() else torch.float32
    device = probe.device if probe is not None else torch.device("cpu")
    gamma, beta = torch.zeros(width, dtype=torch.float64), torch.zeros(width, dtype=torch.float64)
    c = 1e3 if dtype in (torch.float32, torch.float64) else 8.0  # large: the norm's eps vanishes beside c^2
    eps = next((v for n in _EPS if isinstance(v := getattr(norm, n, None), float)), 0.0)
    signs = torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(width // 2 + 1)
    for s in (signs[:width], signs[1 : width + 1]) if width % 2 else (signs[:width],):
        s = s.clone()
        if width % 2:  # an odd width: one dimension left at zero keeps the mean zero
            s[-1 if s[0] > 0 else 0] = 0.0
        up, down = (norm((c * sign * s).to(device, dtype)[None]).double().cpu()[0] for sign in (1, -1))
        rms, on = s.pow(2).mean().sqrt(), s != 0
        gamma[on] = ((up - down) * (rms**2 + eps / c**2).sqrt() / (2 * s))[on]
        beta[on] = ((up + down) / 2)[on]
    x = 4 * torch.randn(8, width, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = norm(x.to(device, dtype)).double().cpu()
    forms = {
        "rms": x / x.pow(2).mean(-1, keepdim=True).sqrt(),
        "layer": (x - x.mean(-1, keepdim=True)) / x.var(-1, unbiased=False, keepdim=True).sqrt(),
    }
    tolerance = 1e-3 if dtype in (torch.float32, torch.float64) else 3e-2
    scale = got.abs().max().clamp_min(1e-6)
    for kind, normed in forms.items():
        if ((normed * gamma + beta - got).abs().max() / scale) < tolerance:
            return gamma, (beta if bool(beta.abs().max() > 1e-6 * gamma.abs().max()) else None), kind
    raise InputError(
        f"the norm {type(norm).__name__} is not an elementwise RMSNorm or LayerNorm, so its weight cannot be "
        "folded into the heads; pass fold_norms=False"
    )


def _embeddings(module: torch.nn.Module, d_model: int, fold: bool, notes: list[str]) -> tuple[torch.Tensor, ...]:
    """``(W_E [vocab, d_model], W_U [d_model, vocab])``, the embedding scale and norm and the final norm's
    ``gamma`` folded in (``fold``)."""
    get_in, get_out = getattr(module, "get_input_embeddings", None), getattr(module, "get_output_embeddings", None)
    emb = _call(get_in)
    vocab = vocab_size(module)
    if not isinstance(emb, torch.nn.Embedding):
        emb = next(
            (m for m in module.modules() if isinstance(m, torch.nn.Embedding) and m.num_embeddings == vocab), None
        )
    if emb is None or emb.embedding_dim != d_model:
        raise InputError(f"cannot find {type(module).__name__}'s token embedding (an nn.Embedding of width {d_model})")
    W_E = emb.weight.detach()
    scale = getattr(emb, "embed_scale", None)
    if isinstance(scale, (int, float, torch.Tensor)):
        W_E = W_E * torch.as_tensor(scale, dtype=W_E.dtype, device=W_E.device)
    embed_norm = _named(module, _EMBED_NORMS)
    if embed_norm is not None and fold:
        W_E = module.get_submodule(embed_norm)(W_E).detach()
        notes.append(f"the embedding norm ({embed_norm}) applied to every row of W_E")
    out = _call(get_out)
    if not isinstance(out, torch.nn.Module):
        linears = [
            m for m in module.modules() if isinstance(m, torch.nn.Linear) and m.out_features == emb.num_embeddings
        ]
        out = linears[-1] if linears and linears[-1].in_features == d_model else None
    if out is None:
        notes.append("no unembedding layer found: W_U is W_E transposed (tied)")
    W_U = row_weight(out) if out is not None else W_E.T
    final = _named(module, _FINAL_NORMS) if fold else None
    if final is not None:
        gamma = norm_affine(module.get_submodule(final), d_model)[0]
        W_U = W_U * gamma.to(W_U)[:, None]
        notes.append(f"the final norm's weight ({final}) folded into the rows of W_U; its bias left out")
    return W_E, W_U


def _call(get: Any) -> Any:
    try:
        return get() if callable(get) else None
    except Exception:  # some models raise NotImplementedError here
        return None


def _named(module: torch.nn.Module, names: tuple[str, ...]) -> str | None:
    """The last module outside the layer lists (no numeric path part) whose own name is one of ``names``."""
    hits = [
        p
        for p, _ in module.named_modules()
        if p.rpartition(".")[2] in names and not any(s.isdigit() for s in p.split("."))
    ]
    return hits[-1] if hits else None


def _layer_notes(module: torch.nn.Module, path: str, attention: torch.nn.Module, notes: list[str]) -> None:
    qk = [n for n in _QK_NORMS if isinstance(getattr(attention, n, None), torch.nn.Module)]
    if qk:
        notes.append(f"{'/'.join(qk)} (queries and keys normalised after the projection) left out of W_Q/W_K")
    parent_path = path.rpartition(".")[0]
    parent = module.get_submodule(parent_path) if parent_path else module
    post = isinstance(getattr(parent, "post_attention_layernorm", None), torch.nn.Module)
    if post and any(hasattr(parent, n) for n in ("pre_feedforward_layernorm", "post_feedforward_layernorm")):
        notes.append("the post-attention output norm (post_attention_layernorm) left out of W_O")


def _model_notes(module: torch.nn.Module, notes: list[str]) -> None:
    names = {type(m).__name__.lower() for m in module.modules()}
    config = getattr(module, "config", None)
    if any("rotary" in n for n in names) or getattr(config, "rotary_dim", None):
        notes.append(
            "rotary positions: the QK products are the content-content form at relative offset 0 (the rotation is "
            "the identity there); at other offsets rotary turns pairs of query/key dimensions, which is left out"
        )
    positions = [
        p for p, m in module.named_modules() if isinstance(m, torch.nn.Embedding) and re.search(r"pos|wpe", p.lower())
    ]
    if positions:
        notes.append(f"absolute position embeddings ({', '.join(positions)}) are not part of W_E: left out")
    if getattr(config, "alibi", False) or "bloomattention" in names:
        notes.append("ALiBi's distance bias on the scores left out")
    if getattr(config, "attn_logit_softcapping", None):
        notes.append("attention logit soft-capping (monotone) left out")
    notes.append("biases left out of the products; the score scale 1/sqrt(d_head) left out (a positive constant)")


def _special_ids(tokenizer: Any, config: Any) -> tuple[int, ...]:
    ids = set(getattr(tokenizer, "all_special_ids", None) or ())
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(config, name, None)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                ids.add(v)
    return tuple(sorted(ids))
