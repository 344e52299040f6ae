"""Causal evidence: head ablation, the in-context-learning score, the previous-token -> induction circuit.

Heads are removed at the *input* of the attention output projection (``o_proj`` / ``c_proj`` /
``out_proj`` / ``dense``), sliced by head: that input is the concatenation of the heads' outputs, so
one slice is exactly one head (slicing the projection's *output* would not isolate a head).
``"zero"`` sets the slice to 0; ``"mean"`` to its mean over the batch and positions of a clean run.
Many ablations share one forward pass: the batch is repeated, and each copy ablates its own heads.
Losses are measured on the repeated half of repeated random sequences (the tokens an induction head
can predict) and on the shipped natural-text passages.
All of it runs locally or with ``remote=`` (NDIF): the losses are computed inside the trace, so only
per-sequence numbers come back. Limits: models whose output projection is not a module called on the concatenated head outputs
(``nn.MultiheadAttention``, fused kernels) need ``projections=`` naming such a module per layer.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch

from . import _model_info as info
from ._engine import read_layer
from ._engine import trace as _engine_trace
from .capture import check_tokens
from .detector import InductionHeadDetector
from ._validate import check_heads
from .errors import InputError
from .scores import match_mask, stripe_attention
from .sites import envoy_at, find_sites

__all__ = ["AblationResult", "ablate_heads", "head_effects", "icl_score", "CircuitResult", "find_circuit",
           "ABLATION_METHODS"]

AblationMethod = Literal["zero", "mean"]
ABLATION_METHODS = ("zero", "mean")
_PROJ_NAMES = ("o_proj", "c_proj", "out_proj", "dense", "wo", "o", "proj", "out")


@dataclass(frozen=True)
class AblationResult:
    """Loss with ``heads`` removed minus loss without, on the repeated half of repeated random
    sequences (``effect``) and on natural text (``natural_effect``, ``None`` without a tokenizer).
    ``per_head``: each head's own effect when ablated alone (``individually=True``). Accuracies: how
    often the top prediction on the repeated half is the next token, without and with the ablation."""

    heads: tuple[tuple[int, int], ...]
    method: str
    baseline_loss: float
    ablated_loss: float
    natural_baseline_loss: float | None
    natural_ablated_loss: float | None
    per_head: dict | None
    n_forward: int
    seed: int
    baseline_accuracy: float = float("nan")
    ablated_accuracy: float = float("nan")

    @property
    def effect(self) -> float:
        return self.ablated_loss - self.baseline_loss

    @property
    def natural_effect(self) -> float | None:
        if self.natural_ablated_loss is None:
            return None
        return self.natural_ablated_loss - self.natural_baseline_loss


class _Ablator:
    """Where each layer's heads can be cut: the output projection's path and the head width."""

    def __init__(self, model: Any, projections: Sequence[str] | None = None, remote: Any = False):
        from .models import load_model

        self.model = load_model(model)  # wraps a model you already have, loads a name or path
        self.module = info.torch_module(self.model)
        self.remote = None
        if remote:
            from .remote import resolve

            self.remote = resolve(self.model, remote)
        probe = torch.arange(2, 6)[None] % max(2, info.vocab_size(self.module) or 2)
        self.sites = find_sites(self.model, self.module, check_tokens(probe, self.module), remote=self.remote)
        self.layers = [s.layer for s in self.sites]  # the model's layer indices, in run order
        self.n_layers = max(max(self.layers) + 1, _config_layers(self.module))
        self.n_heads = _n_heads(self.module)
        if projections is not None:
            if len(projections) != len(self.sites):
                raise InputError(f"projections names {len(projections)} modules for {len(self.sites)} attention layers")
            paths = list(projections)
        else:
            paths = [self._projection(site.path) for site in self.sites]
        self.paths = dict(zip(self.layers, paths))
        width = _in_features(self.module.get_submodule(paths[0]))
        if width is None or width % self.n_heads:
            raise InputError(f"the output projection {paths[0]!r} takes {width} features, which do not split "
                             f"into {self.n_heads} heads; pass projections=[...] naming the right module per layer")
        self.d_head = width // self.n_heads
        uneven = {p: _in_features(self.module.get_submodule(p)) for p in paths}
        uneven = {p: w for p, w in uneven.items() if w != width}
        if uneven:
            raise InputError(f"the output projections differ in width ({paths[0]!r}: {width}, then {uneven}): the "
                             "layers have different head counts or sizes, which the ablation tools do not support")

    def _projection(self, site_path: str) -> str:
        attn = self.module.get_submodule(site_path)
        if isinstance(attn, torch.nn.MultiheadAttention):
            raise InputError(
                "nn.MultiheadAttention applies its out_proj functionally, so a head cannot be cut at its input; "
                "pass projections=[...] naming a module that receives the concatenated head outputs"
            )
        parent_path = site_path.rsplit(".", 1)[0] if "." in site_path else ""
        scopes = [(site_path, attn), (parent_path, self.module.get_submodule(parent_path))]
        for prefix, scope in scopes:
            for name in _PROJ_NAMES:
                for path in (name, f"output.{name}"):
                    try:
                        child = scope.get_submodule(path)
                    except AttributeError:
                        continue
                    if _in_features(child) is not None and child is not attn:
                        return f"{prefix}.{path}" if prefix else path
        raise InputError(
            f"cannot find the output projection of {type(attn).__name__} at {site_path!r} (tried {', '.join(_PROJ_NAMES)} "
            "there and beside it); pass projections=['...', ...] naming, per layer, the module whose input is the "
            "concatenated head outputs"
        )

    def check_heads(self, heads: Any, name: str = "heads") -> list[tuple[int, int]]:
        return check_heads(name, heads, {l: self.n_heads for l in self.layers})

    @property
    def heads(self) -> list[tuple[int, int]]:
        """Every head, in run order."""
        return [(l, h) for l in self.layers for h in range(self.n_heads)]

    def trace(self, tokens: torch.Tensor) -> Any:
        return _engine_trace(self.model, tokens, self.remote)

    def run(self, tokens: torch.Tensor, plans: list[list[tuple[int, int]]], method: str, means: dict | None,
            positions: torch.Tensor | None = None, read: dict[int, Any] | None = None) -> tuple[Any, list]:
        """One forward over ``len(plans)`` copies of ``tokens``: copy ``i`` has the heads of ``plans[i]``
        removed. ``positions``: queries whose next-token log-probability and top-1 hit are computed inside
        the trace (``([copies * batch, len(positions)], same)``; only these numbers leave the model, so a
        remote run ships no logits). ``read``: ``{layer: reducer}`` of attention patterns to reduce in the
        same trace. Returns the next-token numbers (``None`` without ``positions``) and the reductions."""
        import nnsight

        b = tokens.shape[0]
        model, paths, d = self.model, self.paths, self.d_head
        cuts: dict[int, list[tuple[slice, slice]]] = {}
        for i, plan in enumerate(plans):
            for l, h in plan:
                cuts.setdefault(l, []).append((slice(i * b, (i + 1) * b), slice(h * d, (h + 1) * d)))
        read = read or {}
        todo = set(cuts) | set(read)
        order = [s for s in self.sites if s.layer in todo]
        tolerance = 1e-3
        big = tokens.repeat(len(plans), 1)
        batch, n_tokens = big.shape
        scores = None  # only values saved inside the trace come back out of it
        try:
            with torch.no_grad(), self.trace(big) as tracer:
                reduced = nnsight.save([])
                for site in order:
                    if site.layer in read:
                        reduced.append(read_layer(model, tracer, site, tolerance, read[site.layer], n_tokens, batch))
                    if site.layer in cuts:
                        _cut(model, tracer, paths[site.layer], site.call, cuts[site.layer], method, means, site.layer)
                if positions is None:
                    tracer.stop()
                else:
                    scores = nnsight.save(_next_token(_logits(model.output), big, positions))
        except Exception as e:
            raise self._translate(e) from e
        return scores, list(reduced)

    def _translate(self, e: Exception) -> Exception:
        if self.remote is None:
            return e
        from .remote import translate_error

        return translate_error(e, self.remote)

    def means(self, tokens: torch.Tensor) -> dict[int, torch.Tensor]:
        """Mean of each layer's projection input over batch and positions (for mean ablation)."""
        import nnsight

        model, paths, sites = self.model, self.paths, self.sites
        try:
            with torch.no_grad(), self.trace(tokens) as tracer:
                out = nnsight.save({})
                for site in sites:
                    out[site.layer] = _projection_input(model, tracer, paths[site.layer], site.call).float().mean(
                        dim=(0, 1))
        except Exception as e:
            raise self._translate(e) from e
        return dict(out)


