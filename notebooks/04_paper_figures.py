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
# # Paper figures
#
# Every figure the toolkit makes, in one house style (colour-blind-safe `cividis`, paper font sizes,
# one- and two-column widths), written to `figures/` as PDF and PNG with no version or date in the bytes.
# The mosaic compares SmolLM2 with two random-initialisation controls of the same architecture.

# %%
import torch
from pathlib import Path
import matplotlib.pyplot as plt
from transformers import AutoModelForCausalLM
from induction_nb import (load_model, InductionHeadDetector, capture_attention, plot_score_heatmap,
                          plot_attention_heatmap, plot_metric_scatter, plot_stripe_profile, plot_mosaic, save_figure)

model = load_model()
result = InductionHeadDetector(model, batch_size=4).detect(sequence_length=64)
controls = {}
for seed in (0, 1):
    torch.manual_seed(seed)
    random_init = AutoModelForCausalLM.from_config(model._module.config, attn_implementation="eager").eval()
    controls[f"random init {seed}"] = InductionHeadDetector(random_init, batch_size=4).detect(sequence_length=64)
out = Path("figures")
out.mkdir(exist_ok=True)

# %%
# NBVAL_CHECK_OUTPUT
print("SmolLM2, heads with overall > 0.45:", sorted(h for h in result.induction_heads
                                                  if result.score(*h).overall_score > 0.45))
for name, r in controls.items():
    print(f"{name}: {r.num_heads_detected} heads, best overall {r.get_top_heads(1)[0].overall_score:.2f}")

# %%
for metric in ("overall_score", "prefix_matching", "contrast", "copying", "previous_token"):
    ax = plot_score_heatmap(result, metric)
    save_figure(ax, out / f"heatmap_{metric}", formats=("pdf", "png"))
plt.show()

# %%
ax = plot_metric_scatter(result, "prefix_matching", "copying")
save_figure(ax, out / "scatter", formats=("pdf", "png"))
plt.show()

# %%
top = result.get_top_heads(1)[0]
probe = InductionHeadDetector(model).generator().generate("repeated", seq_len=32, batch_size=1)
attention = capture_attention(model, probe.tokens, layers=[top.layer]).head(top.layer, top.head)
labels = [model.tokenizer.decode([i]) for i in probe.tokens[0].tolist()]
ax = plot_attention_heatmap(attention, labels, period=probe.period, title=f"SmolLM2 L{top.layer}H{top.head}")
save_figure(ax, out / "pattern_top_head", formats=("pdf", "png"))
ax = plot_stripe_profile(attention, probe.period, offset=probe.offset,
                         title=f"L{top.layer}H{top.head}: on the stripe vs elsewhere")
save_figure(ax, out / "stripe_profile", formats=("pdf", "png"))
plt.show()

# %%
fig = plot_mosaic({"SmolLM2-135M": result, **controls})
save_figure(fig, out / "mosaic", formats=("pdf", "png"))
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(sorted(p.name for p in out.iterdir()))
