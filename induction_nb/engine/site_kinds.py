"""One reader class per kind of attention site: how a call is read into a pattern, how discovery tells that
a call could be this kind, how it proves the call is attention, and how the last query row is read while
decoding. A new kind of site (a kernel whose weights are neither returned nor recomputable by the readers
here) is one new subclass of ``SiteKind`` with a ``name``, decorated with ``@register_kind`` (which puts it
in ``KINDS``); a ``discovery_rank`` makes discovery probe for it (lower ranks are tried first). A decorator,
not ``__init_subclass__``: remote runs ship these classes by value, and rebuilding them there must not
register anything.

Kinds: ``hf_interface`` (HF's ``attention_interface(module, q, k, v, mask, ...)``), ``sdpa_call``
(``F.scaled_dot_product_attention``), ``softmax`` (an operation whose output is the pattern: a manual
softmax, ``[batch, head, q, k]`` or ``[batch * head, q, k]``), ``returned_weights`` (a helper that returns
``(output, weights)``, e.g. GPT-Neo's ``_attn``), ``mha`` (``nn.MultiheadAttention``) and ``custom`` (named
by the user with ``CustomSites``). Readers are pure: they never modify the tensors they are given (they run
inside the nnsight trace on the live activations), and return a ``reads.Read`` in float32. A reader
compares equal to its name (``site.kind == "hf_interface"``). A kind places an edge knockout
(``engine.knockout``) before its softmax where its kernel takes a mask, or says why it cannot.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..errors import CaptureCheckError, InputError
from .attention_math import attention_from_qk, repeat_kv_heads
from .knockout import knock_interface, knock_sdpa, knock_softmax
from .reads import Read, as_4d, blocks_future, is_stochastic, mask_blocks_future, reproduces_output
from .rows import QKRows

__all__ = [
    "SiteKind",
    "HFInterface",
    "SDPACall",
    "Softmax",
    "ReturnedWeights",
    "MultiheadAttention",
    "Custom",
    "KINDS",
    "discoverable",
    "register_kind",
]

KINDS: dict[str, SiteKind] = {}  # name -> reader, filled by defining a SiteKind subclass with a name


class SiteKind:
    """How to read one kind of attention site (see the module docstring). ``needs_output``: the read uses
    what the call returned (weights or the pattern itself); ``flash_lse``: the flash kernel's row logsumexp
    can stand in for the pattern (``rows.flash_with_lse``); ``discovery_rank``: where discovery tries this
    kind (lower first; ``None``: never, the kind is only named by hand); ``knockout``: ``(args, kwargs,
    module, KnockPlan) -> (args, kwargs)`` with the plan's edges removed before the softmax
    (``engine.knockout``), or ``None`` and ``knockout_refusal`` saying why it cannot be placed.
    ``@register_kind`` puts a subclass in ``KINDS``."""

    name: ClassVar[str] = ""
    needs_output: ClassVar[bool] = True
    flash_lse: ClassVar[bool] = False
    discovery_rank: ClassVar[float | None] = None
    knockout: ClassVar[Callable | None] = None
    knockout_refusal: ClassVar[str] = "the kernel masks and normalises inside, out of reach."

    def read(
        self, args: tuple, kwargs: dict, output: Any, module: Any = None, batch: int | None = None, lazy: bool = False
    ) -> Read:
        """The pattern of one call. ``module``: the site's module (for kinds that read its weights);
        ``batch``: the number of sequences (to split ``[batch * head, q, k]``); ``lazy``: a pattern that
        would be recomputed comes back as row blocks (``Read.rows``)."""
        raise NotImplementedError

    def looks_like(self, args: tuple, kwargs: dict, output: Any) -> bool:
        """Cheap structural test of whether a call could be a site of this kind (discovery)."""
        return False

    def reproduces(self, args: tuple, kwargs: dict, output: Any, read: Read) -> bool:
        """Proof that the call is attention and that ``read`` is the pattern the model used."""
        return True

    def last_row(self, args: tuple, kwargs: dict, output: Any, module: Any = None) -> torch.Tensor:
        """The arg-max key of each head's *last* query row ``[batch, head]`` (decoding with a KV cache)."""
        read = self.read(args, kwargs, output if self.needs_output else None, module)
        return read.pattern[:, :, -1].argmax(-1)

    values_at: ClassVar[int | None] = None  # the call's positional argument that holds the value vectors

    def values(self, args: tuple, kwargs: dict, output: Any, module: Any, read: Read) -> torch.Tensor | None:
        """Each head's value vectors ``[batch, head, k, d_head]`` (float32, grouped heads expanded) as the
        call received them, proven by ``read.pattern @ values`` reproducing what the call returned; ``None``
        where the call does not pass them (a bare softmax) or they do not reproduce its output."""
        value = _arg(args, kwargs, self.values_at, "value") if self.values_at is not None else None
        out = output[0] if isinstance(output, (tuple, list)) else output
        if not _is_4d(value) or value.shape[2] != read.pattern.shape[-1] or not reproduces_output(value, out, read):
            return None  # keys beyond the tokens (memory slots, a prefix) have no token to weigh: not read
        return repeat_kv_heads(value.float(), read.pattern.shape[1])

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, str):
            return other == self.name
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return self.name


