"""Causal effect: the loss increase (nats) on the repeated half of repeated random sequences when the head
is removed (zero, mean or corrupted-run patching at the output projection's input: ``causal.head_effects``),
exact or estimated by attribution patching. Measured by the causal tools, attached with
``result.with_causal_effects(...)``; no attention path computes it."""

from __future__ import annotations

from ..registry import Metric, register


@register
class CausalEffect(Metric):
    name = "causal_effect"
    label = "ablation effect"
    short = "ablation"
    description = "loss increase on repeated tokens when the head is removed (nats)"
    source = "Olsson et al. 2022; Nanda 2023 (attribution patching)"
    order = 90
    signed = True
    unit = "nats"
