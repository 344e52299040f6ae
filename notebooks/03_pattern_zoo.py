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
# # The pattern zoo
#
# `PatternGenerator` makes the probe sequences. Each pattern carries its tokens, its period and, derived
# from the tokens, the induction targets (`t[k-1] == t[q]`). Ids are drawn from [1000, 10000) for
# SmolLM2, skipping special tokens; random blocks hold distinct ids, so the only matches are the
# intended ones.

# %%
from induction_nb import load_model, PatternGenerator, PATTERN_NAMES

model = load_model()
tok = model.tokenizer
gen = PatternGenerator(vocab_size=len(tok), seed=0, bos_token_id=tok.bos_token_id,
                       exclude=tok.all_special_ids, tokenizer=tok)
patterns = {name: gen.generate(name, seq_len=64, batch_size=4) for name in PATTERN_NAMES}

# %%
# NBVAL_CHECK_OUTPUT
for name, p in patterns.items():
    print(f"{name:9s} tokens {tuple(p.tokens.shape)}  period {p.period}  induction targets {int(p.match_mask.sum())}")

# %%
# NBVAL_CHECK_OUTPUT
for name, p in patterns.items():
    text = tok.decode(p.tokens[0, 1:13].tolist()).replace("\n", " ")
    print(f"{name:9s} {text[:70]!r}")

# %% [markdown]
# ## How the heads respond
#
# Prefix matching (attention on the induction targets) of the two best induction heads and of the
# strongest previous-token head, for each pattern. `random` has no targets (no score). `natural` is real
# text repeated: the induction heads find it too.

# %%
# NBVAL_CHECK_OUTPUT
from induction_nb import capture_attention
from induction_nb.metrics import REGISTRY, stripe_attention  # every metric is an object in the registry

heads = [(18, 6), (17, 3), (16, 0)]
print("pattern   " + "  ".join(f"L{l}H{h} prefix" for l, h in heads) + "   L16H0 prev-token")
for name, p in patterns.items():
    captured = capture_attention(model, p.tokens, layers=[16, 17, 18])
    row = []
    for l, h in heads:
        v = stripe_attention(captured.pattern[:, captured.layers.index(l), h], p.match_mask).nanmean()
        row.append("     -     " if v.isnan() else f"   {v:.2f}     ")
    prev = REGISTRY["previous_token"].of(captured.pattern[:, 0, 0], first_query=2).mean()
    print(f"{name:9s} " + " ".join(row) + f"      {prev:.2f}")

# %% [markdown]
# ## The control behind the contrast metric
#
# For a periodic pattern, `gen.control_for(pattern)` keeps the first period and replaces the rest with
# ids that do not occur earlier: same length, same positions, no prefix match.

# %%
# NBVAL_CHECK_OUTPUT
from induction_nb.metrics import match_mask

p = patterns["repeated"]
control = gen.control_for(p)
print("same first block:", bool((control[:, : 1 + p.period] == p.tokens[:, : 1 + p.period]).all()))
print("targets in the probe:", int(p.match_mask.sum()), " in the control:", int(match_mask(control).sum()))
