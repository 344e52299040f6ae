"""The one rule for a probe's length, shared by detection, the causal tools and the explorer.

Each tool has a preferred length (detection 128 tokens, the causal tools 64, the explorer 48); the default
is that length where the model allows it, else the longest that fits the model's positions (BOS counted)
and its vocabulary (``PatternGenerator.probe_length``: a fresh control needs distinct ids). A length the
user asks for is checked against the same limits, and a refusal names a length that this same rule
accepts, so that advice followed works. Limits: the positions are what the config (or a ``block_size``
attribute) states; a model that states none is not checked here (its own forward is the judge).
"""

from __future__ import annotations

from typing import Any

from .._validate import check_int
from ..errors import InputError

__all__ = ["fit_probe_length"]


def fit_probe_length(
    gen: Any,
    max_positions: int | None,
    requested: int | None,
    *,
    preferred: int,
    minimum: int = 4,
    n_repeats: int = 2,
    control: bool = False,
    tool: str = "this tool",
) -> tuple[int, str | None]:
    """``(sequence_length, why the default adapted or None)`` for a probe of ``n_repeats`` blocks.

    ``gen``: the model's ``PatternGenerator`` (its BOS id and usable vocabulary); ``max_positions``: the
    model's positions (``None``: unknown); ``requested``: the user's length (``None``: the default);
    ``preferred``: the tool's default where the model allows it; ``minimum``: the shortest probe the tool
    can measure on; ``control``: the probe needs a fresh control of distinct ids too (detection), else only
    distinct ids within a block (the causal tools). Raises ``InputError`` for a requested length outside
    ``[minimum, what fits]`` (naming the length the default would use) and for a model too small for any
    probe the tool can use."""
    bos = 0 if getattr(gen, "bos_token_id", None) is None else 1
    room = None if max_positions is None else max_positions - bos
    if requested is None:
        return _default(gen, room, max_positions, preferred, minimum, n_repeats, control, tool)
    check_int("sequence_length", requested, 1)
    block, pool = requested // max(1, n_repeats), len(gen.pool)
    if requested < minimum or (room is not None and requested > room) or block > pool:
        fits, _ = _default(gen, room, max_positions, preferred, minimum, n_repeats, control, tool)
        if requested < minimum:
            why = f"{tool} needs sequence_length >= {minimum}, got {requested}"
        elif room is not None and requested > room:
            plus = f" (+{bos} BOS)" if bos else ""
            why = f"sequence_length={requested}{plus} exceeds the model's {max_positions} positions"
        else:  # a block of distinct ids, repeated: the usable vocabulary bounds it
            why = f"sequence_length={requested} needs {block} distinct token ids per block, but only {pool} are usable"
        raise InputError(f"{why}; pass sequence_length={fits} (the default for this model), or leave it out")
    return requested, None


def _default(
    gen: Any,
    room: int | None,
    limit: int | None,
    preferred: int,
    minimum: int,
    n_repeats: int,
    control: bool,
    tool: str,
) -> tuple[int, str | None]:
    capped = preferred if room is None else min(preferred, room - room % n_repeats)
    if capped < minimum:
        raise InputError(
            f"the model has {limit} positions, too few for {tool}, which needs a probe of at least {minimum} "
            "tokens" + (" plus BOS" if getattr(gen, "bos_token_id", None) is not None else "")
        )
    if control:
        length, why = gen.probe_length(None, n_repeats, capped)
    else:  # a block of distinct ids, repeated
        length, why = min(capped, n_repeats * len(gen.pool)), None
        if length < capped:
            why = f"a block of {capped // n_repeats} distinct ids needs more than the {len(gen.pool)} usable ones"
    if length < minimum:
        raise InputError(
            f"the model's vocabulary is too small for {tool}: "
            + (why or f"the longest probe is {length} tokens")
            + f", and it needs at least {minimum}"
        )
    if capped < preferred:
        why = f"the model has {limit} positions: " + (why or f"using sequence_length={length}")
    return length, why
