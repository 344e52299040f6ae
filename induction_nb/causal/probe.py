"""The sequences the causal studies measure on: repeated random blocks, and natural passages read twice.

Losses are taken on the repeated half (the tokens an induction head can predict), from the repeat's
second token on (its first token follows nothing that repeats).
"""

from __future__ import annotations

import torch

from .._validate import check_int
from ..engine.ablator import Ablator
from ..errors import InputError

__all__ = ["repeat_probe"]


def repeat_probe(ab: Ablator, sequence_length: int, batch_size: int, seed: int):
    """``(tokens [batch, seq], the repeat's query positions, (natural tokens, their positions) or None)``:
    repeated random blocks (BOS first where the model has one) and, with a tokenizer, repeated natural
    passages. The positions are the queries predicting the repeat's 2nd..last token (its first token
    follows nothing that repeats)."""
    check_int("sequence_length", sequence_length, 4)  # a block of >= 2 tokens, repeated
    gen = ab.engine.generator(seed)
    room = ab.engine.max_positions
    bos = 0 if gen.bos_token_id is None else 1
    if room is not None and sequence_length + bos > room:
        raise InputError(
            f"sequence_length={sequence_length} (+{bos} BOS) exceeds the model's {room} positions; "
            f"pass sequence_length={room - bos - (room - bos) % 2} or less"
        )
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