def register_kind(cls: type[SiteKind]) -> type[SiteKind]:
    """Class decorator: one shared instance of ``cls`` in ``KINDS`` under its ``name``. A class of the same
    module and name replaces its earlier self (a notebook cell run again); another class under a taken name
    is an ``InputError``."""
    if not (isinstance(cls, type) and issubclass(cls, SiteKind)):
        raise InputError(f"register_kind takes a SiteKind subclass, got {cls!r:.60}")
    if not (isinstance(cls.name, str) and cls.name):
        raise InputError(f"site kind {cls.__qualname__} needs a name (a non-empty string), got {cls.name!r}")
    rank = cls.discovery_rank
    if rank is not None and not (isinstance(rank, (int, float)) and not isinstance(rank, bool) and math.isfinite(rank)):
        raise InputError(f"site kind {cls.name!r}: discovery_rank must be a finite number or None, got {rank!r}")
    old = KINDS.get(cls.name)
    if old is not None and (type(old).__module__, type(old).__qualname__) != (cls.__module__, cls.__qualname__):
        raise InputError(
            f"a site kind named {cls.name!r} exists already ({type(old).__module__}.{type(old).__qualname__}); "
            "give the new kind another name"
        )
    KINDS[cls.name] = cls()
    return cls


@register_kind
class HFInterface(SiteKind):
    """HF ``attention_interface(module, query, key, value, attention_mask, *, scaling, ...)``. Where the
    kernel returns float32 weights they are taken as they are (eager parity); otherwise, and for the sink's
    share, they are recomputed from the query, key, mask and scaling the kernel received."""

    name = "hf_interface"
    knockout = staticmethod(knock_interface)
    flash_lse = True
    discovery_rank = 10
    values_at = 3

    def read(self, args, kwargs, output, module=None, batch=None, lazy=False) -> Read:
        attention, query, key = args[0], args[1], args[2]  # the interface's module: its is_causal flag
        declared = getattr(attention, "is_causal", None)
        sinks = kwargs.get("s_aux", kwargs.get("sinks"))
        weights = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
        returned = isinstance(weights, torch.Tensor) and weights.dtype == torch.float32 and weights.dim() == 4
        if returned and sinks is None:
            return Read(weights, bool(declared) if declared is not None else blocks_future(weights))
        mask = _arg(args, kwargs, 4, "attention_mask")
        is_causal = kwargs.get("is_causal")
        is_causal = (declared is None or bool(declared)) if is_causal is None else bool(is_causal)
        if mask is not None and mask.dim() == 2:
            # flash-attention style: padding keep-mask plus an implicit causal mask
            mask = mask.bool()[:, None, None, :]  # a [batch, k] keep-mask (flash attention's form)
            if is_causal:
                n_q, n_k = query.shape[2], key.shape[2]
                tri = torch.ones(n_q, n_k, dtype=torch.bool, device=mask.device).tril(n_k - n_q)
                window = kwargs.get("sliding_window")
                if window is not None:
                    tri = tri & ~torch.ones_like(tri).tril(n_k - n_q - int(window))
                mask = mask & tri
        causal = bool(declared) if declared is not None else (is_causal if mask is None else mask_blocks_future(mask))
        rows = QKRows(
            query.float(),
            key.float(),
            causal=causal,
            mask=mask,
            scaling=kwargs.get("scaling"),
            is_causal=is_causal and mask is None,
            softcap=kwargs.get("softcap"),
            sliding_window=kwargs.get("sliding_window"),
            position_bias=kwargs.get("position_bias"),
            sinks=sinks,
        )
        if lazy and not returned:
            return Read(None, causal, None, rows)
        pattern, sink = rows.full()
        return Read(weights if returned else pattern, causal, sink)

    def looks_like(self, args, kwargs, output) -> bool:
        return len(args) >= 3 and isinstance(args[0], torch.nn.Module) and _is_4d(args[1]) and _is_4d(args[2])

    def reproduces(self, args, kwargs, output, read) -> bool:
        return reproduces_output(args[3], output[0] if isinstance(output, (tuple, list)) else output, read)

    def last_row(self, args, kwargs, output, module=None) -> torch.Tensor:
        """Only the last row is computed, ``[head, K]``: the query's last position against every key."""
        mask = args[4] if len(args) > 4 else kwargs.get("attention_mask")
        kwargs = {k: v for k, v in kwargs.items() if k != "attention_mask"}
        if isinstance(mask, torch.Tensor) and mask.dim() == 4 and mask.shape[-2] > 1:
            mask = mask[..., -1:, :]
        bias = kwargs.get("position_bias")
        if isinstance(bias, torch.Tensor) and bias.dim() == 4 and bias.shape[-2] > 1:
            kwargs["position_bias"] = bias[..., -1:, :]
        last = (args[0], args[1][:, :, -1:], args[2], args[3], mask, *args[5:])
        pattern, _ = self.read(last, kwargs, None, lazy=True).as_rows().full()
        return pattern[:, :, -1].argmax(-1)


