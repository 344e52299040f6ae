"""The model's mode, checked once for every tool: no number is measured on a forward that is random.

A model in training mode (or any submodule of it: a model straight from a training loop, a layer switched
back with ``.train()``) applies dropout, so identical calls give different losses, patterns and effects;
attention dropout written without regard to the mode (nanoGPT's ``dropout_p=self.dropout`` in the SDPA call)
does the same in eval mode. Both are refused with the cause and the fix; the toolkit never switches the
mode itself (the model object is the user's). ``Engine.of`` calls ``check_training`` on every local model;
``Engine.check_forward`` calls ``check_repeatable`` on every tool call before anything is read (two forwards
of 2 x 32 tokens with the global RNG restored after), for discovered and custom sites alike. Limits:
randomness that a 32-token probe does not reach (a branch taken only for long inputs) is not seen; remote
models are the server's and are not checked here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import InputError
from .seq2seq import plain_forward
from .wrappers import remote_only

__all__ = ["check_training", "check_repeatable"]


def check_training(module: torch.nn.Module) -> None:
    """Raises ``InputError`` where ``module`` or any submodule is in training mode, naming the first one. A
    model whose weights are not loaded yet (nnsight's lazy ``LanguageModel``: meta weights, no offload hook)
    is not checked: what runs is loaded later, by ``from_pretrained``, in eval mode."""
    if remote_only(module):
        return
    first = next((path for path, m in module.named_modules() if m.training), None)
    if first is None:
        return
    where = (
        f"{type(module).__name__} is in training mode"
        if first == ""
        else (
            f"{type(module).__name__} has a submodule in training mode ({first!r}, "
            f"{type(module.get_submodule(first)).__name__})"
        )
    )
    raise InputError(
        f"{where}: dropout would make every pattern, loss and effect random (two identical calls would "
        "differ). Call model.eval() first (induction_nb never switches the mode of your model for you)"
    )


def mode_probe(vocab_size: int | None, max_positions: int | None) -> torch.Tensor:
    """``[2, n]`` token ids for ``check_repeatable``: ``n`` up to 32, so that the attention weights number in
    the thousands and even p = 0.001 dropout shows."""
    vocab, limit = max(3, vocab_size or 3), max_positions or 32
    n = max(2, min(32, limit - 1))
    return torch.stack([torch.arange(n), torch.arange(n) * 7 + 3]) % (vocab - 2) + 2


def check_repeatable(module: torch.nn.Module, tokens: torch.Tensor) -> None:
    """Run ``module`` on ``tokens`` (``mode_probe``; an encoder-decoder gets them as ``engine.seq2seq``
    says) twice and raise ``InputError`` where the two outputs differ, naming the first submodule (in the
    order calls finish: the deepest first) whose output differs from the same input. The global RNG is
    restored after; a forward that fails is left to discovery to report."""
    runs = []
    try:
        devices = sorted({p.device for p in module.parameters() if p.device.type == "cuda"}, key=str)
        with torch.random.fork_rng(devices=devices):
            for _ in range(2):
                runs.append(_recorded(module, tokens))
    except Exception:  # not our finding to report: discovery runs the same forward and names the failure
        return
    (first, out_a), (second, out_b) = runs
    if _same(out_a, out_b):
        return
    # the randomness enters where a call's inputs agree and its outputs do not (later calls merely inherit it)
    culprit = next(
        (p for p in first if p in second and _same(first[p][0], second[p][0]) and not _same(first[p][1], second[p][1])),
        "",
    )
    name = type(module.get_submodule(culprit)).__name__ if culprit else type(module).__name__
    raise InputError(
        f"{type(module).__name__} is in eval mode but gives different outputs on two identical calls, first "
        f"at {culprit or 'the model'!r} ({name}): something there stays random in eval mode, e.g. attention "
        "dropout passed as dropout_p=self.dropout to scaled_dot_product_attention whatever self.training says "
        "(nanoGPT). Set that dropout to 0 for analysis (e.g. module.dropout = 0.0 on each attention layer), or "
        "pass dropout_p=self.dropout if self.training else 0.0"
    )


def _recorded(module: torch.nn.Module, tokens: torch.Tensor) -> tuple[dict[str, Any], Any]:
    """``({submodule path: (its first input tensor, its first output tensor)}, the forward's output)``, in the
    order calls finish (a submodule's first call only)."""
    seen: dict[str, Any] = {}

    def hook(path: str) -> Callable:
        def record(_m, args, output):
            if path not in seen:
                seen[path] = (_first_tensor(args), _first_tensor(output))

        return record

    handles = [m.register_forward_hook(hook(path)) for path, m in module.named_modules() if path]
    return seen, _first_tensor(plain_forward(module, tokens, handles))


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, dict):  # HF ModelOutput too
        x = list(x.values())
    if isinstance(x, (tuple, list)):
        for item in x:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Equal element by element up to kernel nondeterminism (GPU reductions), on a scale robust to masked or
    padded entries (``finfo.min`` logits): dropout zeroes and rescales whole elements."""
    if a is None or b is None:
        return a is None and b is None
    if a.device.type == "meta" or a.shape != b.shape or not a.is_floating_point():
        return a.shape == b.shape and (a.device.type == "meta" or bool(torch.equal(a, b)))
    a, b = a.float(), b.float()
    finite = a[torch.isfinite(a)].abs()
    scale = float(finite.median()) if finite.numel() else 0.0
    return bool(torch.allclose(a, b, rtol=1e-3, atol=1e-4 * scale + 1e-7, equal_nan=True))
