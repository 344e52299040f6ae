"""The one place that runs a model for induction_nb: a trace, locally or on NDIF, and the reading of one
attention site's pattern inside it.

Everything the trace body calls lives at module level in induction_nb, so that a remote request ships it
by value (``nnsight.register``). A site is read, trimmed to the given tokens, self-checked and reduced
*inside* the trace, so that only what the reducer returns leaves the model.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch

from ._readers import Read, blocks_future, read_site
from .errors import CaptureCheckError
from .sites import Site, envoy_at, op_node

__all__ = ["probe_trace", "trace", "read_layer", "check_pattern", "mha_fastpath_off", "ROW_TOLERANCE"]

# Row-sum tolerance by the dtype the model computes in (its softmax rounds at that precision).
ROW_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-6, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def trace(model: Any, tokens: Any, remote: Any = None) -> Any:
    """``model.trace(tokens)``, on ``remote`` (a resolved ``RemoteConfig``) when given."""
    if remote is None:
        return model.trace(tokens)
    from .remote import remote_trace

    return remote_trace(model, tokens, remote)


probe_trace = trace


def read_layer(model: Any, tracer: Any, site: Site, tolerance: float, reduce: Callable, n_tokens: int,
               batch: int) -> tuple[int, Any, bool | None]:
    """Inside a trace: ``(site.layer, reduce(...), causal)`` for one site application, or
    ``(site.layer, None, None)`` where its attention does not cover the tokens (Funnel's pooled blocks
    attend over fewer positions: not attention among the tokens, left out). ``reduce``
    gets ``(layer, pattern [batch, head, q, k])``, and the sink's share ``[batch, head, q]`` (or ``None``)
    as a third argument where it sets ``accepts_sink = True``."""
    if site.call == 0:
        return _read(model, site, tolerance, reduce, n_tokens, batch)
    box = []
    for _ in tracer.iter[site.call]:  # the site module's (call + 1)-th application in this forward
        box.append(_read(model, site, tolerance, reduce, n_tokens, batch))
    return box[0]


def _read(model: Any, site: Site, tolerance: float, reduce: Callable, n_tokens: int, batch: int):
    envoy = envoy_at(model, site.path)
    node = op_node(envoy, site.op)
    args, kwargs = node.inputs
    output = node.output if site.needs_output else None
    if site.kind == "custom":
        pattern = _as_pattern(site.reader(args, kwargs, output), site)
        read = Read(pattern, site.causal if site.causal is not None else blocks_future(pattern))
    else:
        read = read_site(site.kind, args, kwargs, output, envoy._module if site.kind == "mha" else None, batch)
    read = _token_block(read, n_tokens, site.layer)
    if min(read.pattern.shape[-2:]) < n_tokens:
        return site.layer, None, None
    check_pattern(read, site.layer, tolerance)
    if getattr(reduce, "accepts_sink", False):
        return site.layer, reduce(site.layer, read.pattern, read.sink), read.causal
    return site.layer, reduce(site.layer, read.pattern), read.causal


def _token_block(read: Read, n_tokens: int, layer: int) -> Read:
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
        n_k_extra = n_k - n_tokens
        keep = slice(n_k_extra, n_k)
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


def _as_pattern(pattern: Any, site: Site) -> torch.Tensor:
    if not isinstance(pattern, torch.Tensor) or pattern.dim() != 4:
        shape = tuple(pattern.shape) if isinstance(pattern, torch.Tensor) else type(pattern).__name__
        raise CaptureCheckError(
            f"layer {site.layer}: the custom reader for {site.path!r} returned {shape}; "
            "it must return a pattern tensor [batch, head, q, k]"
        )
    return pattern.float()


def check_pattern(read: Read | torch.Tensor, layer: int, tolerance: float = 1e-4, causal: bool | None = None) -> None:
    """Self-check of one layer's pattern ``[batch, head, q, k]``; raises ``CaptureCheckError``.

    Rows must sum to 1, or, where a sink takes part of the row, to 1 minus the sink's share (or to 1 where
    the kernel renormalises over the tokens, as granite's does). Runs in chunks of about 32 MB so that the
    check never allocates a temporary as large as the pattern (it runs inside the trace on every layer).
    A NaN or inf anywhere makes its row sum non-finite."""
    if isinstance(read, torch.Tensor):
        read = Read(read, bool(causal))
    pattern, sink = read.pattern, read.sink
    n_q, n_k = pattern.shape[-2:]
    flat = pattern.reshape(-1, n_q, n_k)
    flat_sink = None if sink is None else sink.reshape(-1, n_q)
    step = max(1, (8 << 20) // max(1, n_q * n_k))
    err = leak = 0.0
    for start in range(0, flat.shape[0], step):
        chunk = flat[start : start + step]
        rows = chunk.sum(-1)
        if not torch.isfinite(rows).all():
            raise CaptureCheckError(f"layer {layer}: the attention pattern contains NaN or inf")
        off = (rows - 1).abs()
        if flat_sink is not None:
            off = torch.minimum(off, (rows + flat_sink[start : start + step] - 1).abs())
        err = max(err, off.max().item())
        if read.causal and n_k > 1:
            leak = max(leak, chunk.triu(1).abs().amax().item())
    if err > tolerance:
        raise CaptureCheckError(
            f"layer {layer}: attention rows do not sum to 1{' (with the sink)' if sink is not None else ''} "
            f"(worst row off by {err:.2e}, tolerance {tolerance:.0e}); the site may not be a softmax attention "
            "pattern (a wrong custom reader, an attention variant the reader does not know)"
        )
    if leak > 1e-6:
        raise CaptureCheckError(
            f"layer {layer}: a causal layer attends to future positions (weight {leak:.2e} above the diagonal)"
        )


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