@register_kind
class SDPACall(SiteKind):
    """``F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0, is_causal=False, scale=None)``."""

    name = "sdpa_call"
    knockout = staticmethod(knock_sdpa)
    discovery_rank = 20
    values_at = 2

    def read(self, args, kwargs, output, module=None, batch=None, lazy=False) -> Read:
        query, key = args[0], args[1]
        mask = _arg(args, kwargs, 3, "attn_mask")
        is_causal = bool(_arg(args, kwargs, 5, "is_causal") or False)
        causal = is_causal or mask_blocks_future(mask)
        rows = QKRows(
            query.float(),
            key.float(),
            causal=causal,
            mask=mask,
            scaling=_arg(args, kwargs, 6, "scale"),
            is_causal=is_causal,
        )
        return Read(None, causal, None, rows) if lazy else Read(rows.full()[0], causal)

    def looks_like(self, args, kwargs, output) -> bool:
        return len(args) >= 3 and _is_4d(args[0]) and _is_4d(args[1]) and _is_4d(args[2])

    def reproduces(self, args, kwargs, output, read) -> bool:
        return reproduces_output(args[2], output, read)


@register_kind
class Softmax(SiteKind):
    """A manual ``softmax(q @ k.T)``: the output already is the pattern (its own proof). Causality is read
    off it. ``[batch * head, q, k]`` (BART-style ``bmm`` attention) is split into heads by ``batch``."""

    name = "softmax"
    knockout = staticmethod(knock_softmax)
    discovery_rank = 30

    def read(self, args, kwargs, output, module=None, batch=None, lazy=False) -> Read:
        pattern = as_4d(output, batch).float()
        return Read(pattern, blocks_future(pattern))

    def looks_like(self, args, kwargs, output) -> bool:
        return is_stochastic(output)


@register_kind
class ReturnedWeights(SiteKind):
    """A helper that returns ``(attention output, weights)`` (GPT-Neo's ``_attn``, GPT-2's
    ``_upcast_and_reordered_attn``): the weights are the pattern (their own proof)."""

    name = "returned_weights"
    discovery_rank = 40
    values_at = 2  # GPT-Neo's ``_attn(query, key, value, ...)``; proven against the output before use

    def read(self, args, kwargs, output, module=None, batch=None, lazy=False) -> Read:
        pattern = as_4d(output[1], batch).float()
        return Read(pattern, blocks_future(pattern))

    def looks_like(self, args, kwargs, output) -> bool:
        return isinstance(output, (tuple, list)) and len(output) == 2 and is_stochastic(output[1])


_MHA_SIGNATURE = inspect.signature(torch.nn.MultiheadAttention.forward)


