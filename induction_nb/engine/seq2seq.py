"""Encoder-decoder (seq-to-seq) models: what their forward gets, and which attention *stack* a site is in.

**Stacks** (``Stack``, a closed set): ``"decoder"``: self-attention over the tokens as given: an
encoder-decoder's decoder, and the one stack of every other model (decoder-only or encoder-only; the name
says which stack of a seq-to-seq model is meant, a one-stack model has only this one); ``"encoder"``: an
encoder-decoder's encoder self-attention; ``"cross"``: its decoder's attention over the encoder's output.
Layer labels count from 0 within each stack. The tools read one stack at a time (``select_stack``), the
decoder's by default, so that stacks are never stacked as if one.

**The forward** (``forward_inputs``, the one place this is decided, applied by ``tracing.trace`` and by
discovery's plain probe): a model whose config says ``is_encoder_decoder`` (and whose forward takes
``decoder_input_ids``) gets the tokens as ``decoder_input_ids``, unshifted, so that decoder self-attention
is over exactly the tokens the scores assume (detection's probes start with the decoder start token where
the model has one, as its BOS: see ``decoder_start``). The encoder gets the same tokens as ``input_ids`` (a default: the
decoder's scores then see an encoder output of the same text; encoder self-attention, on request, is over
the tokens too). A padded batch's mask goes to both (``attention_mask``, ``decoder_attention_mask``).
An encoder that reads audio features (``main_input_name == "input_features"``, Whisper) gets zeros of the
shape its config states: its decoder self-attention runs on the ids (over a blank recording); its
encoder's and cross-attention's keys are audio frames, not the tokens, so those stacks are refused.

**Which stack** (``site_stacks``): by what each attention module is given in one plain probe forward in
which the encoder's input is shorter than the decoder's (longer for a probe of 4 tokens or fewer). Inside
the encoder the model names (``get_encoder``): encoder self-attention. Inside its decoder: cross-attention
where the module is given what the encoder returned, decoder self-attention otherwise (whatever the length
of its streams: ProphetNet). Elsewhere, by the lengths alone: the decoder's only, decoder; both, cross;
neither, encoder. Where no decoder module is self-attention alone, the decoder's attention is merged self-
and cross-attention (T5Gemma 2: one softmax over the decoder's tokens, then the encoder's): a decoder site
whose keys beyond the tokens are sink mass, as HF's ``decoder_attentions``, and no cross stack. A model
where that yields no decoder stack, or a module given no hidden states, is refused
(``AttentionNotFoundError``), never guessed.

Limits: needs a local forward (a remote encoder-decoder is refused); encoders reading anything else than
ids or Whisper-style features (pixels, other audio layouts) are refused; ``generate``-based decoding is
not adapted.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Literal

import torch

from .._validate import check_choice
from ..errors import AttentionNotFoundError, InputError
from .model_info import model_device, model_dtype

__all__ = [
    "Stack",
    "STACKS",
    "is_encoder_decoder",
    "forward_inputs",
    "plain_forward",
    "site_stacks",
    "select_stack",
    "decoder_start",
    "stack_size",
    "SCORED",
    "check_scored_stack",
]

Stack = Literal["decoder", "encoder", "cross"]
STACKS: tuple[str, ...] = Stack.__args__
_EXTRA = 3  # the stack probe's encoder input is this many tokens shorter (or longer) than the decoder's


def is_encoder_decoder(module: torch.nn.Module) -> bool:
    """Whether ``module`` runs an encoder and a decoder: its config says so and its forward takes
    ``decoder_input_ids`` (a seq-to-seq config reused by a decoder-only class does not)."""
    config = getattr(module, "config", None)
    if not getattr(config, "is_encoder_decoder", False):
        return False
    try:
        return "decoder_input_ids" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


def _encoder_input_name(module: torch.nn.Module) -> str:
    return str(getattr(module, "main_input_name", "input_ids"))


def reads_ids(module: torch.nn.Module) -> bool:
    """Whether the encoder of an encoder-decoder ``module`` reads the token ids (not audio features)."""
    return _encoder_input_name(module) == "input_ids"


def forward_inputs(
    module: torch.nn.Module, tokens: Any, kwargs: dict[str, Any], encoder_tokens: Any = None
) -> tuple[tuple, dict[str, Any]]:
    """``(args, kwargs)`` of the model's forward on ``tokens`` (``kwargs``: a padded batch's mask and
    position ids, see ``batch.Batch.forward_kwargs``): ``((tokens,), kwargs)`` for a one-stack model; for an
    encoder-decoder the encoder's input positionally (``encoder_tokens``, default the tokens) and the
    tokens as ``decoder_input_ids`` (see the module docstring)."""
    if not is_encoder_decoder(module):
        return (tokens,), kwargs
    kwargs = dict(kwargs)
    kwargs["decoder_input_ids"] = tokens
    mask = kwargs.get("attention_mask")
    if mask is not None:
        kwargs["decoder_attention_mask"] = mask
    name = _encoder_input_name(module)
    if name == "input_ids":
        return (tokens if encoder_tokens is None else encoder_tokens,), kwargs
    if name == "input_features":
        kwargs.pop("attention_mask", None)  # the tokens' mask says nothing about the audio frames
        return (_blank_features(module, tokens.shape[0]),), kwargs
    raise InputError(
        f"the encoder of {type(module).__name__} reads {name!r}, not token ids, and induction_nb cannot make one "
        "up; capture its decoder with a model whose encoder reads ids, or name the sites with CustomSites"
    )


def plain_forward(module: torch.nn.Module, tokens: Any, hooks: Sequence[Any] = (), encoder_tokens: Any = None) -> Any:
    """The model's own forward on ``tokens`` (``forward_inputs``' convention), without gradients; ``hooks``
    (handles registered for this one run) are removed after it, whatever happens, so that no hook is left
    on the user's model, even where the inputs cannot be built."""
    try:
        args, kwargs = forward_inputs(module, tokens, {}, encoder_tokens)
        with torch.no_grad():
            return module(*args, **kwargs)
    finally:
        for hook in hooks:
            hook.remove()


