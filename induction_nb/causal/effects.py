"""Every head's causal effect: exact ablation, or attribution patching (plain or AtP*) checked against it.

``head_effects(model)`` removes each head in turn and measures the loss increase on the repeated half of
repeated random sequences (``estimator="exact"``: heads packed several per forward, one per copy of the
batch). ``estimator="attribution"`` estimates all of them from one forward and one backward
(``engine.attribution``: Nanda 2023), and ``verify_top=k`` measures the estimate's top ``k`` heads exactly
beside it, so the user sees where the first-order estimate holds. ``method``: what replaces a head's output,
``"zero"``, ``"mean"`` (its mean over the clean batch) or ``"corrupt"`` (its output on the same batch with
the repeat broken).

``estimator="atp*"`` (Kramár et al. 2024, arXiv 2403.00745): the plain estimate plus, for the ``targets``
later heads with the largest bound on what any head can move through their pattern, the query/key route
recomputed exactly (``engine.atp_star``: the source head's change carried into the target's queries and
keys, its softmax recomputed, ``exact - linear`` added). ``plain`` (the first-order estimate) and
``qk_missed`` (the bound for the targets left out) come beside the corrected ``effects``. ``graddrop=True``
adds GradDrop (one backward per attention layer, the gradient through that layer's attention output
dropped: a magnitude that shows paths cancelling) and verifies in its order. ``bound=(repeats, size)``
bounds what the screen missed (``causal.screen_bound``). Where it still fails: effects that act through a
large downstream change the loss saturates on (SmolLM2's L16H0, ``bench/bench_atp_star.py``): the target's
output change is weighed by the clean gradient, which the final softmax makes small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._validate import check_choice, check_int
from ..engine.ablator import ABLATION_METHODS, Ablator, per_plan
from ..engine.atp_star import qk_maps
from ..engine.attribution import atp_star_effects, attribution_effects
from ..engine.knockout import Edges, check_edges
from ..engine.remote_sessions import ablation_chunks
from ..errors import InputError
from .probe import repeat_probe
from .screen_bound import subset_bound

__all__ = ["HeadEffects", "head_effects", "ESTIMATORS", "spearman", "top_recall"]

Estimator = Literal["exact", "attribution", "atp*"]
ESTIMATORS = ("exact", "attribution", "atp*")


@dataclass(frozen=True)
class HeadEffects:
    """``effects`` ``[layer, head]``: the loss increase (nats) when each head is removed (exact, or the
    attribution estimate), NaN where a layer has no attention. ``n_forward``: forward passes, a backward
    counted as two (its measured cost on a CPU is 1.5-2.5 forwards). ``exact`` ``[layer, head]``: the
    heads measured exactly (all with ``estimator="exact"``, the top ``verify_top`` of the estimate
    otherwise; NaN elsewhere). With ``estimator="atp*"``: ``plain`` ``[layer, head]`` the plain attribution
    estimate beside the corrected ``effects``, and ``qk_missed`` ``[layer, head]`` (nats) a bound on the *exact*
    query/key routes through the target heads left out (``engine.atp_star``; their first-order part stays in
    the plain estimate, so where those heads are not saturated the correction they miss can exceed it);
    ``unverified_bound`` ``[layer, head]`` (``bound=``) and ``graddrop`` ``[layer, head]`` (``graddrop=True``),
    NaN or ``None`` where not asked. Unpacks as
    ``effects, n_forward = head_effects(...)``.

    Returned by ``head_effects``. ``agreement()`` compares estimate and exact effect over the heads measured
    exactly; ``missed_bound()`` is the screen's bound on a missed effect.

    Attributes:
        effects: ``[layer, head]`` float, the loss increase (nats) on the repeated half when each head alone
            is removed: measured (``estimator="exact"``), the attribution estimate, or AtP*'s corrected
            estimate; NaN where a layer has no attention.
        n_forward: forward passes the call cost, a backward counted as two.
        estimator: ``"exact"``, ``"attribution"`` or ``"atp*"``.
        method: what replaced a head's output: ``"zero"``, ``"mean"``, ``"corrupt"`` or ``"knockout"``.
        exact: ``[layer, head]`` float, the exact effects (nats) of the heads measured exactly (every head
            with ``estimator="exact"``, the estimate's top ``verify_top`` otherwise); NaN elsewhere.
        verified: the heads measured exactly, ``(layer, head)`` pairs, in the order they were chosen (by the
            estimate's magnitude, or GradDrop's order with ``graddrop=True``).
        plain: ``[layer, head]`` float, the plain (first-order) attribution estimate beside AtP*'s corrected
            ``effects`` (nats); ``None`` unless ``estimator="atp*"``.
        qk_missed: ``[layer, head]`` float (nats), a bound on the exact query/key routes through the AtP*
            target heads left out; ``None`` unless ``estimator="atp*"``.
        unverified_bound: ``[layer, head]`` float (nats), the screen's bound on the effect of each head not
            measured exactly (``bound=(repeats, size)``; ``causal.screen_bound``), NaN for the verified
            heads; ``None`` without ``bound``.
        graddrop: ``[layer, head]`` float, AtP*'s GradDrop magnitudes (``graddrop=True``); ``None`` otherwise.
        bound_violations: verified heads whose subsets showed effects cancelling (``bound=``); where not
            empty, ``missed_bound()`` is not a bound.

    Examples:
        >>> from induction_nb import HandBuiltInduction, head_effects
        >>> result = head_effects(HandBuiltInduction(), sequence_length=32)
        >>> effects, n_forward = result  # unpacks as a pair
        >>> tuple(effects.shape), result.estimator, n_forward, len(result.verified)
        ((2, 4), 'exact', 1, 8)
        >>> result.agreement()["max_abs_gap"]  # exact against itself
        0.0
    """

    effects: torch.Tensor
    n_forward: int
    estimator: str
    method: str
    exact: torch.Tensor
    verified: tuple[tuple[int, int], ...] = ()
    plain: torch.Tensor | None = None
    qk_missed: torch.Tensor | None = None
    unverified_bound: torch.Tensor | None = None
    graddrop: torch.Tensor | None = None
    bound_violations: tuple[tuple[int, int], ...] = ()

    def missed_bound(self) -> float:
        """The screen's bound on a missed effect (nats): the largest ``unverified_bound`` over the heads not
        measured exactly (``head_effects(..., bound=(repeats, size))``; NaN without it). Holds where the
        effects of heads removed together do not cancel (``causal.screen_bound``); ``bound_violations`` names
        the verified heads whose subsets showed them cancelling, and where it is not empty the bound is not one."""
        if self.unverified_bound is None:
            return float("nan")
        known = self.unverified_bound[~torch.isnan(self.unverified_bound)]
        return float(known.max()) if len(known) else float("nan")

    def __iter__(self):
        return iter((self.effects, self.n_forward))

    def __getitem__(self, i: int) -> Any:
        return (self.effects, self.n_forward)[i]

    def __len__(self) -> int:
        return 2

    def agreement(self) -> dict[str, float]:
        """Over the heads measured exactly: Spearman correlation of estimate and exact effect, and the
        largest absolute gap (nats)."""
        known = ~torch.isnan(self.exact)
        est, ex = self.effects[known], self.exact[known]
        return {
            "heads": int(known.sum()),
            "spearman": spearman(est, ex),
            "max_abs_gap": float((est - ex).abs().max()) if len(est) else float("nan"),
        }


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors (ties broken by position); NaN below 3 values."""
    a, b = a.flatten().double(), b.flatten().double()
    if len(a) < 3:
        return float("nan")
    ra, rb = a.argsort(stable=True).argsort(stable=True).double(), b.argsort(stable=True).argsort(stable=True).double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def top_recall(estimate: torch.Tensor, exact: torch.Tensor, k: int = 10, within: int = 20) -> float:
    """Share of the ``k`` heads with the largest exact effect found among the estimate's top ``within``."""
    keep = ~torch.isnan(exact) & ~torch.isnan(estimate)
    idx = keep.flatten().nonzero().flatten()
    top_exact = set(idx[exact.flatten()[idx].argsort(descending=True, stable=True)[:k]].tolist())
    top_est = set(idx[estimate.flatten()[idx].argsort(descending=True, stable=True)[:within]].tolist())
    return len(top_exact & top_est) / max(1, len(top_exact))


def head_effects(
    model: Any,
    method: str = "zero",
    *,
    estimator: Estimator = "exact",
    verify_top: int = 0,
    targets: int = 36,
    bound: tuple[int, int] | None = None,
    graddrop: bool = False,
    edges: Edges | None = None,
    sequence_length: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    chunk: int | None = None,
    projections: Sequence[str] | None = None,
    progress: bool | None = None,
    remote: Any = False,
) -> HeadEffects:
    """Loss increase (nats) on the repeated half when each head alone is removed (module docstring).

    ``estimator="exact"`` removes every head in turn (heads packed several per forward, one per copy of the
    batch); ``"attribution"`` estimates all of them from one forward and one backward (attribution
    patching, Nanda 2023); ``"atp*"`` adds AtP*'s query/key correction (Kramár et al. 2024, arXiv
    2403.00745) for the ``targets`` later heads. ``verify_top=k`` measures the estimate's top ``k`` heads
    exactly beside it, so you see where the first-order estimate holds.

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); in eval mode.
        method: what replaces a head's output: ``"zero"`` (default), ``"mean"`` (its mean over the clean
            batch), ``"corrupt"`` (its output on the same batch with the repeat broken) or ``"knockout"``
            (each head's ``edges`` knocked out, exact only).
        estimator: ``"exact"`` (default), ``"attribution"`` or ``"atp*"``; the last two take gradients (call
            them outside ``torch.inference_mode()``).
        verify_top: the estimate's top ``k`` heads measured exactly (by magnitude, or in GradDrop's order with
            ``graddrop=True``), from 0 (default) to the number of heads; ignored by ``"exact"``, which
            measures all.
        targets: AtP*'s target heads: how many later heads get their query/key route recomputed exactly
            (default 36; at least 0).
        bound: ``(repeats, size)``, two positive ints: the screen's bound on what it missed
            (``causal.screen_bound``), from random subsets of the unverified heads; ``None`` (default) for none.
        graddrop: AtP*'s GradDrop (a backward per attention layer, the gradient through that layer's attention
            output dropped): a magnitude that shows paths cancelling, and the order ``verify_top`` follows.
            Only with ``estimator="atp*"``; default ``False``.
        edges: with ``method="knockout"`` only: the edges knocked out (``"induction"`` by default,
            ``"previous_token"`` or a ``mask_fn``; see ``ablate_heads``).
        sequence_length: tokens per random sequence (at least 4); ``None`` for the default (64, or what the
            model allows).
        batch_size: random sequences (default 4).
        seed: seed of the random sequences, of the corrupted run and of the screen's subsets.
        chunk: sequences per exact forward (heads packed ``chunk // batch_size`` per forward; default 32: on a
            CPU that saves only per-forward overhead, 192 s against 220 s on SmolLM2; it pays on a GPU and
            over NDIF).
        projections: one output-projection module path per attention layer, where it cannot be found
            (see ``ablate_heads``); ``None`` to find it.
        progress: show a progress bar over the exact forwards; ``None`` (default): with more than 4 of them,
            or remotely.
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF (exact forwards are bundled
            into few jobs and cached, so a rerun sends only the missing ones).

    Returns:
        HeadEffects: ``effects`` ``[layer, head]`` (nats), the forward passes used (unpacks as
            ``effects, n_forward``), the exact effects of the verified heads and, with AtP*, the plain estimate
            and the bound on what it left out.

    Raises:
        InputError: for an unknown ``estimator`` or ``method``, ``verify_top`` outside ``[0, heads]``,
            ``targets`` below 0, a ``bound`` that is not two positive ints, ``graddrop`` without AtP*,
            ``edges`` with a method other than ``"knockout"`` or knockout with an estimator, a gradient
            estimator under ``torch.inference_mode()``, a ``chunk`` below 1, a ``sequence_length`` the model
            cannot take, a model whose output projections cannot be found (``projections=``), or (AtP*) a
            model whose queries and keys its weights do not reproduce; also a model in training mode.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, head_effects
        >>> model = HandBuiltInduction()  # L0H0 previous-token head, L1H0 induction head
        >>> effects, n_forward = head_effects(model, sequence_length=32)
        >>> [(l, h) for l, h in effects.nonzero().tolist() if effects[l, h] > 0.5]  # nats
        [(0, 0), (1, 0)]

        Plain attribution misses L0H0, whose effect goes through L1H0's saturated softmax; AtP*
        recomputes that query/key route and finds it (``verify_top``: measured exactly beside):

        >>> star = head_effects(model, estimator="atp*", verify_top=2, sequence_length=32)
        >>> abs(float(star.plain[0, 0])) < 0.01, float(star.effects[0, 0]) > 0.5
        (True, True)
        >>> sorted(star.verified)
        [(0, 0), (1, 0)]
    """
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("ablation method", method, ABLATION_METHODS)
    check_edges(method, edges, estimator)
    ab = Ablator(model, projections, remote)
    _check_screen(ab, estimator, verify_top, targets, bound, graddrop)
    chunk = 32 if chunk is None else check_int("chunk", chunk, 1)
    tokens, positions, _ = repeat_probe(ab, sequence_length, batch_size, seed, tool="head_effects")
    replacement, n_forward = ab.replacement(tokens, int(positions[0]), method, seed)
    exact = torch.full((ab.n_layers, ab.n_heads), float("nan"))
    if estimator == "exact":
        n = _exact(ab, tokens, positions, method, replacement, ab.heads, exact, chunk, batch_size, progress, edges)
        return HeadEffects(exact.clone(), n_forward + n, estimator, method, exact, tuple(ab.heads))
    estimate, parts, n = _estimate(ab, estimator, tokens, positions, replacement, targets, graddrop)
    n_forward += n
    suspicion = parts["graddrop"] if graddrop else estimate.abs()  # AtP* verifies in GradDrop's order
    top = sorted(ab.heads, key=lambda lh: -float(suspicion[lh]))[:verify_top]
    if top:
        n_forward += _exact(ab, tokens, positions, method, replacement, top, exact, chunk, batch_size, progress)
    unmeasured, violations = None, ()
    if bound is not None:
        rest = [lh for lh in ab.heads if lh not in set(top)]
        per_forward = max(1, chunk // batch_size)
        checks = {lh: float(exact[lh]) for lh in top}
        args = (ab, tokens, positions, method, replacement, rest, *tuple(bound), seed, per_forward, checks)
        unmeasured, n, violations = subset_bound(*args)
        n_forward += n
    extras = (parts.get("plain"), parts.get("missed"), unmeasured, parts.get("graddrop"), violations)
    return HeadEffects(estimate, n_forward, estimator, method, exact, tuple(top), *extras)


def _estimate(ab: Ablator, estimator: str, tokens, positions, replacement, targets: int, graddrop: bool) -> tuple:
    """``(estimate [layer, head], parts {name: [layer, head]}, forward-equivalents)`` of attribution or AtP*."""
    if torch.is_inference_mode_enabled():  # its tensors cannot enter autograd: torch's own error comes too late
        raise InputError(
            f"estimator={estimator!r} takes gradients: call head_effects outside torch.inference_mode() "
            "(torch.no_grad() is fine)"
        )
    if estimator == "attribution":
        args = (ab.engine, tuple(ab.sites), ab.paths, ab.d_head, ab.n_heads, tokens, positions, replacement)
        return _by_layer(ab, attribution_effects(*args)), {}, 3  # a forward and its backward (two forwards)
    maps = qk_maps(ab.engine.model, ab.sites)
    found = atp_star_effects(
        ab.engine, tuple(ab.sites), ab.paths, tokens, positions, replacement, maps, targets, graddrop
    )
    parts = {k: _by_layer(ab, v) for k, v in found.items()}
    return parts["plain"] + parts["corrected"], parts, 3 + (2 * len(ab.sites) if graddrop else 0)


def _check_screen(ab: Ablator, estimator: str, verify_top: int, targets: int, bound: Any, graddrop: bool) -> None:
    """``InputError`` for a screen setting out of range (``head_effects``' docstring)."""
    check_int("verify_top", verify_top, 0, len(ab.heads))
    check_int("targets", targets, 0)
    if not isinstance(graddrop, bool):
        raise InputError(f"graddrop must be True or False, got {graddrop!r}")
    if graddrop and estimator != "atp*":
        raise InputError(f"graddrop=True is AtP*'s: use estimator='atp*' (got estimator={estimator!r})")
    if bound is not None:
        if isinstance(bound, (str, bytes)) or not (isinstance(bound, Sequence) and len(bound) == 2):
            raise InputError(f"bound must be (repeats, size), e.g. (2, 16); got {bound!r}")
        check_int("bound repeats", bound[0], 1)
        check_int("bound size", bound[1], 1)


def _by_layer(ab: Ablator, per_layer: dict[int, torch.Tensor]) -> torch.Tensor:
    """``{layer: [head]}`` as ``[layer, head]``, NaN where a layer has no attention."""
    out = torch.full((ab.n_layers, ab.n_heads), float("nan"))
    for layer, values in per_layer.items():
        out[layer] = values
    return out


def _exact(
    ab: Ablator,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    method: str,
    replacement: Any,
    heads: list,
    out: torch.Tensor,
    chunk: int,
    batch_size: int,
    progress: bool | None,
    edges: Edges | None = None,
) -> int:
    """Each of ``heads`` removed alone, ``chunk // batch_size`` per forward; writes ``out[l, h]``. Remotely
    (zero, mean, corrupt) the forwards are bundled into as few jobs as the job budget allows and each one's
    losses cached (``engine.remote_sessions.ablation_chunks``): a rerun sends only the missing ones."""
    per_forward = max(1, chunk // batch_size)
    groups = [heads[i : i + per_forward] for i in range(0, len(heads), per_forward)]
    if not groups:
        raise InputError("no head to ablate")
    bundled = ab.remote is not None and method in ("zero", "mean", "corrupt")
    # the clean copy rides in the first forward; remotely in every one, so that a resumed run never subtracts a
    # baseline from another server run (another GPU, another kernel) from its own losses
    plans = [([[]] if i == 0 or bundled else []) + [[h] for h in group] for i, group in enumerate(groups)]
    bar = None
    if progress or (progress is None and (len(groups) > 4 or bundled)):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(groups), desc="ablating heads", unit="forward")
    try:
        if bundled:
            settings = {"heads": [list(h) for h in heads], "per_forward": per_forward, "baseline": "every forward"}
            scores = ablation_chunks(
                ab, tokens, plans, method, replacement, positions, tool="head_effects", settings=settings, bar=bar
            )
        else:
            scores = []
            for p in plans:
                scores.append(ab.run(tokens, p, method, replacement, positions, edges=edges)[0])
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    baseline = None
    for group, p, (lp, _) in zip(groups, plans, scores):
        losses = -per_plan(lp, len(p))
        if len(p) > len(group):  # this forward's own clean copy
            baseline, losses = losses[0], losses[1:]
        for i, (l, h) in enumerate(group):
            out[l, h] = losses[i] - baseline
    return len(groups)
