"""Tiny random-config models for tests (no downloads). Shared by the test modules."""

from __future__ import annotations

import torch

VOCAB = 97
SEQ = 12
JAMBA = dict(
    vocab_size=128,
    hidden_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    attn_layer_period=2,
    attn_layer_offset=1,
    expert_layer_period=2,
    expert_layer_offset=1,
    num_experts=2,
    use_mamba_kernels=False,
    mamba_d_state=8,
    mamba_expand=2,
)

# architecture -> (config class name, model class name, config kwargs)
ARCHS: dict[str, tuple[str, str, dict]] = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=32, n_layer=2, n_head=4, n_positions=64)),
    "gpt_neox": (
        "GPTNeoXConfig",
        "GPTNeoXForCausalLM",
        dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64
        ),
    ),
    "llama_gqa": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=6,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
    ),
    "mistral_sliding": (
        "MistralConfig",
        "MistralForCausalLM",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            sliding_window=5,
        ),
    ),
    "qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
    ),
    "gemma2_softcap_sliding": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            head_dim=8,
            max_position_embeddings=64,
            sliding_window=5,
            attn_logit_softcapping=2.0,
            query_pre_attn_scalar=8,
        ),
    ),
    "phi3": (
        "Phi3Config",
        "Phi3ForCausalLM",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            pad_token_id=0,
        ),
    ),
    "opt": (
        "OPTConfig",
        "OPTForCausalLM",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
        ),
    ),
    "bert_encoder": (
        "BertConfig",
        "BertModel",
        dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64
        ),
    ),
    "bloom_alibi": ("BloomConfig", "BloomForCausalLM", dict(hidden_size=32, n_layer=2, n_head=4)),
    "falcon": (
        "FalconConfig",
        "FalconForCausalLM",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            new_decoder_architecture=False,
            multi_query=True,
            parallel_attn=True,
            bias=False,
        ),
    ),
}


def make_jamba() -> torch.nn.Module:
    """A tiny Jamba (hybrid: attention in layers 1 and 3, Mamba in 0 and 2), eager, seed 0."""
    import transformers

    config = transformers.JambaConfig(**JAMBA)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return transformers.JambaForCausalLM(config).eval()


def make_hf(arch: str, attn_implementation: str = "eager", seed: int = 0) -> torch.nn.Module:
    """A tiny random model of ``arch``; the same seed gives the same weights for every backend."""
    import transformers

    config_name, model_name, kwargs = ARCHS[arch]
    config = getattr(transformers, config_name)(vocab_size=VOCAB, **kwargs)
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config)
    return model.eval()


def save_with_words(path, arch: str = "llama_gqa", attn_implementation: str = "sdpa"):
    """A tiny model of ``arch`` saved in ``path`` with a word-level tokenizer (``"t5 t17"`` -> ``[5, 17]``,
    tests/ndif_loopback.write_tokenizer), so that text goes in as strings; returns ``path``."""
    import ndif_loopback

    make_hf(arch, attn_implementation).save_pretrained(path)
    ndif_loopback.write_tokenizer(path)
    return path


def random_tokens(batch: int = 2, seq: int = SEQ, seed: int = 1, low: int = 3, high: int = VOCAB) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (batch, seq), generator=g)


# --- plain PyTorch models -------------------------------------------------------------------------


class EncoderStack(torch.nn.Module):
    """Token ids -> embeddings -> ``nn.TransformerEncoder`` (optionally causal, optionally norm-first)."""

    def __init__(self, causal: bool, norm_first: bool = False, batch_first: bool = True, d: int = 32, heads: int = 4):
        super().__init__()
        self.causal, self.batch_first = causal, batch_first
        self.embed = torch.nn.Embedding(VOCAB, d)
        self.pos = torch.nn.Embedding(64, d)
        layer = torch.nn.TransformerEncoderLayer(
            d, heads, 64, dropout=0.0, batch_first=batch_first, norm_first=norm_first
        )
        self.encoder = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos(torch.arange(tokens.shape[1]))
        return x if self.batch_first else x.transpose(0, 1)

    def mask(self, n: int) -> torch.Tensor | None:
        return torch.nn.Transformer.generate_square_subsequent_mask(n) if self.causal else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        return self.encoder(self.embed_tokens(tokens), mask=self.mask(n), is_causal=self.causal)


class NanoAttention(torch.nn.Module):
    """nanoGPT's CausalSelfAttention: fused qkv projection, then SDPA or a manual masked softmax."""

    def __init__(self, d: int, heads: int, block_size: int, flash: bool, dropout: float = 0.0):
        super().__init__()
        self.c_attn = torch.nn.Linear(d, 3 * d)
        self.c_proj = torch.nn.Linear(d, d)
        self.n_head, self.flash, self.dropout = heads, flash, dropout
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import math

        import torch.nn.functional as F

        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.flash:
            y = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=None, dropout_p=self.dropout, is_causal=True
            )
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class NanoBlock(torch.nn.Module):
    def __init__(self, d: int, heads: int, block_size: int, flash: bool, dropout: float = 0.0):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(d)
        self.attn = NanoAttention(d, heads, block_size, flash, dropout)
        self.ln_2 = torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(torch.nn.Module):
    def __init__(
        self, flash: bool, d: int = 32, heads: int = 4, n_layer: int = 3, block_size: int = 32, dropout: float = 0.0
    ):
        """``dropout``: attention dropout passed to SDPA whatever the mode (nanoGPT's eval-mode bug)."""
        super().__init__()
        self.block_size = block_size
        self.wte = torch.nn.Embedding(VOCAB, d)
        self.wpe = torch.nn.Embedding(block_size, d)
        self.h = torch.nn.ModuleList(NanoBlock(d, heads, block_size, flash, dropout) for _ in range(n_layer))
        self.ln_f = torch.nn.LayerNorm(d)
        self.lm_head = torch.nn.Linear(d, VOCAB, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1]))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class TokenMixer(torch.nn.Module):
    """Attention that discovery cannot recognise: no 'attention' in any name, no softmax call."""

    def __init__(self, d: int = 16, heads: int = 2):
        super().__init__()
        self.wq, self.wk, self.wv = (torch.nn.Linear(d, d) for _ in range(3))
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q = self.wq(x).view(B, T, self.heads, -1).transpose(1, 2)
        k = self.wk(x).view(B, T, self.heads, -1).transpose(1, 2)
        v = self.wv(x).view(B, T, self.heads, -1).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / 4.0
        s = s - s.amax(-1, keepdim=True)
        e = torch.exp(s) * torch.ones(T, T).tril()
        mixing = e / e.sum(-1, keepdim=True)
        return (mixing @ v).transpose(1, 2).reshape(B, T, C)


class MixerModel(torch.nn.Module):
    def __init__(self, n_layer: int = 2, d: int = 16):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, d)
        self.mixers = torch.nn.ModuleList(TokenMixer(d) for _ in range(n_layer))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for m in self.mixers:
            x = x + m(x)
        return x


class HookPoint(torch.nn.Identity):
    """TransformerLens-style hook point: an identity module whose output is a named activation."""


class LensAttention(torch.nn.Module):
    def __init__(self, d: int = 16, heads: int = 2):
        super().__init__()
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.heads = heads
        self.hook_pattern = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(x).split(C, -1))
        s = (q @ k.transpose(-1, -2)).masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
        pattern = self.hook_pattern(torch.exp(s - torch.logsumexp(s, -1, keepdim=True)))
        return (pattern @ v).transpose(1, 2).reshape(B, T, C)
