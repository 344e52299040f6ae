"""Every public entry point that takes a model, each as one small call: the table the guard tests run on
each kind of model a researcher holds (train mode, dropout in eval, wrappers, small models).

Sizes are the smallest each tool accepts, so that a row costs a fraction of a second on a tiny model. The
documents and the haystack are token ids, so the table runs on models without a tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import induction_nb as nb

TOKENS = torch.arange(3, 19)[None].repeat(2, 1)  # [2, 16]: ids every tiny model has
DOCUMENTS = [[5, 6, 7, 8, 9, 10, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]] * 2  # a block read twice
HAYSTACK = list(range(3, 60))


def _texts(model: Any) -> Any:
    return nb.detect_on_text(model, DOCUMENTS, n_bootstrap=10)


ENTRY_POINTS: dict[str, Callable[[Any], Any]] = {
    "capture_attention": lambda m: nb.capture_attention(m, TOKENS),
    "stream_attention": lambda m: nb.stream_attention(m, TOKENS, lambda layer, p: float(p.sum())),
    "capture_head": lambda m: nb.capture_head(m, TOKENS, 0, 0),
    "detect_induction_heads": lambda m: nb.detect_induction_heads(m, batch_size=2, n_bootstrap=10),
    "InductionHeadAnalyzer": lambda m: nb.InductionHeadAnalyzer(m, batch_size=2).analyze_head(0, 0),
    "detect_on_text": _texts,
    "retrieval_heads": lambda m: nb.retrieval_heads(m, lengths=[24], depths=[0.5], haystack=HAYSTACK, n_bootstrap=10),
    "needle_accuracy": lambda m: nb.needle_accuracy(m, lengths=[24], depths=[0.5], haystack=HAYSTACK),
    "ablate_heads": lambda m: nb.ablate_heads(m, [(0, 0)], batch_size=2),
    "icl_score": lambda m: nb.icl_score(m, batch_size=2),
    "loss_by_position": lambda m: nb.loss_by_position(m, DOCUMENTS, early=2, late=10, n_bootstrap=10),
    "head_effects": lambda m: nb.head_effects(m, batch_size=2),
    "head_effects(attribution)": lambda m: nb.head_effects(m, estimator="attribution", batch_size=2),
    "head_effects(atp*)": lambda m: nb.head_effects(m, estimator="atp*", batch_size=2),
    "find_circuit": lambda m: nb.find_circuit(m, [(1, 0)], batch_size=2),
    "copying_dla": lambda m: nb.copying_dla(m, [(0, 0)], batch_size=2),
    "HeadExplorer": lambda m: nb.HeadExplorer(m, n_examples=1),
    "ablate_heads(knockout)": lambda m: nb.ablate_heads(m, [(0, 0)], "knockout", batch_size=2),
    "few_shot_accuracy": lambda m: nb.few_shot_accuracy(
        m, "category_pairs", shots=2, n_prompts=2, ablate=[(0, 1)], knockout=[(0, 0)], n_boot=10
    ),
    "fv_scores": lambda m: nb.fv_scores(m, "category_pairs", shots=2, n_prompts=2, verify_top=1, n_boot=10),
    "icl_heads": lambda m: nb.icl_heads(
        m, "category_pairs", fractions=(0.25,), n_random=1, shots=2, n_prompts=2, verify_top=1
    ),
    "concept_induction": lambda m: nb.concept_induction(m, [[5, 6], [7, 8, 9]], n_probes=2, n_boot=10, verify_top=1),
    "fuzzy_copy": lambda m: nb.fuzzy_copy(m, pairs=[(i, i + 20) for i in range(3, 11)], n_probes=2, n_boot=10),
    "formation": lambda m: nb.formation([m], cache_dir=False, batch_size=2, n_bootstrap=10),
    "evidence_report": lambda m: nb.evidence_report(
        m, heads=[(1, 0)], n_random=1, batch_size=2, concept=False, fuzzy=False
    ),
}
