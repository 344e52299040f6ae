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
# # Long context: induction and retrieval heads at thousands of tokens
#
# Every interpretability tool that shows attention holds a layer's whole `[head, T, T]` pattern: at 8k
# tokens that is 2.4 GB of float32 for SmolLM2's 9 heads and two sequences, per layer. induction_nb
# scores every head *inside* the forward pass from the captured query and key, a block of query rows at a
# time, or, for an sdpa model on a CPU, from the flash kernel's own row logsumexp, computing only the
# weights the metrics need. On 2 CPU cores an 8k-token scan of SmolLM2 costs 1.15x the bare forward pass
# over the same tokens and a third of its memory (`bench/bench_long_context.py`).
#
# This notebook runs the live parts at small sizes (a minute of CPU) and shows the 1k-8k results from
# `bench/long_context_smollm2.py` (saved in `data/long_context_smollm2.json`).

# %%
import json

import torch
from induction_nb import detect_induction_heads, load_model

model = load_model(attn_implementation="sdpa")  # the kernel a user would run at long context
result = detect_induction_heads(model, sequence_length=1023, batch_size=1, n_bootstrap=100)

# %%
# NBVAL_CHECK_OUTPUT
short_heads = {(17, 3), (17, 4), (17, 5), (18, 6), (18, 7)}  # the detector's heads at 128 tokens (notebook 01)
best = result.get_top_heads(1)[0]
print("1024 tokens, 1 probe + control, scored without a [head, T, T] pattern")
print("the best head at 1024 tokens is one of the 128-token induction heads:", (best.layer, best.head) in short_heads)

# %% [markdown]
# ## One head at 1k tokens, readable
#
# `capture_head` builds one head's pattern row block by row block; figures pool long windows by the block
# maximum, so a one-position stripe stays visible, and ASCII views downsample to 80 columns.

# %%
import matplotlib.pyplot as plt
from induction_nb import InductionHeadDetector, capture_head, plot_attention_heatmap, text_attention_pattern

tokens = InductionHeadDetector(model).generator().generate("repeated", 1023, 1).tokens  # BOS + 2 x 511
pattern = capture_head(model, tokens, best.layer, best.head)[0]
ax = plot_attention_heatmap(pattern, period=511, title=best.name, max_cells=256)
plt.show()
print(text_attention_pattern(pattern, width=80, charset="unicode", title=f"{best.name}, 1024 tokens"))

# %% [markdown]
# ## Retrieval heads (Wu et al. 2024)
#
# A needle of six words found nowhere in the haystack is placed at three depths of a 512-token context of
# public-domain passages; the context ends with the needle's marker phrase, so the model should repeat the
# needle. Greedy decoding with the KV cache reads only each head's last query row per step. A head *copies*
# when, at a step that produces a needle word, its arg-max attention lands on that word inside the needle.

# %%
from induction_nb import needle_accuracy, retrieval_heads

retrieval = retrieval_heads(model, lengths=[512], depths=[0.25, 0.5, 0.75], needle_length=6, n_bootstrap=200)
top3 = [(s.layer, s.head) for s in retrieval.get_top_heads(3)]
print(retrieval.summary())

# %%
# NBVAL_CHECK_OUTPUT
print("the model repeats every needle:", retrieval.settings["needle_accuracy"] == 1.0)
print("its top retrieval head is one of the 128-token induction heads:", top3[0] in short_heads)

# %% [markdown]
# **The causal check.** Remove the three top retrieval heads, then, as a control, one head per top head
# from the same layer whose retrieval score is below 0.1 (three random draws). The top three break the
# needle; a control draw may cost a needle word or two, since layers 17-20 of SmolLM2 hold several
# copying heads that back each other up (the 1k-8k table below removes five random heads of the same
# layers, retrieval heads or not, and shows that too).

# %%
import random

kwargs = dict(lengths=[512], depths=[0.25, 0.5, 0.75], needle_length=6)


def non_retrieval_heads(seed):  # one head per top head, in its layer, with a retrieval score below 0.1
    rng, heads = random.Random(seed), []
    for layer, _ in top3:
        heads.append((layer, rng.choice([h for h in range(9) if retrieval.score(layer, h).overall_score < 0.1
                                         and (layer, h) not in heads])))
    return heads


draws = [needle_accuracy(model, non_retrieval_heads(seed), **kwargs) for seed in range(3)]
without_top = needle_accuracy(model, top3, **kwargs)
print(f"needle accuracy without the top 3: {without_top:.2f}; without 3 non-retrieval heads of the same layers: "
      f"{[round(d, 2) for d in draws]}")

# %%
# NBVAL_CHECK_OUTPUT
print("removing the top retrieval heads hurts far more than removing other heads of their layers:",
      without_top < sum(draws) / len(draws) - 0.3)

# %% [markdown]
# ## 1k to 8k tokens
#
# From `bench/long_context_smollm2.py` (about half an hour of CPU): per length, the detector's overall
# score and the retrieval score of the heads that lead at any length.

# %%
data = json.load(open("data/long_context_smollm2.json"))
lengths = sorted(data["lengths"], key=int)
leaders = sorted({name for L in lengths for name, v in sorted(data["lengths"][L]["retrieval"].items(),
                                                               key=lambda kv: -kv[1][0])[:4]})
print("head   " + "".join(f"{'ret@' + L:>10}{'ind@' + L:>10}" for L in lengths))
for name in leaders:
    row = "".join(f"{data['lengths'][L]['retrieval'][name][0]:10.2f}{data['lengths'][L]['induction'][name]:10.2f}"
                  for L in lengths)
    print(f"{name:6} {row}")
print("needle accuracy:", {L: data["lengths"][L]["needle_accuracy"] for L in lengths})
for L in lengths:
    causal = data["lengths"][L].get("causal")
    if causal:
        randoms = [round(acc, 2) for _, acc in causal["without_random5"]]
        print(f"{L}: accuracy {causal['intact']:.2f}; without top-5 retrieval heads {causal['without_top5']:.2f}; "
              f"without 5 random heads of the same layers {randoms}")

# %%
from induction_nb.draw import shared_legend

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained", sharex=True)
x = [int(L) for L in lengths]
for name in leaders:
    left.plot(x, [data["lengths"][L]["retrieval"][name][0] for L in lengths], marker="o", label=name)
    right.plot(x, [data["lengths"][L]["induction"][name] for L in lengths], marker="o", label=name)
for ax, what in ((left, "retrieval score"), (right, "induction (overall) score")):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(what)
    ax.set_ylim(-0.02, 1.02)
shared_legend(left, right)  # one row above both panels: the heads are the same in each
plt.show()
