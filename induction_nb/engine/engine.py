"""The one place that runs a model for induction_nb, locally or on NDIF.

``Engine.of(model, remote)`` resolves a model once: the nnsight wrapper, the torch module, the remote
configuration, and the facts every tool needs (vocabulary, positions, dtype tolerance, BOS, tokenizer,
attention sites, output projections), cached per model object (a weak reference: nothing of ours is
written onto it; nnsight does instrument the forwards of the modules it reads, which ``engine.wrappers``
keeps harmless to compiled copies). It is the one guard path: every tool's model passes its mode checks
(``engine.modes``), wrapper unwrapping (``load_model``) and probe-length rule (``probe_length``).
``engine.trace(tokens)`` is the trace, local or remote; ``engine.translate(e)`` the one error policy.

Inside a trace, ``read_layer`` reads one attention site's pattern (trimmed to the tokens, self-checked,
reduced) and ``head_outputs`` one layer's head outputs (the output projection's input). Everything a trace
body calls lives at module level, so that a remote request ships it by value (``nnsight.register``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

from ..errors import CaptureCheckError, InductionNBError, InputError
from ..probes.patterns import PatternGenerator
from . import model_info as info
from .batch import check_tokens, make_batch
from .defaults import fit_probe_length
from .discovery import find_projection, find_sites, in_features
from .models import load_model
from .modes import check_repeatable, check_training, mode_probe
from .reads import Read, check_pattern, mask_padding, token_block
from .remote import resolve
from .rows import flash_with_lse
from .seq2seq import Stack, decoder_start, select_stack, stack_size
from .sites import Site, envoy_at, op_node
from .tracing import remote_failure, trace

__all__ = ["Engine", "read_layer", "head_outputs", "cut_heads", "ROW_TOLERANCE"]

# Row-sum tolerance by the dtype the model computes in (its softmax rounds at that precision).
ROW_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-6, torch.float16: 5e-3, torch.bfloat16: 3e-2}
_LSE_OK: weakref.WeakKeyDictionary[torch.nn.Module, bool] = weakref.WeakKeyDictionary()
# output projections found per torch module: {override or None: (paths by layer, head width)}; plain data
_PROJECTIONS: weakref.WeakKeyDictionary[torch.nn.Module, dict] = weakref.WeakKeyDictionary()


class Engine:
    """A model resolved for induction_nb (see the module docstring). Build it with ``Engine.of``."""

    def __init__(self, model: Any, module: torch.nn.Module, remote: Any):
        self.model, self.module, self.remote = model, module, remote
        self._sites: tuple[Site, ...] | None = None

    @classmethod
    def of(cls, model: Any, remote: Any = False) -> Engine:
        """The engine of ``model`` (anything ``load_model`` accepts; a name or path is loaded) on ``remote``
        (``False``, ``True`` or a ``RemoteConfig``). Cheap: what is costly to find (sites, projections) is
        cached per torch module, as plain data that holds no reference to the model."""
        if isinstance(model, Engine):
            return model
        wrapped = load_model(model)  # wraps a model you already have, loads a name or path
        resolved = None
        if remote:
            resolved = resolve(wrapped, remote)
        engine = cls(wrapped, info.torch_module(wrapped), resolved)
        engine.check_eval()  # every tool resolves its model here: one mode guard for all of them
        return engine

    # -- facts ----------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return info.model_name(self.model)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.model, "tokenizer", None)

    @property
    def vocab_size(self) -> int | None:
        return info.vocab_size(self.module)

    @property
    def max_positions(self) -> int | None:
        return info.max_positions(self.module)

    @property
    def tolerance(self) -> float:
        return ROW_TOLERANCE.get(info.model_dtype(self.module), 1e-3)

    @property
    def config_layers(self) -> int | None:
        """The layer count the config states (``None`` without one; an encoder-decoder's decoder's);
        ``n_layers`` is what runs."""
        return stack_size(self.module, "decoder")[0] or info.n_layers(self.module)

    @property
    def n_heads(self) -> int | None:
        return stack_size(self.module, "decoder")[1] or info.n_heads(self.module)

    def bos_token_id(self) -> int | None:
        """The model's BOS id (an encoder-decoder's decoder start token first, then the tokenizer's, then
        the config's), where it lies inside the vocabulary."""
        vocab = self.vocab_size
        for source in (
            decoder_start(self.module),
            getattr(self.tokenizer, "bos_token_id", None),
            getattr(getattr(self.module, "config", None), "bos_token_id", None),
        ):
            if isinstance(source, int) and source >= 0:
                return source if vocab is None or source < vocab else None
        return None

    @property
    def special_ids(self) -> tuple[int, ...]:
        return tuple(getattr(self.tokenizer, "all_special_ids", None) or ())

    def generator(self, seed: int = 0, *, bos: bool = True, vocab_size: int | None = None) -> Any:
        """A ``PatternGenerator`` for this model: its vocabulary (or ``vocab_size``), its special tokens
        left out, its BOS prepended (``bos``), its tokenizer for natural text."""
        vocab = vocab_size or self.vocab_size
        if vocab is None:
            raise InputError(f"cannot tell the vocabulary size of {type(self.module).__name__}; pass vocab_size=")
        return PatternGenerator(
            vocab,
            seed=seed,
            exclude=self.special_ids,
            bos_token_id=self.bos_token_id() if bos else None,
            tokenizer=self.tokenizer,
        )

    def probe_length(
        self, requested: int | None, *, preferred: int, minimum: int = 4, tool: str = "this tool", seed: int = 0
    ) -> tuple[int, str | None]:
        """``(sequence_length, why the default adapted or None)``: the one rule every tool's probe length
        follows (``engine.defaults.fit_probe_length``: ``preferred`` where the model's positions and
        vocabulary allow it). Raises ``InputError`` naming a length that works."""
        gen = self.generator(seed)
        return fit_probe_length(gen, self.max_positions, requested, preferred=preferred, minimum=minimum, tool=tool)

    def check_tokens(self, tokens: Any) -> torch.Tensor:
        return check_tokens(tokens, self.module)

    def batch(
        self, tokens: Any, attention_mask: Any = None, *, max_length: int | None = None, overflow: str = "error"
    ) -> Any:
        """A checked ``engine.batch.Batch``: token ids (or strings, through the tokenizer) and their padding."""
        return make_batch(tokens, attention_mask, self.module, self.tokenizer, max_length=max_length, overflow=overflow)

    def check_forward(self) -> None:
        """``InputError`` where two identical forwards of a local model differ (``engine.modes``): run on every
        tool call, before anything is read (a cached verdict would miss a dropout switched on since)."""
        if self.remote is None:
            check_repeatable(self.module, self.check_tokens(mode_probe(self.vocab_size, self.max_positions)))

    def check_eval(self) -> None:
        """``InputError`` for a local model with any submodule in training mode (``engine.modes``); remotely,
        the server's copy is what runs."""
        if self.remote is None:
            check_training(self.module)

    # -- attention sites and head outputs ---------------------------------------------------------------

    def sites(self, probe_tokens: torch.Tensor | None = None, stack: Stack | None = None) -> tuple[Site, ...]:
        """The attention site applications of one stack in run order (see ``engine.discovery``; ``stack``:
        ``engine.seq2seq.Stack``, default ``"decoder"``: an encoder-decoder's decoder self-attention, every
        site of a one-stack model), found once per model."""
        if self._sites is None:
            if probe_tokens is None:
                vocab = max(2, self.vocab_size or 2)
                probe_tokens = (torch.arange(2, 10) % (vocab - 1) + 1)[None]
            probe = self.check_tokens(probe_tokens[:1, :8])
            self.check_forward()
            self._sites = find_sites(self.model, self.module, probe, self.remote)
        return select_stack(self._sites, stack, self.module)

    @property
    def layers(self) -> list[int]:
        """The model's layer indices that have attention, in run order."""
        return [s.layer for s in self.sites()]

    def heads_per_layer(self) -> dict[int, int | None]:
        """``{layer: query heads}``: what each attention module states itself (layers may differ:
        OpenELM-style models, hybrids), else the config's count (``None`` where nothing says)."""
        return {s.layer: info.module_heads(self.module.get_submodule(s.path)) or self.n_heads for s in self.sites()}

    @property
    def n_layers(self) -> int:
        """Rows of the layer x head grid: the config's layer count, or more where layers repeat."""
        return max(max(self.layers) + 1, self.config_layers or 0)

    def projections(self, override: list[str] | None = None) -> tuple[dict[int, str], int]:
        """``({layer: path of its output projection}, head width)``: where each layer's heads can be read or
        cut (the projection's input is the concatenated head outputs). ``override``: one path per layer."""
        cached = _PROJECTIONS.get(self.module, {})
        if override is None and None in cached:
            return cached[None]
        sites = self.sites()
        if override is not None:
            if len(override) != len(sites):
                raise InputError(f"projections names {len(override)} modules for {len(sites)} attention layers")
            paths = list(override)
        else:
            paths = [find_projection(self.module, s.path) for s in sites]
        n_heads = self.n_heads
        if n_heads is None:
            raise InputError(
                f"cannot tell how many heads {type(self.module).__name__} has (no config, no n_heads attribute)"
            )
        widths = {p: in_features(self.module.get_submodule(p)) for p in paths}
        width = widths[paths[0]]
        if width is None or width % n_heads:
            raise InputError(
                f"the output projection {paths[0]!r} takes {width} features, which do not split into "
                f"{n_heads} heads; pass projections=[...] naming the right module per layer"
            )
        uneven = {p: w for p, w in widths.items() if w != width}
        if uneven:
            raise InputError(
                f"the output projections differ in width ({paths[0]!r}: {width}, then {uneven}): the "
                "layers have different head counts or sizes, which the ablation tools do not support"
            )
        result = dict(zip([s.layer for s in sites], paths)), width // n_heads
        if override is None:
            _PROJECTIONS.setdefault(self.module, {})[None] = result
        return result

    def lse_ok(self) -> bool:
        """Whether scoring may run the model's flash kernel itself to get each row's logsumexp (``rows.
        flash_with_lse``): checked once per model, on a short probe, by comparing that kernel's output with
        the model's own attention output. Remote runs never do (the server's device decides its kernels)."""
        if self.remote is not None:
            return False
        if self.module not in _LSE_OK:
            _LSE_OK[self.module] = self._lse_reproduces_output()
        return _LSE_OK[self.module]

    def _lse_reproduces_output(self) -> bool:
        import nnsight

        sites = self.sites()
        if not sites or not sites[0].kind.flash_lse:
            return False
        vocab = max(2, self.vocab_size or 2)
        probe = self.check_tokens((torch.arange(2, 10) % (vocab - 1) + 1)[None])
        site, model = sites[0], self.model
        try:
            with torch.no_grad(), self.trace(probe) as tracer:
                verdict = nnsight.save([])
                verdict.append(_lse_matches(model, site, probe.shape[1]))
                tracer.stop()
        except Exception:  # a branch not taken, a kernel that is not there: the blockwise path serves
            return False
        return bool(verdict and verdict[0])

    # -- running ----------------------------------------------------------------------------------------

    def trace(self, tokens: Any) -> Any:
        """The nnsight tracer of a forward over ``tokens`` (a tensor, or a ``engine.batch.Batch`` whose mask and
        position ids the forward gets), local or on the remote host; enter it in the caller's own ``with``
        statement (nnsight reads the body from the caller's source)."""
        if isinstance(tokens, torch.Tensor):
            return trace(self.model, tokens, self.remote)
        return trace(self.model, tokens.tokens, self.remote, **tokens.forward_kwargs(self.module))

    @property
    def can_generate(self) -> bool:
        """Whether the nnsight wrapper traces ``generate`` (an HF causal LM loaded with ``load_model``, or an
        nnsight ``TransformersModel``): decoding then uses the KV cache. A plain module wrapped with
        ``nnsight.NNsight`` reaches its model's ``generate`` only outside a trace."""
        return callable(getattr(type(self.model), "generate", None))

    def generate(self, tokens: torch.Tensor, **kwargs: Any) -> Any:
        """The nnsight tracer of ``model.generate(tokens, **kwargs)`` (local, or on the remote host), for
        decoding with the KV cache; entered like ``trace``."""
        return trace(self.model, tokens, self.remote, "generate", **kwargs)

    def translate(self, e: BaseException, sites: tuple[Site, ...] = ()) -> BaseException:
        """The one error policy for a failed trace: a remote failure becomes a ``RemoteExecutionError`` of
        its kind; nnsight's own bookkeeping errors (an operation that did not run, or ran in another
        order) a ``CaptureCheckError`` naming the sites; anything else is returned as it is."""
        remote = remote_failure(e, self.remote)
        if remote is not None:
            return remote
        if isinstance(e, InductionNBError) or not type(e).__module__.startswith("nnsight"):
            return e
        where = ", ".join(f"L{s.layer} {s.path}{'.' + s.op if s.op else ''}" for s in sites[:3])
        first = str(e).splitlines()[0] if str(e) else ""
        return CaptureCheckError(
            f"reading the model inside the trace failed ({type(e).__name__}: {first})"
            + (f"; sites: {where}{'...' if len(sites) > 3 else ''}" if sites else "")
            + ". The forward may take another branch for these tokens than for the discovery probe; name the "
            "sites with sites=CustomSites(...)"
        )


