"""Writes the format-version-2 results that tests/test_results.py reads back (kept as files: they come from
induction_nb at commit 42d66d9, before results held their metrics as a mapping). Run it with that version
on the path, from the repository root:

    git worktree add /tmp/v2 42d66d9 && PYTHONPATH=/tmp/v2:tests python tests/data/make_v2_results.py

Tiny seeded models (tests/tiny_models.py), so the numbers are the same on every machine up to float
summation order: a probe scan with causal effects attached, a scan of text, a retrieval scan."""

import tempfile
from pathlib import Path

import torch
from tiny_models import make_hf, save_with_words

from induction_nb import detect_induction_heads, detect_on_text, load_model, retrieval_heads

HERE = Path(__file__).resolve().parent
DOCS = ["t5 t6 t7 t8 t5 t6 t7 t9 t5", "t10 t11 t10 t11 t10", "t3 t4 t12 t13 t14 t15 t3 t4 t12 t16 t17 t3"]


def main() -> None:
    torch.set_num_threads(1)
    model = make_hf("llama_gqa", "eager")
    probe = detect_induction_heads(model, batch_size=4, sequence_length=24, n_bootstrap=50)
    effects = torch.arange(2 * 6, dtype=torch.float32).view(2, 6) / 100 - 0.03  # attached, not measured
    probe.with_causal_effects(effects).save(HERE / "v2_probe.json")
    with tempfile.TemporaryDirectory() as folder:
        worded = load_model(save_with_words(Path(folder)))
        detect_on_text(worded, DOCS, n_bootstrap=50).save(HERE / "v2_text.json")
        haystack = list(range(20, 60))
        retrieval = retrieval_heads(
            worded, lengths=[40], depths=[0.5], needle_length=4, haystack=haystack, n_bootstrap=50
        )
        retrieval.save(HERE / "v2_retrieval.json")


if __name__ == "__main__":
    main()
