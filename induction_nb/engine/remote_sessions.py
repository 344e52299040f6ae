"""The remote jobs' bodies: nnsight sessions that run many chunks of a scan as ONE request.

``attention_session`` runs one trace per chunk and reduces each attention site's pattern inside it (as
``stream_attention`` does), ``ablation_session`` one forward per group of head ablations (as
``Ablator.run`` does for zero, mean and corrupt ablation with next-token numbers), ``decode_session`` one
greedy ``generate`` per context (as ``decoding.greedy_decode``). ``stream_chunks``, ``ablation_chunks`` and
``decode_chunks`` hand them to ``remote_jobs.run_chunks``, which bundles the chunks into jobs under the
budget, caches each chunk's result and drives the progress bar. Each body prints one LOG line as a chunk
starts on the server (``remote_jobs.MARK``), which the status hook turns into "chunk k/n".
``pack_layers`` and ``unpack_layers`` pack a chunk's per-layer metrics on the server into few tensors
(only the metrics named per sequence as such, the others as per-head sums and counts) and unpack them here.

Everything a body references is a plain local (tensors, sites, reducers, the model's envoy): a session
ships what its body references, and the engine holds the remote config (with the API key). Limits: padded
batches, edge knockout and attention reads during ablation are not bundled (their callers run them one
request per chunk, as before).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import CaptureCheckError, warn_user
from .ablator import Ablator, head_blocks
from .decoding import decoded_keys, greedy_config
from .engine import Engine, cut_heads, read_layer
from .outputs import next_token_logprobs
from .remote import session_backend
from .remote_jobs import MARK, JobProgress, ResultCache, chunk_seconds, digest, run_chunks
from .seq2seq import forward_inputs
from .sites import Site

__all__ = [
    "attention_session",
    "stream_chunks",
    "pack_layers",
    "unpack_layers",
    "ablation_session",
    "ablation_chunks",
    "decode_session",
    "decode_chunks",
]


def attention_session(
    engine: Engine, sites: tuple[Site, ...], chunks: list[torch.Tensor], reducers: list, labels: list[int], on_status
) -> tuple[list, Any]:
    """ONE remote request: a session with one trace per chunk, each site's pattern reduced inside it by that
    chunk's reducer (``read_layer``); returns ``[(layer, value, causal) per site]`` per chunk and the backend.
    The body prints a LOG line as each chunk starts (``labels``: the chunks' indices in the scan). A reducer
    with ``pack(out)`` and ``unpack(packed)`` has each chunk's reductions packed on the server (fewer bytes
    back) and unpacked here."""
    import nnsight

    model, tolerance, mark = engine.model, engine.tolerance, MARK
    inputs = [forward_inputs(engine.module, t, {}) for t in chunks]
    shapes = [tuple(t.shape) for t in chunks]
    packs = all(hasattr(r, "pack") and hasattr(r, "unpack") for r in reducers)
    backend = session_backend(engine.remote, on_status)
    try:
        with torch.no_grad(), model.session(backend=backend):
            results = nnsight.save([])
            for i in range(len(inputs)):
                (args, kwargs), reduce, (batch, n_tokens) = inputs[i], reducers[i], shapes[i]
                print(mark + str(labels[i]))
                with model.trace(*args, **kwargs) as tracer:
                    out = []  # the session is the save boundary: only `results` comes back
                    for site in sites:
                        out.append(read_layer(model, tracer, site, tolerance, reduce, n_tokens, batch, None))
                    tracer.stop()
                results.append(reduce.pack(list(out)) if packs else list(out))
    except Exception as e:
        raise engine.translate(e, sites) from e
    return [reducers[0].unpack(r) if packs else r for r in results], backend


def _finish(out: list, sites: tuple[Site, ...], engine: Engine) -> list:
    """The reductions of one chunk in layer order, checked as ``stream_attention`` checks them: a pooled
    layer (``causal`` None) left out and warned, a site that never ran refused."""
    done = {layer for layer, _, _ in out}
    missing = [s.layer for s in sites if s.layer not in done]
    kept = [value for _, value, causal in out if causal is not None]
    pooled = [layer for layer, _, causal in out if causal is None]
    if pooled and kept:
        warn_user(
            f"induction_nb: layer(s) {pooled} of {type(engine.module).__name__} attend over fewer positions than "
            "the tokens (pooled blocks, as in Funnel Transformer's later blocks) and are left out of the scores"
        )
    if not kept:
        raise CaptureCheckError(
            "no attention layer covers the tokens (every site attends over other positions); "
            "name the sites with sites=CustomSites(...)"
        )
    if missing:
        raise CaptureCheckError(
            f"the attention of layer(s) {missing} never ran during the forward pass (site {sites[0].path!r}...); "
            "if the model skips these modules, pass sites=CustomSites(...)"
        )
    return kept


def stream_chunks(
    engine: Engine,
    chunks: list[tuple[torch.Tensor, Any]],
    *,
    stack: str | None,
    tool: str,
    settings: dict,
    bar: Any = None,
    bytes_each: float = 0.0,
) -> list[list]:
    """``stream_attention`` over many chunks ``(tokens, reducer)`` on the engine's remote host, bundled into
    sessions (one queue wait per job) and cached per chunk: each chunk's reducer results in layer order.
    ``settings``: what changes the result besides the tokens (seed, metrics, ...), for the cache key.
    ``bytes_each``: the estimated result bytes of one chunk."""
    config = engine.remote
    tokens = [engine.check_tokens(t) for t, _ in chunks]
    sites = engine.sites(tokens[0][:1], stack)
    described = [[s.layer, s.path, s.op, str(s.kind), s.call] for s in sites]
    cache = ResultCache.of(config, tool, {**settings, "sites": described, "tolerance": engine.tolerance})

    def job(indices: list[int], on_status: Callable) -> tuple[list, Any]:
        outs, backend = attention_session(
            engine, sites, [tokens[i] for i in indices], [chunks[i][1] for i in indices], indices, on_status
        )
        return [_finish(o, sites, engine) for o in outs], backend

    return run_chunks(
        [[t] for t in tokens],
        job,
        config=config,
        cache=cache,
        progress=JobProgress(bar, len(chunks)),
        tool=tool,
        seconds_each=chunk_seconds(engine, tokens[0]),
        bytes_each=bytes_each + tokens[0].nbytes,
    )


def pack_layers(out: list, per_sequence: Sequence[str] | None = None) -> tuple:
    """On the server: a chunk's ``[(layer, {"layer", "metrics": {name: [n, head]}, "kept"}, causal)]`` in few
    tensors: the metrics named in ``per_sequence`` (None: all) stacked ``[site, metric, n, head]``, the others
    as NaN-aware sums over the sequences ``[site, metric, head]`` with their non-NaN counts (NaN, and a zero
    count, past a layer's own head count); each float tensor's bytes grouped by position in the float (sign
    and exponent bytes together compress well). On SmolLM2 a scan returns 24 KB; all 9 metrics per sequence
    returned 59 KB, one tensor per metric per layer 75 KB (zstd). ``("raw", out)`` where the metrics differ
    in names, shapes or dtypes between layers."""
    done = [v for _, v, _ in out if v is not None]
    names = list(done[0]["metrics"]) if done else []
    shapes = {tuple(v["metrics"][k].shape[:1]) + tuple(v["metrics"][k].shape[2:]) for v in done for k in names}
    dtypes = {v["metrics"][k].dtype for v in done for k in names}
    if not names or len(shapes) != 1 or len(dtypes) != 1 or any(list(v["metrics"]) != names for v in done):
        return ("raw", out)
    heads = [v["metrics"][names[0]].shape[1] for v in done]
    stacked = torch.stack([torch.stack([_nan_pad(v["metrics"][k], max(heads)) for k in names]) for v in done])
    wanted = names if per_sequence is None else [k for k in names if k in per_sequence]
    summed = [k for k in names if k not in wanted]
    rest = stacked[:, [names.index(k) for k in summed]]  # [site, summed, n, head]
    counts = (~rest.isnan()).sum(2).to(torch.uint8 if stacked.shape[2] < 256 else torch.int32)
    return (
        "packed",
        [(l, c, v is not None) for l, v, c in out],
        wanted,
        heads,
        _planes(stacked[:, [names.index(k) for k in wanted]]),
        [v["kept"] for v in done],
        (summed, _planes(rest.nansum(2)), counts),
    )


def unpack_layers(packed: tuple) -> list:
    """``pack_layers``' input again, locally: the same per-sequence values (slices of the stacked tensor), and
    each layer's ``"sums"``: ``{metric: (NaN-aware sum [head], count [head])}`` for the others."""
    if packed[0] == "raw":
        return packed[1]
    _, entries, names, heads, planes, kept, (summed, sum_planes, counts) = packed
    stacked, sums = _unplane(planes), _unplane(sum_planes)
    out, i = [], 0
    for layer, causal, has in entries:
        if not has:
            out.append((layer, None, causal))
            continue
        n = heads[i]
        metrics = {k: stacked[i, j, :, :n] for j, k in enumerate(names)}
        totals = {k: (sums[i, j, :n], counts[i, j, :n]) for j, k in enumerate(summed)}
        out.append((layer, {"layer": layer, "metrics": metrics, "kept": kept[i], "sums": totals}, causal))
        i += 1
    return out


def _nan_pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[batch, head]`` padded with NaN to ``n`` heads (a layer with fewer heads than others)."""
    if x.shape[1] == n:
        return x
    return torch.cat([x, torch.full((x.shape[0], n - x.shape[1]), float("nan"), dtype=x.dtype)], dim=1)


def _planes(x: torch.Tensor) -> tuple:
    """``(shape, dtype, bytes [element size, numel])``: ``x``'s bytes grouped by position in the element."""
    x = x.contiguous()
    return tuple(x.shape), x.dtype, x.view(torch.uint8).reshape(-1, x.element_size()).T.contiguous()


def _unplane(planes: tuple) -> torch.Tensor:
    """``_planes``' tensor again, the same bits."""
    shape, dtype, data = planes
    return data.T.contiguous().view(dtype).reshape(shape)


def ablation_session(
    ab: Ablator,
    tokens: torch.Tensor,
    plan_lists: list[list[list[tuple[int, int]]]],
    method: str,
    means: dict | None,
    positions: torch.Tensor,
    labels: list[int],
    on_status: Callable | None,
) -> tuple[list, Any]:
    """ONE remote request: a session with one forward per entry of ``plan_lists``, each over ``len(plans)``
    copies of ``tokens`` where copy ``i`` has the heads of ``plans[i]`` removed (``"zero"``, ``"mean"`` or
    ``"corrupt"``: ``means`` per layer, as ``Ablator.run``); returns each forward's next-token
    ``(log-probabilities, hits)`` at ``positions`` and the backend."""
    import nnsight

    model, paths, b, mark = ab.model, ab.paths, tokens.shape[0], MARK
    forwards = []
    for plans in plan_lists:
        cuts, _ = head_blocks(plans, [], b, ab.d_head)
        big = tokens.repeat(len(plans), 1)
        (args, kwargs) = forward_inputs(ab.module, big, {})
        order = [s for s in ab.sites if s.layer in cuts]
        forwards.append((args, kwargs, big, cuts, order))
    values = {} if method == "zero" else means
    backend = session_backend(ab.engine.remote, on_status)
    try:
        with torch.no_grad(), model.session(backend=backend):
            results = nnsight.save([])
            for i in range(len(forwards)):
                args, kwargs, big, cuts, order = forwards[i]
                print(mark + str(labels[i]))
                with model.trace(*args, **kwargs) as tracer:
                    for site in order:
                        cut_heads(model, tracer, paths[site.layer], site.call, cuts[site.layer], values.get(site.layer))
                    scores = next_token_logprobs(model.output, big, positions)
                results.append(scores)
    except Exception as e:
        raise ab.engine.translate(e, tuple(ab.sites)) from e
    return list(results), backend


def ablation_chunks(
    ab: Ablator,
    tokens: torch.Tensor,
    plan_lists: list[list[list[tuple[int, int]]]],
    method: str,
    means: dict | None,
    positions: torch.Tensor,
    *,
    tool: str,
    settings: dict,
    bar: Any = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``ablation_session`` over many forwards on the Ablator's remote host, bundled into jobs under the
    budget and cached per forward: each forward's ``(log-probabilities [copies * batch, positions], hits)``.
    ``settings``: what changes the result besides the tokens, positions and replacement values."""
    replacement = digest([means[layer] for layer in sorted(means)]) if means else None
    inputs = [[tokens, positions, _plan_ids(plans)] for plans in plan_lists]
    cache = ResultCache.of(
        ab.engine.remote, tool, {**settings, "method": method, "paths": ab.paths, "replacement": replacement}
    )

    def job(indices: list[int], on_status: Callable) -> tuple[list, Any]:
        plans = [plan_lists[i] for i in indices]
        return ablation_session(ab, tokens, plans, method, means, positions, indices, on_status)

    copies = max(len(p) for p in plan_lists)
    return run_chunks(
        inputs,
        job,
        config=ab.engine.remote,
        cache=cache,
        progress=JobProgress(bar, len(plan_lists)),
        tool=tool,
        seconds_each=chunk_seconds(ab.engine, tokens, copies),
        bytes_each=2 * 4.0 * copies * tokens.shape[0] * len(positions),
    )


def _plan_ids(plans: list[list[tuple[int, int]]]) -> torch.Tensor:
    """The plans of one forward as ``[n, 2]`` ids (each plan's heads, then ``(-1, -1)``), for its cache key."""
    return torch.tensor([h for plan in plans for h in [*plan, (-1, -1)]], dtype=torch.long).view(-1, 2)


def decode_session(
    engine: Engine, contexts: list[torch.Tensor], steps: int, cuts: dict, labels: list[int], on_status: Callable | None
) -> tuple[list, Any]:
    """ONE remote request: greedy decoding of ``steps`` tokens after each context ``[1, C]`` with the model's
    ``generate`` (KV cache), each head's last-row arg-max read at every step and ``cuts`` (``{layer: blocks}``)
    zeroed, as ``decoding.greedy_decode`` does; returns each context's ``(generated ids [steps], keys [steps,
    site, head])`` and the backend."""
    import nnsight

    model, sites, mark = engine.model, engine.sites(), MARK
    paths = engine.projections()[0] if cuts else {}
    config = greedy_config(steps, getattr(engine.tokenizer, "eos_token_id", None))
    backend = session_backend(engine.remote, on_status)
    try:
        with torch.no_grad(), model.session(backend=backend):
            results = nnsight.save([])
            for i in range(len(contexts)):
                print(mark + str(labels[i]))
                with model.generate(contexts[i], generation_config=config) as tracer:
                    keys = decoded_keys(model, tracer, sites, steps, paths, cuts)
                    ids = tracer.result
                results.append((ids[0, contexts[i].shape[1] :].cpu(), torch.stack(keys).cpu()))
    except Exception as e:
        raise engine.translate(e, sites) from e
    return list(results), backend


def decode_chunks(
    engine: Engine,
    contexts: list[torch.Tensor],
    steps: int,
    ablate: list[tuple[int, int]],
    *,
    tool: str,
    settings: dict,
    bar: Any = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``decode_session`` over many contexts on the engine's remote host (a model that can ``generate``),
    bundled into jobs under the budget and cached per context: each one's ``(generated ids, keys)``, as
    ``greedy_decode(engine, context, steps, ablate)`` returns them."""
    d = engine.projections()[1] if ablate else 0
    cuts: dict[int, list] = {}
    for l, h in ablate:
        cuts.setdefault(l, []).append((slice(None), slice(h * d, (h + 1) * d)))
    contexts = [engine.check_tokens(c) for c in contexts]
    key = {**settings, "steps": steps, "ablate": [list(h) for h in ablate]}
    cache = ResultCache.of(engine.remote, tool, key)

    def job(indices: list[int], on_status: Callable) -> tuple[list, Any]:
        return decode_session(engine, [contexts[i] for i in indices], steps, cuts, indices, on_status)

    longest = max(contexts, key=lambda c: c.shape[1])
    return run_chunks(
        [[c] for c in contexts],
        job,
        config=engine.remote,
        cache=cache,
        progress=JobProgress(bar, len(contexts)),
        tool=tool,
        seconds_each=chunk_seconds(engine, longest, 1 + steps),
        bytes_each=8.0 * steps * (1 + len(engine.sites()) * (engine.n_heads or 128)),
    )