# -- inside a trace ---------------------------------------------------------------------------------------


def read_layer(
    model: Any,
    tracer: Any,
    site: Site,
    tolerance: float,
    reduce: Callable,
    n_tokens: int,
    batch: int,
    valid: torch.Tensor | None = None,
) -> tuple[int, Any, bool | None]:
    """Inside a trace: ``(site.layer, reduce(...), causal)`` for one site application, or
    ``(site.layer, None, None)`` where its attention does not cover the tokens (Funnel's pooled blocks
    attend over fewer positions: not attention among the tokens, left out). ``reduce`` gets ``(layer,
    pattern [batch, head, q, k])``; the sink's share ``[batch, head, q]`` (or ``None``) as a third
    argument where it sets ``accepts_sink = True``, or the heads' value vectors ``[batch, head, k, d_head]`` (or
    ``None``: the site does not pass them; ``SiteKind.values``) where it sets ``accepts_values = True``; or,
    where it sets ``accepts_rows = True``, ``(layer, rows)``: the pattern row block by row block
    (``engine.rows.Rows``, self-checked as it is read), never whole.
    ``valid`` ``[batch, seq]`` (a padded batch's real tokens): the whole pattern is read, padding rows and
    columns zeroed, real rows checked (``engine.reads.mask_padding``)."""
    if site.call == 0:
        return _read(model, site, tolerance, reduce, n_tokens, batch, valid)
    box = []
    for _ in tracer.iter[site.call]:  # the site module's (call + 1)-th application in this forward
        box.append(_read(model, site, tolerance, reduce, n_tokens, batch, valid))
    return box[0]


