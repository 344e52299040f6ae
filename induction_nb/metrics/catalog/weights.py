"""The weights' evidence (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"; Olsson et
al. 2022, the fifth line of evidence), read off the weights by ``weight_evidence`` and attached to a scan
with ``evidence.attach(result)``: OV copying, the eigenvalue positivity of the token-to-token OV circuit
``W_E W_V W_O W_U`` on a token subset, and QK matching, the same positivity of the QK circuit through the
head's top K-composing earlier head. Both in [-1, 1] (1: every eigenvalue positive). No attention path
computes them."""

from __future__ import annotations

from ..registry import Metric, register


@register
class OVCopying(Metric):
    name = "ov_copying"
    label = "OV copying (weights)"
    short = "OVcopy"
    description = "eigenvalue positivity of the head's token-to-token OV circuit (1: it copies what it attends to)"
    source = "Elhage et al. 2021; Olsson et al. 2022"
    order = 70
    signed = True


@register
class QKMatching(Metric):
    name = "qk_matching"
    label = "QK matching (weights)"
    short = "QKmatch"
    description = "eigenvalue positivity of the QK circuit through the top K-composing earlier head (prefix matching)"
    source = "Elhage et al. 2021; Olsson et al. 2022"
    order = 71
    signed = True
