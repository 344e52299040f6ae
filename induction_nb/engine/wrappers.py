"""Models as researchers hold them: compiled, adapted, offloaded. What each wrapper needs from the engine.

- ``torch.compile`` (``OptimizedModule``): analysed through ``_orig_mod`` (``unwrap``). nnsight instruments a
  module's forward permanently once its ``.source`` is read, and dynamo cannot trace the instrumented code (it
  calls a global only the instrumented copy has), so every compiled copy of the model would fail from then
  on: ``compile_safe`` makes the instrumented forward hand dynamo the module's own forward while compiling.
  Parts compiled on their own inside a model cannot be read and are refused (``refuse_compiled_parts``).
- PEFT adapters (LoRA, DoRA, ...): an adapted layer wraps the layer it adapts as ``base_layer`` and calls
  base and adapter on the same input, so it is the output projection itself (``in_features``), cutting a
  head's slice of its input removes the head from both paths, and its weight is what it computes
  (``effective_weight``), not its base layer's.
- accelerate offloading (``cpu_offload``, ``device_map`` with CPU/disk offload): parameters sit on ``meta``
  and hooks bring them in at run time. Such a model is local (``remote_only`` says no), runs the way it runs
  (its hooks), gets its inputs on its execution device (``local_nnsight``: nnsight would move them to the
  first parameter's device, ``meta``), and has its weights read inside ``materialized``.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import InputError

__all__ = [
    "unwrap",
    "refuse_compiled_parts",
    "remote_only",
    "offloaded",
    "execution_device",
    "local_nnsight",
    "compile_safe",
    "in_features",
    "adapted_layer",
    "effective_weight",
    "materialized",
]


def unwrap(model: Any) -> Any:
    """The module a ``torch.compile`` wrapper compiles (``_orig_mod``), or ``model`` itself. The compiled
    wrapper is never traced: nnsight's instrumented forward run under dynamo's frames raised
    ``NameError: __resume_at_...``; the user's wrapper is left as it is and keeps working."""
    seen = set()
    while isinstance(model, torch.nn.Module) and id(model) not in seen:
        seen.add(id(model))
        inner = getattr(model, "_orig_mod", None)
        if not (type(model).__name__ == "OptimizedModule" and isinstance(inner, torch.nn.Module)):
            break
        model = inner
    return model


def refuse_compiled_parts(module: torch.nn.Module) -> None:
    """Raises ``InputError`` where a submodule is compiled on its own (``layers[i] = torch.compile(...)``) or
    any module, the model included, was compiled in place (``module.compile()``): dynamo runs such a part as
    one graph, so the operations inside it cannot be read, and it cannot be undone without changing the
    user's model."""
    parts = [path for path, m in module.named_modules() if path and type(m).__name__ == "OptimizedModule"]
    in_place = [path or "the model" for path, m in module.named_modules() if _compiled_in_place(m)]
    if parts:
        raise InputError(
            f"{type(module).__name__} holds submodules compiled on their own ({', '.join(parts[:3])}"
            f"{', ...' if len(parts) > 3 else ''}): their operations cannot be read inside a trace. Pass the model "
            "before compiling its parts (a compiled copy of the whole model, torch.compile(model), is fine)"
        )
    if in_place:
        raise InputError(
            f"{type(module).__name__} was compiled in place with .compile() ({', '.join(in_place[:3])}"
            f"{', ...' if len(in_place) > 3 else ''}): its operations cannot be read inside a trace. Pass a model "
            "that is not compiled in place; compiled = torch.compile(model) keeps your model as it is and is fine"
        )


def _compiled_in_place(m: torch.nn.Module) -> bool:
    return getattr(m, "_compiled_call_impl", None) is not None


def _hooks(module: torch.nn.Module) -> list:
    """accelerate's hooks on ``module`` (a ``SequentialHook`` holds several), read off ``__dict__``."""
    hook = module.__dict__.get("_hf_hook")
    if hook is None:
        return []
    return list(getattr(hook, "hooks", None) or [hook])


def offloaded(module: torch.nn.Module) -> bool:
    """Whether accelerate hooks bring some of ``module``'s weights in at run time (CPU or disk offload)."""
    return any(getattr(h, "offload", False) for m in module.modules() for h in _hooks(m))


def remote_only(module: torch.nn.Module) -> bool:
    """Whether ``module``'s weights are not here at all: meta parameters that no offload hook fills in
    (a model loaded for remote execution). An offloaded model is local."""
    return any(p.device.type == "meta" for p in module.parameters()) and not offloaded(module)


def execution_device(module: torch.nn.Module) -> torch.device | None:
    """Where an offloaded model computes: the first execution device its hooks name (``None``: no hook does)."""
    for m in module.modules():
        for h in _hooks(m):
            device = getattr(h, "execution_device", None)
            if device is not None:
                return torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    return None


@functools.cache
def _offloaded_nnsight() -> type:
    import nnsight

    class OffloadedNNsight(nnsight.NNsight):
        """nnsight moves a trace's inputs to its module's first parameter's device, ``meta`` here; the
        execution device is where the model's hooks run it."""

        @property
        def device(self) -> torch.device | None:
            return execution_device(self._module)

    return OffloadedNNsight


