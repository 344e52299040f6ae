"""Where attention happens in a model: discovery of one attention *site* per layer, and the escape hatch.

A site is a module path plus, optionally, one operation inside that module's ``forward`` as nnsight's
``.source`` names it (``attention_interface_1``, ``torch_nn_functional_scaled_dot_product_attention_0``,
``F_softmax_0`` ...). Names are never hard-coded: discovery runs a short probe trace on the first module
of each candidate class and accepts an operation only if it *is* attention:

* an HF attention-interface call ``(module, query, key, value, mask, ...)`` or an
  ``F.scaled_dot_product_attention`` call, accepted when ``softmax(q k^T) @ v`` recomputed from its
  inputs reproduces its output;
* an operation whose output is a row-stochastic ``[batch, head, q, q]`` tensor (a manual softmax,
  a TransformerLens ``hook_pattern``);
* an ``nn.MultiheadAttention`` module, read from its inputs and in-projection weights.

Anything else: ``CustomSites`` names the module per layer and how to read its pattern.
Limits: self-attention only (cross-attention modules are skipped); one site per layer.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch

from ._readers import SiteKind, check_reproduces_output, looks_like, read_site
from .errors import AttentionNotFoundError

__all__ = ["Site", "CustomSites", "find_sites", "envoy_at"]

_ATTN_CLASS = re.compile(r"attention|attn|selfattn|mha", re.IGNORECASE)
_TIER0 = re.compile(r"attention|attn|sdpa|scaled_dot_product|flash", re.IGNORECASE)
_PROBE_ORDER: tuple[SiteKind, ...] = ("hf_interface", "sdpa_call", "softmax")


@dataclass(frozen=True)
class Site:
    """One layer's attention site: ``path`` (dotted module path from the model root), ``op`` (an operation
    of that module's forward, or ``None`` for the module call itself) and the ``kind`` of reader."""

    layer: int
    path: str
    op: str | None
    kind: SiteKind
    reader: Callable[[tuple, dict, Any], torch.Tensor] | None = None
    causal: bool | None = None

    @property
    def needs_output(self) -> bool:
        return self.kind in ("hf_interface", "softmax", "custom")


@dataclass(frozen=True)
class CustomSites:
    """The escape hatch: say which module holds each layer's attention and how to read the pattern.

    ``modules``: explicit dotted paths, one per layer, or one template containing ``{layer}`` together
    with ``n_layers``. ``read``: ``"output"`` (the module's output is the pattern ``[batch, head, q, k]``,
    e.g. TransformerLens's ``hook_pattern``), ``"input"`` (its first input is), or a function
    ``read(args, kwargs, output) -> pattern``. ``op`` optionally names an operation inside the module's
    forward (``print(model.<path>.source)`` lists them). ``causal``: whether keys after the query are
    masked (``None``: inferred from the pattern).

    Example (a TransformerLens ``HookedTransformer`` wrapped with ``nnsight.NNsight``)::

        sites = CustomSites("blocks.{layer}.attn.hook_pattern", n_layers=model.cfg.n_layers)
        capture_attention(model, tokens, sites=sites)
    """

    modules: str | Sequence[str]
    read: Literal["output", "input"] | Callable[[tuple, dict, Any], torch.Tensor] = "output"
    n_layers: int | None = None
    op: str | None = None
    causal: bool | None = None

    def expand(self) -> tuple[Site, ...]:
        if isinstance(self.modules, str):
            if "{layer}" not in self.modules or self.n_layers is None:
                raise ValueError(
                    "CustomSites: pass a list of module paths, or a template containing '{layer}' "
                    f"together with n_layers (got modules={self.modules!r}, n_layers={self.n_layers})"
                )
            paths = [self.modules.format(layer=i) for i in range(self.n_layers)]
        else:
            paths = list(self.modules)
        if not paths:
            raise ValueError("CustomSites: no module paths given")
        if self.read == "output":
            reader = _read_output
        elif self.read == "input":
            reader = _read_input
        elif callable(self.read):
            reader = self.read
        else:
            raise ValueError(f"CustomSites.read must be 'output', 'input' or a function, not {self.read!r}")
        return tuple(
            Site(layer=i, path=p, op=self.op, kind="custom", reader=reader, causal=self.causal)
            for i, p in enumerate(paths)
        )


def envoy_at(model: Any, path: str) -> Any:
    """The nnsight envoy of the submodule at dotted ``path``. Unlike ``model.get``, a submodule named like
    an nnsight attribute (BERT's ``output``) resolves to the submodule, not to the module's output."""
    envoy = model
    for part in path.split("."):
        children = getattr(envoy, "_child_map", None)
        envoy = children[part] if isinstance(children, dict) and part in children else getattr(envoy, part)
    return envoy


def _read_output(args: tuple, kwargs: dict, output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _read_input(args: tuple, kwargs: dict, output: Any) -> torch.Tensor:
    return args[0] if args else next(iter(kwargs.values()))


# Discovered sites per torch module (weak keys: a freed model drops its entry).
_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[Any, tuple[Site, ...]]]" = weakref.WeakKeyDictionary()


def _cache_key(module: torch.nn.Module) -> Any:
    config = getattr(module, "config", None)
    return getattr(config, "_attn_implementation", None)


def find_sites(model: Any, module: torch.nn.Module, probe_tokens: torch.Tensor, remote: Any = None) -> tuple[Site, ...]:
    """Discover one attention site per layer of ``module`` (wrapped by the nnsight ``model``).

    Runs probe traces on ``probe_tokens`` ``[1, seq]`` (on the server when ``remote`` is a
    ``RemoteConfig``: a few small requests); results are cached per model and attention implementation.
    """
    key = _cache_key(module)
    cached = _CACHE.get(module)
    if cached is not None and cached[0] == key:
        return cached[1]
    sites = _discover(model, module, probe_tokens, remote)
    _CACHE[module] = (key, sites)
    return sites


