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
# # Remote: scanning models on NDIF
#
# For models too big for a laptop, run the scan on [NDIF](https://ndif.us) through nnsight. Only the
# token ids and our code travel to the server (shipped by value: NDIF needs nothing of ours installed);
# only per-head numbers come back. With an API key from https://login.ndif.us:
#
# ```python
# import getpass, os
# os.environ["NDIF_API_KEY"] = getpass.getpass("NDIF key: ")  # typed, never saved in the notebook
# from induction_nb import load_model, detect_induction_heads
# model = load_model("meta-llama/Llama-3.1-8B", remote=True)   # meta weights: only the config is read
# result = detect_induction_heads(model, remote=True)            # runs on nnsight.CONFIG.API.HOST
# ```
#
# or `induction-nb scan meta-llama/Llama-3.1-8B --remote` in a terminal.
#
# This notebook cannot reach NDIF from where it is built and tested, so it starts a **loopback server**
# that speaks nnsight's remote protocol and executes requests with NDIF's own execution code (the
# `ndif` package; see `tests/ndif_loopback.py`), serving the embedded SmolLM2. Everything else is the
# real remote path.

# %%
import os, sys
from pathlib import Path
sys.path.insert(0, str(Path("..", "tests").resolve()))
import ndif_loopback
import nnsight
from induction_nb import load_model
from induction_nb.engine import embedded_model_folder

folder = embedded_model_folder()  # the embedded model as a save_pretrained folder (converted once, cached)
server = ndif_loopback.start_server(folder)
os.environ["NDIF_API_KEY"] = "loopback-key"
nnsight.CONFIG.APP.REMOTE_LOGGING = False
print("loopback NDIF at", server.url)

# %%
from induction_nb import detect_induction_heads, RemoteConfig

remote_model = load_model(folder, remote=True)  # no weights on this side
result = detect_induction_heads(remote_model, remote=RemoteConfig(host=server.url))

# %%
# NBVAL_CHECK_OUTPUT
print(f"Found {result.num_heads_detected} induction heads remotely:", result.induction_heads)
local = detect_induction_heads(load_model())
print("same heads as a local scan:", result.induction_heads == local.induction_heads)
print("same scores (to 1e-5):", all(abs(a.overall_score - b.overall_score) < 1e-5
                                   for a, b in zip(result.head_scores, local.head_scores)))

# %% [markdown]
# A scan is one request however many chunks it has, and each finished chunk is kept on disk (the
# resume cache): after a failure the same call sends only what is missing, and a finished scan comes
# back even with the server down. Failures are one clear `RemoteExecutionError` whose `kind` says what
# happened: `key`, `unreachable`, `not_served`, `job` (with the server's message) or `lost`.

# %%
# NBVAL_CHECK_OUTPUT
from induction_nb import RemoteExecutionError
server.stop()
again = detect_induction_heads(remote_model, remote=RemoteConfig(host=server.url), progress=False)  # cached
print("server down, the finished scan from the resume cache:", again.induction_heads == result.induction_heads)
try:
    detect_induction_heads(remote_model, seed=1, remote=RemoteConfig(host=server.url), progress=False)
except RemoteExecutionError as e:
    print(e.kind, "|", str(e).split(" (")[0])
