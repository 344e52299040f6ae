"""Capture attention patterns ``[batch, layer, head, q, k]`` from any model through nnsight.

``capture_attention`` returns every requested layer's pattern; ``stream_attention`` hands each layer's
pattern ``[batch, head, q, k]`` to a reducer *inside the trace* and keeps only what the reducer returns,
so callers (the scorer, remote execution) never hold all layers at once.

Every pattern is float32 (fp16/bf16 models are recomputed in float32 from their query and key) and is
self-checked before anyone sees it: finite, rows summing to 1 (with the sink's share, where a learned
attention sink takes part of each row), zeros above the diagonal where the site is causal. A failure
raises ``CaptureCheckError`` naming the layer. Layers are the model's own layer indices.
Padded batches: pass ``attention_mask`` with the ids, or strings (the tokenizer pads them); padding rows
and columns are 0 in the pattern and never checked, the real rows are (see ``engine.batch``).
Encoder-decoders: ``stack=`` picks one attention stack (``engine.seq2seq``): the decoder's self-attention
over the tokens by default, ``"encoder"`` its encoder's (over the same tokens), ``"cross"`` the decoder's
attention over the encoder's output (queries: the decoder's tokens, keys: the encoder's); stacks are never
mixed in one grid. Limits: a padded batch is read whole (no row-block streaming).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from .._validate import is_int
from ..errors import CaptureCheckError, InputError, warn_user
from .engine import Engine, read_layer
from .seq2seq import Stack, select_stack, stack_size
from .sites import CustomSites, Site
from .tracing import mha_fastpath_off

if TYPE_CHECKING:
    from .remote import RemoteConfig

__all__ = ["AttentionPatterns", "capture_attention", "capture_head", "stream_attention"]

T = TypeVar("T")
Reducer = Callable[[int, torch.Tensor], T]


@dataclass(frozen=True)
class AttentionPatterns:
    """Attention patterns of several layers.

    ``pattern``: ``[batch, layer, head, q, k]`` float32, rows sum to 1, exactly the weights eager
    ``output_attentions`` gives. ``layers``: the model's layer index of each entry along dim 1 (layers
    without attention are absent, not renumbered). ``causal``: keys after the query are masked.
    ``tokens``: ``[batch, seq]``. ``attention_mask``: ``[batch, seq]`` bool, ``True`` on real tokens
    (``None`` without padding; padding rows and columns of ``pattern`` are 0). ``sink_mass``:
    ``[batch, layer, head, q]``, the share of each row that goes to no token: a learned attention sink
    (gpt-oss, deepseek-v4: rows then sum to ``1 - sink_mass``) or positions the model puts before the
    tokens (CPM-Ant's prompt); ``None`` where no layer has one (zeros for the layers without one
    otherwise). ``heads``: the number of heads of each layer where layers differ in it (``None`` where
    they all have ``n_heads``); the missing heads of a smaller layer are NaN in ``pattern``. ``stack``:
    the attention stack captured (``engine.seq2seq.Stack``; ``"decoder"`` for a one-stack model).

    Returned by ``capture_attention``; ``head(layer, head)`` reads one head by its *model* layer index.

    Attributes:
        pattern: ``[batch, layer, head, q, k]`` float32 attention weights, rows summing to 1 (to
            ``1 - sink_mass`` where a sink takes part of the row), exactly what eager ``output_attentions``
            gives; padding rows and columns are 0, the missing heads of a smaller layer NaN.
        layers: the model's layer index of each entry along dim 1 (layers without attention are absent,
            not renumbered).
        causal: ``True`` where every captured layer masks the keys after the query.
        tokens: ``[batch, seq]`` the token ids the patterns were captured on (strings already tokenised,
            ragged lists padded).
        sites: one ``Site`` per captured layer: where its attention was read (module path, operation,
            reader).
        sink_mass: ``[batch, layer, head, q]`` the share of each row that goes to no token (a learned
            attention sink, as in gpt-oss or deepseek-v4, or positions before the tokens, as CPM-Ant's
            prompt); ``None`` where no layer has one, zeros for the layers without one otherwise.
        heads: the number of heads of each layer where layers differ in it; ``None`` where they all have
            ``n_heads``.
        attention_mask: ``[batch, seq]`` bool, ``True`` on real tokens; ``None`` without padding.
        stack: the attention stack captured: ``"decoder"`` (a one-stack model, or an encoder-decoder's
            decoder self-attention), ``"encoder"`` or ``"cross"``.

    Examples:
        >>> from induction_nb import HandBuiltInduction, PatternGenerator, capture_attention
        >>> tokens = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=2).tokens
        >>> patterns = capture_attention(HandBuiltInduction(), tokens)
        >>> patterns
        AttentionPatterns(batch=2, layers=2 [0, 1], heads=4, q=32, k=32, causal=True)
        >>> patterns.layers, patterns.n_heads, patterns.causal, patterns.stack
        ((0, 1), 4, True, 'decoder')
        >>> patterns.head(1, 0).shape  # L1H0 of the first sequence: [q, k]
        torch.Size([32, 32])
        >>> patterns.sink_mass is None, patterns.heads is None, patterns.attention_mask is None
        (True, True, True)
    """

    pattern: torch.Tensor
    layers: tuple[int, ...]
    causal: bool
    tokens: torch.Tensor
    sites: tuple[Site, ...]
    sink_mass: torch.Tensor | None = None
    heads: tuple[int, ...] | None = None
    attention_mask: torch.Tensor | None = None
    stack: Stack = "decoder"

    @property
    def n_heads(self) -> int:
        """The number of heads along dim 2 of ``pattern`` (the largest layer's where layers differ)."""
        return self.pattern.shape[2]

    @property
    def shape(self) -> torch.Size:
        """``pattern``'s shape: ``[batch, layer, head, q, k]``."""
        return self.pattern.shape

    def head(self, layer: int, head: int, batch: int = 0) -> torch.Tensor:
        """One head's pattern ``[q, k]`` by *model* layer index.

        Args:
            layer: the model's layer index (one of ``layers``), not the position along dim 1.
            head: the head index within that layer, ``0 .. heads - 1``.
            batch: which sequence of the batch (default the first).

        Returns:
            torch.Tensor: ``[q, k]`` float32, a view into ``pattern``.

        Raises:
            InputError: when ``layer`` was not captured or ``head`` is out of range for that layer.
        """
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
    tokens: torch.Tensor | Sequence[Sequence[int]] | str | Sequence[str],
    layers: int | Iterable[int] | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    sites: CustomSites | None = None,
    remote: bool | RemoteConfig = False,
    stack: Stack | None = None,
) -> AttentionPatterns:
    """Capture the attention patterns of ``model`` on ``tokens`` ``[batch, seq]`` (or ``[seq]``).

    ``model``: an nnsight model, a HuggingFace model or any ``torch.nn.Module`` taking token ids.
    ``tokens``: ids; a ragged list of id lists (padded on the right); or a string / list of strings
    (the model's tokenizer, padded on its side). ``attention_mask``: ``[batch, seq]``, 1 on real tokens,
    0 on padding (left or right). ``layers``: layer indices (default: all). ``sites``: the escape hatch
    for attention that discovery cannot find (see ``CustomSites``). ``remote``: run on NDIF (``True``, or
    a ``RemoteConfig``); the model must then be an nnsight model that names a served model. ``stack``: an
    encoder-decoder's ``"decoder"`` (default), ``"encoder"`` or ``"cross"`` attention (module docstring).

    Every pattern is float32 (fp16/bf16 models are recomputed in float32 from their query and key) and is
    self-checked before it is returned: finite, rows summing to 1 (with a learned sink's share), zeros above
    the diagonal where the site is causal. The whole ``[batch, layer, head, q, k]`` tensor is held in
    memory: for long sequences or many layers, ``stream_attention`` (a reduction per layer) or
    ``capture_head`` (one head, row block by row block) hold less.

    Args:
        model: the model: an nnsight model, a Hugging Face model or any ``torch.nn.Module`` that takes
            token ids (``model(tokens)``), in eval mode; a name or path is loaded with ``load_model``.
        tokens: token ids ``[batch, seq]`` or ``[seq]`` (a tensor or nested lists; at least 2 tokens, ids
            inside the vocabulary); a ragged list of id lists (padded on the right); or a string / list of
            strings, tokenised by the model's tokenizer (padded on its side).
        layers: the model's layer indices to capture: one ``int``, an iterable of them, or ``None``
            (default) for every layer with attention.
        attention_mask: ``[batch, seq]``, 1 on real tokens and 0 on padding (left or right), for a padded
            tensor of ids; ``None`` (default) without padding. Not with strings (the tokenizer makes it)
            nor with a ragged list.
        sites: a ``CustomSites`` naming each layer's attention module and how to read it, for attention
            that discovery cannot find; ``None`` (default): discovered automatically.
        remote: ``False`` (default) runs locally; ``True`` or a ``RemoteConfig`` runs the trace on NDIF
            (the model must then be an nnsight model naming a served model, e.g.
            ``load_model(name, remote=True)``).
        stack: for an encoder-decoder, ``"decoder"`` (default: the decoder's self-attention),
            ``"encoder"`` or ``"cross"`` (queries: the decoder's tokens, keys: the encoder's); ``None``
            means ``"decoder"``.

    Returns:
        AttentionPatterns: ``pattern`` ``[batch, layer, head, q, k]`` float32 with the model's layer
        indices in ``layers``, plus the tokens, the sites read, the sink mass and the padding mask.

    Raises:
        InputError: when the tokens are malformed (wrong shape, fewer than 2 tokens, ids out of the
            vocabulary, strings without a tokenizer), ``attention_mask`` is malformed, ``layers`` is empty or
            names a layer without attention, ``sites`` is not a ``CustomSites``, ``remote`` is not ``True``,
            ``False`` or a ``RemoteConfig``, or the model is in training mode or random in eval mode
            (call ``model.eval()``; the message names the module).
        AttentionNotFoundError: when discovery finds no attention in the model, or its forward fails on
            token ids (pass ``sites=CustomSites(...)``).
        CaptureCheckError: when a pattern fails its self-check (NaN or inf, rows not summing to 1, a
            causal layer attending ahead, real tokens attending to padding), a layer's attention never runs,
            or layers' patterns have shapes that cannot be stacked (capture them separately with
            ``layers=``).
        ModelLoadError: when ``model`` is a name or path that cannot be loaded (see ``load_model``).
        RemoteExecutionError: when a remote run fails (no API key, host unreachable, model not served,
            job failed, connection lost); nothing partial is returned.

    Examples:
        >>> from induction_nb import HandBuiltInduction, PatternGenerator, capture_attention
        >>> model = HandBuiltInduction()  # L0H0 previous-token head, L1H0 induction head
        >>> tokens = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=2).tokens
        >>> patterns = capture_attention(model, tokens)  # a random block of 16 tokens, twice
        >>> patterns.shape  # [batch, layer, head, q, k]
        torch.Size([2, 2, 4, 32, 32])
        >>> int(patterns.head(0, 0)[20].argmax())  # the previous token
        19
        >>> int(patterns.head(1, 0)[20].argmax())  # the token after the earlier copy: 20 - 16 + 1
        5
        >>> import torch
        >>> bool(torch.allclose(patterns.pattern.sum(-1), torch.ones(2, 2, 4, 32), atol=1e-4))
        True
        >>> capture_attention(model, tokens, layers=1).layers
        (1,)
    """
    ctx = _prepare(model, tokens, layers, sites, remote, attention_mask, stack)
    per_layer = _run(ctx, _Keep())
    heads = tuple(p.shape[1] for _, (p, _), _ in per_layer)
    shapes = {(p.shape[0], *p.shape[2:]) for _, (p, _), _ in per_layer}
    if len(shapes) > 1:
        found = {layer: tuple(p.shape) for layer, (p, _), _ in per_layer}
        raise CaptureCheckError(
            f"layers have different pattern shapes and cannot be stacked: {found}; capture "
            "them separately with layers=[...]"
        )
    stacked = torch.stack([_pad_heads(p, max(heads)) for _, (p, _), _ in per_layer], dim=1)
    sinks = [s for _, (_, s), _ in per_layer]
    sink_mass = None
    if any(s is not None for s in sinks):
        zeros = torch.zeros(stacked.shape[0], max(heads), stacked.shape[3], device=stacked.device)
        sink_mass = torch.stack(
            [zeros if s is None else _pad_heads(s.to(stacked.device), max(heads)) for s in sinks], dim=1
        )
    return AttentionPatterns(
        pattern=stacked,
        layers=tuple(layer for layer, _, _ in per_layer),
        causal=all(c for _, _, c in per_layer),
        tokens=ctx.tokens,
        sites=ctx.sites,
        sink_mass=sink_mass,
        heads=heads if len(set(heads)) > 1 else None,
        attention_mask=ctx.batch.mask,
        stack=ctx.sites[0].stack,
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


def capture_head(
    model: Any,
    tokens: torch.Tensor | Sequence[Sequence[int]],
    layer: int,
    head: int,
    *,
    attention_mask: torch.Tensor | None = None,
    sites: CustomSites | None = None,
    remote: bool | RemoteConfig = False,
    stack: Stack | None = None,
) -> torch.Tensor:
    """One head's pattern ``[batch, q, k]`` (float32), built row block by row block: at 4k tokens that is
    the 64 MB of one head, never the layer's ``[head, T, T]`` (what a long-context view needs). A padded
    batch (``attention_mask``, strings) is read whole, its padding rows and columns 0.

    Each row block is self-checked as it is read (finite, rows summing to 1, causal), as in
    ``capture_attention``; the result equals ``capture_attention(...).pattern[:, i, head]`` for that layer.

    Args:
        model: the model: an nnsight model, a Hugging Face model or any ``torch.nn.Module`` that takes
            token ids, in eval mode; a name or path is loaded with ``load_model``.
        tokens: token ids ``[batch, seq]`` or ``[seq]``, a ragged list of id lists, or strings (the
            model's tokenizer), as for ``capture_attention``.
        layer: the model's layer index (a layer with attention).
        head: the head index within the layer, ``0 .. n_heads - 1``.
        attention_mask: ``[batch, seq]``, 1 on real tokens and 0 on padding; ``None`` (default) without
            padding.
        sites: a ``CustomSites`` for attention that discovery cannot find; ``None`` (default): discovered.
        remote: ``False`` (default) runs locally; ``True`` or a ``RemoteConfig`` runs on NDIF.
        stack: for an encoder-decoder, ``"decoder"`` (default), ``"encoder"`` or ``"cross"``.

    Returns:
        torch.Tensor: ``[batch, q, k]`` float32 on the CPU, the attention weights of that one head.

    Raises:
        InputError: when ``head`` is out of range (the message gives the heads per layer), ``layer`` has no
            attention, or the tokens, mask, ``sites`` or model mode are invalid (as for
            ``capture_attention``).
        AttentionNotFoundError: when discovery finds no attention in the model (pass ``sites=``).
        CaptureCheckError: when a row block fails its self-check or the layer's attention never runs.
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.
        RemoteExecutionError: when a remote run fails; nothing partial is returned.

    Examples:
        >>> from induction_nb import HandBuiltInduction, PatternGenerator, capture_head
        >>> tokens = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=2).tokens
        >>> pattern = capture_head(HandBuiltInduction(), tokens, layer=1, head=0)  # the induction head
        >>> pattern.shape
        torch.Size([2, 32, 32])
        >>> pattern[0, 20:24].argmax(-1).tolist()  # query q attends to q - 16 + 1, after the earlier copy
        [5, 6, 7, 8]
    """
    ctx = _prepare(model, tokens, [layer], sites, remote, attention_mask, stack)
    heads = ctx.engine.n_heads if stack in (None, "decoder") else stack_size(ctx.engine.module, stack)[1]
    if not is_int(head) or not 0 <= head < (heads if heads is not None else head + 1):
        raise InputError(f"head {head!r} out of range: the model has {heads} heads per layer (0..{(heads or 1) - 1})")
    return _run(ctx, _OneHead(head))[0][1]


class _OneHead:
    """Collects one head's rows, block by block."""

    accepts_rows = True  # a class attribute: shipped by value with a remote request

    def __init__(self, head: int):
        self.head = head

    def __call__(self, layer: int, rows) -> torch.Tensor:
        return torch.cat([block[:, self.head].clone().cpu() for _, block, _ in rows.blocks()], dim=1)


def stream_attention(
    model: Any,
    tokens: torch.Tensor | Sequence[Sequence[int]],
    reducer: Reducer[T],
    layers: int | Iterable[int] | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    sites: CustomSites | None = None,
    remote: bool | RemoteConfig = False,
    stack: Stack | None = None,
) -> list[T]:
    """Run ``reducer(layer, pattern)`` inside the trace on each layer's checked pattern
    ``[batch, head, q, k]`` (float32) and return the reducer's results in layer order.

    Only what the reducer returns leaves the trace; the pattern itself is dropped after each layer.
    The reducer must not modify the pattern (it may be the model's own tensor). A reducer with the
    attribute ``accepts_sink = True`` is called as ``reducer(layer, pattern, sink_mass)``, ``sink_mass``
    ``[batch, head, q]`` or ``None`` (see ``AttentionPatterns``). ``tokens`` and ``attention_mask`` as
    for ``capture_attention``: a padded batch's padding rows and columns are 0 in what the reducer gets.
    ``stack``: which attention stack of an encoder-decoder (as for ``capture_attention``).

    For remote execution the reducer travels to the server by value: define it at module level (a class
    with ``__call__`` carries its ``accepts_sink`` attribute along) and return small tensors or numbers.

    Args:
        model: the model: an nnsight model, a Hugging Face model or any ``torch.nn.Module`` that takes
            token ids, in eval mode; a name or path is loaded with ``load_model``.
        tokens: token ids ``[batch, seq]`` or ``[seq]``, a ragged list of id lists, or strings (the
            model's tokenizer), as for ``capture_attention``.
        reducer: ``reducer(layer, pattern) -> value``, called once per layer inside the trace with the
            model's layer index and the checked pattern ``[batch, head, q, k]`` (float32; read it, do not
            modify it); with ``accepts_sink = True`` it is called as ``reducer(layer, pattern, sink_mass)``.
        layers: the model's layer indices to reduce: an ``int``, an iterable of them, or ``None`` (default)
            for every layer with attention.
        attention_mask: ``[batch, seq]``, 1 on real tokens and 0 on padding; ``None`` (default) without
            padding.
        sites: a ``CustomSites`` for attention that discovery cannot find; ``None`` (default): discovered.
        remote: ``False`` (default) runs locally; ``True`` or a ``RemoteConfig`` runs on NDIF, the reducer
            on the server.
        stack: for an encoder-decoder, ``"decoder"`` (default), ``"encoder"`` or ``"cross"``.

    Returns:
        list: the reducer's return values, one per captured layer, in layer order.

    Raises:
        InputError: when the tokens, mask, ``layers``, ``sites`` or ``remote`` are invalid, or the model is
            in training mode (as for ``capture_attention``).
        AttentionNotFoundError: when discovery finds no attention in the model (pass ``sites=``).
        CaptureCheckError: when a layer's pattern fails its self-check or its attention never runs.
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.
        RemoteExecutionError: when a remote run fails; nothing partial is returned.

    Examples:
        >>> from induction_nb import HandBuiltInduction, PatternGenerator, stream_attention
        >>> tokens = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=2).tokens
        >>> def top_key(layer, pattern):  # pattern: [batch, head, q, k]
        ...     return int(pattern[0, 0, -1].argmax())  # the key head 0 attends to from the last query
        >>> stream_attention(HandBuiltInduction(), tokens, top_key)  # L0: previous token; L1: 31 - 16 + 1
        [30, 16]
        >>> stream_attention(HandBuiltInduction(), tokens, lambda layer, p: tuple(p.shape), layers=[1])
        [(2, 4, 32, 32)]
    """
    ctx = _prepare(model, tokens, layers, sites, remote, attention_mask, stack)
    return [value for _, value, _ in _run(ctx, reducer)]


@dataclass(frozen=True)
class _Context:
    engine: Engine
    batch: Any  # _batch.Batch
    sites: tuple[Site, ...]

    @property
    def tokens(self) -> torch.Tensor:
        return self.batch.tokens


def _prepare(
    model: Any,
    tokens: Any,
    layers: Any,
    sites: CustomSites | None,
    remote: Any = False,
    attention_mask: Any = None,
    stack: Stack | None = None,
) -> _Context:
    engine = Engine.of(model, remote)
    batch = engine.batch(tokens, attention_mask)
    tokens = batch.tokens
    engine.check_eval()
    if sites is not None:
        if not isinstance(sites, CustomSites):
            raise InputError(f"sites must be an induction_nb.CustomSites, not {type(sites).__name__}")
        engine.check_forward()  # named sites are read from the same forward: random in eval mode is refused too
        all_sites = select_stack(sites.expand(), stack, engine.module)
    else:
        all_sites = engine.sites(tokens[:1, batch.valid()[0]], stack)  # discovery probes one real sequence
    chosen = _select_layers(layers, [s.layer for s in all_sites])
    return _Context(engine, batch, tuple(s for s in all_sites if s.layer in chosen))


def _run(ctx: _Context, reduce: Callable[..., Any]) -> list[tuple[int, Any, bool]]:
    """One trace over ``ctx.tokens``: each site's pattern is read, checked and reduced *inside* the trace;
    returns ``(layer, reduce(layer, pattern), causal)`` per site. Everything the trace body calls lives at
    module level in induction_nb, so that a remote request ships it by value."""
    import nnsight

    # plain locals: a remote request serialises what the body references, and ctx holds the model
    engine, sites, valid = ctx.engine, ctx.sites, ctx.batch.mask
    model, tolerance = engine.model, engine.tolerance
    batch, n_tokens = ctx.tokens.shape
    out = None
    try:
        with torch.no_grad(), mha_fastpath_off(), engine.trace(ctx.batch) as tracer:
            out = nnsight.save([])
            for site in sites:
                out.append(read_layer(model, tracer, site, tolerance, reduce, n_tokens, batch, valid))
            tracer.stop()
    except Exception as e:
        raise engine.translate(e, sites) from e
    out = list(out or [])
    done = {layer for layer, _, _ in out}
    missing = [s.layer for s in ctx.sites if s.layer not in done]
    pooled = [layer for layer, _, causal in out if causal is None]
    out = [x for x in out if x[2] is not None]  # causal None: not attention among the tokens (pooled)
    if pooled and out:
        warn_user(
            f"induction_nb: layer(s) {pooled} of {type(engine.module).__name__} attend over fewer positions than "
            "the tokens (pooled blocks, as in Funnel Transformer's later blocks) and are left out of the "
            "patterns and scores"
        )
    if not out:
        raise CaptureCheckError(
            "no attention layer covers the tokens (every site attends over other positions); "
            "name the sites with sites=CustomSites(...)"
        )
    if missing:
        raise CaptureCheckError(
            f"the attention of layer(s) {missing} never ran during the forward pass "
            f"(site {ctx.sites[0].path!r}...); if the model skips these modules, pass sites=CustomSites(...)"
        )
    return out


def _select_layers(layers: Any, labels: list[int]) -> set[int]:
    """The requested model layer indices, each one the model has attention in."""
    if layers is None:
        return set(labels)
    if is_int(layers):
        layers = [layers]
    try:
        chosen = {int(i) for i in layers}
    except (TypeError, ValueError):
        raise InputError(f"layers must be an int or a list of ints, got {layers!r}") from None
    if not chosen:
        raise InputError("layers is empty; pass None for all layers")
    bad = sorted(chosen - set(labels))
    if bad:
        raise InputError(
            f"layer(s) {bad} out of range: the model has {len(set(labels))} layers with attention "
            f"(layer indices {_ranges(labels)})"
        )
    return chosen


def _ranges(labels: list[int]) -> str:
    labels = sorted(set(labels))
    if labels == list(range(labels[0], labels[-1] + 1)) and len(labels) > 3:
        return f"{labels[0]}..{labels[-1]}"
    return ", ".join(map(str, labels))
