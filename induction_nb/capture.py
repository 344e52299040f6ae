"""Capture attention patterns ``[batch, layer, head, q, k]`` from any model through nnsight.

``capture_attention`` returns every requested layer's pattern; ``stream_attention`` hands each layer's
pattern ``[batch, head, q, k]`` to a reducer *inside the trace* and keeps only what the reducer returns,
so callers (the scorer, remote execution) never hold all layers at once.

Every pattern is float32 (fp16/bf16 models are recomputed in float32 from their query and key) and is
self-checked before anyone sees it: finite, rows summing to 1, zeros above the diagonal where the site
is causal. A failure raises ``CaptureCheckError`` naming the layer.
Limits: no padding masks (every row of ``tokens`` is a full sequence); self-attention only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

import torch

from . import _model_info as info
from ._readers import _blocks_future, read_site
from .errors import CaptureCheckError, InputError
from .sites import CustomSites, Site, envoy_at, find_sites

if TYPE_CHECKING:
    from .remote import RemoteConfig

__all__ = ["AttentionPatterns", "capture_attention", "stream_attention", "check_tokens"]

T = TypeVar("T")
Reducer = Callable[[int, torch.Tensor], T]

# Row-sum tolerance by the dtype the model computes in (its softmax rounds at that precision).
_ROW_TOL = {torch.float32: 1e-4, torch.float64: 1e-6, torch.float16: 5e-3, torch.bfloat16: 3e-2}


@dataclass(frozen=True)
class AttentionPatterns:
    """Attention patterns of several layers.

    ``pattern``: ``[batch, layer, head, q, k]`` float32, rows sum to 1. ``layers``: the model layer index
    of each entry along dim 1. ``causal``: keys after the query are masked. ``tokens``: ``[batch, seq]``.
    """

    pattern: torch.Tensor
    layers: tuple[int, ...]
    causal: bool
    tokens: torch.Tensor
    sites: tuple[Site, ...]

    @property
    def n_heads(self) -> int:
        return self.pattern.shape[2]

    @property
    def shape(self) -> torch.Size:
        return self.pattern.shape

    def head(self, layer: int, head: int, batch: int = 0) -> torch.Tensor:
        """One head's pattern ``[q, k]`` by *model* layer index."""
        if layer not in self.layers:
            raise InputError(f"layer {layer} was not captured; captured layers: {list(self.layers)}")
        if not 0 <= head < self.n_heads:
            raise InputError(f"head {head} out of range: the model has {self.n_heads} heads (0..{self.n_heads - 1})")
        return self.pattern[batch, self.layers.index(layer), head]

    def __repr__(self) -> str:
        b, l, h, q, k = self.pattern.shape
        return (
            f"AttentionPatterns(batch={b}, layers={l} {list(self.layers)[:4]}{'...' if l > 4 else ''}, "
            f"heads={h}, q={q}, k={k}, causal={self.causal})"
        )


def capture_attention(
    model: Any,
    tokens: torch.Tensor | Sequence[Sequence[int]],
    layers: int | Iterable[int] | None = None,
    *,
    sites: CustomSites | None = None,
    remote: "bool | RemoteConfig" = False,
) -> AttentionPatterns:
    """Capture the attention patterns of ``model`` on ``tokens`` ``[batch, seq]`` (or ``[seq]``).

    ``model``: an nnsight model, a HuggingFace model or any ``torch.nn.Module`` taking token ids.
    ``layers``: layer indices (default: all). ``sites``: the escape hatch for attention that discovery
    cannot find (see ``CustomSites``). ``remote``: run on NDIF (``True``, or a ``RemoteConfig``); the
    model must then be an nnsight model that names a served model, e.g. ``LanguageModel(repo_id)``.
    """
    ctx = _prepare(model, tokens, layers, sites, remote)
    per_layer = _run(ctx, _keep)
    try:
        stacked = torch.stack([p for _, p, _ in per_layer], dim=1)
    except RuntimeError as e:
        shapes = {layer: tuple(p.shape) for layer, p, _ in per_layer}
        raise CaptureCheckError(f"layers have different pattern shapes and cannot be stacked: {shapes}") from e
    return AttentionPatterns(
        pattern=stacked,
        layers=tuple(layer for layer, _, _ in per_layer),
        causal=all(c for _, _, c in per_layer),
        tokens=ctx.tokens,
        sites=ctx.sites,
    )


def _keep(layer: int, pattern: torch.Tensor) -> torch.Tensor:
    return pattern


