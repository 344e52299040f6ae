"""Discovery of a model's attention sites by what they do (no operation name is hard-coded).

1. **What runs.** A probe forward on a few token ids records, with plain forward pre-hooks, every call of a
   module whose class looks like attention (``*Attention``, ``*Attn``, ``nn.MultiheadAttention``), in order
   and with repeats. Modules that never run for token input (a vision tower, cross-attention in a
   decoder-only model) are never candidates; a module that runs several times gives one layer per call.
2. **Which operation is attention.** For each candidate class, deepest first (an inner self-attention
   wins over the wrapper that calls it), short nnsight probe traces read one operation of the class's
   first-called module at a time and accept it only by proof: an HF attention-interface or SDPA call whose
   ``softmax(q k^T) @ v``, recomputed from its inputs, reproduces its output; an output that is a
   row-stochastic ``[batch, head, q, q]`` (or ``[batch * head, q, q]``) pattern; or a helper returning
   ``(output, weights)`` with such weights. Where no operation of the forward qualifies, the helper
   functions it calls (``self._attn(...)``) are searched one and two levels deep.
3. **Labels.** Each application is labelled with the model's own layer index: its position in the layer
   list the site modules share (``model.layers.3.self_attn`` -> 3, so the attention layers of a hybrid
   model keep their indices), or the application order where modules repeat or share no list.
4. **Stacks.** An encoder-decoder's sites are sorted into encoder self-attention, decoder self-attention
   and cross-attention by what each module is given (``seq2seq.site_stacks``); labels count from 0 within
   each stack. Every site of a one-stack model is in the ``"decoder"`` stack.

A probe that does not find its operation (nnsight: it never ran, or has no source) says "not this
operation"; a probe that fails otherwise (a torch error, a forward that cannot run under a trace) is kept,
and where nothing is accepted discovery says the probes could not run, with the first failure, instead of
"no attention found". Offloaded models (meta weights that accelerate hooks bring in) probe locally.

Remote models (meta weights, no offload hook) cannot run a local probe forward: there every candidate module
is assumed to run once, in module order, and the probes run on the server. Limits: self-attention, and an
encoder-decoder's cross-attention; a remote encoder-decoder is refused (its stacks are told apart by a local
forward).
"""

from __future__ import annotations

import re
import weakref
from typing import Any

import torch

from ..errors import AttentionNotFoundError, InputError
from .reads import Read
from .seq2seq import is_encoder_decoder, plain_forward, site_stacks
from .site_kinds import KINDS, SiteKind, discoverable
from .sites import Site, envoy_at, op_node
from .tracing import mha_fastpath_off, remote_failure, trace
from .wrappers import compile_safe, in_features, remote_only

__all__ = ["find_sites", "find_projection", "in_features", "layer_labels"]

_ATTN_CLASS = re.compile(r"attention|attn|selfattn|mha", re.IGNORECASE)
_CROSS = re.compile(r"cross|encoder_attn", re.IGNORECASE)  # cross-attention: not self-attention
_TIER0 = re.compile(r"attention|attn|sdpa|scaled_dot_product|flash", re.IGNORECASE)
_MAX_DEPTH = 2  # helper functions searched below the module's forward
_PROJ_NAMES = ("o_proj", "c_proj", "out_proj", "dense", "wo", "o", "proj", "out")

# Discovered sites per torch module (weak keys: a freed model drops its entry).
_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, tuple[Any, tuple[Site, ...]]] = weakref.WeakKeyDictionary()


def find_sites(model: Any, module: torch.nn.Module, probe_tokens: torch.Tensor, remote: Any = None) -> tuple[Site, ...]:
    """The attention sites of ``module`` (wrapped by the nnsight ``model``), one per layer application, in
    run order. ``probe_tokens`` ``[1, seq]``; ``remote``: a resolved ``RemoteConfig`` (probes on the
    server). Cached per model and attention implementation."""
    key = getattr(getattr(module, "config", None), "_attn_implementation", None)
    cached = _CACHE.get(module)
    if cached is not None and cached[0] == key:
        return cached[1]
    sites = _discover(model, module, probe_tokens, remote)
    _CACHE[module] = (key, sites)
    return sites