def _projection_input(model: Any, tracer: Any, path: str, call: int) -> Any:
    """Inside a trace: the input of the output projection at ``path`` on its ``call``-th application."""
    if call == 0:
        return envoy_at(model, path).input
    box = []
    for _ in tracer.iter[call]:
        box.append(envoy_at(model, path).input)
    return box[0]


def _cut(model: Any, tracer: Any, path: str, call: int, cuts: list, method: str, means: dict | None, layer: int):
    """Inside a trace: zero (or set to its mean) each ``(rows, cols)`` block of the projection's input."""
    if call:
        for _ in tracer.iter[call]:
            _cut(model, tracer, path, 0, cuts, method, means, layer)
        return
    z = envoy_at(model, path).input
    for rows, cols in cuts:
        z[rows, :, cols] = 0 if method == "zero" else means[layer][cols]


def _check_method(method: Any) -> None:
    if method not in ABLATION_METHODS:
        raise InputError(f"unknown ablation method {method!r}; use one of {', '.join(ABLATION_METHODS)}")


def _next_token(logits: torch.Tensor, tokens: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inside the trace: log-probability of the true next token and whether it is the top prediction, at
    query ``positions``: ``([batch, len(positions)], [batch, len(positions)])``."""
    picked = logits[:, positions.to(logits.device)].float()
    target = tokens.to(logits.device)[:, positions.to(logits.device) + 1]
    lp = torch.log_softmax(picked, dim=-1).gather(-1, target[..., None])[..., 0]
    return lp.cpu(), (picked.argmax(-1) == target).cpu()


def _logits(output: Any) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else (output[0] if isinstance(output, (tuple, list)) else output)


def _in_features(module: torch.nn.Module) -> int | None:
    if isinstance(module, torch.nn.Linear):
        return module.in_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "weight"):  # GPT-2's transposed linear
        return module.weight.shape[0]
    return None


def _config_layers(module: torch.nn.Module) -> int:
    config = getattr(module, "config", None)
    value = getattr(config, "num_hidden_layers", None) or getattr(getattr(config, "text_config", None),
                                                                  "num_hidden_layers", None)
    return value if isinstance(value, int) else 0


def _n_heads(module: torch.nn.Module) -> int:
    config = getattr(module, "config", None)
    for name in ("num_attention_heads", "n_head", "num_heads"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    for m in module.modules():
        for name in ("n_heads", "num_heads", "n_head"):
            value = getattr(m, name, None)
            if isinstance(value, int) and value > 0:
                return value
    raise InputError(f"cannot tell how many heads {type(module).__name__} has (no config, no n_heads attribute)")


def _per_plan(values: torch.Tensor, n_plans: int) -> torch.Tensor:
    """``[plans * batch, positions]`` -> mean per plan ``[plans]``."""
    return values.float().reshape(n_plans, -1).mean(-1)


def _probes(ab: _Ablator, sequence_length: int, batch_size: int, seed: int):
    det = InductionHeadDetector(ab.model, batch_size=batch_size, seed=seed)
    probe = det.generator().generate("repeated", sequence_length, batch_size)
    tokens = check_tokens(probe.tokens, ab.module)
    # queries predicting the repeat's 2nd..last token (its first token follows nothing that repeats)
    repeat_half = torch.arange(probe.offset + probe.period, tokens.shape[1] - 1)
    natural = None
    if getattr(ab.model, "tokenizer", None) is not None:
        text = det.generator().generate("natural", sequence_length, min(batch_size, 5), n_repeats=2)
        natural = (check_tokens(text.tokens, ab.module), torch.arange(text.offset + text.period, text.tokens.shape[1] - 1))
    return tokens, repeat_half, natural


def ablate_heads(model: Any, heads: Sequence[tuple[int, int]], method: AblationMethod = "zero", *,
                 individually: bool = False, sequence_length: int = 64, batch_size: int = 8, seed: int = 0,
                 projections: Sequence[str] | None = None, remote: Any = False) -> AblationResult:
    """Remove ``heads`` together (and, with ``individually``, each alone) and measure the loss increase on
    the repeated half of repeated random sequences and on natural text (first passage half)."""
    _check_method(method)
    ab = _Ablator(model, projections, remote)
    heads = ab.check_heads(heads)
    tokens, positions, natural = _probes(ab, sequence_length, batch_size, seed)
    means = ab.means(tokens) if method == "mean" else None
    plans = [[], heads] + ([[h] for h in heads] if individually else [])
    (lp, hit), _ = ab.run(tokens, plans, method, means, positions)
    losses, accuracy = -_per_plan(lp, len(plans)), _per_plan(hit, len(plans))
    nat_base = nat_abl = None
    n_forward = 1 + (method == "mean")
    if natural is not None:  # the repeated half of natural passages; mean ablation with their own means
        text, text_positions = natural
        text_means = ab.means(text) if method == "mean" else None
        (lp, _), _ = ab.run(text, [[], heads], method, text_means, text_positions)
        nat = -_per_plan(lp, 2)
        nat_base, nat_abl = float(nat[0]), float(nat[1])
        n_forward += 1 + (method == "mean")
    per_head = {h: float(losses[2 + i] - losses[0]) for i, h in enumerate(heads)} if individually else None
    return AblationResult(tuple(heads), method, float(losses[0]), float(losses[1]), nat_base, nat_abl, per_head,
                          n_forward, seed, float(accuracy[0]), float(accuracy[1]))


def head_effects(model: Any, method: AblationMethod = "zero", *, sequence_length: int = 64, batch_size: int = 4,
                 seed: int = 0, chunk: int = 32, projections: Sequence[str] | None = None,
                 progress: bool | None = None, remote: Any = False) -> tuple[torch.Tensor, int]:
    """Loss increase on the repeated half when each head alone is removed: ``([layer, head], forwards)``.
    Heads are packed ``chunk // batch_size`` per forward pass (each copy of the batch removes one; the
    clean copy rides in the first). Fewer, larger forwards pay off on a GPU; on a CPU the cost is
    about the same as one forward per head."""
    _check_method(method)
    ab = _Ablator(model, projections, remote)
    tokens, positions, _ = _probes(ab, sequence_length, batch_size, seed)
    means = ab.means(tokens) if method == "mean" else None
    heads = ab.heads
    per_forward = max(1, chunk // batch_size)
    groups = [heads[i : i + per_forward] for i in range(0, len(heads), per_forward)]
    if progress or (progress is None and len(groups) > 4):
        from tqdm.auto import tqdm

        groups = tqdm(groups, desc="ablating heads", unit="forward")
    effects = torch.full((ab.n_layers, ab.n_heads), float("nan"))  # NaN: a layer without attention
    n_forward = int(method == "mean")
    baseline = None
    for group in groups:
        plans = ([[]] if baseline is None else []) + [[h] for h in group]  # the clean copy rides in the first
        (lp, _), _ = ab.run(tokens, plans, method, means, positions)
        losses = -_per_plan(lp, len(plans))
        if baseline is None:
            baseline, losses = losses[0], losses[1:]
        for i, (l, h) in enumerate(group):
            effects[l, h] = losses[i] - baseline
        n_forward += 1
    return effects, n_forward


def icl_score(model: Any, *, ablate: Sequence[tuple[int, int]] = (), method: AblationMethod = "zero",
              sequence_length: int = 64, batch_size: int = 8, seed: int = 0,
              projections: Sequence[str] | None = None, remote: Any = False) -> dict[str, float | None]:
    """In-context-learning score (Olsson et al. 2022): mean loss at late tokens minus mean loss at early
    tokens (negative: the model uses its context). On repeated random tokens early = the first block,
    late = the repeat; on natural text early = tokens 1-10, late = the last 10 of each passage half.
    ``ablate``: heads removed while measuring."""
    _check_method(method)
    ab = _Ablator(model, projections, remote)
    plan = ab.check_heads(ablate) if ablate else []
    if sequence_length < 24:
        raise InputError(f"icl_score needs sequence_length >= 24 to have early and late windows, got {sequence_length}")
    tokens, late, natural = _probes(ab, sequence_length, batch_size, seed)
    means = ab.means(tokens) if method == "mean" and plan else None
    start = int(late[0]) - (tokens.shape[1] - 1 - int(late[0]))
    early = torch.arange(max(1, start), int(late[0]))
    out = {"repeated": _late_minus_early(ab, tokens, early, late, plan, method, means), "natural": None}
    if natural is not None:  # a passage's first 10 predictions against the last 10 of its first copy
        text, repeat = natural
        end = int(repeat[0]) - 1
        text_means = ab.means(text) if method == "mean" and plan else None
        out["natural"] = _late_minus_early(ab, text, torch.arange(1, 11), torch.arange(end - 10, end), plan,
                                           method, text_means)
    return out


def _late_minus_early(ab: _Ablator, tokens: torch.Tensor, early: torch.Tensor, late: torch.Tensor,
                      plan: list, method: str, means: dict | None) -> float:
    (lp, _), _ = ab.run(tokens, [plan], method, means, torch.cat([early, late]))
    return float(-lp[:, len(early):].mean() + lp[:, : len(early)].mean())


@dataclass(frozen=True)
class CircuitResult:
    """Prefix-matching drop of each induction head when one earlier head is removed."""

    edges: tuple[tuple[tuple[int, int], tuple[int, int], float], ...]  # (earlier head, induction head, drop)
    baseline: dict  # induction head -> prefix matching without ablation
    n_forward: int

    def top(self, n: int = 10) -> list[tuple[tuple[int, int], tuple[int, int], float]]:
        return sorted(self.edges, key=lambda e: -e[2])[:n]

    def feeding(self, induction_head: tuple[int, int], n: int = 3) -> list[tuple[tuple[int, int], float]]:
        return [(src, drop) for src, dst, drop in self.top(len(self.edges)) if dst == induction_head][:n]


def find_circuit(model: Any, induction_heads: Sequence[tuple[int, int]] | None = None, *,
                 candidates: Sequence[tuple[int, int]] | None = None, method: AblationMethod = "zero",
                 sequence_length: int = 64, batch_size: int = 4, seed: int = 0, chunk: int = 32,
                 projections: Sequence[str] | None = None, remote: Any = False) -> CircuitResult:
    """For each earlier-layer head (``candidates``, default all), remove it and measure how much each
    induction head's prefix-matching score drops (K-composition: previous-token heads feed induction
    heads). Default induction heads: the detector's."""
    _check_method(method)
    ab = _Ablator(model, projections, remote)
    if induction_heads is None:
        detector = InductionHeadDetector(ab.model, seed=seed, batch_size=batch_size, remote=remote)
        induction_heads = detector.detect(sequence_length=sequence_length).induction_heads
        if not induction_heads:
            raise InputError("the detector finds no induction head in this model; pass induction_heads=[...]")
    targets = ab.check_heads(induction_heads)
    top_layer = max(l for l, _ in targets)
    pool = ab.check_heads(candidates) if candidates is not None else [(l, h) for l, h in ab.heads if l < top_layer]
    pool = [(l, h) for l, h in pool if l < top_layer]
    tokens, _, _ = _probes(ab, sequence_length, batch_size, seed)
    means = ab.means(tokens) if method == "mean" else None
    match = match_mask(tokens)
    by_layer: dict[int, list[int]] = {}
    for l, h in targets:
        by_layer.setdefault(l, []).append(h)
    per_forward = max(1, chunk // batch_size - 1)
    drops: list[tuple[tuple[int, int], tuple[int, int], float]] = []
    baseline: dict = {}
    n_forward = int(method == "mean")
    for i in range(0, max(1, len(pool)), per_forward):
        group = pool[i : i + per_forward]
        plans = [[]] + [[h] for h in group]
        reducers = {l: _StripeReducer(match, hs, len(plans)) for l, hs in by_layer.items()}
        _, reduced = ab.run(tokens, plans, method, means, read=reducers)
        n_forward += 1
        scores = {(layer, h): value[:, j] for layer, value, _ in reduced for j, h in enumerate(by_layer[layer])}
        for target, per_copy in scores.items():
            baseline[target] = float(per_copy[0])
            for k, src in enumerate(group):
                if src[0] < target[0]:
                    drops.append((src, target, float(per_copy[0] - per_copy[k + 1])))
    return CircuitResult(tuple(drops), baseline, n_forward)


class _StripeReducer:
    """Inside the trace: prefix matching of some heads of a layer, per copy of the batch ``[copies, heads]``."""

    def __init__(self, match: torch.Tensor, heads: list[int], copies: int):
        self.match, self.heads, self.copies = match, heads, copies

    def __call__(self, layer: int, pattern: torch.Tensor) -> torch.Tensor:
        b = self.match.shape[0]
        match = self.match.to(pattern.device).repeat(self.copies, 1, 1)
        values = stripe_attention(pattern[:, self.heads], match)  # [copies * b, heads]
        return values.view(self.copies, b, len(self.heads)).mean(1).cpu()
