"""Inside a trace, from the model's output or one attention call: the few numbers that leave the model
(the greedy next token, each head's last-row arg-max while decoding, next-token log-probabilities), so
that a remote run ships no logits and no patterns."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError
from .sites import Site, envoy_at, op_node

__all__ = ["logits_of", "next_token", "last_row_argmax", "next_token_logprobs"]


def logits_of(output: Any) -> Any:
    """Inside the trace: the logits in a model's output (an HF output's ``.logits``, a tuple's first item, or
    the output itself)."""
    if hasattr(output, "logits"):
        return output.logits
    if hasattr(output, "last_hidden_state"):  # an HF base model: hidden states, no logits
        raise InputError(
            f"{type(output).__name__} has no logits: the model has no language-model head; load it with its head "
            "(e.g. AutoModelForCausalLM or AutoModelForMaskedLM)"
        )
    return output[0] if isinstance(output, (tuple, list)) else output


def next_token(output: Any) -> torch.Tensor:
    """Inside the trace: the greedy next token of the first sequence (the arg-max of its last logits)."""
    logits = logits_of(output)
    return logits[0, -1].argmax().cpu()


def last_row_argmax(model: Any, site: Site) -> torch.Tensor:
    """Inside a trace: the arg-max key of each head's *last* query row ``[batch, head]`` (decoding with a KV
    cache: the new token's query against every cached key), read by the site's kind (``last_row``)."""
    envoy = envoy_at(model, site.path)
    node = op_node(envoy, site.op)
    args, kwargs = node.inputs
    return site.kind.last_row(args, kwargs, node.output if site.needs_output else None, envoy._module)


def next_token_logprobs(
    output: Any, tokens: torch.Tensor, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inside the trace, from the model's output: the log-probability of the true next token and whether it
    is the top prediction, at query ``positions``: ``([batch, len(positions)], [batch, len(positions)])``
    (only these numbers leave the model: a remote run ships no logits)."""
    logits = logits_of(output)
    picked = logits[:, positions.to(logits.device)].float()
    target = tokens.to(logits.device)[:, positions.to(logits.device) + 1]
    lp = torch.log_softmax(picked, dim=-1).gather(-1, target[..., None])[..., 0]
    return lp.cpu(), (picked.argmax(-1) == target).cpu()