def _candidates(module: torch.nn.Module) -> list[str]:
    # an encoder-decoder's cross-attention is a site of its own stack (told apart by what it is given,
    # seq2seq.site_stacks); elsewhere a module named like cross-attention is not self-attention
    by_name = not is_encoder_decoder(module)
    out = []
    for path, m in module.named_modules():
        if not path or (by_name and _CROSS.search(path.rsplit(".", 1)[-1])):
            continue
        if isinstance(m, torch.nn.MultiheadAttention) or (
            _ATTN_CLASS.search(type(m).__name__) and not isinstance(m, (torch.nn.ModuleList, torch.nn.ModuleDict))
        ):
            out.append(path)
    return out


def _call_order(module: torch.nn.Module, probe_tokens: torch.Tensor, paths: list[str], remote: Any) -> list[str]:
    """Paths in the order the forward calls them, with repeats (remote: each once, in module order)."""
    if remote is not None or remote_only(module):  # an offloaded model probes locally, the way it runs
        return paths
    calls: list[str] = []
    handles = [module.get_submodule(p).register_forward_pre_hook(lambda m, a, p=p: calls.append(p)) for p in paths]
    try:
        with mha_fastpath_off():
            plain_forward(module, probe_tokens, handles)
    except InputError:  # an encoder whose input cannot be made up from ids: its own message names why
        raise
    except Exception as e:
        raise AttentionNotFoundError(
            f"{type(module).__name__}'s forward pass fails on token ids {probe_tokens.tolist()}: "
            f"{type(e).__name__}: {e}. capture_attention calls the model as model(tokens) (an encoder-decoder "
            "as model(tokens, decoder_input_ids=tokens))."
        ) from e
    return calls


def _discover(model: Any, module: torch.nn.Module, probe_tokens: torch.Tensor, remote: Any) -> tuple[Site, ...]:
    calls = _call_order(module, probe_tokens, _candidates(module), remote)
    ran = list(dict.fromkeys(calls))
    accepted: dict[str, tuple[str | None, SiteKind]] = {
        p: (None, KINDS["mha"]) for p in ran if isinstance(module.get_submodule(p), torch.nn.MultiheadAttention)
    }
    groups: dict[type, list[str]] = {}
    for path in ran:
        if path not in accepted:
            groups.setdefault(type(module.get_submodule(path)), []).append(path)
    tried: list[str] = []
    failed: list[BaseException] = []  # probes that could not run (not: ran and were not attention)
    for tiers in ((0, 1), (2,)):
        for cls, paths in sorted(groups.items(), key=lambda kv: -min(p.count(".") for p in kv[1])):
            if _overlaps(paths, list(accepted)):
                continue
            hit = _probe_module(model, paths[0], probe_tokens, tiers, remote, failed)
            if tiers == (0, 1):
                tried.append(f"{cls.__name__} ({len(paths)}x, e.g. {paths[0]})")
            if hit is not None:
                accepted.update({p: hit for p in paths})
        if accepted:
            break
    if not accepted and failed:
        first = failed[0]
        raise AttentionNotFoundError(
            f"cannot tell where the attention of {type(module).__name__} is: {len(failed)} discovery probe(s) "
            f"could not run ({type(first).__name__}: {str(first).strip()[:300]}); this is not a finding that it "
            "has no attention. Fix what makes the model's forward fail under a trace, or name the sites with "
            "induction_nb.CustomSites(...)"
        ) from first
    if not accepted:
        classes = sorted({type(m).__name__ for _, m in module.named_modules()})[:12]
        raise AttentionNotFoundError(
            f"no attention found in {type(module).__name__}. Tried: "
            + ("; ".join(tried) if tried else f"no module class looks like attention (classes: {', '.join(classes)})")
            + ". Name the attention module of each layer and how to read its pattern with "
            "induction_nb.CustomSites(...) and pass it as sites=... (documentation: 'Capture attention from any "
            "model', section 'Custom attention')."
        )
    events = [p for p in calls if p in accepted and not _overlaps([p], [q for q in accepted if q != p])]
    local = remote is None and not remote_only(module)
    return _label(events, accepted, site_stacks(module, probe_tokens, events, local, ran))


