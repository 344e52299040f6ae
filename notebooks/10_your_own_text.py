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
# # Your own text: padded batches, induction on real documents, the ICL score
#
# Random-token probes show that a head *can* do induction. This notebook asks what the heads do on
# real text: documents of different lengths, run as padded batches, scored over their natural
# repeats, and the in-context-learning score of Olsson et al. (2022) with and without the induction
# heads. `data/your_text/` stands for your own folder: four sections of this project's README as
# `.txt` files (`load_texts` also reads `.jsonl`, pandas and Arrow columns and `datasets.Dataset`s).

# %%
import torch
from induction_nb import capture_attention, detect_on_text, load_model, load_texts

model = load_model(attn_implementation="sdpa")
probe_heads = {(17, 3), (17, 4), (17, 5), (18, 6), (18, 7)}  # the detector's top 5 at 128 tokens (notebook 01)

# %% [markdown]
# ## Padded batches
#
# Strings go through the model's tokenizer, padded on its side; padding rows and columns of the
# pattern are 0, and position ids count the real tokens, so each sequence gets exactly the pattern it
# gets alone.

# %%
texts = ["The cat sat on the mat. The cat sat on the", "Call me Ishmael."]
batch = capture_attention(model, texts, layers=[18])
alone = capture_attention(model, texts[1], layers=[18])
real = batch.attention_mask[1]
gap = (batch.pattern[1][..., real, :][..., real] - alone.pattern[0]).abs().max()
print("tokens per text:", batch.attention_mask.sum(1).tolist(), "padded to", batch.tokens.shape[1])

# %%
# NBVAL_CHECK_OUTPUT
print("the padded row equals the text run alone (max difference < 1e-5):", bool(gap < 1e-5))

# %% [markdown]
# ## Induction on natural text
#
# A query is scored where its token occurred earlier in the same document; a head's score is its
# attention on the tokens right after those earlier copies (prefix matching, the probes' match mask),
# pooled over every scored query, with a bootstrap interval over documents.

# %%
from induction_nb.probes import PASSAGES  # the public-domain prose the natural probes use

on_passages = detect_on_text(model, list(PASSAGES.values()), n_bootstrap=200)
on_folder = detect_on_text(model, "data/your_text", max_length=512, overflow="chunk", n_bootstrap=200)
print(len(load_texts("data/your_text")), "documents;", on_folder.summary())
print("head    passages  your text")
for s in on_folder.get_top_heads(8):
    print(f"{s.name:7} {on_passages.score(s.layer, s.head).overall_score:8.2f} {s.overall_score:10.2f}")

# %%
# NBVAL_CHECK_OUTPUT
top_passages = [(s.layer, s.head) for s in on_passages.get_top_heads(5)]
top_folder = [(s.layer, s.head) for s in on_folder.get_top_heads(5)]
print("the best head on each text is a probe-detected induction head:",
      top_passages[0] in probe_heads and top_folder[0] in probe_heads)
print("probe-detected heads among the top 5, at least 2 on the passages and 3 on your text:",
      len(probe_heads & set(top_passages)) >= 2 and len(probe_heads & set(top_folder)) >= 3)

# %% [markdown]
# ## The in-context-learning score on documents
#
# Olsson et al.: loss at a late token minus loss at an early one. A document read twice makes the
# point sharply: at the same position of the second reading the model can copy what it read, and that
# copying runs through the induction heads. Remove the five probe-detected heads and most of the
# benefit goes; remove five other heads of the same layers and it stays.

# %%
from induction_nb import icl_score, plot_loss_curve

text = " ".join(list(PASSAGES.values())[:3])
n = len(model.tokenizer(text)["input_ids"])
kwargs = dict(texts=[text + " " + text], early=150, late=150 + n, window=21, n_bootstrap=20)
intact = icl_score(model, **kwargs)
without = icl_score(model, ablate=sorted(probe_heads), **kwargs)
control = icl_score(model, ablate=[(17, 0), (17, 1), (17, 6), (18, 2), (18, 4)], **kwargs)
for name, curve in (("intact", intact), ("without the induction heads", without), ("without 5 other heads", control)):
    print(f"{name:28} ICL {curve.icl_score:+.2f}  {curve.sparkline(40)}")

# %%
# NBVAL_CHECK_OUTPUT
print("the second reading is predicted > 2 nats better:", intact.icl_score < -2)
print("the induction heads carry most of it (> 1.5 nats lost without them):", without.icl_score > intact.icl_score + 1.5)
print("other heads of their layers do not (still < -2):", control.icl_score < -2)

# %%
import matplotlib.pyplot as plt

plot_loss_curve([intact, without, control], labels=["intact", "without induction heads", "without 5 other heads"])
plt.show()

# %% [markdown]
# On your own folder the same call gives Olsson et al.'s definition (token 500 minus token 50; your
# documents must be 500+ tokens long), e.g. `icl_score(model, texts="data/your_text", window=21)`; with a
# handful of documents its interval is wide, which the `LossCurve` says (`ci_low`, `ci_high`).