def _read(
    model: Any, site: Site, tolerance: float, reduce: Callable, n_tokens: int, batch: int, valid: torch.Tensor | None
):
    envoy = envoy_at(model, site.path)
    node = op_node(envoy, site.op)
    args, kwargs = node.inputs
    if getattr(reduce, "use_lse", False) and site.kind.flash_lse and valid is None:
        fast = flash_with_lse(args, kwargs, n_tokens)
        if fast is not None:  # the model's own kernel, run by us for its logsumexp: the model gets its output
            node.skip((fast[0], None))
            fast[1].check(site.layer, tolerance)
            return site.layer, reduce(site.layer, fast[1]), True
    output = node.output if site.needs_output else None
    lazy = getattr(reduce, "accepts_rows", False) and valid is None
    read = site.kind.read(args, kwargs, output, envoy._module, batch, lazy=lazy)
    if read.rows is None or read.rows.shape[2:] != (n_tokens, n_tokens):
        if read.rows is not None:  # positions beyond the tokens: trimmed on the whole pattern
            pattern, sink = read.rows.full()
            read = Read(pattern, read.causal, sink)
        read = token_block(read, n_tokens, site.layer)
    rows = read.as_rows()
    if min(rows.shape[-2:]) < n_tokens:
        return site.layer, None, None
    if valid is not None:
        read = mask_padding(read, valid, site.layer, tolerance)
        if getattr(reduce, "accepts_rows", False):
            return site.layer, reduce(site.layer, read.as_rows()), read.causal
    elif getattr(reduce, "accepts_rows", False):  # checked block by block as the reducer reads them
        return site.layer, reduce(site.layer, rows.checked(site.layer, tolerance)), read.causal
    if valid is None:
        check_pattern(read, site.layer, tolerance)
    extra = (read.sink,) if getattr(reduce, "accepts_sink", False) else ()
    if getattr(reduce, "accepts_values", False):  # value-weighted attention: the heads' value vectors too
        extra = (site.kind.values(args, kwargs, node.output if output is None else output, envoy._module, read),)
    return site.layer, reduce(site.layer, read.pattern, *extra), read.causal