def _blank_features(module: torch.nn.Module, batch: int) -> torch.Tensor:
    """Zero audio features ``[batch, mel bins, frames]`` of the length the config states (Whisper's encoder
    refuses any other)."""
    config = module.config
    bins, positions = getattr(config, "num_mel_bins", None), getattr(config, "max_source_positions", None)
    if not isinstance(bins, int) or not isinstance(positions, int):
        raise InputError(
            f"the encoder of {type(module).__name__} reads audio features, and its config states no num_mel_bins "
            "and max_source_positions to build a blank input from; its decoder cannot be run on ids alone"
        )
    # the device the model runs on: an offloaded model's parameters sit on meta between calls
    return torch.zeros(batch, bins, 2 * positions, dtype=model_dtype(module), device=model_device(module))


def site_stacks(
    module: torch.nn.Module, probe_tokens: torch.Tensor, paths: Sequence[str], local: bool, ran: Sequence[str] = ()
) -> dict:
    """``{path: stack}`` for the attention modules at ``paths`` (see the module docstring): all
    ``"decoder"`` for a one-stack model; for an encoder-decoder, read off one plain forward (``local``:
    whether one can run here). ``ran``: every attention-like module that ran, sites or not (a decoder
    self-attention that is not a site forbids reading cross-attention as merged attention)."""
    paths = list(dict.fromkeys(paths))
    others = [p for p in dict.fromkeys(ran) if p not in paths]
    if not is_encoder_decoder(module):
        return _torch_stacks(module, paths) or dict.fromkeys(paths, "decoder")
    if not local:
        raise InputError(
            f"{type(module).__name__} is an encoder-decoder: telling its stacks apart needs a forward on this "
            "machine, and its weights are not here (remote or on the meta device); load it locally"
        )
    probe_tokens = probe_tokens[:1]
    if probe_tokens.shape[1] > _EXTRA + 1:  # shorter: within the encoder's positions whatever they are
        other = probe_tokens[:, :-_EXTRA]
    else:
        other = torch.cat([probe_tokens, probe_tokens[:, :_EXTRA]], dim=1)
    lengths: dict[str, set[int]] = {p: set() for p in [*paths, *others, ""]}  # "": what the encoder returns
    halves = _halves(module)
    handles = [
        module.get_submodule(p).register_forward_pre_hook(
            lambda m, a, kw, p=p: _record(lengths[p], (*a, *kw.values())), with_kwargs=True
        )
        for p in [*paths, *others]
    ]
    if "encoder" in halves:
        encoder = module.get_submodule(halves["encoder"])
        handles.append(encoder.register_forward_hook(lambda m, a, out: _record(lengths[""], _first(out))))
    plain_forward(module, probe_tokens, handles, encoder_tokens=other)
    n = probe_tokens.shape[1]
    stacks: dict[str, Stack] = {p: _stack_of(p, lengths[p], n, lengths[""], halves) for p in [*paths, *others]}
    if "cross" in stacks.values() and "decoder" not in stacks.values():
        # one softmax over the decoder's tokens and then the encoder's (T5Gemma 2's merged attention): the
        # decoder's self-attention, the encoder's share of each row read as sink mass (reads.token_block)
        stacks = {p: "decoder" if s == "cross" else s for p, s in stacks.items()}
    stacks = {p: stacks[p] for p in paths}
    unread = [p for p in paths if not lengths[p]]
    if unread or "decoder" not in stacks.values():  # (an encoder whose attention is not found is no doubt)
        raise AttentionNotFoundError(
            f"cannot tell the decoder's attention of {type(module).__name__} from its encoder's (found: "
            f"{', '.join(sorted(set(stacks.values())))}; no hidden states seen at {unread[:2]}); name each stack's "
            "sites with induction_nb.CustomSites(..., stack='decoder') and pass it as sites=..."
        )
    return stacks


