"""Capture attention patterns ``[batch, layer, head, q, k]`` from any model through nnsight.

``capture_attention`` returns every requested layer's pattern; ``stream_attention`` hands each layer's
pattern ``[batch, head, q, k]`` to a reducer *inside the trace* and keeps only what the reducer returns,
so callers (the scorer, remote execution) never hold all layers at once.

Every pattern is float32 (fp16/bf16 models are recomputed in float32 from their query and key) and is
self-checked before anyone sees it: finite, rows summing to 1 (with the sink's share, where a learned
attention sink takes part of each row), zeros above the diagonal where the site is causal. A failure
raises ``CaptureCheckError`` naming the layer. Layers are the model's own layer indices.
Limits: no padding masks (every row of ``tokens`` is a full sequence); self-attention only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

import torch

from . import _model_info as info
from ._engine import ROW_TOLERANCE, mha_fastpath_off, read_layer, trace
from .errors import CaptureCheckError, InductionNBError, InputError
from .sites import CustomSites, Site, find_sites

if TYPE_CHECKING:
    from .remote import RemoteConfig

__all__ = ["AttentionPatterns", "capture_attention", "stream_attention", "check_tokens"]

T = TypeVar("T")
Reducer = Callable[[int, torch.Tensor], T]

@dataclass(frozen=True)
class AttentionPatterns:
    """Attention patterns of several layers.

    ``pattern``: ``[batch, layer, head, q, k]`` float32, rows sum to 1, exactly the weights eager
    ``output_attentions`` gives. ``layers``: the model's layer index of each entry along dim 1 (layers
    without attention are absent, not renumbered). ``causal``: keys after the query are masked.
    ``tokens``: ``[batch, seq]``. ``sink_mass``: ``[batch, layer, head, q]``, the share of each row that
    goes to no token: a learned attention sink (gpt-oss, deepseek-v4: rows then sum to ``1 - sink_mass``)
    or positions the model puts before the tokens (CPM-Ant's prompt); ``None`` where no layer has one
    (zeros for the layers without one otherwise). ``heads``: the number of heads of each layer where
    layers differ in it (``None`` where they all have ``n_heads``); the missing heads of a smaller layer
    are NaN in ``pattern``.
    """

    pattern: torch.Tensor
    layers: tuple[int, ...]
    causal: bool
    tokens: torch.Tensor
    sites: tuple[Site, ...]
    sink_mass: torch.Tensor | None = None
    heads: tuple[int, ...] | None = None

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
        n = self.n_heads if self.heads is None else self.heads[self.layers.index(layer)]
        if not 0 <= head < n:
            raise InputError(f"head {head} out of range: layer {layer} has {n} heads (0..{n - 1})")
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
    per_layer = _run(ctx, _Keep())
    heads = tuple(p.shape[1] for _, (p, _), _ in per_layer)
    shapes = {(p.shape[0], *p.shape[2:]) for _, (p, _), _ in per_layer}
    if len(shapes) > 1:
        found = {layer: tuple(p.shape) for layer, (p, _), _ in per_layer}
        raise CaptureCheckError(f"layers have different pattern shapes and cannot be stacked: {found}; capture "
                                "them separately with layers=[...]")
    stacked = torch.stack([_pad_heads(p, max(heads)) for _, (p, _), _ in per_layer], dim=1)
    sinks = [s for _, (_, s), _ in per_layer]
    sink_mass = None
    if any(s is not None for s in sinks):
        zeros = torch.zeros(stacked.shape[0], max(heads), stacked.shape[3], device=stacked.device)
        sink_mass = torch.stack([zeros if s is None else _pad_heads(s.to(stacked.device), max(heads)) for s in sinks],
                                dim=1)
    return AttentionPatterns(
        pattern=stacked,
        layers=tuple(layer for layer, _, _ in per_layer),
        causal=all(c for _, _, c in per_layer),
        tokens=ctx.tokens,
        sites=ctx.sites,
        sink_mass=sink_mass,
        heads=heads if len(set(heads)) > 1 else None,
    )


def _pad_heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[batch, head, ...]`` padded with NaN to ``n`` heads (a layer with fewer heads than others)."""
    if x.shape[1] == n:
        return x
    pad = torch.full((x.shape[0], n - x.shape[1], *x.shape[2:]), float("nan"), dtype=x.dtype, device=x.device)
    return torch.cat([x, pad], dim=1)


class _Keep:
    """The identity reducer: the pattern and the sink's share, as they are."""

    accepts_sink = True  # a class attribute: a remote request ships the class by value, attributes included

    def __call__(self, layer: int, pattern: torch.Tensor, sink: torch.Tensor | None):
        return pattern, sink


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
    The reducer must not modify the pattern (it may be the model's own tensor). A reducer with the
    attribute ``accepts_sink = True`` is called as ``reducer(layer, pattern, sink_mass)``, ``sink_mass``
    ``[batch, head, q]`` or ``None`` (see ``AttentionPatterns``).
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
    chosen = _select_layers(layers, [s.layer for s in all_sites])
    tolerance = ROW_TOLERANCE.get(info.model_dtype(module), 1e-3)
    return _Context(nn_model, module, tokens, tuple(s for s in all_sites if s.layer in chosen), tolerance,
                    remote or None)


def _run(ctx: _Context, reduce: Callable[..., Any]) -> list[tuple[int, Any, bool]]:
    """One trace over ``ctx.tokens``: each site's pattern is read, checked and reduced *inside* the trace;
    returns ``(layer, reduce(layer, pattern), causal)`` per site. Everything the trace body calls lives at
    module level in induction_nb, so that a remote request ships it by value."""
    import nnsight

    # plain locals: a remote request serialises what the body references, and ctx holds the model
    model, sites, tolerance = ctx.model, ctx.sites, ctx.tolerance
    batch, n_tokens = ctx.tokens.shape
    out = None
    try:
        with torch.no_grad(), mha_fastpath_off(), trace(model, ctx.tokens, ctx.remote) as tracer:
            out = nnsight.save([])
            for site in sites:
                out.append(read_layer(model, tracer, site, tolerance, reduce, n_tokens, batch))
            tracer.stop()
    except Exception as e:
        raise _translate(e, ctx) from e
    out = list(out or [])
    done = {layer for layer, _, _ in out}
    missing = [s.layer for s in ctx.sites if s.layer not in done]
    out = [x for x in out if x[2] is not None]  # causal None: not attention among the tokens (pooled)
    if not out:
        raise CaptureCheckError("no attention layer covers the tokens (every site attends over other positions); "
                                "name the sites with sites=CustomSites(...)")
    if missing:
        raise CaptureCheckError(
            f"the attention of layer(s) {missing} never ran during the forward pass "
            f"(site {ctx.sites[0].path!r}...); if the model skips these modules, pass sites=CustomSites(...)"
        )
    return out


def _translate(e: Exception, ctx: _Context) -> Exception:
    """Our own error for a failure inside the trace: remote failures by kind; nnsight's bookkeeping errors
    (an operation that did not run, or ran in another order) as a ``CaptureCheckError`` naming the sites."""
    if ctx.remote is not None:
        from .remote import translate_error

        err = translate_error(e, ctx.remote)
        if err is not e:
            return err
    if isinstance(e, InductionNBError) or not type(e).__module__.startswith("nnsight"):
        return e
    where = ", ".join(f"L{s.layer} {s.path}{'.' + s.op if s.op else ''}" for s in ctx.sites[:3])
    return CaptureCheckError(
        f"reading the attention sites failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
        f"sites: {where}{'...' if len(ctx.sites) > 3 else ''}. The forward may take another branch for these "
        "tokens than for the discovery probe; name the sites with sites=CustomSites(...)"
    )


def _select_layers(layers: Any, labels: list[int]) -> set[int]:
    """The requested model layer indices, each one the model has attention in."""
    if layers is None:
        return set(labels)
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    try:
        chosen = {int(i) for i in layers}
    except (TypeError, ValueError):
        raise InputError(f"layers must be an int or a list of ints, got {layers!r}") from None
    if not chosen:
        raise InputError("layers is empty; pass None for all layers")
    bad = sorted(chosen - set(labels))
    if bad:
        raise InputError(f"layer(s) {bad} out of range: the model has {len(set(labels))} layers with attention "
                         f"(layer indices {_ranges(labels)})")
    return chosen


def _ranges(labels: list[int]) -> str:
    labels = sorted(set(labels))
    if labels == list(range(labels[0], labels[-1] + 1)) and len(labels) > 3:
        return f"{labels[0]}..{labels[-1]}"
    return ", ".join(map(str, labels))


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
