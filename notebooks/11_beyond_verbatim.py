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
# # Beyond verbatim tokens: token vs concept induction, n-gram induction, the weights' evidence
#
# The probe-detected induction heads copy the *next token* of an earlier repeat. Three newer questions,
# each one call, on SmolLM2:
#
# 1. **Token vs concept induction** (Feucht, Todd, Wallace, Bau, COLM 2025, "The Dual-Route Model of
#    Induction"): in `[BOS] r1 e r2 \n r1`, a *token* head at the last token attends to the start of the
#    earlier `e` (random tokens) and copies it verbatim; a *concept* head attends to the *end* of an earlier
#    multi-token word and carries the word. Scores are value-weighted attention, `A[q,k] |v_k| / sum_j A[q,j] |v_j|`.
# 2. **n-gram induction** (Akyurek et al., ICML 2024): heads that match on the last 2 or 3 tokens, on a probe
#    whose 1-token contexts are ambiguous and whose 2-token contexts are unique.
# 3. **The weights' evidence** (Elhage et al. 2021; Olsson et al. 2022): OV copying, QK matching and
#    K-composition read off the weights, no forward pass, checked against the ablation circuit.

# %%
from induction_nb import (
    compare_with_circuit,
    concept_induction,
    detect_induction_heads,
    find_circuit,
    load_model,
    plot_dual_route,
    route_ablation,
    text_dual_route,
    text_n_prefix,
    text_weight_evidence,
    weight_evidence,
)

model = load_model()
probe_heads = [(18, 6), (17, 3), (17, 4), (17, 5), (18, 7)]  # the detector's top 5 at 128 tokens (notebook 01)

# %% [markdown]
# ## 1. Token vs concept induction heads
#
# 24 probes per route, 32 tokens each; the real words are names and rare words from the shipped
# public-domain books that SmolLM2's tokenizer splits into 2 to 5 tokens. This is the attention form
# (two forwards). The causal form (`effects="attribution"`, the default: each head's output at the query
# patched from the clean run into one without the word, estimated for every head from one forward and
# backward, the top 10 measured exactly) takes about a minute more; `bench/frontier_smollm2.py` runs it:
# one head's patch moves `P(e[0])` by at most ~1e-4 on SmolLM2 (its induction heads are redundant).

# %%
dual = concept_induction(model, n_probes=24, effects=None)
print(text_dual_route(dual, top=10))

# %%
# NBVAL_CHECK_OUTPUT
token_top5 = {(s.layer, s.head) for s in dual.top_token(5)}
print("the probe-detected induction heads are the top 5 token induction heads:", token_top5 == set(probe_heads))
print(
    "the top concept head is not a probe-detected induction head:",
    (dual.top_concept(1)[0].layer, dual.top_concept(1)[0].head) not in probe_heads,
)
print("the top-10 token and concept sets share at most 3 heads:", len(dual.overlap(10)) <= 3)

# %%
plot_dual_route(dual, label_top=4)
# %% [markdown]
# ### Which part of copying a word each route carries
#
# Mean-ablate the 10 top token heads, or the 10 top concept heads, and read two probabilities on word
# probes: `P(e[0])` after the repeated prefix (*verbatim copying*: the next token of an earlier repeat) and
# `P(e[1])` after `e[0]` (*word completion*). Feucht et al. find that ablating token heads makes models
# paraphrase instead of copy; paraphrase needs parallel text we do not ship, so we measure copying and
# completion only, and state what SmolLM2 shows.

# %%
ablated = route_ablation(model, dual, k=10, n_probes=16)
print(ablated)

# %%
# NBVAL_CHECK_OUTPUT
print(
    "removing the token heads lowers verbatim copying more than removing the concept heads:",
    ablated.drops["token heads"]["copy"][1] > ablated.drops["concept heads"]["copy"][2],
)
print(
    "...and it also lowers word completion more, intervals apart (the reverse is not seen on SmolLM2):",
    ablated.drops["token heads"]["completion"][1] > ablated.drops["concept heads"]["completion"][2],
)

# %% [markdown]
# ## 2. n-gram induction
#
# The `ngram` probe repeats a block in which every token recurs with different continuations while every
# bigram is unique: a plain induction head is split between several earlier copies of the current token,
# a 2-prefix head is not. `text_n_prefix` puts n = 1, 2, 3, 4 side by side.

# %%
ngram = detect_induction_heads(model, patterns=["ngram"], batch_size=4)
print(text_n_prefix(ngram, heads=probe_heads))

# %%
# NBVAL_CHECK_OUTPUT
s = ngram.score(18, 6)
print(
    "L18H6 puts more of its attention on the one 2-prefix target than it can on a split 1-prefix one:",
    s.prefix_matching_2 > 0.5,
)

# %% [markdown]
# ## 3. The weights' evidence
#
# Per head: OV copying (eigenvalue positivity of `W_E W_V W_O W_U` on 1000 tokens), QK matching (the same
# for the QK circuit through the head's top K-composing earlier head), and the K-composition of each
# later head with each earlier head against a random baseline. SmolLM2 is rotary: the scores are the
# content part at relative offset 0 (see the notes printed below).

# %%
evidence = weight_evidence(model, compositions=("k",))
print(text_weight_evidence(evidence, top=8))

# %%
# the ablation circuit over every head of layers 16-17 (18 candidates: the layers just before them)
window = [(l, h) for l in range(16, 18) for h in range(9)]
circuit = find_circuit(model, probe_heads, candidates=window, sequence_length=48, batch_size=2)
agreement = compare_with_circuit(evidence, circuit)
print(agreement)

# %%
# NBVAL_CHECK_OUTPUT
matching = {h for h, _ in evidence.top_matching(10)}
print(
    "at least 4 of the 5 probe-detected heads are among the 10 top QK-matching heads:",
    len(matching & set(probe_heads)) >= 4,
)
print(
    "the weights name the ablation circuit's previous-token head for at least half the induction heads:",
    agreement.agreement >= 0.5,
)

# %% [markdown]
# The report and the explorer read the weights' scores too: `evidence.attach(result)` adds `ov_copying`
# and `qk_matching` to every head of a scan.

# %%
print(evidence.attach(dual).get_top_heads(5)[0])
