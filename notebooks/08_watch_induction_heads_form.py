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
# # Watch induction heads form, and Olsson et al.'s six lines of evidence
#
# A 2-layer attention-only transformer trained from scratch on sequences that contain a randomly placed
# repeat of random length (so that attending by position cannot help, only induction can), scored by
# the detector every 100 steps. The loss on the repeated tokens drops sharply at the same point where an
# induction head appears: the phase change of Olsson et al. (2022), "In-context Learning and Induction Heads".
# Then the paper's argument as one report: `formation` over the run's checkpoints (argument 1), smeared keys
# (argument 2), and `evidence_report` on this model and on SmolLM2 (arguments 3-6). About 2 minutes on 2 CPU cores.

# %%
from induction_nb import train_induction_model

run = train_induction_model(seed=0)  # 2000 steps, a checkpoint every 100 (and step 0); ~50 s

# %%
print("step   repeated-token loss   best head   overall   detected")
for c in run.checkpoints:
    print(f"{c.step:5d}   {c.repeat_loss:10.2f}          L{c.best_head[0]}H{c.best_head[1]}       {c.best_overall:.2f}      {len(c.induction_heads)}")
print("phase change at step", run.phase_change_step)

# %% [markdown]
# The facts the table shows (checked on every run; the exact step can move by a checkpoint between CPUs):

# %%
# NBVAL_CHECK_OUTPUT
first, last = run.checkpoints[0], run.checkpoints[-1]
print("an induction head formed during training:", run.phase_change_step is not None)
print("loss on repeated tokens more than halved:", last.repeat_loss < first.repeat_loss / 2)
print("best induction score rose from below to above the 0.4 threshold:", first.best_overall < 0.4 < last.best_overall)

# %% [markdown]
# ## (1) Formation across checkpoints
#
# `formation` rescans every checkpoint the run kept with the public tools: `detect_induction_heads` (every
# head's induction score with its 95% interval) and `icl_score` (loss on the repeat minus loss on the first
# block, nats: negative means the model uses its context). Each checkpoint's result is cached as it is
# measured, so a long series (Pythia's 154 checkpoints, say: `formation(sorted(glob("pythia-160m/step*")))`)
# resumes where it stopped.

# %%
from induction_nb import formation

f = formation(run)
print(f)

# %%
# NBVAL_CHECK_OUTPUT
import torch
from induction_nb import detect_induction_heads, icl_score

w = f.phase_change
print("a phase change (the best head's rise within a quarter of training):", w is not None)
print("more than half the ICL improvement falls inside it:", w is not None and w.icl_share > 0.5)
# every number is the tool called alone on that checkpoint
step = f.steps[-1]
fresh = detect_induction_heads(run.model_at(step), intervals=("prefix_matching",))
print("last checkpoint's scores equal a fresh detection:", torch.equal(torch.tensor(fresh.score_matrix("prefix_matching")), f.scores["prefix_matching"][-1]))
print("and its ICL score a fresh icl_score:", abs(icl_score(run.model_at(step), n_bootstrap=1000)["repeated"] - float(f.icl[-1])) < 1e-6)

# %%
import matplotlib.pyplot as plt
from induction_nb import plot_formation

plot_formation(f)  # every head's induction score (top heads coloured, with intervals), the ICL score beside it
plt.show()

# %% [markdown]
# ## (2) Smeared keys: one layer forms induction heads only with them
#
# With smeared keys each key is a learned mix of its own and the previous position's, so a single layer can
# match "the token before this key" without a previous-token head. Measured over seeds 0-4 and 2000 steps
# (`bench/smeared_keys.py`): one-layer models with smeared keys first show an induction head at step 300 in
# every seed and without them never; two-layer models at step 300 with them against 700-1200 without. Here one
# seed of one-layer models, 500 steps each (`tests/test_training.py` checks another):

# %%
from induction_nb import compare_smeared_keys

smeared = compare_smeared_keys(seeds=(0,), n_layers=1, steps=500)
print(smeared)

# %%
# NBVAL_CHECK_OUTPUT
print("one layer formed an induction head with smeared keys:", all(s is not None for s in smeared.formed["smeared"]))
print("and never without them:", all(s is None for s in smeared.formed["plain"]))

