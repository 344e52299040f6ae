"""The sequences the causal studies measure on: repeated random blocks, and natural passages read twice.

Losses are taken on the repeated half (the tokens an induction head can predict), from the repeat's
second token on (its first token follows nothing that repeats).
"""

from __future__ import annotations

import torch

from .._validate import check_int
from ..engine.ablator import Ablator
from ..errors import warn_user

__all__ = ["repeat_probe", "DEFAULT_LENGTH"]

DEFAULT_LENGTH = 64  # tokens (BOS not counted): the causal tools' probe where the model allows it


def repeat_probe(ab: Ablator, sequence_length: int | None, batch_size: int, seed: int, *, minimum: int = 4, tool: str):
    """``(tokens [batch, seq], the repeat's query positions, (natural tokens, their positions) or None)``:
    repeated random blocks (BOS first where the model has one) and, with a tokenizer, repeated natural
    passages. The positions are the queries predicting the repeat's 2nd..last token (its first token
    follows nothing that repeats). ``sequence_length``: ``None`` for the causal tools' default (64 tokens,
    or what the model allows: ``Engine.probe_length``, the rule detection follows too); ``minimum``: the
    shortest the calling ``tool`` measures on. Raises ``InputError`` naming a length that works."""
    check_int("batch_size", batch_size, 1)
    sequence_length, why = ab.engine.probe_length(
        sequence_length, preferred=DEFAULT_LENGTH, minimum=minimum, tool=tool, seed=seed
    )
    if why:
        warn_user(f"induction_nb: {why}")
    gen = ab.engine.generator(seed)
    probe = gen.generate("repeated", sequence_length, batch_size)
    tokens = ab.engine.check_tokens(probe.tokens)
    repeat_half = torch.arange(probe.offset + probe.period, tokens.shape[1] - 1)
    natural = None
    if ab.engine.tokenizer is not None:
        text = gen.generate("natural", sequence_length, min(batch_size, 5), n_repeats=2)
        natural = (
            ab.engine.check_tokens(text.tokens),
            torch.arange(text.offset + text.period, text.tokens.shape[1] - 1),
        )
    return tokens, repeat_half, natural
