"""Turn what an attention site received and returned into a pattern ``[batch, head, q, k]``.

One reader per kind of site (a closed set, see ``READERS``). Readers are pure: they never modify the
tensors they are given (they run inside the nnsight trace on the live activations). Each returns a
``Read``: ``pattern`` in float32, ``causal`` (whether the site masks future keys) and ``sink``, the share of
each row ``[batch, head, q]`` that a learned attention sink takes (``None`` where the site has none).

Kinds: ``hf_interface`` (HF's ``attention_interface(module, q, k, v, mask, ...)``), ``sdpa_call``
(``F.scaled_dot_product_attention``), ``softmax`` (an operation whose output is the pattern: a manual
softmax, ``[batch, head, q, k]`` or ``[batch * head, q, k]``), ``returned_weights`` (a helper method that
returns ``(output, weights)``, e.g. GPT-Neo's ``_attn``), ``mha`` (``nn.MultiheadAttention``) and ``custom``.
"""

from __future__ import annotations

import contextlib

import inspect
from typing import Any, Callable, Literal, NamedTuple

import torch

from ._attention_math import attention_from_qk, repeat_kv_heads
from ._rows import DenseRows, QKRows, Rows, check_block
from .errors import CaptureCheckError

__all__ = ["mask_padding", "as_pattern", "mha_fastpath_off", "READERS", "SiteKind", "Read", "read_site", "check_reproduces_output", "looks_like", "blocks_future",
           "token_block", "check_pattern"]

SiteKind = Literal["hf_interface", "sdpa_call", "softmax", "returned_weights", "mha", "custom"]


class Read(NamedTuple):
    """A site's pattern ``[batch, head, q, k]`` (float32), whether it is causal, and the sink's share of
    each row ``[batch, head, q]`` (``None`` without a sink). Read lazily (``lazy=True``), a recomputed
    pattern is ``rows`` instead (``pattern`` and ``sink`` ``None``): computed row block by row block."""

    pattern: torch.Tensor | None
    causal: bool
    sink: torch.Tensor | None = None
    rows: Rows | None = None

    def as_rows(self) -> Rows:
        return self.rows if self.rows is not None else DenseRows(self.pattern, self.causal, self.sink)


