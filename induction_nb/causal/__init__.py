"""Why: causal evidence that heads matter. Ablation and the in-context-learning score, every head's effect
(exact, or attribution patching checked against exact), the previous-token -> induction circuit, copying
by direct logit attribution, the loss by position on your documents, and the dual-route check (which part
of copying a word the top token and concept heads carry: ``route_ablation``), few-shot accuracy on the
offline tasks, function-vector heads and the induction-vs-FV protocol (``icl_heads``); every ablation tool
also knocks out edges (``method="knockout"``). Olsson et al.'s argument: ``formation`` (scores across training
checkpoints, the phase-change rule of ``phase_change``: ``RiseWindow``) and ``evidence_report`` (the six lines of
evidence, each a number, an interval and a verdict). Built on ``engine.Ablator``.
"""

from .ablation import AblationResult, ablate_heads, icl_score
from .circuit import CircuitResult, find_circuit
from .effects import HeadEffects, head_effects
from .evidence import EvidenceLine, EvidenceReport, evidence_report
from .few_shot import FewShotAccuracy, few_shot_accuracy
from .formation import FormationResult, formation
from .function_vectors import FunctionVectorScores, fv_scores
from .icl_heads import ICLHeads, icl_heads
from .logit_attribution import DLAScore, copying_dla
from .loss_curve import LossCurve, loss_by_position
from .phase_change import RiseWindow
from .route_ablation import RouteAblation, route_ablation

__all__ = [
    "FewShotAccuracy",
    "FormationResult",
    "RiseWindow",
    "formation",
    "FunctionVectorScores",
    "ICLHeads",
    "few_shot_accuracy",
    "fv_scores",
    "icl_heads",
    "AblationResult",
    "CircuitResult",
    "DLAScore",
    "EvidenceLine",
    "EvidenceReport",
    "HeadEffects",
    "LossCurve",
    "RouteAblation",
    "ablate_heads",
    "copying_dla",
    "evidence_report",
    "find_circuit",
    "head_effects",
    "icl_score",
    "loss_by_position",
    "route_ablation",
]
