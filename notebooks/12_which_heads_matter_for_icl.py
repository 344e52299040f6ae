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
# # Which heads matter for in-context learning? Edge knockout, few-shot tasks, function-vector heads
#
# Two recent answers, each one call, on SmolLM2:
#
# 1. **Edge knockout** (Crosbie & Shutova, NAACL Findings 2025): remove only the *edges* from each query to
#    the token after an earlier copy of it (the pre-softmax logit set to the lowest value, the row
#    renormalised), the rest of each head intact. Is it the induction edge that matters, or the head?
# 2. **Function-vector heads** (Todd et al., ICLR 2024; Yin & Steinhardt, ICML 2025): heads whose output at
#    the final token carries the *task* of a few-shot prompt. Yin & Steinhardt find that FV heads, not
#    induction heads, carry few-shot ICL in larger models, while induction heads carry the token-loss ICL score.
#
# Few-shot accuracy is measured on a shipped offline suite: natural tasks in Todd et al.'s `Q: x\nA: y`
# format (country-capital, antonym, capitalisation, first letter, English-French, present-past) and abstract
# token-pattern tasks (repetition, recursion, centre-embedding, category pairs).

# %%
from induction_nb import (
    ablate_heads,
    detect_induction_heads,
    few_shot_accuracy,
    fv_scores,
    icl_heads,
    load_model,
    plot_icl_heads,
)

model = load_model()
det = detect_induction_heads(model, sequence_length=64)
top = [(s.layer, s.head) for s in det.get_top_heads(8, metric="prefix_matching")]
print("top induction heads by prefix matching:", top)

# %% [markdown]
# ## 1. Knockout of the induction edges against removing the heads
#
# Three heads are 1% of SmolLM2's 270. The loss on the repeated half of repeated random tokens (nats), the
# heads' induction edges knocked out, the heads mean- and zero-ablated, and three random heads.

# %%
random3 = [(4, 2), (12, 7), (26, 1)]  # fixed "random" heads: bench/icl_heads_smollm2.py draws 5 sets
rows = {
    "knockout, top 3": ablate_heads(model, top[:3], "knockout", batch_size=4),
    "mean ablation, top 3": ablate_heads(model, top[:3], "mean", batch_size=4),
    "zero ablation, top 3": ablate_heads(model, top[:3], "zero", batch_size=4),
    "knockout, random 3": ablate_heads(model, random3, "knockout", batch_size=4),
}
print(f"clean: {rows['knockout, top 3'].baseline_loss:.2f} nats")
for name, r in rows.items():
    print(f"{name:<22} {r.ablated_loss:.2f} nats (+{r.effect:.2f}), top-1 accuracy {r.ablated_accuracy:.2f}")

# %%
# NBVAL_CHECK_OUTPUT
ko, mean, rand = rows["knockout, top 3"], rows["mean ablation, top 3"], rows["knockout, random 3"]
print("knocking out the top 3 heads' induction edges costs more than 2 nats:", ko.effect > 2)
print("...within 1 nat of removing the whole heads (mean ablation):", abs(ko.effect - mean.effect) < 1)
print("...and more than 4 times what knocking out 3 random heads' edges costs:", ko.effect > 4 * max(rand.effect, 0.1))

# %% [markdown]
# ## 2. Few-shot accuracy with the induction edges knocked out
#
# 12 prompts of 5 shots per task; the clean and the knocked-out copies run in one forward, so the drop is
# paired by prompt (95% bootstrap intervals over prompts). The bench runs all ten tasks at 10 shots.

# %%
tasks = ["country_capital", "antonym", "repetition"]
few = few_shot_accuracy(model, tasks, shots=5, n_prompts=12, knockout=top[:5])
print(few)

# %%
# NBVAL_CHECK_OUTPUT
print(
    "knocking out 5 induction heads' edges lowers few-shot accuracy (interval above 0):", few.mean_drop_interval[0] > 0
)

# %% [markdown]
# ## 3. Function-vector heads
#
# Each head's mean output at the final token of clean prompts, patched into prompts whose labels are
# shuffled: the change of the answer's probability, averaged over prompts and tasks. Attribution patching
# estimates every head from one forward and one backward per task and the 5 largest estimates are
# measured exactly (`estimator="exact"` patches all 270; `bench/icl_heads_smollm2.py` compares the two).

# %%
fv = fv_scores(model, tasks, shots=5, n_prompts=8, verify_top=5)
print(fv)

# %%
# NBVAL_CHECK_OUTPUT
(l0, h0, s0), (_, _, s1) = fv.top(2)
print("the top FV head is not one of the top 8 induction heads:", (l0, h0) not in top)
print("...and raises the answer at least twice as much as the next FV head:", s0 > 2 * s1)

# %% [markdown]
# ## 4. The protocol in one call
#
# `icl_heads` ranks heads both ways, mean-ablates the top 1% and 3% of one kind while sparing the other
# kind's top 2% ("exclusion"), knocks out the top induction heads' edges, and removes random heads of the
# same count; each condition gets few-shot accuracy and the token-loss ICL score (late minus early loss on
# repeated random tokens, nats: more negative = more in-context learning). Here at 3% only, on the same
# tasks, 8 prompts of 5 shots, one random set, the FV scores above; the bench runs the full suite.

# %%
protocol = icl_heads(
    model, tasks, fractions=(0.03,), shots=5, n_prompts=8, n_random=1, batch_size=4, fv=fv, induction=det
)
print(protocol)

# %%
# NBVAL_CHECK_OUTPUT
clean, (ind,), (fvc,) = (
    protocol.condition("clean")[0],
    protocol.condition("induction", 0.03),
    protocol.condition("fv", 0.03),
)
print(
    "removing the top 3% induction heads weakens the token-loss ICL score by more than 3 nats:",
    ind.icl_repeated - clean.icl_repeated > 3,
)
print("...removing the top 3% FV heads moves it by less than 1 nat:", abs(fvc.icl_repeated - clean.icl_repeated) < 1)

# %% [markdown]
# On SmolLM2 the induction heads carry the token-loss ICL score and the FV heads do not, as Yin & Steinhardt
# report; few-shot accuracy falls under either ablation at this size (they find FV heads dominate few-shot
# ICL in larger models). The figure: few-shot accuracy and the ICL score against the share of heads removed,
# and every head's induction score against its FV score.

# %%
plot_icl_heads(protocol)