def stream_attention(
    model: Any,
    tokens: torch.Tensor | Sequence[Sequence[int]],
    reducer: Reducer[T],
    layers: int | Iterable[int] | None = None,
    *,
    sites: CustomSites | None = None,
    remote: "bool | RemoteConfig" = False,
) -> list[T]:
    """Run ``reducer(layer, pattern)`` inside the trace on each layer's checked pattern
    ``[batch, head, q, k]`` (float32) and return the reducer's results in layer order.

    Only what the reducer returns leaves the trace; the pattern itself is dropped after each layer.
    The reducer must not modify the pattern (it may be the model's own tensor).
    """
    ctx = _prepare(model, tokens, layers, sites, remote)
    return [value for _, value, _ in _run(ctx, reducer)]


@dataclass(frozen=True)
class _Context:
    model: Any
    module: torch.nn.Module
    tokens: torch.Tensor
    sites: tuple[Site, ...]
    tolerance: float
    remote: Any = None


def _prepare(model: Any, tokens: Any, layers: Any, sites: CustomSites | None, remote: Any = False) -> _Context:
    nn_model = info.as_nnsight(model)
    if remote:
        from .remote import resolve

        remote = resolve(nn_model, remote)
    module = info.torch_module(nn_model)
    tokens = check_tokens(tokens, module)
    if module.training and not remote:  # remotely, the server's copy of the model is what runs
        raise InputError(
            f"{type(module).__name__} is in training mode (dropout would perturb the patterns); call model.eval() first"
        )
    if sites is not None:
        if not isinstance(sites, CustomSites):
            raise InputError(f"sites must be an induction_nb.CustomSites, not {type(sites).__name__}")
        all_sites = sites.expand()
    else:
        all_sites = find_sites(nn_model, module, tokens[:1, : min(tokens.shape[1], 8)], remote=remote or None)
    chosen = _select_layers(layers, len(all_sites))
    tolerance = _ROW_TOL.get(info.model_dtype(module), 1e-3)
    return _Context(nn_model, module, tokens, tuple(all_sites[i] for i in chosen), tolerance, remote or None)


def _run(ctx: _Context, reduce: Callable[[int, torch.Tensor], Any]) -> list[tuple[int, Any, bool]]:
    """One trace over ``ctx.tokens``: each site's pattern is read, checked and reduced *inside* the trace;
    returns ``(layer, reduce(layer, pattern), causal)`` per site. Everything the trace body calls lives at
    module level in induction_nb, so that a remote request ships it by value."""
    import nnsight

    # plain locals: a remote request serialises what the body references, and ctx holds the model
    model, sites, tolerance = ctx.model, ctx.sites, ctx.tolerance
    out = None
    try:
        with torch.no_grad(), _mha_fastpath_off(), _trace(ctx) as tracer:
            out = nnsight.save([])
            for site in sites:
                out.append(_read_layer(model, site, tolerance, reduce))
            tracer.stop()
    except Exception as e:
        if ctx.remote is None:
            raise
        from .remote import translate_error

        err = translate_error(e, ctx.remote)
        if err is e:
            raise
        raise err from e
    out = list(out or [])
    done = {layer for layer, _, _ in out}
    missing = [s.layer for s in ctx.sites if s.layer not in done]
    if missing:
        raise CaptureCheckError(
            f"the attention of layer(s) {missing} never ran during the forward pass "
            f"(site {ctx.sites[0].path!r}...); if the model skips these modules, pass sites=CustomSites(...)"
        )
    return out


def _trace(ctx: _Context) -> Any:
    if not ctx.remote:
        return ctx.model.trace(ctx.tokens)
    from . import remote

    return remote.remote_trace(ctx.model, ctx.tokens, ctx.remote)


def _read_layer(model: Any, site: Site, tolerance: float, reduce: Callable) -> tuple[int, Any, bool]:
    """Inside the trace: one site's pattern ``[batch, head, q, k]``, checked, then reduced."""
    envoy = envoy_at(model, site.path)
    node = getattr(envoy.source, site.op) if site.op else envoy
    args, kwargs = node.inputs
    output = node.output if site.needs_output else None
    if site.kind == "custom":
        pattern = _as_pattern(site.reader(args, kwargs, output), site)
        causal = site.causal if site.causal is not None else _blocks_future(pattern)
    else:
        target = envoy._module if site.kind == "mha" else None
        pattern, causal = read_site(site.kind, args, kwargs, output, target)
    check_pattern(pattern, causal, site.layer, tolerance)
    return site.layer, reduce(site.layer, pattern), causal


