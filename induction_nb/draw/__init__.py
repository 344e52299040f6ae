"""How results and patterns are shown: terminal text (``ascii``, ``report``: named ``text_*``), paper
figures (``figures``, ``evidence_figures``: ``plot_*``, matplotlib on first use), the weights' evidence
(``weights_view``: ``text_weight_evidence``, ``plot_k_composition``), an evidence report's summary figure
and one head's evidence (``evidence_views``: ``plot_evidence``, ``text_evidence_head``), the HTML a notebook
shows and the static page (``html_repr``, ``html_page``), and the state the explorer's canvases draw
from (``canvas_state``).

Pure drawing: nothing here runs a model. Results are read through their public attributes (and metrics
through ``metrics.REGISTRY``), so the views serve every kind of result and every metric.
"""

from .ascii import (
    plot_attention_pattern,
    plot_head_scores,
    plot_induction_stripe,
    text_attention_pattern,
    text_circuit,
    text_head_scores,
    text_induction_stripe,
    text_score_map,
)
from .dual_route_views import plot_dual_route, text_dual_route
from .evidence_figures import plot_circuit_graph, plot_effects_scatter, plot_loss_curve, plot_training_run
from .evidence_views import plot_evidence, text_evidence_head
from .figures import (
    compare_heads,
    plot_attention_heatmap,
    plot_metric_scatter,
    plot_mosaic,
    plot_score_heatmap,
    plot_stripe_profile,
)
from .formation_figure import plot_formation
from .icl_heads_views import plot_icl_heads
from .report import create_analysis_report, text_n_prefix, text_report
from .style import save_figure, shared_legend, style
from .text_kit import TextPlot
from .weights_view import plot_k_composition, text_weight_evidence

__all__ = [
    "TextPlot",
    "compare_heads",
    "create_analysis_report",
    "plot_attention_heatmap",
    "plot_attention_pattern",
    "plot_circuit_graph",
    "plot_dual_route",
    "plot_effects_scatter",
    "plot_evidence",
    "plot_head_scores",
    "plot_icl_heads",
    "plot_induction_stripe",
    "plot_k_composition",
    "plot_loss_curve",
    "plot_metric_scatter",
    "plot_mosaic",
    "plot_score_heatmap",
    "plot_stripe_profile",
    "plot_training_run",
    "plot_formation",
    "save_figure",
    "shared_legend",
    "style",
    "text_attention_pattern",
    "text_circuit",
    "text_dual_route",
    "text_evidence_head",
    "text_head_scores",
    "text_induction_stripe",
    "text_n_prefix",
    "text_report",
    "text_score_map",
    "text_weight_evidence",
]