def _is_4d(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point()


def _arg(args: tuple, kwargs: dict, index: int, *names: str) -> Any:
    if len(args) > index:
        return args[index]
    for name in names:
        if name in kwargs:
            return kwargs[name]
    return None


def _padding_to_bool(mask: torch.Tensor) -> torch.Tensor:
    """A 2-D ``[batch, k]`` keep-mask (flash attention's form) as a broadcastable bool mask."""
    return mask.bool()[:, None, None, :]


def _hf_interface(args: tuple, kwargs: dict, output: Any, batch: int | None = None, lazy: bool = False) -> Read:
    """HF ``attention_interface(module, query, key, value, attention_mask, *, scaling, ...)``. Where the
    kernel returns float32 weights they are taken as they are (eager parity); otherwise, and for the
    sink's share, they are recomputed from the query, key, mask and scaling the kernel received."""
    module, query, key = args[0], args[1], args[2]
    declared = getattr(module, "is_causal", None)
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
        mask = _padding_to_bool(mask)
        if is_causal:
            n_q, n_k = query.shape[2], key.shape[2]
            tri = torch.ones(n_q, n_k, dtype=torch.bool, device=mask.device).tril(n_k - n_q)
            window = kwargs.get("sliding_window")
            if window is not None:
                tri = tri & ~torch.ones_like(tri).tril(n_k - n_q - int(window))
            mask = mask & tri
    causal = bool(declared) if declared is not None else (is_causal if mask is None else _mask_blocks_future(mask))
    rows = QKRows(query.float(), key.float(), causal=causal, mask=mask, scaling=kwargs.get("scaling"),
                  is_causal=is_causal and mask is None, softcap=kwargs.get("softcap"),
                  sliding_window=kwargs.get("sliding_window"), position_bias=kwargs.get("position_bias"), sinks=sinks)
    if lazy and not returned:
        return Read(None, causal, None, rows)
    pattern, sink = rows.full()
    return Read(weights if returned else pattern, causal, sink)


def _sdpa_call(args: tuple, kwargs: dict, output: Any, batch: int | None = None, lazy: bool = False) -> Read:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0, is_causal=False, scale=None)``."""
    query, key = args[0], args[1]
    mask = _arg(args, kwargs, 3, "attn_mask")
    is_causal = bool(_arg(args, kwargs, 5, "is_causal") or False)
    causal = is_causal or _mask_blocks_future(mask)
    rows = QKRows(query.float(), key.float(), causal=causal, mask=mask, scaling=_arg(args, kwargs, 6, "scale"),
                  is_causal=is_causal)
    return Read(None, causal, None, rows) if lazy else Read(rows.full()[0], causal)


def _softmax(args: tuple, kwargs: dict, output: Any, batch: int | None = None, lazy: bool = False) -> Read:
    """A manual ``softmax(q @ k.T)``: the output already is the pattern. Causality is read off it.
    ``[batch * head, q, k]`` (BART-style ``bmm`` attention) is split into heads by ``batch``."""
    pattern = _as_4d(output, batch).float()
    return Read(pattern, blocks_future(pattern))


def _returned_weights(args: tuple, kwargs: dict, output: Any, batch: int | None = None, lazy: bool = False) -> Read:
    """A helper that returns ``(attention output, weights)`` (GPT-Neo's ``_attn``, GPT-2's
    ``_upcast_and_reordered_attn``): the weights are the pattern."""
    pattern = _as_4d(output[1], batch).float()
    return Read(pattern, blocks_future(pattern))


def _as_4d(x: torch.Tensor, batch: int | None) -> torch.Tensor:
    if x.dim() == 3:
        if not batch or x.shape[0] % batch:
            raise ValueError(f"cannot split {x.shape[0]} rows into a batch of {batch}")
        return x.reshape(batch, -1, *x.shape[1:])
    return x


_MHA_SIGNATURE = inspect.signature(torch.nn.MultiheadAttention.forward)


def _mha(args: tuple, kwargs: dict, output: Any, module: torch.nn.MultiheadAttention) -> Read:
    """``nn.MultiheadAttention`` called as a module: recompute from its in-projection weights."""
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
    return Read(pattern, _mask_blocks_future(float_mask))


def _mask_blocks_future(mask: torch.Tensor | None) -> bool:
    """Whether a mask (bool "may attend", or additive float) forbids every key after its query."""
    if mask is None or mask.dim() < 2:
        return False
    n_q, n_k = mask.shape[-2:]
    if n_q < 2 or n_q != n_k:
        return False
    future = torch.ones(n_q, n_k, dtype=torch.bool, device=mask.device).triu(1)
    blocked = ~mask if mask.dtype == torch.bool else torch.isneginf(mask)
    return bool(blocked[..., future].all())


def blocks_future(pattern: torch.Tensor) -> bool:
    """Whether a square pattern ``[..., q, q]`` is zero above its diagonal."""
    n_q, n_k = pattern.shape[-2:]
    if n_q < 2 or n_q != n_k:
        return False
    return bool((pattern.triu(1) == 0).all())


READERS: dict[str, Callable[..., Read]] = {
    "hf_interface": _hf_interface,
    "sdpa_call": _sdpa_call,
    "softmax": _softmax,
    "returned_weights": _returned_weights,
}


def read_site(kind: str, args: tuple, kwargs: dict, output: Any, module: torch.nn.Module | None,
              batch: int | None = None, lazy: bool = False) -> Read:
    """Dispatch to the reader of ``kind``. ``batch``: the number of sequences, to split ``[batch * head, q, k]``.
    ``lazy``: a pattern that would be recomputed comes back as ``rows`` (see ``Read``)."""
    if kind == "mha":
        return _mha(args, kwargs, output, module)
    return READERS[kind](args, kwargs, output, batch, lazy)


def _stochastic(x: Any) -> bool:
    """A float ``[..., q, k]`` tensor of 3 or 4 dims, square, non-negative, whose rows sum to 1."""
    if not (isinstance(x, torch.Tensor) and x.dim() in (3, 4) and x.is_floating_point()):
        return False
    if x.shape[-1] != x.shape[-2] or x.shape[-1] < 2:
        return False
    o = x.float()
    return bool((o >= 0).all()) and bool(torch.allclose(o.sum(-1), torch.ones_like(o[..., 0]), atol=1e-4))


def looks_like(kind: str, args: tuple, kwargs: dict, output: Any) -> bool:
    """Cheap structural test of whether a call could be an attention site of ``kind``."""
    if kind == "hf_interface":
        return len(args) >= 3 and isinstance(args[0], torch.nn.Module) and _is_4d(args[1]) and _is_4d(args[2])
    if kind == "sdpa_call":
        return len(args) >= 3 and _is_4d(args[0]) and _is_4d(args[1]) and _is_4d(args[2])
    if kind == "softmax":
        return _stochastic(output)
    if kind == "returned_weights":
        return isinstance(output, (tuple, list)) and len(output) == 2 and _stochastic(output[1])
    return False


def check_reproduces_output(kind: str, args: tuple, kwargs: dict, output: Any, read: Read) -> bool:
    """Whether ``pattern @ value`` reproduces what the call returned: proof that the call is attention and
    that the recomputed pattern is the one the model used. HF kernels return ``[batch, q, head, d]``,
    SDPA ``[batch, head, q, d]``; both layouts are tried (they coincide in shape when q == heads).
    A row-stochastic output (``softmax``, ``returned_weights``) is its own proof. Where a sink takes part
    of the row, kernels either return ``pattern @ value`` (gpt-oss) or renormalise the pattern and scale
    the output by the tokens' share (granite): both are accepted."""
    if kind in ("softmax", "returned_weights"):
        return True
    if kind == "hf_interface":
        value, out = args[3], output[0] if isinstance(output, (tuple, list)) else output
    else:
        value, out = args[2], output
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        return False
    expected = torch.matmul(read.pattern, repeat_kv_heads(value.float(), read.pattern.shape[1]))
    candidates = [expected]
    if read.sink is not None:
        rows = read.pattern.sum(-1, keepdim=True)
        candidates.append(expected / rows.clamp_min(1e-30) * (1 - read.sink[..., None]))
    got = out.float()
    scale = float(got.abs().max().clamp_min(1e-6))
    rel = 1e-3 if out.dtype in (torch.float32, torch.float64) else 5e-2  # half types round at ~1e-2
    for candidate in candidates:
        for layout in (candidate, candidate.transpose(1, 2)):
            if layout.shape == got.shape and bool((got - layout).abs().max() <= rel * scale + 1e-5):
                return True
    return False