@register_kind
class MultiheadAttention(SiteKind):
    """``nn.MultiheadAttention`` called as a module: recomputed from its in-projection weights (found by the
    module's class, not probed). The module's output is not read."""

    name = "mha"
    needs_output = False
    knockout_refusal = "nn.MultiheadAttention builds its mask inside from attn_mask and key_padding_mask."

    def read(self, args, kwargs, output, module=None, batch=None, lazy=False) -> Read:
        bound = _MHA_SIGNATURE.bind(module, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        if module.bias_k is not None or module.add_zero_attn:
            raise NotImplementedError(
                "nn.MultiheadAttention with add_bias_kv or add_zero_attn is not supported by the built-in reader; "
                "pass sites=CustomSites(...) with a reader of your own"
            )
        query, key = a["query"], a["key"]
        if not module.batch_first:
            query, key = query.transpose(0, 1), key.transpose(0, 1)
        e, h = module.embed_dim, module.num_heads
        if module._qkv_same_embed_dim:
            w_q, w_k = module.in_proj_weight[:e], module.in_proj_weight[e : 2 * e]
        else:
            w_q, w_k = module.q_proj_weight, module.k_proj_weight
        b_q = b_k = None
        if module.in_proj_bias is not None:
            b_q, b_k = module.in_proj_bias[:e], module.in_proj_bias[e : 2 * e]
        q = torch.nn.functional.linear(query, w_q, b_q)
        k = torch.nn.functional.linear(key, w_k, b_k)
        n, lq, lk = q.shape[0], q.shape[1], k.shape[1]
        q = q.reshape(n, lq, h, -1).transpose(1, 2)
        k = k.reshape(n, lk, h, -1).transpose(1, 2)
        keep = torch.ones(n, 1, lq, lk, dtype=torch.bool, device=q.device)
        bias = None
        attn_mask = a["attn_mask"]
        if attn_mask is not None:
            m = attn_mask.reshape(-1, h, lq, lk) if attn_mask.dim() == 3 else attn_mask[None, None]
            if m.dtype == torch.bool:
                keep = keep & ~m  # MHA's boolean masks mean "do not attend"
            else:
                bias = m.float()
        kpm = a["key_padding_mask"]
        if kpm is not None:
            kpm = kpm[:, None, None, :]
            if kpm.dtype == torch.bool:
                keep = keep & ~kpm
            else:
                bias = kpm.float() if bias is None else bias + kpm.float()
        float_mask = torch.zeros(keep.shape, device=q.device).masked_fill(~keep, float("-inf"))
        if bias is not None:
            float_mask = float_mask + bias
        pattern = attention_from_qk(q, k, mask=float_mask)
        return Read(pattern, mask_blocks_future(float_mask))

    def values(self, args, kwargs, output, module, read) -> torch.Tensor | None:
        bound = _MHA_SIGNATURE.bind(module, *args, **kwargs)
        value, e, h = bound.arguments["value"], module.embed_dim, module.num_heads
        value = value if module.batch_first else value.transpose(0, 1)
        w = module.in_proj_weight[2 * e :] if module._qkv_same_embed_dim else module.v_proj_weight
        b = None if module.in_proj_bias is None else module.in_proj_bias[2 * e :]
        v = torch.nn.functional.linear(value, w, b)
        return v.reshape(v.shape[0], v.shape[1], h, -1).transpose(1, 2).float()


class Custom(SiteKind):
    """A site named by the user (``CustomSites``): ``function(args, kwargs, output)`` returns the pattern
    ``[batch, head, q, k]``; ``causal`` says whether future keys are masked (``None``: read off the pattern)."""

    name = "custom"
    knockout_refusal = "a custom site is read, not run, by the toolkit."

    def __init__(
        self,
        function: Callable[[tuple, dict, Any], torch.Tensor],
        causal: bool | None = None,
        where: str = "the custom reader",
        value_reader: Callable[[tuple, dict, Any], torch.Tensor] | None = None,
    ):
        self.function, self.causal, self.where, self.value_reader = function, causal, where, value_reader

    def values(self, args, kwargs, output, module, read) -> torch.Tensor | None:
        if self.value_reader is None:
            return None
        values = self.value_reader(args, kwargs, output)
        b = read.pattern.shape[0]
        if not _is_4d(values) or values.shape[0] != b or values.shape[2] != read.pattern.shape[-1]:
            shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise CaptureCheckError(
                f"{self.where}: the values reader returned {shape}; it must return [batch, head or kv_head, k, "
                f"d_head] with batch {b} and k {read.pattern.shape[-1]}"
            )
        return repeat_kv_heads(values.float(), read.pattern.shape[1])

    def read(self, args, kwargs, output, module=None, batch=None, lazy=False) -> Read:
        pattern = self.function(args, kwargs, output)
        if not isinstance(pattern, torch.Tensor) or pattern.dim() != 4:
            shape = tuple(pattern.shape) if isinstance(pattern, torch.Tensor) else type(pattern).__name__
            raise CaptureCheckError(
                f"{self.where} returned {shape}; it must return a pattern tensor [batch, head, q, k]"
            )
        pattern = pattern.float()
        return Read(pattern, self.causal if self.causal is not None else blocks_future(pattern))


def discoverable() -> list[SiteKind]:
    """The registered kinds discovery probes for, in ``discovery_rank`` order."""
    ranked = [k for k in KINDS.values() if k.discovery_rank is not None]
    return sorted(ranked, key=lambda k: k.discovery_rank)


def _is_4d(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point()


def _arg(args: tuple, kwargs: dict, index: int, *names: str) -> Any:
    if len(args) > index:
        return args[index]
    for name in names:
        if name in kwargs:
            return kwargs[name]
    return None
