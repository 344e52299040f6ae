"""induction_nb: find and analyse induction heads in any transformer, Jupyter-first.

The public names, by the group they come from (``import induction_nb`` loads neither torch nor nnsight:
each name is imported on first use). Terminal views are ``text_*``, matplotlib figures ``plot_*``; the
original spec's ``plot_attention_pattern``, ``plot_head_scores``, ``plot_induction_stripe`` and
``create_analysis_report`` are the terminal views under their first names. The groups themselves
(``induction_nb.metrics``, ``.probes``, ``.engine``, ``.draw``, ``.analysis``, ``.causal``, ``.explorer``)
hold what is rarer, each with a face listing its public names.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

_GROUPS = {
    "engine": [
        "load_model",
        "default_model_path",
        "capture_attention",
        "stream_attention",
        "capture_head",
        "AttentionPatterns",
        "CustomSites",
        "Site",
        "RemoteConfig",
    ],
    "metrics": ["n_prefix_metric"],
    "probes": ["PatternGenerator", "Pattern", "PATTERN_NAMES", "EXTRA_PATTERN_NAMES", "load_texts", "FewShotTask"],
    "analysis": [
        "InductionHeadDetector",
        "detect_induction_heads",
        "InductionHeadAnalyzer",
        "analyze_head_attention",
        "detect_on_text",
        "retrieval_heads",
        "needle_accuracy",
        "concept_induction",
        "fuzzy_copy",
        "FuzzyCopyResult",
        "DualRouteResult",
        "train_induction_model",
        "compare_smeared_keys",
        "SmearedKeysComparison",
        "HandBuiltInduction",
        "weight_evidence",
        "WeightEvidence",
        "compare_with_circuit",
        "CircuitAgreement",
        "ScanResult",
        "DetectionResult",
        "TextScanResult",
        "RetrievalResult",
        "load_result",
        "HeadScore",
        "HeadBehavior",
    ],
    "causal": [
        "ablate_heads",
        "AblationResult",
        "icl_score",
        "loss_by_position",
        "LossCurve",
        "head_effects",
        "HeadEffects",
        "find_circuit",
        "CircuitResult",
        "copying_dla",
        "route_ablation",
        "RouteAblation",
        "few_shot_accuracy",
        "FewShotAccuracy",
        "fv_scores",
        "FunctionVectorScores",
        "icl_heads",
        "ICLHeads",
        "formation",
        "FormationResult",
        "RiseWindow",
        "evidence_report",
        "EvidenceReport",
        "EvidenceLine",
    ],
    "draw": [
        "text_attention_pattern",
        "text_head_scores",
        "text_induction_stripe",
        "text_score_map",
        "text_report",
        "text_n_prefix",
        "text_circuit",
        "text_dual_route",
        "text_weight_evidence",
        "plot_attention_pattern",
        "plot_head_scores",
        "plot_induction_stripe",
        "create_analysis_report",
        "plot_score_heatmap",
        "plot_attention_heatmap",
        "plot_metric_scatter",
        "plot_stripe_profile",
        "plot_mosaic",
        "plot_circuit_graph",
        "plot_dual_route",
        "plot_icl_heads",
        "plot_k_composition",
        "plot_loss_curve",
        "plot_effects_scatter",
        "plot_training_run",
        "plot_formation",
        "plot_evidence",
        "text_evidence_head",
        "compare_heads",
        "save_figure",
    ],
    "explorer": ["HeadExplorer"],
    "errors": [
        "InductionNBError",
        "InputError",
        "ModelLoadError",
        "AttentionNotFoundError",
        "CaptureCheckError",
        "RemoteExecutionError",
    ],
}
_EXPORTS = {name: group for group, names in _GROUPS.items() for name in names}
# earlier names of terminal views, kept working for a while: (group, current name)
_RENAMED = {"plot_score_map": ("draw", "text_score_map"), "plot_circuit": ("draw", "text_circuit")}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        group, current = _RENAMED[name]
        warnings.warn(
            f"induction_nb.{name} is now induction_nb.{current} (a terminal view: text_*); the old name "
            "will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(f".{group}", __name__), current)
    group = _EXPORTS.get(name)
    if group is None:
        raise AttributeError(f"module 'induction_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{group}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
