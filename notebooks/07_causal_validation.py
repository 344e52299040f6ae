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
# # Causal validation: do the detected heads do the work?
#
# Attention scores are correlational. Here we remove heads and watch the model fail. A head is removed
# at the *input* of the attention output projection, sliced by head (that input is the concatenation of
# the heads' outputs; slicing the projection's output would not isolate a head). The loss is measured on
# the repeated half of repeated random sequences, where only in-context copying helps.

# %%
import random
from induction_nb import load_model, detect_induction_heads, ablate_heads, icl_score

model = load_model()
result = detect_induction_heads(model)
top = result.induction_heads[:5]
pool = [(l, h) for l in sorted({l for l, _ in top}) for h in range(9) if (l, h) not in top]
control = random.Random(0).sample(pool, 5)  # 5 random heads from the same layers, seed 0
hit = ablate_heads(model, top, sequence_length=64, batch_size=8, seed=0)
miss = ablate_heads(model, control, sequence_length=64, batch_size=8, seed=0)

# %%
print(f"loss on repeated tokens: intact {hit.baseline_loss:.2f}, top 5 removed {hit.ablated_loss:.2f}, "
      f"random 5 removed {miss.ablated_loss:.2f}")
print(f"accuracy on repeated tokens: intact {hit.baseline_accuracy:.2f}, top 5 removed {hit.ablated_accuracy:.2f}, "
      f"random 5 removed {miss.ablated_accuracy:.2f}")

# %%
# NBVAL_CHECK_OUTPUT
print("top 5 detected heads:", top)
print("5 random heads, same layers:", control)
print("removing the top 5 raises the loss more than 5x as much as removing 5 random heads:",
      hit.effect > 5 * miss.effect)
print("removing the top 5 costs more than half of the repeated-token accuracy:",
      hit.ablated_accuracy < hit.baseline_accuracy / 2)

# %% [markdown]
# ## The in-context-learning score
#
# Olsson et al.: loss late in the context minus loss early in it. Negative means the model gets better
# as it reads; removing the induction heads should take most of that away on repeated tokens.

# %%
intact = icl_score(model, sequence_length=64, batch_size=8)
ablated = icl_score(model, ablate=top, sequence_length=64, batch_size=8)
print(f"ICL score, repeated random tokens: intact {intact['repeated']:.2f}, induction heads removed {ablated['repeated']:.2f}")
print(f"ICL score, natural text: intact {intact['natural']:.2f}, induction heads removed {ablated['natural']:.2f}")

# %%
# NBVAL_CHECK_OUTPUT
print("the induction heads carry most of the in-context learning on repeated tokens:",
      ablated["repeated"] - intact["repeated"] > abs(intact["repeated"]) / 2)

# %% [markdown]
# ## Every head at once: attribution patching, checked against exact ablation
#
# Removing each of the 270 heads exactly costs 270 forward passes. Attribution patching (Nanda 2023;
# Kramár et al. 2024) estimates all of them to first order from one forward and one backward:
# `(a' - a) . dL/da` for each head's output `a`. `verify_top=10` then ablates exactly the 10 heads with
# the largest estimates in magnitude, so we see where the estimate holds (`bench/bench_attribution.py`
# compares all 270: Spearman 0.69, the exact top 10 all within the estimate's top 20 by magnitude).

# %%
from induction_nb import head_effects, plot_effects_scatter

fast = head_effects(model, estimator="attribution", verify_top=10, sequence_length=64, batch_size=2)
agree = fast.agreement()
print(f"{fast.n_forward} forward-equivalents (3 for the estimate, the rest for the 10 exact checks)")
print(f"over the 10 verified heads: Spearman {agree['spearman']:.2f}, largest gap {agree['max_abs_gap']:.2f} nats")
for l, h in fast.verified[:8]:
    print(f"  L{l}H{h}: estimate {float(fast.effects[l, h]):+.2f}, exact {float(fast.exact[l, h]):+.2f}")

# %%
# NBVAL_CHECK_OUTPUT
est, exact = fast.effects[16, 0], fast.exact[16, 0]
print("estimate and 10 exact checks in at most 5 forward-equivalents (exact for all 270 heads: 270):",
      fast.n_forward <= 5)
print("the previous-token head L16H0 is checked, and its exact effect is large (> 2 nats):",
      (16, 0) in fast.verified and float(exact) > 2)
print("... which the first-order estimate misses (estimate < exact / 2): it acts through the induction "
      "heads' attention, a saturated softmax:", float(est) < float(exact) / 2)

# %%
import matplotlib.pyplot as plt

plot_effects_scatter(fast)
plt.show()

# %% [markdown]
# ## The circuit: which earlier heads feed the induction heads?
#
# Induction heads find `[B]` through K-composition with a previous-token head: its output at `[B]` says
# "the token before me was `[A]`". Removing such a head should break the induction head's attention.
# We remove each head of layers 10-17, one at a time (packed several per forward pass), and measure the
# drop of the two best induction heads' prefix matching.

# %%
from induction_nb import find_circuit, text_circuit, plot_circuit_graph

candidates = [(l, h) for l in range(10, 18) for h in range(9)]
circuit = find_circuit(model, [(18, 6), (17, 3)], candidates=candidates, sequence_length=64, batch_size=4)
print(text_circuit(circuit, n=8, charset="unicode"))

# %%
# NBVAL_CHECK_OUTPUT
for target in [(18, 6), (17, 3)]:
    print(f"L{target[0]}H{target[1]} is fed most by:",
          ", ".join(f"L{l}H{h}" for (l, h), _ in circuit.feeding(target, n=2)))
print("previous-token score of the strongest feeder:",
      f"{result.score(*circuit.top(1)[0][0]).previous_token:.1f}")

# %%
import matplotlib.pyplot as plt
plot_circuit_graph(circuit, n=10, n_heads=9)
plt.show()

# %% [markdown]
# ## Copying, weight-aware
#
# Direct logit attribution: the head's own output, through the unembedding, should raise the logit of
# the token it attends to. A median rank of the attended token far above chance for the induction head,
# not for the previous-token head.

# %%
# NBVAL_CHECK_OUTPUT
from induction_nb import copying_dla

for s in copying_dla(model, [(18, 6), (16, 0)]):
    print(f"L{s.layer}H{s.head}: attended token's direct logit z-score {s.mean_z:.1f}, "
          f"better than {100 * (1 - s.median_rank / 49152):.0f}% of the vocabulary (median)")