def _torch_stacks(module: torch.nn.Module, paths: Sequence[str]) -> dict | None:
    """``{path: stack}`` of a PyTorch ``nn.Transformer``-style encoder-decoder, read off its structure (its
    forward is the user's, so the stack probe cannot choose the halves' inputs): attention inside an
    ``nn.TransformerDecoderLayer`` is decoder self-attention (``self_attn``) or cross-attention
    (``multihead_attn``), any other (``nn.TransformerEncoder``'s) the encoder's. ``None`` without a decoder
    layer of that kind (an encoder-only or decoder-only model: one stack)."""
    layers = {p: m for p, m in module.named_modules() if isinstance(m, torch.nn.TransformerDecoderLayer)}
    if not layers:
        return None
    stacks: dict[str, Stack] = {}
    for path in paths:
        owner = next((p for p in layers if path.startswith(p + ".")), None)
        if owner is None:
            stacks[path] = "encoder"
        else:
            stacks[path] = "cross" if path == f"{owner}.multihead_attn" else "decoder"
    return stacks


def _record(into: set[int], values: Any) -> None:
    """The lengths of the hidden states among ``values``: ``[batch, length, width]`` or time-first (FSMT);
    the probe is one sequence, so a dimension of 1 is the batch."""
    for x in values:
        if isinstance(x, torch.Tensor) and x.dim() == 3 and x.is_floating_point():
            into.update(d for d in x.shape[:2] if d != 1)


def _first(out: Any) -> tuple:
    """What a module returned, as a tuple of its first entry (a ``ModelOutput``'s last hidden state)."""
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return (out[0],) if isinstance(out, (tuple, list)) and out else (out,)


def _halves(module: torch.nn.Module) -> dict[str, str]:
    """``{"encoder": path, "decoder": path}`` of the model's own halves (HF's ``get_encoder``/``get_decoder``),
    where it names submodules of its own."""
    where = {id(m): p for p, m in module.named_modules() if p}
    out = {}
    for half in ("encoder", "decoder"):
        get = getattr(module, f"get_{half}", None)
        try:
            part = get() if callable(get) else None
        except Exception:  # a model that has no such half raises here
            part = None
        if isinstance(part, torch.nn.Module) and id(part) in where:
            out[half] = where[id(part)]
    return out


