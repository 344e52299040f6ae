"""Where attention happens in a model: one attention *site* per layer, and the escape hatch.

A site is a module path, optionally one operation inside that module's ``forward`` as nnsight's
``.source`` names it (``attention_interface_1``, ``F_softmax_0`` ...; a dotted chain such as
``self__attn_0.nn_functional_softmax_0`` reaches into a helper method the forward calls), and which
*application* of the module it is (``call``: a module that runs several times per forward, as ALBERT's
shared layer or a looped model's block, gives one layer per application). ``layer`` is the model's own
layer index (its position in the model's layer list; the application order where modules repeat), so
that layers without attention are absent rather than renumbered. ``stack`` says which attention stack
the site is in (``engine.seq2seq``: an encoder-decoder's ``"encoder"``, ``"decoder"`` or ``"cross"``;
``"decoder"`` for every site of a one-stack model); layer labels count from 0 within each stack.

Discovery (``engine.discovery.find_sites``) finds sites by what they do; ``CustomSites`` names
them by hand where it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._validate import check_choice
from ..errors import InputError
from .seq2seq import STACKS, Stack
from .site_kinds import Custom, SiteKind
from .wrappers import compile_safe

__all__ = ["Site", "CustomSites", "envoy_at", "op_node"]


@dataclass(frozen=True)
class Site:
    """One layer's attention site: ``layer`` (the model's layer index), ``path`` (dotted module path from
    the model root), ``op`` (an operation of that module's forward, dotted to reach into helpers, or
    ``None`` for the module call itself), ``kind``: its reader (``site_kinds``: how the call is read into a
    pattern; equal to its name, e.g. ``"hf_interface"``), ``call`` (which application of the module, 0
    for the first) and ``stack`` (``engine.seq2seq.Stack``: which attention stack it is in).

    Discovery builds one per layer (``AttentionPatterns.sites`` lists those a capture read), and
    ``CustomSites.expand`` builds them from the paths you name; you rarely construct one yourself.

    Args:
        layer: the model's layer index (its position in the model's layer list; the application order
            where a module runs several times per forward).
        path: the dotted module path from the model root, e.g. ``"model.layers.3.self_attn"``.
        op: an operation inside that module's forward as nnsight's ``.source`` names it (e.g.
            ``"attention_interface_1"``; dotted to reach into a helper it calls), or ``None`` for the module
            call itself.
        kind: the reader that turns the call into a pattern (a ``site_kinds.SiteKind``, equal to its name,
            e.g. ``"hf_interface"``, ``"sdpa_call"``, ``"custom"``).
        call: which application of the module this is, 0 (default) for the first (ALBERT's shared layer or
            a looped block runs several times per forward).
        stack: the attention stack the site is in: ``"decoder"`` (default, every site of a one-stack
            model), ``"encoder"`` or ``"cross"``; anything else raises ``InputError``.

    Examples:
        >>> import torch
        >>> from induction_nb import HandBuiltInduction, capture_attention
        >>> site = capture_attention(HandBuiltInduction(), torch.arange(4, 20)[None]).sites[1]
        >>> site
        Site(layer=1, path='layers.1', op='F_scaled_dot_product_attention_0', kind=sdpa_call, call=0,
             stack='decoder')
        >>> site.kind == "sdpa_call", site.needs_output
        (True, True)
    """

    layer: int
    path: str
    op: str | None
    kind: SiteKind
    call: int = 0
    stack: Stack = "decoder"

    def __post_init__(self) -> None:
        check_choice("stack", self.stack, STACKS)

    @property
    def needs_output(self) -> bool:
        """Whether the reader needs the site's output as well as its inputs (``kind.needs_output``)."""
        return self.kind.needs_output