def _label(events: list[str], accepted: dict, stacks: dict[str, str]) -> tuple[Site, ...]:
    """One site per application in ``events`` (run order), labelled within its stack (``layer_labels``)."""
    labels: dict[int, int] = {}
    for stack in dict.fromkeys(stacks.values()):
        mine = [i for i, p in enumerate(events) if stacks[p] == stack]
        labels.update(zip(mine, layer_labels([events[i] for i in mine])))
    seen: dict[str, int] = {}
    sites = []
    for i, path in enumerate(events):
        op, kind = accepted[path]
        sites.append(Site(layer=labels[i], path=path, op=op, kind=kind, call=seen.get(path, 0), stack=stacks[path]))
        seen[path] = seen.get(path, 0) + 1
    return tuple(sites)


def layer_labels(paths: list[str]) -> list[int]:
    """The model's layer index of each site application (``paths`` in run order): the index in the layer
    list all paths share (``prefix.<i>.rest``), or ``0, 1, ...`` where a module repeats or no list is shared."""
    split = [p.split(".") for p in paths]
    if len(set(paths)) == len(paths) and split:
        for depth in range(min(len(s) for s in split)):
            prefix = {tuple(s[:depth]) for s in split}
            if len(prefix) > 1:
                break
            column = [s[depth] for s in split]
            if all(c.isdigit() for c in column) and len(set(column)) == len(column):
                labels = [int(c) for c in column]
                if labels == sorted(labels):
                    return labels
    return list(range(len(paths)))


def _overlaps(paths: list[str], taken: list[str]) -> bool:
    return any(p == t or p.startswith(t + ".") or t.startswith(p + ".") for p in paths for t in taken)


def _tier(name: str) -> int:
    leaf = name.rsplit(".", 1)[-1]
    if _TIER0.search(leaf):
        return 0
    return 1 if "softmax" in leaf.lower() else 2


def _probe_module(model: Any, path: str, probe_tokens: torch.Tensor, tiers: tuple[int, ...], remote: Any, failed):
    """``(op chain, kind)`` of the first operation of module ``path`` (or of a helper it calls) that proves
    to be attention, or ``None``. Probes that could not run are appended to ``failed``."""
    envoy = envoy_at(model, path)
    try:
        names = list(envoy.source.names)
    except Exception:  # no Python source (a C extension, a scripted module): nothing to probe
        return None
    compile_safe(envoy._module)  # sourced now: compiled copies of the model must keep working
    return _probe_ops(model, envoy, "", names, probe_tokens, tiers, (remote, failed), depth=0)


def _probe_ops(model, envoy, prefix: str, names: list[str], probe_tokens, tiers, run: tuple, depth: int):
    remote, failed = run
    ranked = sorted((n for n in names if _tier(n) in tiers), key=lambda n: (_tier(n), names.index(n)))
    for name in ranked:
        chain = f"{prefix}{name}"
        kind = _probe_op(model, envoy, chain, probe_tokens, remote, failed)
        if kind is not None:
            return chain, kind
        if _tier(name) == 0 and depth < _MAX_DEPTH:
            inner = _inner_names(model, envoy, chain, probe_tokens, remote, failed)
            if inner:
                hit = _probe_ops(model, envoy, chain + ".", inner, probe_tokens, (0, 1), run, depth + 1)
                if hit is not None:
                    return hit
    return None


def _inner_names(model, envoy, chain: str, probe_tokens, remote, failed: list) -> list[str]:
    """The operations inside the function that operation ``chain`` calls (empty for a module or builtin)."""
    import nnsight

    try:
        with torch.no_grad(), trace(model, probe_tokens, remote) as tracer:
            names = nnsight.save([])
            names.extend(op_node(envoy, chain).source.names)
            tracer.stop()
    except Exception as e:  # a submodule or a builtin: nothing to search
        _sort_failure(e, remote, failed)
        return []
    return list(names)


