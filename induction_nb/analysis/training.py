"""Watch induction heads form: a small, fast trainer for a 2-layer attention-only transformer on
synthetic sequences where induction helps, scoring checkpoints with the detector.

Each training sequence holds a random block of random length repeated once, then random filler: the
block's period varies, so a head that attends by position cannot predict the repeat and only an
induction circuit (a previous-token head in layer 0 feeding an induction head in layer 1) can. The
loss on the repeated half drops sharply when the circuit forms, at the same checkpoint where the
detector's best overall score jumps: the phase change of Olsson et al. (2022). CPU, about a minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import InputError
from .detector import InductionHeadDetector
from .toy import ToyAttention

__all__ = ["AttentionOnly", "Checkpoint", "TrainingRun", "train_induction_model"]


class AttentionOnly(torch.nn.Module):
    """Token + position embeddings, ``n_layers`` attention layers with residuals, an unembedding."""

    def __init__(self, vocab: int = 64, d_model: int = 64, n_layers: int = 2, n_heads: int = 4, max_len: int = 64):
        super().__init__()
        self.block_size = max_len
        self.embed = torch.nn.Embedding(vocab, d_model)
        self.pos_embed = torch.nn.Embedding(max_len, d_model)
        self.layers = torch.nn.ModuleList(ToyAttention(d_model, n_heads, d_model // n_heads) for _ in range(n_layers))
        self.unembed = torch.nn.Linear(d_model, vocab, bias=False)
        for layer in self.layers:
            for w in (layer.W_Q, layer.W_K, layer.W_V):
                torch.nn.init.normal_(w, std=d_model**-0.5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos_embed(torch.arange(tokens.shape[1], device=tokens.device))
        for layer in self.layers:
            x = x + layer(x)
        return self.unembed(x)


@dataclass(frozen=True)
class Checkpoint:
    step: int
    loss: float  # training loss on all positions
    repeat_loss: float  # loss on the repeated half of held-out repeated sequences
    best_head: tuple[int, int]
    best_overall: float  # the detector's best overall score
    induction_heads: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class TrainingRun:
    seed: int
    checkpoints: tuple[Checkpoint, ...]
    model: torch.nn.Module = field(compare=False, repr=False)

    @property
    def phase_change_step(self) -> int | None:
        """First checkpoint at which the detector finds an induction head."""
        return next((c.step for c in self.checkpoints if c.induction_heads), None)


def _batch(g: torch.Generator, batch: int, seq: int, vocab: int) -> torch.Tensor:
    tokens = torch.randint(vocab, (batch, seq), generator=g)
    periods = torch.randint(seq // 6, seq // 2 + 1, (batch,), generator=g)
    for i, p in enumerate(periods.tolist()):
        tokens[i, p : 2 * p] = tokens[i, :p]
    return tokens


def train_induction_model(
    seed: int = 0,
    *,
    steps: int = 2000,
    batch_size: int = 64,
    seq_len: int = 32,
    vocab: int = 64,
    lr: float = 2e-3,
    every: int = 100,
    threshold: float = 0.4,
    progress: bool = False,
) -> TrainingRun:
    """Train ``AttentionOnly`` from ``seed`` and score it every ``every`` steps with the detector."""
    if steps < 1 or every < 1 or seq_len < 12:
        raise InputError("need steps >= 1, every >= 1 and seq_len >= 12")
    if vocab - vocab // 10 < seq_len:  # the detector's probes and controls need seq_len distinct usable ids
        raise InputError(f"vocab {vocab} is too small for seq_len {seq_len}: use vocab >= {seq_len * 10 // 9 + 1}")
    with torch.random.fork_rng(devices=[]):  # the seed inits this model only; the user's RNG state is restored
        torch.manual_seed(seed)
        model = AttentionOnly(vocab=vocab, max_len=seq_len + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    held_out = _batch(torch.Generator().manual_seed(seed + 10_000), 256, seq_len, vocab)
    checkpoints = []
    loop = range(1, steps + 1)
    if progress:
        from tqdm.auto import tqdm

        loop = tqdm(loop, desc=f"training seed {seed}")
    for step in loop:
        model.train()
        tokens = _batch(g, batch_size, seq_len, vocab)
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            model.eval()
            result = InductionHeadDetector(model, threshold, batch_size=8, seed=seed, bos=False).detect(
                sequence_length=seq_len
            )
            best = result.get_top_heads(1)[0]
            checkpoints.append(
                Checkpoint(
                    step,
                    float(loss.detach()),
                    _repeat_loss(model, held_out),
                    (best.layer, best.head),
                    best.overall_score,
                    tuple(result.induction_heads),
                )
            )
    model.eval()
    return TrainingRun(seed, tuple(checkpoints), model)


def _repeat_loss(model: torch.nn.Module, tokens: torch.Tensor) -> float:
    """Loss on predicting the second copy of each block (all positions whose token is a repeat)."""
    with torch.no_grad():
        logits = model(tokens[:, :-1])
        lp = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None])[..., 0]
    repeated = torch.zeros_like(tokens[:, 1:], dtype=torch.bool)
    n = tokens.shape[1]
    for i in range(tokens.shape[0]):
        for p in range(n // 6, n // 2 + 1):
            if torch.equal(tokens[i, p : 2 * p], tokens[i, :p]):
                repeated[i, p : 2 * p - 1] = (
                    True  # predicting t[q+1] inside the repeat (its first token is unpredictable)
                )
                break
    return float(-lp[repeated].mean())