def _as_pattern(pattern: Any, site: Site) -> torch.Tensor:
    if not isinstance(pattern, torch.Tensor) or pattern.dim() != 4:
        shape = tuple(pattern.shape) if isinstance(pattern, torch.Tensor) else type(pattern).__name__
        raise CaptureCheckError(
            f"layer {site.layer}: the custom reader for {site.path!r} returned {shape}; "
            "it must return a pattern tensor [batch, head, q, k]"
        )
    return pattern.float()


def check_pattern(pattern: torch.Tensor, causal: bool, layer: int, tolerance: float = 1e-4) -> None:
    """Self-check of one layer's pattern ``[batch, head, q, k]``; raises ``CaptureCheckError``.

    Runs in chunks of about 32 MB so that the check never allocates a temporary as large as the
    pattern (it runs inside the trace on every layer). A NaN or inf anywhere makes its row sum non-finite.
    """
    n_q, n_k = pattern.shape[-2:]
    flat = pattern.reshape(-1, n_q, n_k)
    step = max(1, (8 << 20) // max(1, n_q * n_k))
    err = leak = 0.0
    for start in range(0, flat.shape[0], step):
        chunk = flat[start : start + step]
        rows = chunk.sum(-1)
        if not torch.isfinite(rows).all():
            raise CaptureCheckError(f"layer {layer}: the attention pattern contains NaN or inf")
        err = max(err, (rows - 1).abs().max().item())
        if causal and n_k > 1:
            leak = max(leak, chunk.triu(1).abs().amax().item())
    if err > tolerance:
        raise CaptureCheckError(
            f"layer {layer}: attention rows do not sum to 1 (worst row off by {err:.2e}, tolerance {tolerance:.0e}); "
            "the site may not be a softmax attention pattern (attention sinks, a wrong custom reader)"
        )
    if leak > 1e-6:
        raise CaptureCheckError(
            f"layer {layer}: a causal layer attends to future positions (weight {leak:.2e} above the diagonal)"
        )


def _select_layers(layers: Any, n_layers: int) -> list[int]:
    if layers is None:
        return list(range(n_layers))
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    try:
        chosen = sorted({int(i) for i in layers})
    except (TypeError, ValueError):
        raise InputError(f"layers must be an int or a list of ints, got {layers!r}") from None
    if not chosen:
        raise InputError("layers is empty; pass None for all layers")
    bad = [i for i in chosen if not 0 <= i < n_layers]
    if bad:
        raise InputError(f"layer(s) {bad} out of range: the model has {n_layers} layers (0..{n_layers - 1})")
    return chosen


def check_tokens(tokens: Any, module: torch.nn.Module) -> torch.Tensor:
    """Validate token ids against ``module`` and return them as ``[batch, seq]`` long on its device."""
    if not isinstance(tokens, torch.Tensor):
        try:
            tokens = torch.as_tensor(tokens)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(
                f"tokens must be a tensor of token ids [batch, seq], got {type(tokens).__name__}"
            ) from None
    if tokens.dtype == torch.bool or tokens.is_floating_point() or tokens.is_complex():
        raise InputError(
            f"tokens must be integer token ids, got dtype {tokens.dtype}; convert with tokens.long() "
            "(embeddings are not accepted: pass the ids the model embeds)"
        )
    if tokens.dim() == 1:
        tokens = tokens.unsqueeze(0)
    if tokens.dim() != 2:
        raise InputError(f"tokens must have shape [batch, seq] or [seq], got {tuple(tokens.shape)}")
    batch, seq = tokens.shape
    if batch == 0:
        raise InputError("tokens is an empty batch (batch size 0); pass at least one sequence")
    if seq < 2:
        raise InputError(f"sequences must have at least 2 tokens to have an attention pattern, got {seq}")
    device = info.model_device(module)
    if tokens.device != device and device.type != "meta":  # a meta model runs remotely: keep ids local
        if tokens.device.type == "meta":
            raise InputError("tokens are on the meta device and hold no values; create them on a real device")
        tokens = tokens.to(device)
    tokens = tokens.long()
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0:
        raise InputError(f"token ids must be >= 0, found {low}")
    vocab = info.vocab_size(module)
    if vocab is not None and high >= vocab:
        raise InputError(
            f"token id {high} is out of range: the model's vocabulary has {vocab} entries (ids 0..{vocab - 1})"
        )
    limit = info.max_positions(module)
    if limit is not None and seq > limit:
        raise InputError(
            f"sequence length {seq} exceeds the model's {limit} positions; use sequences of at most {limit} tokens"
        )
    return tokens


@contextlib.contextmanager
def _mha_fastpath_off():
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