def _lse_matches(model: Any, site: Site, n_tokens: int) -> bool:
    """Inside a probe trace: the flash kernel's output equals what the model's attention call returned."""
    node = op_node(envoy_at(model, site.path), site.op)
    args, kwargs = node.inputs
    fast = flash_with_lse(args, kwargs, n_tokens)
    output = node.output
    got = output[0] if isinstance(output, (tuple, list)) else output
    return fast is not None and bool(torch.allclose(fast[0], got, atol=1e-6, rtol=1e-5))


def head_outputs(model: Any, tracer: Any, path: str, call: int = 0) -> Any:
    """Inside a trace: the input of the output projection at ``path`` on its ``call``-th application,
    ``[batch, seq, head * d_head]``: every head's output side by side (a live proxy: edit it to ablate)."""
    if call == 0:
        return envoy_at(model, path).input
    box = []
    for _ in tracer.iter[call]:
        box.append(envoy_at(model, path).input)
    return box[0]


def cut_heads(model: Any, tracer: Any, path: str, call: int, blocks: list, values: torch.Tensor | None) -> None:
    """Inside a trace: set each ``(rows, cols)`` block of the head outputs at ``path`` (its ``call``-th
    application) to zero, to ``values[cols]`` (mean ablation, ``values`` ``[width]``) or to
    ``values[:, :, cols]`` (a corrupted run's outputs ``[batch, seq, width]``, one copy of the batch)."""
    if call:
        for _ in tracer.iter[call]:
            cut_heads(model, tracer, path, 0, blocks, values)
        return
    z = envoy_at(model, path).input
    for rows, cols in blocks:
        if values is None:
            z[rows, :, cols] = 0
        else:
            z[rows, :, cols] = (values[cols] if values.dim() == 1 else values[:, :, cols]).to(z.device, z.dtype)