@dataclass(frozen=True)
class CustomSites:
    """The escape hatch: say which module holds each layer's attention and how to read the pattern.

    ``modules``: explicit dotted paths, one per layer, or one template containing ``{layer}`` together
    with ``n_layers``. ``read``: ``"output"`` (the module's output is the pattern ``[batch, head, q, k]``,
    e.g. TransformerLens's ``hook_pattern``), ``"input"`` (its first input is), or a function
    ``read(args, kwargs, output) -> pattern``. ``op`` optionally names an operation inside the module's
    forward (``print(model.<path>.source)`` lists them). ``causal``: whether keys after the query are
    masked (``None``: inferred from the pattern). ``layers``: the model's layer index of each path
    (default ``0, 1, ...``). ``stack``: the attention stack the sites are in (``engine.seq2seq.Stack``;
    an encoder-decoder's stacks are named by one ``CustomSites`` each). ``values``: optionally a function
    ``values(args, kwargs, output) -> [batch, head or kv_head, k, d_head]`` giving each head's value vectors
    (value-weighted attention, ``concept_induction``, needs them).

    For a TransformerLens ``HookedTransformer`` wrapped with ``nnsight.NNsight``:
    ``CustomSites("blocks.{layer}.attn.hook_pattern", n_layers=model.cfg.n_layers)``, then
    ``capture_attention(model, tokens, sites=sites)``.

    Pass it as ``sites=`` to ``capture_attention``, ``stream_attention``, ``capture_head`` and the tools
    built on them, where discovery raises ``AttentionNotFoundError`` (or finds the wrong modules). Every
    pattern read through it is self-checked like a discovered one (``CaptureCheckError`` for a reader that
    returns something that is not a ``[batch, head, q, k]`` softmax pattern). The fields are checked when
    the sites are used (``expand``): ``InputError`` for a template without ``{layer}`` or without
    ``n_layers``, no paths, an unknown ``read``, or ``layers`` that do not give one distinct index per path.

    Args:
        modules: explicit dotted module paths, one per layer (a path named twice is that module's second
            application), or one template containing ``{layer}`` (e.g. ``"model.layers.{layer}.self_attn"``)
            together with ``n_layers``.
        read: how to read the pattern ``[batch, head, q, k]``: ``"output"`` (default: the module's output,
            or the first item of a tuple output), ``"input"`` (its first input), or a function
            ``read(args, kwargs, output) -> pattern`` given the module's (or the ``op``'s) positional
            arguments, keyword arguments and output.
        n_layers: the number of layers a ``{layer}`` template expands to (paths for ``0 .. n_layers - 1``);
            ignored with explicit paths.
        op: an operation inside the module's forward to read instead of the module call
            (``print(model.<path>.source)`` lists them); ``None`` (default): the module call itself.
        causal: whether keys after the query are masked; ``None`` (default): inferred from the pattern.
        layers: the model's layer index of each path (distinct, one per path); ``None`` (default):
            ``0, 1, ...``.
        stack: the attention stack the sites are in: ``"decoder"`` (default), ``"encoder"`` or ``"cross"``
            (an encoder-decoder's stacks are named by one ``CustomSites`` each).
        values: optionally ``values(args, kwargs, output) -> [batch, head or kv_head, k, d_head]``, each
            head's value vectors (value-weighted attention, ``concept_induction``, needs them); ``None``
            (default): none.

    Examples:
        Read the hand-built model's attention from the inputs of its ``scaled_dot_product_attention`` call
        (discovery finds it too; a reader like this one is for the models where it does not):

        >>> import torch
        >>> from induction_nb import CustomSites, HandBuiltInduction, PatternGenerator, capture_attention
        >>> def softmax_of_qk(args, kwargs, output):  # the op's inputs: query, key, value [batch, head, seq, d]
        ...     scores = args[0] @ args[1].transpose(-1, -2)  # the toy's call is unscaled (scale=1.0)
        ...     n = scores.shape[-1]
        ...     ahead = torch.ones(n, n, dtype=torch.bool).triu(1)
        ...     return scores.masked_fill(ahead, float("-inf")).softmax(-1)
        >>> sites = CustomSites("layers.{layer}", n_layers=2, op="F_scaled_dot_product_attention_0",
        ...                     read=softmax_of_qk, causal=True)
        >>> [site.path for site in sites.expand()]
        ['layers.0', 'layers.1']
        >>> model = HandBuiltInduction()
        >>> tokens = PatternGenerator(40).generate("repeated", seq_len=32, batch_size=2).tokens
        >>> custom = capture_attention(model, tokens, sites=sites)
        >>> custom.sites[1].kind == "custom"
        True
        >>> bool(torch.allclose(custom.pattern, capture_attention(model, tokens).pattern, atol=1e-5))
        True
    """

    modules: str | Sequence[str]
    read: Literal["output", "input"] | Callable[[tuple, dict, Any], torch.Tensor] = "output"
    n_layers: int | None = None
    op: str | None = None
    causal: bool | None = None
    layers: Sequence[int] | None = None
    stack: Stack = "decoder"
    values: Callable[[tuple, dict, Any], torch.Tensor] | None = None

    def expand(self) -> tuple[Site, ...]:
        """The ``Site`` of each path, in the order given (a path named twice: its second application).

        Returns:
            tuple[Site, ...]: one site per path, with the layer index from ``layers`` and a custom reader.

        Raises:
            InputError: for a template without ``{layer}`` or without ``n_layers``, no paths, a ``read``
                that is not ``"output"``, ``"input"`` or a function, or ``layers`` that do not give one
                distinct index per path.
        """
        if isinstance(self.modules, str):
            if "{layer}" not in self.modules or self.n_layers is None:
                raise InputError(
                    "CustomSites: pass a list of module paths, or a template containing '{layer}' "
                    f"together with n_layers (got modules={self.modules!r}, n_layers={self.n_layers})"
                )
            paths = [self.modules.format(layer=i) for i in range(self.n_layers)]
        else:
            paths = list(self.modules)
        if not paths:
            raise InputError("CustomSites: no module paths given")
        if self.read == "output":
            reader = _read_output
        elif self.read == "input":
            reader = _read_input
        elif callable(self.read):
            reader = self.read
        else:
            raise InputError(f"CustomSites.read must be 'output', 'input' or a function, not {self.read!r}")
        labels = list(range(len(paths))) if self.layers is None else [int(i) for i in self.layers]
        if len(labels) != len(paths) or len(set(labels)) != len(labels):
            raise InputError(
                f"CustomSites.layers must give one distinct layer index per path ({len(paths)}), got {self.layers!r}"
            )
        counts: dict[str, int] = {}
        sites = []
        for label, path in zip(labels, paths):
            kind = Custom(reader, self.causal, f"layer {label}: the custom reader for {path!r}", self.values)
            site = Site(layer=label, path=path, op=self.op, kind=kind, call=counts.get(path, 0), stack=self.stack)
            sites.append(site)
            counts[path] = counts.get(path, 0) + 1  # a path named twice: its second application
        return tuple(sites)


def envoy_at(model: Any, path: str) -> Any:
    """The nnsight envoy of the submodule at dotted ``path``. Unlike ``model.get``, a submodule named like
    an nnsight attribute (BERT's ``output``) resolves to the submodule, not to the module's output."""
    envoy = model
    if not path:
        return envoy
    for part in path.split("."):
        children = getattr(envoy, "_child_map", None)
        envoy = children[part] if isinstance(children, dict) and part in children else getattr(envoy, part)
    return envoy


def op_node(envoy: Any, op: str | None) -> Any:
    """Inside a trace: the envoy of operation ``op`` of ``envoy``'s forward (a dotted chain reaches into the
    functions it calls, ``a_0.b_1`` = operation ``b_1`` inside the call ``a_0``), or ``envoy`` itself."""
    if not op:
        return envoy
    node, source = None, envoy.source
    compile_safe(envoy._module)  # the forward is instrumented now: keep compiled copies of the model working
    for i, name in enumerate(op.split(".")):
        node = getattr(source, name)
        if i < op.count("."):
            source = node.source
    return node


def _read_output(args: tuple, kwargs: dict, output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _read_input(args: tuple, kwargs: dict, output: Any) -> torch.Tensor:
    return args[0] if args else next(iter(kwargs.values()))