def token_block(read: Read, n_tokens: int, layer: int) -> Read:
    """The pattern over the given tokens ``[..., T, T]``. Positions the model adds before them (CPM-Ant's
    prompt: extra queries and keys) and keys that are not tokens (DeepSeek-V4's compressed memory slots,
    appended; prefix keys, prepended) are cut off, and their share of each row joins the sink's, so that
    rows plus sink still sum to 1. Which end holds the extra keys is read off the causal mask."""
    pattern = read.pattern
    n_q, n_k = pattern.shape[-2:]
    if n_q == n_k == n_tokens or n_q < n_tokens or n_k < n_tokens:
        return read
    sink = read.sink
    if n_q > n_tokens:  # extra leading positions (queries too): drop them
        extra_q = n_q - n_tokens
        pattern = pattern[..., extra_q:, :]
        sink = None if sink is None else sink[..., extra_q:]
        keep = slice(n_k - n_tokens, n_k)
    else:
        ahead, behind = pattern[..., :n_tokens], pattern[..., n_k - n_tokens:]
        first_ok, last_ok = bool((ahead.triu(1) == 0).all()), bool((behind.triu(1) == 0).all())
        if first_ok == last_ok:
            raise CaptureCheckError(
                f"layer {layer}: the attention covers {n_k} keys for {n_tokens} tokens and the causal mask does not "
                "tell which keys are the tokens; name the site with sites=CustomSites(...) and a reader"
            )
        keep = slice(0, n_tokens) if first_ok else slice(n_k - n_tokens, n_k)
    rest = pattern.sum(-1) - pattern[..., keep].sum(-1)
    return Read(pattern[..., keep], read.causal, rest if sink is None else sink + rest)