def _stack_of(path: str, lengths: set[int], n_decoder: int, encoded: set[int], halves: dict[str, str]) -> Stack:
    """In the encoder's half: encoder; in the decoder's: cross-attention where the module is given what the
    encoder returned (``encoded`` lengths), else decoder (whatever its streams' length, ProphetNet's n-gram
    streams included); outside both, by the lengths alone (the decoder's only, or both)."""
    inside = {half for half, prefix in halves.items() if path == prefix or path.startswith(prefix + ".")}
    if inside == {"encoder"}:
        return "encoder"
    if inside == {"decoder"} and encoded:
        return "cross" if lengths & encoded else "decoder"
    if n_decoder not in lengths:
        return "encoder"
    return "cross" if len(lengths) > 1 else "decoder"


def select_stack(sites: Sequence[Any], stack: Any, module: torch.nn.Module) -> tuple:
    """The sites of ``stack`` (``None``: ``"decoder"``), or ``InputError`` naming the stacks there are."""
    stack = "decoder" if stack is None else check_choice("stack", stack, STACKS)
    chosen = tuple(s for s in sites if s.stack == stack)
    name = type(module).__name__
    if stack != "decoder" and is_encoder_decoder(module) and not reads_ids(module):
        raise InputError(
            f"the encoder of {name} reads {_encoder_input_name(module)!r}, not the tokens: its {stack} attention "
            "is over those positions, not a pattern among the tokens; use stack='decoder'"
        )
    if not chosen:
        have = sorted({s.stack for s in sites})
        one = "" if is_encoder_decoder(module) else " (it is not an encoder-decoder: its attention is one stack)"
        raise InputError(f"{name} has no {stack!r} attention{one}; its stacks: {', '.join(have) or 'none'}")
    return chosen


def decoder_start(module: torch.nn.Module) -> int | None:
    """The token an encoder-decoder's decoder sequences start with (``decoder_start_token_id``), or ``None``."""
    if not is_encoder_decoder(module):
        return None
    value = getattr(module.config, "decoder_start_token_id", None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


_LAYERS = {"decoder": ("decoder_layers", "num_decoder_layers"), "encoder": ("encoder_layers", "num_layers")}
_HEADS = {
    "decoder": ("decoder_attention_heads", "num_decoder_heads", "num_heads", "num_attention_heads"),
    "encoder": ("encoder_attention_heads", "num_heads", "num_attention_heads"),
}


def stack_size(module: torch.nn.Module, stack: Stack) -> tuple[int | None, int | None]:
    """``(layers, heads)`` an encoder-decoder's config states for ``stack`` (cross-attention: the decoder's),
    ``(None, None)`` for a one-stack model or where the config does not say."""
    if not is_encoder_decoder(module):
        return None, None
    config = module.config
    key = "encoder" if stack == "encoder" else "decoder"

    def first(names: tuple[str, ...]) -> int | None:
        for name in names:
            value = getattr(config, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return None

    return first(_LAYERS[key]), first(_HEADS[key])


SCORED: tuple[str, ...] = ("decoder", "encoder")  # the stacks the induction metrics can score


def check_scored_stack(stack: Any) -> Stack | None:
    """``stack`` for scoring (``None``: the default, the decoder's), or ``InputError`` naming the choices;
    cross-attention is refused: its queries are the decoder's positions and its keys the encoder's, and
    the induction metrics score attention of the tokens to earlier tokens of the same sequence."""
    if stack == "cross":
        raise InputError(
            "stack='cross' cannot be scored: cross-attention's queries are the decoder's positions and its keys "
            "the encoder's, while the induction metrics score self-attention; use stack='decoder' (the default) or "
            "'encoder', and capture_attention(model, tokens, stack='cross') to look at cross-attention"
        )
    return None if stack is None else check_choice("stack", stack, SCORED)
