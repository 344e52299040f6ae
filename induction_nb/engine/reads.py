"""A site's pattern once read, and what happens to it before anyone sees it.

``Read``: the pattern ``[batch, head, q, k]`` (float32) or its row blocks, whether the site is causal, and
the share of each row a learned attention sink takes. Then: ``token_block`` trims positions the model adds
around the tokens (their share joins the sink's), ``mask_padding`` zeroes a padded batch's padding rows and
columns and checks the real rows, ``check_pattern`` is the self-check of a whole pattern (rows plus sink
sum to 1, nothing above the diagonal of a causal layer, finite), row block by row block. Two tests the
site kinds share: ``mask_blocks_future`` (does a mask make a call causal) and ``is_stochastic`` (could a
tensor be a pattern).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ..errors import CaptureCheckError
from .attention_math import repeat_kv_heads
from .rows import DenseRows, Rows

__all__ = [
    "Read",
    "blocks_future",
    "mask_blocks_future",
    "is_stochastic",
    "token_block",
    "mask_padding",
    "check_pattern",
    "reproduces_output",
    "as_4d",
]


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


def blocks_future(pattern: torch.Tensor) -> bool:
    """Whether a square pattern ``[..., q, q]`` is zero above its diagonal."""
    n_q, n_k = pattern.shape[-2:]
    if n_q < 2 or n_q != n_k:
        return False
    return bool((pattern.triu(1) == 0).all())


def mask_blocks_future(mask: torch.Tensor | None) -> bool:
    """Whether a mask (bool "may attend", or additive float) forbids every key after its query."""
    if mask is None or mask.dim() < 2:
        return False
    n_q, n_k = mask.shape[-2:]
    if n_q < 2 or n_q != n_k:
        return False
    future = torch.ones(n_q, n_k, dtype=torch.bool, device=mask.device).triu(1)
    blocked = ~mask if mask.dtype == torch.bool else torch.isneginf(mask)
    return bool(blocked[..., future].all())


def is_stochastic(x: Any) -> bool:
    """A float ``[..., q, k]`` tensor of 3 or 4 dims, square, non-negative, whose rows sum to 1."""
    if not (isinstance(x, torch.Tensor) and x.dim() in (3, 4) and x.is_floating_point()):
        return False
    if x.shape[-1] != x.shape[-2] or x.shape[-1] < 2:
        return False
    o = x.float()
    return bool((o >= 0).all()) and bool(torch.allclose(o.sum(-1), torch.ones_like(o[..., 0]), atol=1e-4))


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
        ahead, behind = pattern[..., :n_tokens], pattern[..., n_k - n_tokens :]
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
        raise CaptureCheckError(
            f"layer {layer}: real tokens attend to padding (weight up to {float(leak.amax()):.2e}); "
            "the model ignores attention_mask here: run the sequences one at a time"
        )
    sink = None if read.sink is None else torch.where(real, read.sink, torch.zeros((), device=v.device))
    off = (sums - 1).abs() if sink is None else torch.minimum((sums - 1).abs(), (sums + sink - 1).abs())
    off = torch.where(real, off, torch.zeros((), device=off.device))
    if not bool((off <= tolerance).all()):
        raise CaptureCheckError(
            f"layer {layer}: attention rows of real tokens do not sum to 1 (worst off by "
            f"{float(torch.nan_to_num(off, nan=float('inf')).amax()):.2e}, tolerance {tolerance:.0e})"
        )
    ahead = _ahead(pattern)
    if read.causal and ahead > 1e-6:
        raise CaptureCheckError(f"layer {layer}: a causal layer attends to future positions")
    # a reader that judged causality from the weights saw the padding rows (uniform, future keys included)
    return Read(pattern, read.causal or ahead == 0, sink)


def _ahead(pattern: torch.Tensor, rows: int = 256) -> float:
    """The largest weight above the diagonal, ``rows`` query rows at a time (no full-size temporary)."""
    worst = 0.0
    for start in range(0, pattern.shape[-2], rows):
        block = pattern[..., start : start + rows, start + 1 :]
        if block.numel():
            worst = max(worst, float(torch.triu(block).amax()))  # column c is key start + 1 + c: ahead where c >= row
    return worst


def check_pattern(read: Read | torch.Tensor, layer: int, tolerance: float = 1e-4, causal: bool | None = None) -> None:
    """Self-check of one layer's pattern ``[batch, head, q, k]``; raises ``CaptureCheckError`` (see
    ``engine.rows.check_block``). Runs over row blocks of about 32 MB so that the check never allocates a
    temporary as large as the pattern (it runs inside the trace on every layer)."""
    if isinstance(read, torch.Tensor):
        read = Read(read, bool(causal))
    for _ in read.as_rows().checked(layer, tolerance).blocks():
        pass


def reproduces_output(value: torch.Tensor, out: Any, read: Read) -> bool:
    """Whether ``pattern @ value`` reproduces what the call returned (``out``). HF kernels return
    ``[batch, q, head, d]``, SDPA ``[batch, head, q, d]``; both layouts are tried (they coincide in shape
    when q == heads). Where a sink takes part of the row, kernels either return ``pattern @ value``
    (gpt-oss) or renormalise the pattern and scale the output by the tokens' share (granite): both pass."""
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


def as_4d(x: torch.Tensor, batch: int | None) -> torch.Tensor:
    """A pattern ``[batch * head, q, k]`` (BART-style ``bmm`` attention) as ``[batch, head, q, k]``."""
    if x.dim() == 3:
        if not batch or x.shape[0] % batch:
            raise CaptureCheckError(
                f"an attention site returned {x.shape[0]} pattern rows, which do not split into a batch of {batch}"
            )
        return x.reshape(batch, -1, *x.shape[1:])
    return x
