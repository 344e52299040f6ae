"""Open an nnsight trace of a model, locally or on a remote host, and name what a remote failure was.

The lowest rung of the engine: ``trace`` is what every other part of the engine enters (discovery's
probes, capture, interventions, decoding); ``remote_failure`` turns whatever nnsight's remote client
raised into one ``RemoteExecutionError`` by kind; ``mha_fastpath_off`` keeps PyTorch's fused encoder path
from hiding ``nn.MultiheadAttention`` from a trace. None of them knows about attention sites.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from .model_info import torch_module
from .remote import remote_trace, translate_error
from .seq2seq import forward_inputs


def remote_failure(e: BaseException, remote: Any) -> BaseException | None:
    """The ``RemoteExecutionError`` for ``e`` raised by a remote run, or ``None`` (local, or not remote-related)."""
    if remote is None:
        return None
    err = translate_error(e, remote)
    return None if err is e else err


def trace(model: Any, tokens: Any, remote: Any = None, method: str = "trace", **kwargs: Any) -> Any:
    """``model.trace(tokens)`` (or ``model.generate(tokens, **kwargs)``), on ``remote`` (a resolved
    ``RemoteConfig``) when given. An encoder-decoder's forward gets the tokens as its decoder's input and
    its encoder's (``seq2seq.forward_inputs``)."""
    if method != "trace":
        # nnsight's generate is ``traceable``: called here it would look for the ``with`` block in this
        # frame; as trace's ``fn`` the block is found where the caller enters it, as for a forward
        kwargs["fn"] = getattr(type(model), method).__wrapped__.__get__(model, type(model))
    else:
        (tokens,), kwargs = forward_inputs(torch_module(model), tokens, kwargs)
    if remote is None:
        return model.trace(tokens, **kwargs)
    return remote_trace(model, tokens, remote, **kwargs)


@contextlib.contextmanager
def mha_fastpath_off():
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
