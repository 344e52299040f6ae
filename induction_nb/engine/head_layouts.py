"""One reader class per layout of an attention layer's weights: how a module's projections split into heads.

A reader turns one attention module into ``Projections``: per-head ``W_Q, W_K, W_V`` ``[head, d_model,
d_head]`` and ``W_O`` ``[head, d_head, d_model]`` in the row-vector convention (``x @ W``: a head's query is
``x @ W_Q[h]``, its output ``z @ W_O[h]``), grouped-query and multi-query key/value heads expanded to the query
heads they serve (HF's ``repeat_kv``: kv head ``j`` serves query heads ``j*g .. j*g+g-1``), plus the biases
where the layer has them. Every linear layer is read through ``wrappers.effective_weight``: a PEFT adapter's
``B A`` is included, an offloaded weight is measured, a plain weight is a view (no copy).

Layouts (``LAYOUTS``, tried in order; a new layout is one ``HeadLayout`` subclass with a ``name``, decorated
with ``@register_layout``):

- ``separate``: ``q_proj``, ``k_proj``, ``v_proj`` and an output ``o_proj`` / ``out_proj`` / ``dense`` (Llama,
  Mistral, Qwen2/3, Gemma 1-3, OLMo 1/2, Phi, OPT, GPT-J, ...).
- ``gpt2``: GPT-2's fused ``Conv1D`` ``c_attn`` (``[q | k | v]``, each ``[head, d_head]`` inside) and ``c_proj``.
- ``fused_per_head``: GPT-NeoX's and BLOOM's ``query_key_value`` (``[head, 3, d_head]``: each head's q, k, v
  side by side, as their forwards ``view`` it) and ``dense``.
- ``bigcode``: GPT-BigCode's ``c_attn`` (multi-query ``[q | k | v]``, else ``[head, 3, d_head]``) and ``c_proj``.
- ``fused_sequential``: Phi-3's ``qkv_proj`` (``[q heads | k heads | v heads]``) and ``o_proj``.
- ``per_head_params``: a module holding ``W_Q, W_K, W_V`` ``[head, d_model, d_head]`` parameters and an
  ``o_proj`` (``analysis.toy.ToyAttention``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import InputError
from .model_info import module_heads
from .wrappers import effective_weight

__all__ = ["HeadLayout", "Projections", "LAYOUTS", "register_layout", "layout_of"]

LAYOUTS: dict[str, HeadLayout] = {}  # name -> reader, in the order they are tried
_OUTPUT_NAMES = ("o_proj", "out_proj", "dense")


@dataclass(frozen=True)
class Projections:
    """One attention layer's heads (row-vector convention, see the module docstring): ``W_Q, W_K, W_V``
    ``[head, d_model, d_head]``, ``W_O`` ``[head, d_head, d_model]``; ``b_Q, b_K, b_V`` ``[head, d_head]``
    and ``b_O`` ``[d_model]`` or ``None``; ``n_kv_heads``: the key/value heads before expansion."""

    W_Q: torch.Tensor
    W_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor
    b_Q: torch.Tensor | None = None
    b_K: torch.Tensor | None = None
    b_V: torch.Tensor | None = None
    b_O: torch.Tensor | None = None
    n_kv_heads: int | None = None


class HeadLayout:
    """How to split one layout of attention weights into heads (see the module docstring)."""

    name: ClassVar[str] = ""

    def matches(self, module: torch.nn.Module) -> bool:
        """Whether ``module`` is an attention layer of this layout (structure only, nothing runs)."""
        return False

    def read(self, module: torch.nn.Module, config: Any = None) -> Projections:
        """The layer's ``Projections``; ``config``: the model's config (head counts) where the module does not
        state them. Raises ``InputError`` where the shapes do not split into heads."""
        raise NotImplementedError


def register_layout(cls: type[HeadLayout]) -> type[HeadLayout]:
    """Class decorator: one shared instance of ``cls`` in ``LAYOUTS`` under its ``name`` (tried after those
    registered before it; a class registered again under its name replaces its earlier self)."""
    if not (isinstance(cls, type) and issubclass(cls, HeadLayout) and isinstance(cls.name, str) and cls.name):
        raise InputError(f"register_layout takes a HeadLayout subclass with a name, got {cls!r:.60}")
    LAYOUTS[cls.name] = cls()
    return cls


def layout_of(module: torch.nn.Module) -> HeadLayout | None:
    """The first registered layout that matches ``module``, or ``None``."""
    return next((layout for layout in LAYOUTS.values() if layout.matches(module)), None)


# -- helpers ----------------------------------------------------------------------------------------------


def row_weight(linear: torch.nn.Module) -> torch.Tensor:
    """A linear-like layer's effective matrix in the row-vector convention, ``[in, out]``."""
    return effective_weight(linear).T


