"""induction_nb: find and analyse induction heads in any transformer, Jupyter-first.

Public names are imported lazily (``import induction_nb`` loads neither torch nor nnsight).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "models",
    "default_model_path": "models",
    "capture_attention": "capture",
    "stream_attention": "capture",
    "capture_head": "capture",
    "AttentionPatterns": "capture",
    "CustomSites": "sites",
    "Site": "sites",
    "InductionHeadDetector": "detector",
    "detect_induction_heads": "detector",
    "InductionHeadAnalyzer": "detector",
    "analyze_head_attention": "detector",
    "PatternGenerator": "patterns",
    "Pattern": "patterns",
    "PATTERN_NAMES": "patterns",
    "DetectionResult": "results",
    "HeadScore": "results",
    "HeadBehavior": "results",
    "plot_attention_pattern": "ascii",
    "plot_head_scores": "ascii",
    "plot_induction_stripe": "ascii",
    "plot_score_map": "ascii",
    "create_analysis_report": "ascii",
    "RemoteConfig": "remote",
    "HeadExplorer": "widgets",
    "plot_score_heatmap": "figures",
    "plot_attention_heatmap": "figures",
    "plot_metric_scatter": "figures",
    "plot_stripe_profile": "figures",
    "plot_mosaic": "figures",
    "save_figure": "figures",
    "plot_circuit_graph": "figures",
    "plot_circuit": "ascii",
    "ablate_heads": "causal",
    "head_effects": "effects",
    "HeadEffects": "effects",
    "icl_score": "causal",
    "find_circuit": "circuit",
    "AblationResult": "causal",
    "CircuitResult": "circuit",
    "copying_dla": "logit_attribution",
    "train_induction_model": "training",
    "retrieval_heads": "retrieval",
    "needle_accuracy": "retrieval",
    "needle_cases": "retrieval",
    "detect_on_text": "on_text",
    "load_texts": "texts",
    "loss_by_position": "loss_curve",
    "LossCurve": "loss_curve",
    "plot_loss_curve": "figures",
    "plot_effects_scatter": "figures",
    "plot_training_run": "figures",
    "compare_heads": "figures",
    "RemoteExecutionError": "errors",
    "InductionNBError": "errors",
    "InputError": "errors",
    "ModelLoadError": "errors",
    "AttentionNotFoundError": "errors",
    "CaptureCheckError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'induction_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