def _discover(model: Any, module: torch.nn.Module, probe_tokens: torch.Tensor, remote: Any) -> tuple[Site, ...]:
    named = list(module.named_modules())
    order = {path: i for i, (path, _) in enumerate(named)}
    mha = [path for path, m in named if isinstance(m, torch.nn.MultiheadAttention)]
    groups: dict[type, list[str]] = {}
    for path, m in named:
        if path and not isinstance(m, (torch.nn.MultiheadAttention, torch.nn.ModuleList, torch.nn.ModuleDict)):
            if _ATTN_CLASS.search(type(m).__name__):
                groups.setdefault(type(m), []).append(path)
    found: list[tuple[str, str | None, SiteKind]] = [(p, None, "mha") for p in mha]
    tried: list[str] = []
    for tiers in ((0, 1), (2,)):
        # deepest classes first, so an inner self-attention wins over the wrapper that calls it
        for cls, paths in sorted(groups.items(), key=lambda kv: -kv[1][0].count(".")):
            if _overlaps(paths, [p for p, _, _ in found]):
                continue
            hit = _probe_group(model, paths[0], probe_tokens, tiers, remote)
            tried.append(f"{cls.__name__} ({len(paths)}x, e.g. {paths[0]})")
            if hit is not None:
                found.extend((p, hit[0], hit[1]) for p in paths)
        if found:
            break
    if not found:
        if remote is None:
            _raise_if_forward_fails(model, module, probe_tokens)
        classes = sorted({type(m).__name__ for _, m in named})[:12]
        raise AttentionNotFoundError(
            f"no attention found in {type(module).__name__}. Tried: "
            + ("; ".join(tried) if tried else f"no module class looks like attention (classes: {', '.join(classes)})")
            + ". Name the attention module of each layer and how to read its pattern with "
            "induction_nb.CustomSites(...) and pass it as sites=... (see the README, 'Custom attention')."
        )
    found.sort(key=lambda f: order[f[0]])
    return tuple(Site(layer=i, path=p, op=op, kind=kind) for i, (p, op, kind) in enumerate(found))


def _raise_if_forward_fails(model: Any, module: torch.nn.Module, probe_tokens: torch.Tensor) -> None:
    """Where every probe failed, a broken forward pass is the likelier cause: say so."""
    try:
        with torch.no_grad():
            module(probe_tokens)
    except Exception as e:
        raise AttentionNotFoundError(
            f"{type(module).__name__}'s forward pass fails on token ids {probe_tokens.tolist()}: "
            f"{type(e).__name__}: {e}. capture_attention calls the model as model(tokens)."
        ) from e


def _overlaps(paths: list[str], taken: list[str]) -> bool:
    return any(p == t or p.startswith(t + ".") or t.startswith(p + ".") for p in paths for t in taken)


def _probe_group(model: Any, path: str, probe_tokens: torch.Tensor, tiers: tuple[int, ...], remote: Any):
    """Return ``(op_name, kind)`` for the first operation of module ``path`` that proves to be attention."""
    envoy = envoy_at(model, path)
    try:
        names = envoy.source.names
    except Exception:  # no Python source (a C extension, a scripted module): nothing to probe
        return None
    ranked = sorted(
        (n for n in names if _tier(n) in tiers), key=lambda n: (_tier(n), names.index(n))
    )
    for name in ranked:
        kind = _probe_op(model, envoy, name, probe_tokens, remote)
        if kind is not None:
            return name, kind
    return None


def _tier(name: str) -> int:
    if _TIER0.search(name):
        return 0
    return 1 if "softmax" in name.lower() else 2


def _probe_op(model: Any, envoy: Any, name: str, probe_tokens: torch.Tensor, remote: Any) -> SiteKind | None:
    """Run one probe trace reading operation ``name``; return its kind if it proves to be attention.

    An operation that does not run for this input (a branch not taken) makes nnsight raise or leaves
    nothing saved: either way it is not the site. Remote failures other than the job's own
    (no key, unreachable server, model not served) are raised.
    """
    import nnsight

    try:
        with torch.no_grad(), _probe_trace(model, probe_tokens, remote) as tracer:
            verdict = nnsight.save([])
            verdict.append(_judge(getattr(envoy.source, name)))
            tracer.stop()
    except Exception as e:  # nnsight's OutOfOrderError for an operation on a branch not taken
        if remote is not None:
            from .remote import translate_error

            err = translate_error(e, remote)
            if getattr(err, "kind", "job") != "job":
                raise err from e
        return None
    return verdict[0] if verdict else None


def _probe_trace(model: Any, probe_tokens: torch.Tensor, remote: Any) -> Any:
    if remote is None:
        return model.trace(probe_tokens)
    from .remote import remote_trace

    return remote_trace(model, probe_tokens, remote)


def _judge(node: Any) -> SiteKind | None:
    """Inside a probe trace: the kind of attention site ``node`` is, or ``None``."""
    args, kwargs = node.inputs
    output = node.output
    for kind in _PROBE_ORDER:
        try:
            if looks_like(kind, args, kwargs, output):
                pattern, _ = read_site(kind, args, kwargs, output, None)
                if check_reproduces_output(kind, args, kwargs, output, pattern):
                    return kind
        except Exception:  # a call that is not attention can fail any of these tests: not a site
            continue
    return None