def mask_padding(read: Read, valid: torch.Tensor, layer: int, tolerance: float) -> Read:
    """A padded batch's pattern (``valid`` ``[batch, seq]``: the real tokens), checked on the real rows only
    and returned with every padding row and column set to 0 (whatever the kernel put on a padding query:
    uniform weights, NaN). Raises ``CaptureCheckError`` where a real token attends to padding (the model
    ignored the mask) or a real row fails the self-check. One temporary the size of the pattern."""
    v = valid.to(read.pattern.device)
    real = v[:, None, :]  # [batch, 1, q]
    pattern = read.pattern.masked_fill(~(v[:, None, :, None] & v[:, None, None, :]), 0)
    sums = pattern.sum(-1)
    leak = torch.where(real, read.pattern.sum(-1) - sums, torch.zeros((), device=v.device))
    if not bool((leak <= 1e-6).all()):  # NaN counts as a leak
        raise CaptureCheckError(f"layer {layer}: real tokens attend to padding (weight up to {float(leak.amax()):.2e}); "
                                "the model ignores attention_mask here: run the sequences one at a time")
    sink = None if read.sink is None else torch.where(real, read.sink, torch.zeros((), device=v.device))
    off = (sums - 1).abs() if sink is None else torch.minimum((sums - 1).abs(), (sums + sink - 1).abs())
    off = torch.where(real, off, torch.zeros((), device=off.device))
    if not bool((off <= tolerance).all()):
        raise CaptureCheckError(f"layer {layer}: attention rows of real tokens do not sum to 1 (worst off by "
                                f"{float(torch.nan_to_num(off, nan=float('inf')).amax()):.2e}, tolerance {tolerance:.0e})")
    ahead = _ahead(pattern)
    if read.causal and ahead > 1e-6:
        raise CaptureCheckError(f"layer {layer}: a causal layer attends to future positions")
    # a reader that judged causality from the weights saw the padding rows (uniform, future keys included)
    return Read(pattern, read.causal or ahead == 0, sink)


def _ahead(pattern: torch.Tensor, rows: int = 256) -> float:
    """The largest weight above the diagonal, ``rows`` query rows at a time (no full-size temporary)."""
    worst = 0.0
    for start in range(0, pattern.shape[-2], rows):
        block = pattern[..., start:start + rows, start + 1:]
        if block.numel():
            worst = max(worst, float(torch.triu(block).amax()))  # column c is key start + 1 + c: ahead where c >= row
    return worst


def check_pattern(read: Read | torch.Tensor, layer: int, tolerance: float = 1e-4, causal: bool | None = None) -> None:
    """Self-check of one layer's pattern ``[batch, head, q, k]``; raises ``CaptureCheckError`` (see
    ``_rows.check_block``). Runs over row blocks of about 32 MB so that the check never allocates a
    temporary as large as the pattern (it runs inside the trace on every layer)."""
    if isinstance(read, torch.Tensor):
        read = Read(read, bool(causal))
    for _ in read.as_rows().checked(layer, tolerance).blocks():
        pass


def as_pattern(pattern: Any, site: Site) -> torch.Tensor:
    if not isinstance(pattern, torch.Tensor) or pattern.dim() != 4:
        shape = tuple(pattern.shape) if isinstance(pattern, torch.Tensor) else type(pattern).__name__
        raise CaptureCheckError(
            f"layer {site.layer}: the custom reader for {site.path!r} returned {shape}; "
            "it must return a pattern tensor [batch, head, q, k]"
        )
    return pattern.float()


@contextlib.contextmanager
def mha_fastpath_off():
    """``nn.TransformerEncoderLayer`` skips its ``self_attn`` module in eval mode (a fused fast path), which
    would hide the attention from the trace: switch that path off for the duration of the capture."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)