def local_nnsight(module: torch.nn.Module, tokenizer: Any = None) -> Any:
    """``module`` wrapped for tracing: ``nnsight.NNsight``, or for an offloaded module a subclass that
    hands the trace's inputs to the execution device (``tokenizer`` kept as the wrapper's)."""
    import nnsight

    with warnings.catch_warnings():
        # nnsight renames submodules called like its own attributes (BERT's `output`); sites.envoy_at copes
        warnings.filterwarnings("ignore", message="Module .* has a submodule named")
        wrapped = (_offloaded_nnsight() if offloaded(module) else nnsight.NNsight)(module)
    if tokenizer is not None:
        wrapped.tokenizer = tokenizer
    return wrapped


def compile_safe(module: torch.nn.Module) -> None:
    """Let ``torch.compile`` run ``module`` after nnsight has source-instrumented its forward: while dynamo
    compiles, the instrumented body calls the module's own forward (the instrumentation is inert outside a
    trace anyway, so compiled and eager runs compute the same). Idempotent; a module never sourced is left
    alone."""
    from nnsight.intervention.source import STATE

    state = module.__dict__.get(STATE)
    if state is None or not getattr(state, "sourced", False) or getattr(state.body, "_compile_safe", False):
        return
    state.body = _eager_when_compiling(state.body, state.original)


def _eager_when_compiling(instrumented: Any, original: Any) -> Any:
    def body(module: Any, *args: Any, **kwargs: Any) -> Any:
        if torch.compiler.is_compiling():
            return original(module, *args, **kwargs)
        return instrumented(module, *args, **kwargs)

    body._compile_safe = True
    return body


def in_features(module: torch.nn.Module) -> int | None:
    """The input width of a linear-like layer: ``nn.Linear``, GPT-2's ``Conv1D`` (``[in, out]`` weight),
    an adapter wrapping its ``base_layer`` (PEFT's LoRA/DoRA/IA3 layers, merged or not), or any layer that
    states ``in_features`` (quantised linears); ``None`` for anything else."""
    base = getattr(module, "base_layer", None)
    if isinstance(base, torch.nn.Module) and base is not module:
        return in_features(base)
    if isinstance(module, torch.nn.Linear):
        return module.in_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "weight"):
        return module.weight.shape[0]
    value = getattr(module, "in_features", None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def adapted_layer(module: torch.nn.Module, path: str) -> str:
    """``path``, or the adapter around it where it names a part of an adapted layer (its ``base_layer``, or
    an adapter branch such as ``lora_A.default``): the adapter is the layer that computes (its weight
    includes ``B A``), and its input feeds base and adapter alike, so a head cut there leaves neither path."""
    if not isinstance(path, str):
        return path
    parts = path.split(".")
    for depth in range(1, len(parts)):  # the outermost adapted layer that holds the named module
        prefix = ".".join(parts[:depth])
        try:
            owner = module.get_submodule(prefix)
        except AttributeError:
            return path
        if isinstance(getattr(owner, "base_layer", None), torch.nn.Module):
            return prefix
    return path


@torch.no_grad()
def effective_weight(module: torch.nn.Module) -> torch.Tensor:
    """The ``[out, in]`` matrix a linear-like layer applies, as it computes it: a plain layer's weight; for
    an adapted (LoRA adds ``B A``, DoRA rescales columns) or offloaded layer, measured by running the layer
    on the identity (``f(I) - f(0)``: exact for any affine map, bias removed, hooks and adapters included)."""
    plain = getattr(module, "base_layer", None) is None and not _hooks(module)
    if plain and type(module) is torch.nn.Linear and module.weight.device.type != "meta":
        return module.weight.detach()
    if plain and type(module).__name__ == "Conv1D" and module.weight.device.type != "meta":
        return module.weight.detach().T
    width = in_features(module)
    if width is None:
        raise InputError(
            f"{type(module).__name__} is not a linear layer (no in_features): pass projections=[...] naming, per "
            "layer, the linear module whose input is the concatenated head outputs"
        )
    probe = next(module.parameters(), None)  # a meta parameter still has its dtype
    dtype = probe.dtype if probe is not None and probe.is_floating_point() else torch.float32
    device = probe.device if probe is not None and probe.device.type != "meta" else None
    device = device or execution_device(module) or torch.device("cpu")
    y = module(torch.cat([torch.eye(width), torch.zeros(1, width)]).to(device, dtype))  # its hooks run too
    return (y[:-1] - y[-1:]).T.detach()


@contextlib.contextmanager
def materialized(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``module`` with its offloaded weights brought in for the duration (accelerate's own hook does it, as a
    forward would); any other module as it is."""
    hooked = [m for m in module.modules() if any(getattr(h, "offload", False) for h in _hooks(m))]
    if not hooked:
        yield module
        return
    from accelerate.utils import align_module_device

    with contextlib.ExitStack() as stack:
        for m in hooked:
            stack.enter_context(align_module_device(m))
        yield module
