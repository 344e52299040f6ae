"""Token vs concept induction (Feucht, Todd, Wallace and Bau, COLM 2025, "The Dual-Route Model of Induction",
arXiv 2504.03022), measured by ``concept_induction`` on its own probes (``probes.dual_route``): value-weighted
attention ``A[q, k] |v_k| / sum_j A[q, j] |v_j|`` from the query (the last token of the repeated random
prefix) to the start of an earlier random-token ``e`` (token score) or to the end of an earlier real
multi-token word (concept score); and the causal form, the change of a probability when the head's output
at the query is patched from a clean run into one without ``e``. No attention path computes them from a
pattern alone (they need the heads' value vectors or an intervention)."""

from __future__ import annotations

from ..registry import Metric, register


@register
class TokenInduction(Metric):
    name = "token_induction"
    label = "token induction"
    short = "token"
    description = "value-weighted attention on the start of an earlier random-token word (copies verbatim)"
    source = "Feucht et al. 2025, The Dual-Route Model of Induction, arXiv 2504.03022"
    order = 60


@register
class ConceptInduction(Metric):
    name = "concept_induction"
    label = "concept induction"
    short = "concept"
    description = "value-weighted attention on the end of an earlier multi-token word (copies its meaning)"
    source = "Feucht et al. 2025, The Dual-Route Model of Induction, arXiv 2504.03022"
    order = 61


@register
class TokenEffect(Metric):
    name = "token_effect"
    label = "token patching effect"
    short = "tok.eff"
    description = "change of P(e[0]) at the query when the head's clean output is patched into the corrupted run"
    source = "Feucht et al. 2025, arXiv 2504.03022 (causal form)"
    order = 62
    signed = True
    unit = "probability"


@register
class ConceptEffect(Metric):
    name = "concept_effect"
    label = "concept patching effect"
    short = "con.eff"
    description = "change of P(e[1]) one token later when the head's clean output at the query is patched in"
    source = "Feucht et al. 2025, arXiv 2504.03022 (causal form)"
    order = 63
    signed = True
    unit = "probability"