def bias_of(linear: torch.nn.Module) -> torch.Tensor | None:
    """The bias a linear-like layer adds (an adapter's base layer's), detached, or ``None``."""
    bias = getattr(_base(linear), "bias", None)
    return bias.detach() if isinstance(bias, torch.Tensor) else None


def _base(linear: torch.nn.Module) -> torch.nn.Module:
    """The layer an adapter wraps (``base_layer``, innermost), or ``linear`` itself."""
    while isinstance(getattr(linear, "base_layer", None), torch.nn.Module):
        linear = linear.base_layer
    return linear


def split_in(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[d_model, head * d_head]`` -> ``[head, d_model, d_head]``."""
    return w.reshape(w.shape[0], n_heads, -1).permute(1, 0, 2)


def split_out(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[head * d_head, d_model]`` -> ``[head, d_head, d_model]``."""
    return w.reshape(n_heads, -1, w.shape[-1])


def expand_kv(w: torch.Tensor, n_heads: int, what: str) -> torch.Tensor:
    """Key/value heads ``[kv_head, ...]`` repeated for the query heads they serve ``[head, ...]``."""
    if n_heads % w.shape[0]:
        raise InputError(f"{what}: {w.shape[0]} key/value heads do not divide {n_heads} query heads")
    return w.repeat_interleave(n_heads // w.shape[0], dim=0)


def _int(*values: Any) -> int | None:
    return next((v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0), None)


def head_shape(module: torch.nn.Module, config: Any, width: int) -> tuple[int, int]:
    """``(query heads, d_head)`` of an attention module whose query projection is ``width`` wide: what the
    module states (``head_dim``, ``num_heads``...), else its config's or the model's."""
    configs = [c for c in (getattr(module, "config", None), config) if c is not None]
    d_head = _int(
        getattr(module, "head_dim", None),
        getattr(module, "head_size", None),
        *(getattr(c, "head_dim", None) for c in configs),
    )
    n_heads = _int(module_heads(module), *(getattr(c, "num_attention_heads", None) for c in configs))
    if d_head is None and n_heads:
        d_head = width // n_heads
    if d_head and (n_heads is None or n_heads * d_head != width):
        n_heads = width // d_head
    if not d_head or not n_heads or n_heads * d_head != width:
        raise InputError(
            f"cannot split {type(module).__name__}'s {width} query features into heads (no head_dim or head "
            "count on the module or its config)"
        )
    return n_heads, d_head


# -- the layouts ------------------------------------------------------------------------------------------


@register_layout
class PerHeadParams(HeadLayout):
    """``W_Q, W_K, W_V`` parameters ``[head, d_model, d_head]`` and an ``o_proj`` (``ToyAttention``)."""

    name = "per_head_params"

    def matches(self, module: torch.nn.Module) -> bool:
        ws = [getattr(module, n, None) for n in ("W_Q", "W_K", "W_V")]
        return all(isinstance(w, torch.Tensor) and w.dim() == 3 for w in ws) and hasattr(module, "o_proj")

    def read(self, module: torch.nn.Module, config: Any = None) -> Projections:
        if getattr(module, "smear", None) is not None:  # a key is not x @ W_K: every QK reading would be wrong
            raise InputError(
                "this attention smears each key with the previous position's (train_induction_model("
                "smeared_keys=True)): its keys are not x @ W_K, so the weights' evidence and AtP* do not apply; "
                "use the behavioural tools (detect_induction_heads, find_circuit, head_effects with "
                "estimator='attribution' or 'exact')"
            )
        W_Q, W_K, W_V = (getattr(module, n).detach() for n in ("W_Q", "W_K", "W_V"))
        W_O = split_out(row_weight(module.o_proj), W_Q.shape[0])
        return Projections(W_Q, W_K, W_V, W_O, b_O=bias_of(module.o_proj), n_kv_heads=W_K.shape[0])


@register_layout
class Separate(HeadLayout):
    """``q_proj``, ``k_proj``, ``v_proj`` and ``o_proj`` / ``out_proj`` / ``dense``."""

    name = "separate"

    def matches(self, module: torch.nn.Module) -> bool:
        parts = [getattr(module, n, None) for n in ("q_proj", "k_proj", "v_proj")]
        return all(isinstance(p, torch.nn.Module) for p in parts) and _output(module) is not None

    def read(self, module: torch.nn.Module, config: Any = None) -> Projections:
        wq, wk, wv = (row_weight(getattr(module, n)) for n in ("q_proj", "k_proj", "v_proj"))
        n_heads, d_head = head_shape(module, config, wq.shape[1])
        if wk.shape[1] % d_head or wv.shape[1] % d_head:
            raise InputError(f"{type(module).__name__}: k_proj/v_proj widths are not multiples of d_head={d_head}")
        n_kv = wk.shape[1] // d_head
        what = type(module).__name__
        out = _output(module)
        biases = [bias_of(getattr(module, n)) for n in ("q_proj", "k_proj", "v_proj")]
        b_Q = None if biases[0] is None else biases[0].reshape(n_heads, d_head)
        b_K, b_V = (None if b is None else expand_kv(b.reshape(n_kv, d_head), n_heads, what) for b in biases[1:])
        return Projections(
            split_in(wq, n_heads),
            expand_kv(split_in(wk, n_kv), n_heads, what),
            expand_kv(split_in(wv, n_kv), n_heads, what),
            split_out(row_weight(out), n_heads),
            b_Q,
            b_K,
            b_V,
            bias_of(out),
            n_kv,
        )


def _output(module: torch.nn.Module) -> torch.nn.Module | None:
    return next(
        (getattr(module, n) for n in _OUTPUT_NAMES if isinstance(getattr(module, n, None), torch.nn.Module)), None
    )


@register_layout
class GPT2(HeadLayout):
    """GPT-2's ``Conv1D`` ``c_attn`` (``[d_model, 3 * d_model]``: q, k, v one after the other) and ``c_proj``."""

    name = "gpt2"

    def matches(self, module: torch.nn.Module) -> bool:
        parts = [getattr(module, n, None) for n in ("c_attn", "c_proj")]
        return all(isinstance(p, torch.nn.Module) for p in parts) and type(_base(parts[0])).__name__ == "Conv1D"

    def read(self, module: torch.nn.Module, config: Any = None) -> Projections:
        w = row_weight(module.c_attn)
        if w.shape[1] != 3 * w.shape[0]:
            raise InputError(
                f"{type(module).__name__}.c_attn is {tuple(w.shape)}, not [d_model, 3 * d_model]: a cross-attention "
                "layer (q_attn apart) is not read; only self-attention layers are"
            )
        n_heads, _ = head_shape(module, config, w.shape[0])
        bias = bias_of(module.c_attn)
        q, k, v = (split_in(part, n_heads) for part in w.chunk(3, dim=1))
        bq, bk, bv = (None, None, None) if bias is None else (b.reshape(n_heads, -1) for b in bias.chunk(3))
        W_O = split_out(row_weight(module.c_proj), n_heads)
        return Projections(q, k, v, W_O, bq, bk, bv, bias_of(module.c_proj), n_heads)


@register_layout
class FusedPerHead(HeadLayout):
    """GPT-NeoX's / BLOOM's ``query_key_value`` (output features ``[head, 3, d_head]``) and ``dense``. Matched by
    class name: Falcon's ``query_key_value`` has another layout (and is not read)."""

    name = "fused_per_head"
    classes: ClassVar[tuple[str, ...]] = ("GPTNeoXAttention", "BloomAttention")

    def matches(self, module: torch.nn.Module) -> bool:
        return type(module).__name__ in self.classes and hasattr(module, "query_key_value") and hasattr(module, "dense")

    def read(self, module: torch.nn.Module, config: Any = None) -> Projections:
        w = row_weight(module.query_key_value)
        n_heads, d_head = head_shape(module, config, w.shape[1] // 3)
        per_head = w.reshape(w.shape[0], n_heads, 3, d_head).permute(2, 1, 0, 3)  # [3, head, d_model, d_head]
        bias = bias_of(module.query_key_value)
        b = (None,) * 3 if bias is None else tuple(bias.reshape(n_heads, 3, d_head).unbind(1))
        W_O = split_out(row_weight(module.dense), n_heads)
        return Projections(per_head[0], per_head[1], per_head[2], W_O, *b, bias_of(module.dense), n_heads)


@register_layout
class FusedSequential(HeadLayout):
    """Phi-3's ``qkv_proj`` (output features ``[q heads | k heads | v heads]``, grouped kv heads) and ``o_proj``."""

    name = "fused_sequential"

    def matches(self, module: torch.nn.Module) -> bool:
        return all(isinstance(getattr(module, n, None), torch.nn.Module) for n in ("qkv_proj", "o_proj"))

    def read(self, module: torch.nn.Module, config: Any = None) -> Projections:
        w, out = row_weight(module.qkv_proj), module.o_proj
        n_heads, d_head = head_shape(module, config, row_weight(out).shape[0])
        n_kv = (w.shape[1] - n_heads * d_head) // (2 * d_head)
        sizes = [n_heads * d_head, n_kv * d_head, n_kv * d_head]
        if sum(sizes) != w.shape[1]:
            raise InputError(f"{type(module).__name__}.qkv_proj's {w.shape[1]} features do not split as q, k, v heads")
        q, k, v = w.split(sizes, dim=1)
        what = type(module).__name__
        bias = bias_of(module.qkv_proj)
        bq, bk, bv = (None, None, None) if bias is None else bias.split(sizes)
        return Projections(
            split_in(q, n_heads),
            expand_kv(split_in(k, n_kv), n_heads, what),
            expand_kv(split_in(v, n_kv), n_heads, what),
            split_out(row_weight(out), n_heads),
            None if bq is None else bq.reshape(n_heads, d_head),
            None if bk is None else expand_kv(bk.reshape(n_kv, d_head), n_heads, what),
            None if bv is None else expand_kv(bv.reshape(n_kv, d_head), n_heads, what),
            bias_of(out),
            n_kv,
        )


@register_layout
class BigCode(HeadLayout):
    """GPT-BigCode's ``c_attn`` (a ``Linear``): multi-query ``[q heads | k | v]`` (one key/value head), or else
    ``[head, 3, d_head]`` like GPT-NeoX; and ``c_proj``."""

    name = "bigcode"

    def matches(self, module: torch.nn.Module) -> bool:
        return (
            type(module).__name__ == "GPTBigCodeAttention" and hasattr(module, "c_attn") and hasattr(module, "c_proj")
        )

    def read(self, module: torch.nn.Module, config: Any = None) -> Projections:
        w, bias = row_weight(module.c_attn), bias_of(module.c_attn)
        d = w.shape[0]
        n_heads, d_head = head_shape(module, config, d)
        W_O, b_O = split_out(row_weight(module.c_proj), n_heads), bias_of(module.c_proj)
        if not getattr(module, "multi_query", False):
            per_head = w.reshape(d, n_heads, 3, d_head).permute(2, 1, 0, 3)
            b = (None,) * 3 if bias is None else tuple(bias.reshape(n_heads, 3, d_head).unbind(1))
            return Projections(per_head[0], per_head[1], per_head[2], W_O, *b, b_O, n_heads)
        q, k, v = w.split([d, d_head, d_head], dim=1)
        bq, bk, bv = (None, None, None) if bias is None else bias.split([d, d_head, d_head])
        return Projections(
            split_in(q, n_heads),
            split_in(k, 1).expand(n_heads, -1, -1),
            split_in(v, 1).expand(n_heads, -1, -1),
            W_O,
            None if bq is None else bq.reshape(n_heads, d_head),
            None if bk is None else bk.expand(n_heads, -1),
            None if bv is None else bv.expand(n_heads, -1),
            b_O,
            1,
        )