# %% [markdown]
# ## (3)-(5) on the trained model, and (6) against SmolLM2
#
# `evidence_report` measures each line the toolkit can: removing the induction heads at test time against
# random heads (3), the same heads' fuzzy and concept copying (4: needs a tokenizer, which this tiny model
# lacks), the mechanism in the weights (OV copying, K-composition) and in behaviour (the circuit's feeder) (5),
# and the same on the other models passed (6). Lines (1) and (2) read the scans above.

# %%
from induction_nb import evidence_report

tiny = evidence_report(run.model, formation=f, smeared=smeared)
print(tiny)

# %% [markdown]
# Line (3) cannot be read here: 4 induction heads and 2 previous-token heads leave 2 other heads, too few for a
# random set of 4 (the report says so rather than compare against a smaller set). SmolLM2 below has 270 heads.

# %%
# NBVAL_CHECK_OUTPUT
verdicts = {line.number: line.verdict for line in tiny.lines}
for n in (1, 2):
    print(f"line {n}:", verdicts[n])
print("line 3 has no random baseline:", tiny.line(3).values["random"] == [])
rows = tiny.line(5).values["per_head"].values()  # OV copying ~1.0; K-composition of the feeder 1.5-1.8x random
print("line 5: every induction head copies (OV copying > 0.9):", all(r["ov_copying"] > 0.9 for r in rows))
print("...and is fed by a layer-0 head that K-composes with it:", all(r["feeder"].startswith("L0") and r["feeder_k_ratio"] > 1 for r in rows))

# %% [markdown]
# SmolLM2-135M-Instruct, with the trained model beside it for line (6). To stay within a tutorial's time on a
# CPU this run measures lines 3 and 4 on small probes (4 sequences of 32 tokens, two random sets), line 4 by
# fuzzy copying alone (a word in another case: ` cat` ... ` Cat` -> the token after ` cat`), and skips line 5
# (`find_circuit` removes every earlier head in turn, about 3 minutes on 2 CPU cores); the default call measures
# everything, concept induction included (about 4 minutes).

# %%
from induction_nb import load_model

smol = load_model()
report = evidence_report(
    smol,
    others={"trained 2-layer": run.model},
    batch_size=4,
    sequence_length=32,
    n_random=2,
    concept=False,
    weights=False,
    circuit=False,
)
print(report)

# %%
# NBVAL_CHECK_OUTPUT
three, four = report.line(3), report.line(4)
print("removing SmolLM2's induction heads removes ICL, random heads do not:", three.verdict)
change = three.values["change"]["repeated"]
print("at least a quarter of the ICL score goes with them:", three.values["share_removed"]["repeated"] > 1 / 4)
print("more than 5x the change of any random set:", change["induction"] > 5 * max(change["random"]))
print("the same heads copy fuzzily (word in another case), far above the median head:", four.values["fuzzy"]["verdict"])
# every number is the tool called alone: the recorded call, run again
again = icl_score(smol, ablate=report.heads, method="mean", sequence_length=32, batch_size=4, seed=0)
print("line 3 equals icl_score called alone:", abs(again["repeated"] - three.values["induction"]["repeated"]) < 1e-6)

# %%
from induction_nb import plot_evidence

plot_evidence(report)  # one panel per line: the paper's argument on one page
plt.show()

# %% [markdown]
# The evidence of one head sits beside its attention in the explorer:
# `HeadExplorer(result, smol, evidence=report)` shows, for the selected head, the numbers the report holds.

# %% [markdown]
# ## The circuit the small model learned
#
# Layer 0's previous-token head feeding the layer-1 induction heads, found by removing each earlier head:

# %%
# NBVAL_CHECK_OUTPUT
from induction_nb import find_circuit

final = detect_induction_heads(run.model, sequence_length=32)
circuit = find_circuit(run.model, final.induction_heads, sequence_length=32)
feeder = circuit.top(1)[0][0]
print("induction heads in layer 1:", all(l == 1 for l, _ in final.induction_heads))
print("strongest feeder is in layer 0:", feeder[0] == 0)
# a head attending uniformly over these 32 tokens scores about 0.1; over seeds and CPUs the feeder scores 0.43-0.53
print("its previous-token score is above 0.3:", final.score(*feeder).previous_token > 0.3)
