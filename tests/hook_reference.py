"""The independent reference for head ablation: a plain torch forward pre-hook on a model's output
projection that sets one head's slice of its input (the concatenated head outputs) to zero or a value, and
the mean next-token loss at chosen query positions, without it and with it."""

from __future__ import annotations

from collections.abc import Callable

import torch


def hook_ablation(
    proj: torch.nn.Module,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    cols: slice,
    logits: Callable[[torch.Tensor], torch.Tensor],
    value: torch.Tensor | None = None,
) -> tuple[float, float]:
    """``(clean, ablated)`` mean loss of ``tokens[:, positions + 1]`` given ``logits(tokens)``
    ``[batch, seq, vocab]``, the ablated run with ``proj``'s input columns ``cols`` set to 0 (or ``value``)."""

    def cut(module, args):
        z = args[0].clone()
        z[:, :, cols] = 0 if value is None else value
        return (z,)

    def loss() -> float:
        with torch.no_grad():
            lp = torch.log_softmax(logits(tokens)[:, positions].float(), -1)
        return float(-lp.gather(-1, tokens[:, positions + 1, None]).mean())

    clean = loss()
    hook = proj.register_forward_pre_hook(cut)
    try:
        return clean, loss()
    finally:
        hook.remove()
