"""What is found: detection of induction heads on probes, on your text, retrieval heads, single-head
analysis, the result types they return, and models to check them on (a hand-built transformer with known
heads; a small attention-only model trained from scratch, with or without smeared keys, and
``compare_smeared_keys`` over seeds), fuzzy copying (``fuzzy_copy``: the same
matching across a word's surface forms), and the weights' evidence (``weight_evidence``: OV
copying, QK matching and head composition read from the weights alone, no forward pass).
"""

from .analyzer import InductionHeadAnalyzer, analyze_head_attention
from .co_perturbation import SmearedKeysComparison, compare_smeared_keys
from .detector import InductionHeadDetector, detect_induction_heads
from .dual_route import DualRouteResult, concept_induction
from .fuzzy import FuzzyCopyResult, fuzzy_copy
from .head_score import HeadBehavior, HeadScore
from .on_text import detect_on_text
from .results import DetectionResult, RetrievalResult, ScanResult, TextScanResult, load_result
from .retrieval import needle_accuracy, retrieval_heads
from .toy import HandBuiltInduction
from .training import train_induction_model
from .weights_evidence import CircuitAgreement, WeightEvidence, compare_with_circuit, weight_evidence

__all__ = [
    "SmearedKeysComparison",
    "compare_smeared_keys",
    "CircuitAgreement",
    "DetectionResult",
    "DualRouteResult",
    "FuzzyCopyResult",
    "HandBuiltInduction",
    "HeadBehavior",
    "HeadScore",
    "InductionHeadAnalyzer",
    "InductionHeadDetector",
    "RetrievalResult",
    "ScanResult",
    "TextScanResult",
    "WeightEvidence",
    "analyze_head_attention",
    "compare_with_circuit",
    "concept_induction",
    "detect_induction_heads",
    "detect_on_text",
    "fuzzy_copy",
    "load_result",
    "needle_accuracy",
    "retrieval_heads",
    "train_induction_model",
    "weight_evidence",
]
