"""Why: causal evidence that heads matter. Ablation and the in-context-learning score, every head's effect
(exact, or attribution patching checked against exact), the previous-token -> induction circuit, copying
by direct logit attribution, and the loss by position on your documents. Built on ``engine.Ablator``.
"""

from .ablation import AblationResult, ablate_heads, icl_score
from .circuit import CircuitResult, find_circuit
from .effects import HeadEffects, head_effects
from .logit_attribution import DLAScore, copying_dla
from .loss_curve import LossCurve, loss_by_position

__all__ = [
    "AblationResult",
    "CircuitResult",
    "DLAScore",
    "HeadEffects",
    "LossCurve",
    "ablate_heads",
    "copying_dla",
    "find_circuit",
    "head_effects",
    "icl_score",
    "loss_by_position",
]
