"""What is found: detection of induction heads on probes, on your text, retrieval heads, single-head
analysis, the result types they return, and models to check them on (a hand-built transformer with known
heads; a small attention-only model trained from scratch).
"""

from .analyzer import InductionHeadAnalyzer, analyze_head_attention
from .detector import InductionHeadDetector, detect_induction_heads
from .head_score import HeadBehavior, HeadScore
from .on_text import detect_on_text
from .results import DetectionResult, RetrievalResult, ScanResult, TextScanResult, load_result
from .retrieval import needle_accuracy, retrieval_heads
from .toy import HandBuiltInduction
from .training import train_induction_model

__all__ = [
    "DetectionResult",
    "HandBuiltInduction",
    "HeadBehavior",
    "HeadScore",
    "InductionHeadAnalyzer",
    "InductionHeadDetector",
    "RetrievalResult",
    "ScanResult",
    "TextScanResult",
    "analyze_head_attention",
    "detect_induction_heads",
    "detect_on_text",
    "load_result",
    "needle_accuracy",
    "retrieval_heads",
    "train_induction_model",
]
