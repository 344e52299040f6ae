"""The one place that checks user arguments: integers, probabilities, ``(layer, head)`` pairs, layer lists.

Every check raises ``InputError`` with the same wording wherever the argument is taken, names the value
it got and says what would be accepted. Layers are the model's own layer indices: a hybrid model's
attention layers keep their indices, so ``(layer, head)`` pairs are checked against the layers and head
counts the model really has, not against a ``range``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .errors import InputError

__all__ = [
    "is_int",
    "check_int",
    "check_choice",
    "check_probability",
    "check_heads",
    "describe_heads",
    "square_attention",
    "check_period",
]


def is_int(x: Any) -> bool:
    """An integer that is not a bool (``True`` is an int to Python, never a layer or a count to us)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``, or ``InputError`` naming ``name``."""
    ok = is_int(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            want = f"an integer in [{minimum}, {maximum}]"
        elif minimum == 1:
            want = "a positive integer"
        elif minimum is not None:
            want = f"an integer >= {minimum}"
        else:
            want = "an integer"
        raise InputError(f"{name} must be {want}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of a closed set of names (a ``Literal``), or ``InputError`` listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"unknown {name} {value!r}; use one of {', '.join(choices)}")
    return value


def check_probability(name: str, value: Any) -> float:
    """A real number in [0, 1] (a threshold, a depth)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def describe_heads(heads: Mapping[int, int]) -> str:
    """``{layer: n_heads}`` in words: "the model has 30 layers x 9 heads", or, where layers are missing or
    differ in size, "the model has attention in layers 1, 3 (4 heads each)"."""
    layers = sorted(heads)
    counts = sorted(set(heads.values()))
    if layers == list(range(len(layers))) and len(counts) == 1:
        return f"the model has {len(layers)} layers x {counts[0]} heads"
    if len(counts) == 1:
        return f"the model has attention in layers {', '.join(map(str, layers))} ({counts[0]} heads each)"
    return "the model has attention in layers " + ", ".join(f"{l} ({heads[l]} heads)" for l in layers)


def check_heads(
    name: str,
    pairs: Any,
    heads: Mapping[int, int] | None = None,
    *,
    allow_empty: bool = False,
    unique: bool = False,
) -> list[tuple[int, int]]:
    """``pairs`` as a list of integer ``(layer, head)`` tuples; each must exist in ``heads`` (``{layer:
    n_heads}``, the model's attention layers; ``None``: not checked, e.g. before the model is known). With
    ``unique``, a head named twice is refused (where each head is one row, one condition or one copy of the
    batch, a repeat would duplicate it)."""
    try:
        out = [(l, h) for l, h in _iterable(pairs)]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a list of (layer, head) pairs, got {pairs!r:.80}") from None
    if not out and not allow_empty:
        raise InputError(f"the head list is empty ({name}); name at least one (layer, head)")
    if not all(is_int(x) for p in out for x in p):
        raise InputError(f"{name} must hold integer (layer, head) pairs, got {out!r:.80}")
    out = [(int(l), int(h)) for l, h in out]
    if heads is not None:
        bad = [(l, h) for l, h in out if not (l in heads and 0 <= h < heads[l])]
        if bad:
            raise InputError(f"{name} {bad} out of range: {describe_heads(heads)}")
    if unique and len(set(out)) < len(out):
        twice = sorted({p for p in out if out.count(p) > 1})
        names = ", ".join(f"L{l}H{h}" for l, h in twice)
        raise InputError(f"{name} names {names} more than once; name each (layer, head) once")
    return out


def _iterable(x: Any) -> Iterable:
    if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
        raise TypeError
    return x


def square_attention(attention: Any) -> torch.Tensor:
    """One head's pattern as a float32 CPU tensor ``[seq, seq]`` (seq >= 2), or a clear ``InputError``."""
    A = torch.as_tensor(attention).detach()
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise InputError(f"attention must be a square [seq, seq] matrix, got shape {tuple(A.shape)}")
    if A.shape[0] < 2:
        raise InputError("attention must cover at least 2 positions")
    return A.float().cpu()


def check_period(period: Any, offset: Any, n: int) -> None:
    """``offset`` tokens precede the pattern; ``period`` must leave at least one repeated query."""
    check_int("offset", offset, 0, n - 2)
    check_int("period", period, 1, n - offset - 1)