def _probe_op(model: Any, envoy: Any, chain: str, probe_tokens: torch.Tensor, remote: Any, failed: list):
    """Run one probe trace reading operation ``chain``; its kind if it proves to be attention, else ``None``.

    An operation that does not run for this input (a branch not taken) makes nnsight raise or leaves
    nothing saved: either way it is not the site. Any other failure is recorded in ``failed``
    (``_sort_failure``)."""
    import nnsight

    try:
        with torch.no_grad(), trace(model, probe_tokens, remote) as tracer:
            verdict = nnsight.save([])
            verdict.append(_judge(op_node(envoy, chain), *probe_tokens.shape))
            tracer.stop()
    except Exception as e:
        _sort_failure(e, remote, failed)
        return None
    return verdict[0] if verdict else None


def _sort_failure(e: Exception, remote: Any, failed: list) -> None:
    """A failed probe trace, sorted: a remote failure other than the job's own (no key, unreachable, not
    served) ends discovery; nnsight's word that the operation is not there for this input means "not the
    site"; anything else (a torch error, a forward that cannot run) goes to ``failed``: the probe could not
    run, which says nothing about the operation."""
    err = remote_failure(e, remote)
    if err is not None and getattr(err, "kind", "job") != "job":
        raise err from e
    if not _not_taken(e if err is None else err):
        failed.append(e if err is None else err)


def _not_taken(e: BaseException) -> bool:
    """nnsight 0.8.1 says the probed operation is not there for this input: it never ran (a branch not
    taken, ``OutOfOrderError``) or has no source to search (a builtin or a submodule call,
    ``SourceNotAvailable``). A remote job reports them by name in the server's traceback."""
    from nnsight.intervention.interleaver import OutOfOrderError
    from nnsight.intervention.source import SourceNotAvailable

    if isinstance(e, (OutOfOrderError, SourceNotAvailable)):
        return True
    server = getattr(e, "server_message", None) or ""
    return any(name in server for name in ("OutOfOrderError", "SourceNotAvailable"))


def _judge(node: Any, batch: int, n_tokens: int) -> SiteKind | None:
    """Inside a probe trace: the kind of attention site ``node`` is, or ``None``. Attention among the
    tokens only: every token is a query and a key (not attention over a layer's inputs, say)."""
    args, kwargs = node.inputs
    output = node.output
    for kind in discoverable():
        try:
            if kind.looks_like(args, kwargs, output):
                read: Read = kind.read(args, kwargs, output, None, batch)
                covers = min(read.pattern.shape[-2:]) >= n_tokens
                if covers and kind.reproduces(args, kwargs, output, read):
                    return kind
        except torch.OutOfMemoryError:  # the probe could not run (``_sort_failure``), not "not attention"
            raise
        except Exception:  # a call that is not attention can fail any of these tests: not a site
            continue
    return None


def find_projection(module: torch.nn.Module, site_path: str) -> str:
    """The output projection of the attention at ``site_path``: a known name inside it or beside it."""
    attn = module.get_submodule(site_path)
    if isinstance(attn, torch.nn.MultiheadAttention):
        raise InputError(
            "nn.MultiheadAttention applies its out_proj functionally, so a head cannot be cut at its input; "
            "pass projections=[...] naming a module that receives the concatenated head outputs"
        )
    parent_path = site_path.rsplit(".", 1)[0] if "." in site_path else ""
    for prefix, scope in ((site_path, attn), (parent_path, module.get_submodule(parent_path))):
        for name in _PROJ_NAMES:
            for path in (name, f"output.{name}"):
                try:
                    child = scope.get_submodule(path)
                except AttributeError:
                    continue
                if in_features(child) is not None and child is not attn:
                    return f"{prefix}.{path}" if prefix else path
    raise InputError(
        f"cannot find the output projection of {type(attn).__name__} at {site_path!r} (tried {', '.join(_PROJ_NAMES)} "
        "there and beside it); pass projections=['...', ...] naming, per layer, the module whose input is the "
        "concatenated head outputs"
    )
