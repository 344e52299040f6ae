"""Why: causal evidence that heads matter. Ablation and the in-context-learning score, every head's effect
(exact, or attribution patching checked against exact), the previous-token -> induction circuit, copying
by direct logit attribution, the loss by position on your documents, and the dual-route check (which part
of copying a word the top token and concept heads carry: ``route_ablation``). Built on ``engine.Ablator``.
"""

from .ablation import AblationResult, ablate_heads, icl_score
from .circuit import CircuitResult, find_circuit
from .effects import HeadEffects, head_effects
from .logit_attribution import DLAScore, copying_dla
from .loss_curve import LossCurve, loss_by_position
from .route_ablation import RouteAblation, route_ablation

__all__ = [
    "AblationResult",
    "CircuitResult",
    "DLAScore",
    "HeadEffects",
    "LossCurve",
    "RouteAblation",
    "ablate_heads",
    "copying_dla",
    "find_circuit",
    "head_effects",
    "icl_score",
    "loss_by_position",
    "route_ablation",
]
