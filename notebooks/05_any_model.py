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
# # Any model
#
# Capture finds each layer's attention by what it does (an nnsight probe checks that `softmax(q k^T) v`
# reproduces the call's output), so the same analysis runs on HuggingFace models with any attention
# backend, plain PyTorch modules and encoders; anything else goes through the `CustomSites` escape hatch.
#
# ## A transformer whose heads we know
#
# `induction_nb.HandBuiltInduction` has weights set by hand: layer 0 head 0 is a previous-token head,
# layer 1 head 0 an induction head built on it (K-composition), layer 1 head 1 attends by position only.

# %%
# NBVAL_CHECK_OUTPUT
import torch
from induction_nb import detect_induction_heads, capture_attention
from induction_nb import HandBuiltInduction

toy = HandBuiltInduction(period=16)
r = detect_induction_heads(toy, sequence_length=32)
print("induction heads:", r.induction_heads, " previous-token heads:", r.previous_token_heads())
s = r.score(1, 1)
print(f"positional head L1H1: prefix {s.prefix_matching:.2f}, contrast {s.contrast:.2f} -> not detected")

# %% [markdown]
# ## Plain PyTorch: a nanoGPT-style block calling `F.scaled_dot_product_attention`

# %%
# NBVAL_CHECK_OUTPUT
import torch.nn as nn
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
print("random init, heads detected:", detect_induction_heads(gpt, sequence_length=64).num_heads_detected)

# %% [markdown]
# ## An encoder (bidirectional attention) and a grouped-query model under `sdpa`

# %%
# NBVAL_CHECK_OUTPUT
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

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
print("llama GQA under sdpa matches eager output_attentions within 1e-5:", bool((got - reference).abs().max() < 1e-5))

# %% [markdown]
# ## The escape hatch
#
# A model whose attention discovery cannot recognise (no softmax call, no attention-like name) gets a
# clear error; `CustomSites` then names the module of each layer and what to read (here an assignment
# inside its forward, listed by `print(nnsight.NNsight(model).mixers[0].source)`).

# %%
# NBVAL_CHECK_OUTPUT
from induction_nb import CustomSites, AttentionNotFoundError

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
print(p)
