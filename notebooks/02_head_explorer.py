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
# # The HeadExplorer: an induction head next to a previous-token head
#
# The explorer puts the whole layer x head grid (one canvas, coloured by the metric you choose, detected
# heads outlined, hover for a head's name and value) beside the selected head's attention. Click a head to
# see its pattern, its metrics (the detection's scores next to those of the pattern shown) and the tokens
# with the `[A][B] ... [A]` matches marked. Controls choose the probe pattern, the example, a window and the
# stripe outline. In a terminal (or on GitHub) the widget's text form, the ASCII report and pattern,
# stands in.

# %%
from induction_nb import load_model, HeadExplorer

model = load_model()
explorer = HeadExplorer(model, sequence_length=64, n_examples=4)
explorer  # the widget; its text form (the ASCII views) is what GitHub and terminals show

# %% [markdown]
# SmolLM2's best induction head is L18H6; L16H0 is its strongest previous-token head (it attends to
# the token just before: the building block an induction head uses through K-composition).

# %%
# NBVAL_CHECK_OUTPUT
for layer, head in [(18, 6), (16, 0)]:
    s = explorer.result.score(layer, head)
    print(f"L{layer}H{head}: prefix {s.prefix_matching:.2f}  contrast {s.contrast:.2f}  "
          f"copying {s.copying:.2f}  previous-token {s.previous_token:.2f}")

# %% [markdown]
# The two heads side by side, on the same probe sequence: the induction head's stripe one position after
# the earlier copy, the previous-token head's line just below the diagonal. (The explorer above stays on
# its own selection; `compare` draws a static figure.)

# %%
explorer.compare([(18, 6), (16, 0)]);

# %% [markdown]
# Share what you see: `save_html` writes one self-contained page (grid, report, the heatmaps of the heads
# you viewed) that opens in any browser without a kernel or network; `save_figure` writes the current
# heatmap as PNG, SVG or PDF.

# %%
# NBVAL_CHECK_OUTPUT
import tempfile
from pathlib import Path

explorer.select(16, 0)  # viewed heads go into the page, the selected one first
explorer.select(18, 6)
folder = Path(tempfile.mkdtemp())
page = explorer.save_html(folder / "smollm2_explorer.html")
text = page.read_text()
print(f"{page.name}: {text.count('data:image/png;base64,')} heatmaps embedded, "
      f"remote resources: {text.count('src=' + chr(39) + 'http') + text.count('<link')}")
print([p.name for p in explorer.save_figure(folder / "L18H6", formats=["png", "svg"])])

# %% [markdown]
# ## What the contrast control shows
#
# The control keeps each probe's first block and replaces the rest with fresh tokens: the positions are
# the same, the prefix matches are gone. An induction head's stripe attention collapses on the control;
# a head that attended by position would keep it. The previous-token head has nothing on the stripe in
# either case.

# %%
# NBVAL_CHECK_OUTPUT
import torch
from induction_nb import InductionHeadDetector, capture_attention
from induction_nb.metrics import match_mask, stripe_attention

gen = InductionHeadDetector(model, batch_size=4).generator()
probe = gen.generate("repeated", seq_len=64, batch_size=4)
control = gen.control_for(probe)
mask = match_mask(probe.tokens)  # the probe's induction targets, applied to both
for layer, head in [(18, 6), (16, 0)]:
    on_probe = stripe_attention(capture_attention(model, probe.tokens, layers=[layer]).pattern[:, 0, head], mask)
    on_control = stripe_attention(capture_attention(model, control, layers=[layer]).pattern[:, 0, head], mask)
    print(f"L{layer}H{head}: stripe attention {on_probe.mean():.2f} with the prefix match, "
          f"{on_control.mean():.2f} without")

# %% [markdown]
# The text form (what `print(explorer)` or a terminal shows), last lines:

# %%
print("\n".join(str(explorer).splitlines()[-8:]))
