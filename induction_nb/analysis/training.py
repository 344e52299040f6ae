"""Watch induction heads form: a small, fast trainer for an attention-only transformer (2 layers by default)
on synthetic sequences where induction helps, scoring checkpoints with the detector and keeping each
checkpoint's weights (``TrainingRun.model_at``: ``causal.formation`` rescans them).

Each training sequence holds a random block of random length repeated once, then random filler: the
block's period varies, so a head that attends by position cannot predict the repeat and only an
induction circuit (a previous-token head in layer 0 feeding an induction head in layer 1) can. The
loss on the repeated half drops sharply when the circuit forms, at the same checkpoint where the
detector's best overall score jumps: the phase change of Olsson et al. (2022). CPU, about a minute.

``smeared_keys=True`` is Olsson et al.'s co-perturbation: each key a learned mix of its own and the previous
position's, so that a key carries its previous token without a previous-token head. One-layer models can then
form induction heads (they cannot without it), and two-layer models may form them earlier.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import torch

from .._validate import check_int, check_probability
from ..errors import InputError
from .detector import InductionHeadDetector
from .toy import ToyAttention

__all__ = ["AttentionOnly", "Checkpoint", "TrainingRun", "train_induction_model"]


class AttentionOnly(torch.nn.Module):
    """Token + position embeddings, ``n_layers`` attention layers with residuals, an unembedding."""

    def __init__(
        self,
        vocab: int = 64,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        max_len: int = 64,
        smeared_keys: bool = False,
    ):
        super().__init__()
        self.block_size = max_len
        self.embed = torch.nn.Embedding(vocab, d_model)
        self.pos_embed = torch.nn.Embedding(max_len, d_model)
        self.layers = torch.nn.ModuleList(
            ToyAttention(d_model, n_heads, d_model // n_heads, smeared_keys) for _ in range(n_layers)
        )
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
    loss: float  # training loss on all positions (step 0: on the held-out sequences, before any update)
    repeat_loss: float  # loss on the repeated half of held-out repeated sequences
    best_head: tuple[int, int]
    best_overall: float  # the detector's best overall score
    induction_heads: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class TrainingRun:
    """A training run: ``checkpoints`` (scored every ``every`` steps), the final ``model``, ``config`` (the
    ``AttentionOnly`` arguments and the training settings) and ``states``: each checkpoint's weights (CPU
    copies, in the checkpoints' order; a tiny model's are ~100 KB each)."""

    seed: int
    checkpoints: tuple[Checkpoint, ...]
    model: torch.nn.Module = field(compare=False, repr=False)
    config: dict = field(default_factory=dict, compare=False)
    states: tuple[dict, ...] = field(default=(), compare=False, repr=False)

    @property
    def phase_change_step(self) -> int | None:
        """First checkpoint at which the detector finds an induction head."""
        return next((c.step for c in self.checkpoints if c.induction_heads), None)

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(c.step for c in self.checkpoints)

    def model_at(self, step: int) -> torch.nn.Module:
        """A fresh ``AttentionOnly`` holding the weights of the checkpoint at ``step`` (eval mode). Raises
        ``InputError`` for a step that is not a checkpoint or a run that kept no weights."""
        if step not in self.steps or len(self.states) != len(self.checkpoints):
            have = "no weights were kept" if not self.states else f"checkpoints are at steps {list(self.steps)}"
            raise InputError(f"no checkpoint weights at step {step!r}: {have}")
        model = AttentionOnly(**self.config["model"])
        model.load_state_dict(self.states[self.steps.index(step)])
        return model.eval()


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
    n_layers: int = 2,
    n_heads: int = 4,
    d_model: int = 64,
    smeared_keys: bool = False,
    progress: bool = False,
) -> TrainingRun:
    """Train a small attention-only transformer on synthetic repeats and watch induction heads form.

    Train ``AttentionOnly`` (``n_layers`` attention layers of ``n_heads`` heads, width ``d_model``; with
    ``smeared_keys``, Olsson et al.'s smeared keys) from ``seed`` and score it at step 0 (before any update),
    every ``every`` steps and at the last with the detector, keeping each checkpoint's weights. About 30 ms
    a step on a CPU core for the defaults, plus a detection per checkpoint.

    Each training sequence holds a random block of random length repeated once, then random filler, so only
    an induction circuit (a previous-token head in layer 0 feeding an induction head in layer 1) can predict
    the repeat: the loss on the repeated half drops sharply when the circuit forms, at the checkpoint where
    the detector's best overall score jumps, the phase change of Olsson et al. (2022, "In-context Learning
    and Induction Heads", arXiv 2209.11895). The seed initialises this model only: the caller's global RNG
    state is restored. Limits: synthetic data and tiny models, not natural text.

    Args:
        seed: initialises the model, the training batches and (with ``seed + 10000``) the 256 held-out
            sequences on which the repeated-token loss is read; the detector's probes too (an integer >= 0;
            default 0).
        steps: optimiser steps (an integer >= 1; default 2000).
        batch_size: training sequences per step (an integer >= 1; default 64).
        seq_len: tokens per training sequence (an integer >= 12; default 32); the model gets ``seq_len + 1``
            positions and the detector scores it on ``seq_len`` tokens.
        vocab: vocabulary size (default 64); at least about ``seq_len * 10 / 9`` so that the detector's probes
            find ``seq_len`` distinct usable ids.
        lr: AdamW learning rate, a positive number (weight decay 0.01; default ``2e-3``).
        every: checkpoint interval in steps (an integer >= 1; default 100); the last step is always a
            checkpoint too.
        threshold: the detector's overall score (0-1) at or above which a head counts as an induction head
            at a checkpoint (default 0.4).
        n_layers: attention layers (an integer >= 1; default 2).
        n_heads: heads per layer (an integer >= 1; default 4).
        d_model: residual width (an integer >= 1 and a multiple of ``n_heads``: each head gets
            ``d_model / n_heads``; default 64).
        smeared_keys: ``True`` for Olsson et al.'s co-perturbation: each key a learned mix of its own and the
            previous position's, so that one-layer models can form induction heads (default ``False``).
        progress: show a tqdm progress bar over the steps (default ``False``).

    Returns:
        TrainingRun: ``checkpoints`` (step, training loss, repeated-token loss in nats, best head, the
            detector's best overall score and the detected induction heads at each checkpoint),
            ``phase_change_step`` (the first checkpoint with an induction head, or ``None``), the final
            ``model`` in eval mode, ``config`` (the ``AttentionOnly`` arguments and the training settings) and
            ``states`` (each checkpoint's weights, CPU copies; ``model_at(step)`` rebuilds one).

    Raises:
        InputError: for settings out of range: ``steps``, ``every``, ``batch_size``, ``n_layers``, ``n_heads``
            or ``d_model`` not an integer >= 1, ``seed`` not one >= 0, ``lr`` not a positive finite number,
            ``seq_len`` < 12, a ``d_model`` that is not a multiple of ``n_heads``, a
            ``smeared_keys`` that is not ``True``/``False``, a ``vocab`` too small for ``seq_len`` (the message
            names the smallest), or a ``threshold`` outside [0, 1].

    Examples:
        >>> from induction_nb import train_induction_model
        >>> run = train_induction_model(0, steps=20, every=10, batch_size=16)
        >>> run.steps
        (0, 10, 20)
        >>> len(run.states), run.config["model"]["n_layers"]
        (3, 2)
        >>> type(run.model_at(10)).__name__
        'AttentionOnly'

        The full run (2000 steps, about a minute on a CPU core) shows the phase change:

        >>> run = train_induction_model(0)  # doctest: +SKIP
        >>> print(run.phase_change_step)  # doctest: +SKIP
    """
    _check(dict(locals()))  # the arguments, by name: nothing else is bound yet
    arch = dict(vocab=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_len=seq_len + 1)
    arch["smeared_keys"] = smeared_keys
    with torch.random.fork_rng(devices=[]):  # the seed inits this model only; the user's RNG state is restored
        torch.manual_seed(seed)
        model = AttentionOnly(**arch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    held_out = _batch(torch.Generator().manual_seed(seed + 10_000), 256, seq_len, vocab)
    with torch.no_grad():  # step 0, before any update: the baseline the ICL gain and the rise are read against
        init = model(held_out[:, :-1]).reshape(-1, vocab)
        init = float(torch.nn.functional.cross_entropy(init, held_out[:, 1:].reshape(-1)))
    checkpoints = [_checkpoint(model, 0, init, held_out, threshold, seed)]
    states = [{k: v.detach().clone() for k, v in model.state_dict().items()}]
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
            checkpoints.append(_checkpoint(model, step, float(loss.detach()), held_out, threshold, seed))
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    model.eval()
    config = {"model": arch, "steps": steps, "batch_size": batch_size, "seq_len": seq_len, "lr": lr, "every": every}
    return TrainingRun(seed, tuple(checkpoints), model, config, tuple(states))


def _checkpoint(model: AttentionOnly, step: int, loss: float, held_out: torch.Tensor, threshold: float, seed: int):
    """Score the model (in eval mode) with the detector on its own sequence length."""
    model.eval()
    seq_len = model.block_size - 1
    result = InductionHeadDetector(model, threshold, batch_size=8, seed=seed, bos=False).detect(sequence_length=seq_len)
    best = result.get_top_heads(1)[0]
    heads = tuple(result.induction_heads)
    return Checkpoint(step, loss, _repeat_loss(model, held_out), (best.layer, best.head), best.overall_score, heads)


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


def _check(settings: dict[str, Any]) -> None:
    """Every setting of ``train_induction_model`` up front, before any model is built or step taken."""
    for name, low in (("seed", 0), ("steps", 1), ("every", 1), ("batch_size", 1), ("seq_len", 12), ("vocab", 2)):
        check_int(name, settings[name], low)
    for name in ("n_layers", "n_heads", "d_model"):
        check_int(name, settings[name], 1)
    lr = settings["lr"]
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise InputError(f"lr must be a positive finite number (the AdamW learning rate, e.g. 2e-3), got {lr!r}")
    check_probability("threshold", settings["threshold"])
    seq_len, vocab, d_model, n_heads = (settings[k] for k in ("seq_len", "vocab", "d_model", "n_heads"))
    smeared_keys = settings["smeared_keys"]
    if d_model % n_heads:
        raise InputError(f"d_model {d_model} is not a multiple of n_heads {n_heads}: each head gets d_model / n_heads")
    if not isinstance(smeared_keys, bool):
        raise InputError(f"smeared_keys must be True or False, got {smeared_keys!r}")
    if vocab - vocab // 10 < seq_len:  # the detector's probes and controls need seq_len distinct usable ids
        raise InputError(f"vocab {vocab} is too small for seq_len {seq_len}: use vocab >= {seq_len * 10 // 9 + 1}")
