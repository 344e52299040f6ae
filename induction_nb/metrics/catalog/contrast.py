"""Contrast: the part of the prefix-matching attention that the prefix match causes,
``clamp(mean prefix matching - mean prefix matching on the control, 0, 1)``. The control keeps each
probe's first block and replaces the rest with fresh tokens: the same positions without a match. A head
that attends by position alone scores ~0 here while its prefix matching is high. NaN where either side is
undefined: no scored query in any sequence (a probe too short to repeat) or a layer with no attention
(Funnel's pooled blocks); views show it as ``-``."""

from __future__ import annotations

from ..registry import HeadMetric, control_key, register


@register
class Contrast(HeadMetric):
    name = "contrast"
    label = "contrast"
    short = "contrast"
    description = "prefix matching minus the same positions' attention without a match (the control)"
    source = "induction_nb: the control probe (documentation: Metrics)"
    order = 20
    threshold_line = True
    needs = ("prefix_matching", control_key("prefix_matching"))

    def combine(self, means):
        return (means["prefix_matching"] - means[control_key("prefix_matching")]).clamp(0, 1)
