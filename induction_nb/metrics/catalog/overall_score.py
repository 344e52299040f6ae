"""The overall score of a probe scan: ``contrast x copying``, the matched attention discounted by how often
the attended token is not the one that comes next. In [0, 1]: an ideal induction head scores ~1, a
positional or previous-token head ~0; detected at the threshold (0.4 by default, as the original spec and
ARENA). Other scans put their own headline score here (prefix matching on text, the retrieval score), and
say so through their result type."""

from __future__ import annotations

from ..registry import HeadMetric, register


@register
class OverallScore(HeadMetric):
    name = "overall_score"
    label = "overall score"
    short = "overall"
    description = "contrast x copying: the matched attention that lands on the next token"
    source = "induction_nb (documentation: Metrics); threshold 0.4 as ARENA 1.2"
    order = 0
    threshold_line = True
    needs = ("contrast", "copying")

    def combine(self, means):
        return means["contrast"] * means["copying"]
