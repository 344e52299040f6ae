"""A DetectionResult of any size without a model (e.g. 80 x 64 heads, a 70B model's grid), with
patterns kept for a few heads: for the explorer's scale tests. Scores are a fixed function of (layer,
head), a band of layers scores high (the detected heads); kept patterns are causal rows with a stripe."""

from __future__ import annotations

import torch

from induction_nb import DetectionResult, HeadScore


def probe_score(layer, head, prefix, contrast, copying, previous, duplicate, diagonal, overall, low, high):
    """A probe scan's head score from its numbers in the order the metric table prints them."""
    values = {
        "overall_score": overall,
        "prefix_matching": prefix,
        "contrast": contrast,
        "copying": copying,
        "previous_token": previous,
        "duplicate_token": float("nan") if duplicate is None else duplicate,
        "diagonal": diagonal,
    }
    return HeadScore(layer, head, values, low, high)


def fake_result(
    n_layers: int = 80,
    n_heads: int = 64,
    kept: tuple = ((40, 7), (41, 9), (12, 3)),
    sequence_length: int = 64,
    batch: int = 2,
) -> DetectionResult:
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(n_layers, n_heads, generator=g)
    scores = []
    for l in range(n_layers):
        for h in range(n_heads):
            band = 0.6 if (l, h) in kept[:2] or (38 <= l <= 44 and h % 16 == 7) else 0.0
            v = float(min(1.0, 0.3 * noise[l, h] ** 3 + band))
            scores.append(
                probe_score(
                    l, h, v, v, 1.0, float(noise[l, h] * 0.2), 0.05, 0.05, v, max(0.0, v - 0.05), min(1.0, v + 0.05)
                )
            )
    T = sequence_length + 1
    period = sequence_length // 2
    tokens = torch.randint(10, 1000, (batch, T), generator=g)
    tokens[:, 1 + period :] = tokens[:, 1 : 1 + period]
    patterns = {}
    for l, h in kept:
        A = torch.full((batch, T, T), 0.0)
        for q in range(T):
            k = q - period + 1 if q > period else max(0, q - 1)
            A[:, q, : q + 1] = 0.1 / (q + 1)
            A[:, q, k] += 0.9
        patterns[(l, h)] = A
    return DetectionResult(
        tuple(scores),
        0.4,
        f"fake-{n_layers}x{n_heads}",
        n_layers,
        n_heads,
        {"sequence_length": sequence_length, "n_repeats": 2, "batch_size": batch},
        0,
        patterns,
        tokens,
    )
