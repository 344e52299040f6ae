"""The weights' evidence for induction heads: what the weights alone say, no forward pass (Elhage et al. 2021,
"A Mathematical Framework for Transformer Circuits"; Olsson et al. 2022, "In-context Learning and Induction
Heads", its fifth line of evidence).

For every head, from ``engine.head_weights`` (row-vector convention ``x @ W``, pre-attention norm weights
folded in; ``W_QK = W_Q W_K^T`` and ``W_OV = W_V W_O``, both ``[d_model, d_model]``):

- **OV copying**: the token-to-token OV circuit ``W_E[s] W_OV W_U[:, s]`` (``[n, n]``, on a seeded subset ``s``
  of ``n`` non-special tokens) has mostly positive eigenvalues in a copying head (a token raises its own
  logit). Score ``Re(sum lambda) / sum |lambda|`` in ``[-1, 1]`` (1: copies). Computed from the ``[d_head,
  d_head]`` product ``B A`` of the factors ``A = W_E[s] W_V``, ``B = W_O W_U[:, s]``: ``A B`` and ``B A`` have the
  same non-zero eigenvalues.
- **K-composition** ``[later head, earlier head]``: ``|W_OV^p W_QK^h^T|_F / (|W_OV^p|_F |W_QK^h|_F)`` (how much
  of what earlier head ``p`` writes, the later head's keys read); Q-composition (``W_OV^p W_QK^h``, its
  queries) and V-composition (``W_OV^p W_OV^h``, its values) alike. Computed through the heads' ``d_head``-wide
  factors and their Gram matrices, never a ``d_model x d_model`` matrix. A random baseline: the same score of
  seeded Gaussian factors of the same shapes (mean and standard deviation over ``n_baseline`` draws); read a
  score as x times it.
- **QK matching**: the positivity score of the QK circuit through the later head's strongest K-composing
  earlier head ``p``: ``W_E[s] W_QK^h (W_E[s] W_OV^p)^T`` (query token ``i`` against a key whose previous token
  was ``j``; an induction head prefers ``i == j``).

Position-free by construction: with rotary embeddings these products are the content-content bilinear form at
relative offset 0 (the rotation is the identity there); at other offsets rotary turns pairs of query/key
dimensions, which the scores ignore. Absolute position embeddings (GPT-2's ``wpe``) are not part of ``W_E``.
Biases, the norms' per-token scaling, ``q_norm``/``k_norm`` and the score scale are left out
(``WeightEvidence.notes`` names what this model has). Paths through MLPs and through several heads are not
followed. Heads that write nothing (``W_OV = 0``) get ``nan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from .._validate import check_int
from ..engine.head_weights import HeadWeights, read_head_weights
from ..errors import InputError

__all__ = ["WeightEvidence", "weight_evidence", "CircuitAgreement", "compare_with_circuit"]

Head = tuple[int, int]
_KINDS = ("k", "q", "v")


@dataclass(frozen=True, repr=False)
class WeightEvidence:
    """What the weights say about every head (see the module docstring). ``heads``: the row and column order
    of the composition matrices; ``ov_copying`` and ``qk_matching``: ``{head: score in [-1, 1]}``
    (``qk_matching`` for heads with an earlier layer, through ``qk_source[head]``, its top K-composing
    earlier head); ``k_composition``, ``q_composition``, ``v_composition``: ``[later head, earlier head]``
    float64 in ``[0, 1]``, ``nan`` where the earlier head is not in an earlier layer or writes/reads nothing
    (``q_`` and ``v_composition``: ``None`` where not asked for);
    ``baseline`` and ``baseline_std``: the random factors' composition score; ``tokens``: the token subset
    ``s`` ``[n]``; ``notes``: what was folded and left out for this model.

    ``top_copying(n)``, ``top_matching(n)`` and ``composing(head, n, kind)`` rank the heads,
    ``composition(kind)`` returns one matrix and ``attach(result)`` adds ``ov_copying`` and ``qk_matching`` to
    the heads of any scan of the same model. The scores follow Elhage et al. (2021, "A Mathematical Framework
    for Transformer Circuits") and Olsson et al. (2022, "In-context Learning and Induction Heads", arXiv
    2209.11895).

    Attributes:
        heads: every ``(layer, head)`` of the model, in layer then head order: the row and column order of
            the composition matrices.
        ov_copying: ``{head: score in [-1, 1]}``: the positivity ``Re(sum lambda) / sum |lambda|`` of the
            eigenvalues of the token-to-token OV circuit ``W_E[s] W_OV W_U[:, s]`` (1: the head copies its
            token; ``nan`` for a head that writes nothing).
        qk_matching: ``{head: score in [-1, 1]}`` for heads with an earlier layer: the positivity of the QK
            circuit ``W_E[s] W_QK^h (W_E[s] W_OV^p)^T`` through ``qk_source[head]`` (an induction head
            prefers a key whose previous token equals the query's token).
        qk_source: ``{head: (layer, head)}``: the earlier head ``p`` each ``qk_matching`` score is measured
            through, the head's top K-composing earlier head.
        k_composition: ``[later head, earlier head]`` float64 in ``[0, 1]``:
            ``|W_OV^p W_QK^h^T|_F / (|W_OV^p|_F |W_QK^h|_F)``, how much of what the earlier head writes the
            later head's keys read; ``nan`` where the earlier head is not in an earlier layer or writes or
            reads nothing.
        q_composition: the same for the later head's queries (``W_OV^p W_QK^h``); ``None`` where not asked
            for.
        v_composition: the same for the later head's values (``W_OV^p W_OV^h``); ``None`` where not asked for.
        baseline: the mean K-composition score of seeded Gaussian factors of the same shapes (read a score as
            x times it).
        baseline_std: the standard deviation of that random score over the draws (0 for one draw).
        tokens: the token subset ``s`` ``[n]`` (sorted ids) of the OV and QK circuits.
        notes: what was folded into the heads and what was left out for this model (biases, the norms'
            per-token scaling, rotary offsets other than 0, ...).

    Examples:
        >>> from induction_nb import HandBuiltInduction, weight_evidence
        >>> evidence = weight_evidence(HandBuiltInduction(), compositions="k")
        >>> len(evidence.heads), tuple(evidence.k_composition.shape), evidence.q_composition is None
        (8, (8, 8), True)
        >>> evidence.qk_source[(1, 0)]  # the induction head's keys read the previous-token head
        (0, 0)
        >>> evidence.baseline > 0, len(evidence.tokens)
        (True, 40)
    """

    heads: tuple[Head, ...]
    ov_copying: dict
    qk_matching: dict
    qk_source: dict
    k_composition: torch.Tensor
    q_composition: torch.Tensor | None
    v_composition: torch.Tensor | None
    baseline: float
    baseline_std: float
    tokens: torch.Tensor
    notes: tuple[str, ...]

    def __repr__(self) -> str:
        copying, matching = self.top_copying(1), self.top_matching(1)
        parts = [
            f"{len(self.heads)} heads",
            f"{len(self.tokens)} tokens",
            f"K-composition baseline {self.baseline:.3f}",
        ]
        if copying:
            parts.append(f"top OV copying L{copying[0][0][0]}H{copying[0][0][1]} {copying[0][1]:+.3f}")
        if matching:
            (l, h), value = matching[0]
            p = self.qk_source[(l, h)]
            parts.append(f"top QK matching L{l}H{h} {value:+.3f} via L{p[0]}H{p[1]}")
        return f"WeightEvidence({', '.join(parts)})"

    def composition(self, kind: str = "k") -> torch.Tensor:
        """The ``[later head, earlier head]`` matrix of ``kind``: ``"k"``, ``"q"`` or ``"v"``."""
        if kind not in _KINDS:
            raise InputError(f"composition kind must be one of {_KINDS}, got {kind!r}")
        matrix = getattr(self, f"{kind}_composition")
        if matrix is None:
            raise InputError(f"{kind.upper()}-composition was not computed: pass compositions=('k', 'q', 'v')")
        return matrix

    def attach(self, result: Any) -> Any:
        """``result`` (any scan of the same model) with each head's ``ov_copying`` and ``qk_matching`` added
        (``nan`` where undefined), so that the report's table, the explorer, figures, JSON and DataFrames
        show the weights' scores beside the behavioural ones. ``InputError`` for a result whose heads are
        not this model's."""
        missing = [s.name for s in result.head_scores if (s.layer, s.head) not in self.ov_copying]
        if missing:
            raise InputError(f"the weights' evidence has no heads {', '.join(missing[:4])}: a result of another model?")
        nan = float("nan")
        scores = tuple(
            s.with_values(
                ov_copying=self.ov_copying[(s.layer, s.head)], qk_matching=self.qk_matching.get((s.layer, s.head), nan)
            )
            for s in result.head_scores
        )
        return replace(result, head_scores=scores)

    def top_copying(self, n: int = 10) -> list[tuple[Head, float]]:
        """The ``n`` heads with the highest OV copying score (``nan`` left out)."""
        return _top(self.ov_copying, n)

    def top_matching(self, n: int = 10) -> list[tuple[Head, float]]:
        """The ``n`` heads with the highest QK matching score."""
        return _top(self.qk_matching, n)

    def composing(self, head: Head, n: int = 3, kind: str = "k") -> list[tuple[Head, float, float]]:
        """``head``'s ``n`` strongest composing earlier heads: ``(earlier head, score, score / baseline)``."""
        if tuple(head) not in self.heads:
            raise InputError(f"no head L{head[0]}H{head[1]} in this model's evidence")
        check_int("n", n, 0)
        row = self.composition(kind)[self.heads.index(tuple(head))]
        order = [int(i) for i in torch.argsort(torch.nan_to_num(row, nan=-1.0), descending=True, stable=True)]
        picked = [i for i in order if not bool(torch.isnan(row[i]))][:n]
        return [(self.heads[i], float(row[i]), float(row[i]) / self.baseline) for i in picked]


def _top(scores: dict, n: int) -> list[tuple[Head, float]]:
    check_int("n", n, 0)
    kept = [(h, v) for h, v in scores.items() if v == v]
    return sorted(kept, key=lambda e: -e[1])[:n]


def weight_evidence(
    model: Any,
    tokens: Sequence[int] | torch.Tensor | None = None,
    n_tokens: int = 1000,
    seed: int = 0,
    *,
    compositions: Sequence[str] = _KINDS,
    n_baseline: int = 32,
    fold_norms: bool = True,
    tokenizer: Any = None,
    device: Any = None,
) -> WeightEvidence:
    """The weights' evidence of every head of ``model`` (see the module docstring; no forward pass).

    Elhage et al. (2021, "A Mathematical Framework for Transformer Circuits"); Olsson et al. (2022,
    "In-context Learning and Induction Heads", arXiv 2209.11895, its fifth line of evidence). From the heads'
    weights (row-vector convention ``x @ W``, pre-attention norm weights folded in; ``W_QK = W_Q W_K^T`` and
    ``W_OV = W_V W_O``, both ``[d_model, d_model]``): **OV copying**, the positivity
    ``Re(sum lambda) / sum |lambda|`` in ``[-1, 1]`` of the eigenvalues of the token-to-token OV circuit
    ``W_E[s] W_OV W_U[:, s]`` (``[n, n]``; 1: copies); **K-composition** ``[later head, earlier head]``,
    ``|W_OV^p W_QK^h^T|_F / (|W_OV^p|_F |W_QK^h|_F)``, with Q- and V-composition alike, against a random
    baseline of seeded Gaussian factors of the same shapes; **QK matching**, the positivity of the QK circuit
    through the later head's strongest K-composing earlier head. Everything is computed through the heads'
    ``d_head``-wide factors, never a ``d_model x d_model`` matrix. Position-free by construction: with rotary
    embeddings these are the content-content bilinear forms at relative offset 0, and other offsets are
    ignored; absolute position embeddings are not part of ``W_E``. Biases, the norms' per-token scaling,
    ``q_norm``/``k_norm`` and the score scale are left out (``WeightEvidence.notes``); paths through MLPs and
    through several heads are not followed; heads that write nothing (``W_OV = 0``) get ``nan``.

    Args:
        model: the model: a torch module, a Hugging Face or nnsight model, a compiled or PEFT-adapted one, or
            a name or path for ``load_model``.
        tokens: the token ids ``s`` of the OV and QK circuits (integer ids in the vocabulary, at least
            ``min(16, d_head)`` distinct, repeats counted once; default: ``n_tokens`` drawn with ``seed`` from
            the vocabulary, special tokens left out; all of them where fewer).
        n_tokens: how many token ids to draw when ``tokens`` is not given (an integer >= 1; default 1000).
        seed: seeds the token draw and the composition baseline (an integer >= 0; default 0).
        compositions: which of ``"k"``, ``"q"``, ``"v"`` to compute (a string or a sequence of them; K always:
            QK matching needs it; each costs ``d_head^2 d_model`` per pair of heads; default all three).
        n_baseline: random draws of the composition baseline (an integer >= 1, seeded by ``seed``; default 32).
        fold_norms: fold the norms' weights into the heads (``engine.head_weights``; default ``True``).
        tokenizer: the tokenizer whose special token ids are left out of the drawn subset (default: the
            model's, if it has one).
        device: where the float64 products run (default: the weights' device).

    Returns:
        WeightEvidence: per head, ``ov_copying`` and ``qk_matching`` (``{head: score in [-1, 1]}``, with
            ``qk_source``), the ``[later head, earlier head]`` composition matrices (float64 in ``[0, 1]``,
            ``nan`` off the earlier layers; Q and V ``None`` where not asked for), the random ``baseline`` and
            ``baseline_std``, the token subset ``tokens`` ``[n]`` and ``notes``.

    Raises:
        InputError: for a model whose attention layout has no reader (or no attention module at all), a
            norm that is not an elementwise RMSNorm/LayerNorm (pass ``fold_norms=False``), a token embedding
            that cannot be found, bad ``tokens`` (not integer ids in the vocabulary, or too few distinct
            ones), an ``n_tokens`` or ``n_baseline`` below 1, a ``seed`` that is not an integer >= 0, or an
            unknown composition.
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.

    Examples:
        >>> from induction_nb import HandBuiltInduction, weight_evidence
        >>> evidence = weight_evidence(HandBuiltInduction())  # L0H0 previous-token head, L1H0 induction head
        >>> [(head, round(score, 2)) for head, score in evidence.top_copying(3)]  # heads that write nothing: nan
        [((1, 0), 1.0)]
        >>> [(head, round(score, 2)) for head, score in evidence.top_matching(1)], evidence.qk_source[(1, 0)]
        ([((1, 0), 1.0)], (0, 0))
        >>> (top, score, ratio), *_ = evidence.composing((1, 0))
        >>> top, ratio > 1.5  # K-composition with the previous-token head, well above the random baseline
        ((0, 0), True)
    """
    check_int("n_tokens", n_tokens, minimum=1)
    check_int("n_baseline", n_baseline, minimum=1)
    check_int("seed", seed, minimum=0)
    kinds = ["k"] + [k for k in _KINDS if k != "k" and k in _check_kinds(compositions)]
    weights = read_head_weights(model, fold_norms=fold_norms, tokenizer=tokenizer)
    device = torch.device(device) if device is not None else weights.W_E.device
    subset = _token_subset(weights, tokens, n_tokens, seed)
    E = weights.W_E[subset.to(weights.W_E.device)].to(device, torch.float64)  # [n, d_model]
    U = weights.W_U[:, subset.to(weights.W_U.device)].to(device, torch.float64)  # [d_model, n]
    factors = _factors(weights, device, E)
    matrices = _compositions(weights, factors, kinds)
    matching, source = _qk_matching(weights, factors, matrices["k"], E)
    baseline = _baseline(weights, n_baseline, seed)
    return WeightEvidence(
        heads=tuple(weights.heads),
        ov_copying=_ov_copying(weights, factors, E, U),
        qk_matching=matching,
        qk_source=source,
        k_composition=matrices["k"],
        q_composition=matrices.get("q"),
        v_composition=matrices.get("v"),
        baseline=float(baseline.mean()),
        baseline_std=float(baseline.std()) if n_baseline > 1 else 0.0,
        tokens=subset,
        notes=weights.notes,
    )


def _check_kinds(kinds: Any) -> list[str]:
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in kinds if k not in _KINDS]
    if unknown:
        raise InputError(f"compositions must name some of {_KINDS}, got {unknown}")
    return kinds


def _ov_copying(weights: HeadWeights, factors: list[dict], E: torch.Tensor, U: torch.Tensor) -> dict:
    """``{head: OV copying}``: the eigenvalues of ``B A = W_O (W_U[:, s] W_E[s]) W_V`` ``[e, e]``, by whichever
    order of products is cheaper (``n`` tokens against ``d_model``)."""
    ue = U @ E if E.shape[0] >= E.shape[1] else None  # [d_model, d_model]
    ov = {}
    for layer, f in zip(weights.layers, factors):
        m = f["O"] @ ue @ f["V"] if ue is not None else torch.bmm(f["O"] @ U, f["EV"])
        ov.update({(layer.layer, h): score for h, score in enumerate(_positivity(m))})
    return ov


def _token_subset(weights: HeadWeights, tokens: Any, n: int, seed: int) -> torch.Tensor:
    vocab = weights.W_E.shape[0]
    if tokens is not None:
        ids = torch.as_tensor(tokens).flatten()
        if ids.numel() == 0 or ids.is_floating_point() or int(ids.min()) < 0 or int(ids.max()) >= vocab:
            raise InputError(f"tokens must be integer ids in [0, {vocab}), got {tokens!r:.80}")
        ids = ids.long().cpu().unique()  # a repeated id would count one token's eigen-direction twice
        need = min(16, max(layer.W_V.shape[-1] for layer in weights.layers))
        if len(ids) < need:  # a few tokens' n x n circuit says little (one token: the sign of a scalar)
            raise InputError(f"tokens holds {len(ids)} distinct ids; the OV and QK scores need at least {need}")
        return ids
    keep = torch.ones(vocab, dtype=torch.bool)
    special = [i for i in weights.special_ids if i < vocab]
    keep[special] = False
    pool = keep.nonzero().flatten()
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    return pool[order[:n]].sort().values


def _factors(weights: HeadWeights, device: Any, E: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Each layer's heads in float64: ``Q, K, V [head, d_model, d_head]``, ``O [head, d_head, d_model]``, their
    ``[head, d_head, d_head]`` Gram matrices ``G*`` (``X^T X``; ``GO = O O^T``), from which every Frobenius norm
    of a product is read (``_norm``), and ``EV = E V [head, n, d_head]`` (the tokens through the values)."""
    factors = [{n: getattr(layer, f"W_{n}").to(device, torch.float64) for n in "QKVO"} for layer in weights.layers]
    for f in factors:
        for n in "QKV":
            f[f"G{n}"] = f[n].transpose(1, 2) @ f[n]
        f["GO"] = f["O"] @ f["O"].transpose(1, 2)
        f["EV"] = E @ f["V"]
    return factors


def _norm(gx: torch.Tensor, m: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """``|X M Y^T|_F`` from ``gx = X^T X``, ``M`` and ``gy = Y^T Y`` (batched, broadcast): ``sum(M * (gx M gy))``
    is its square, so no ``d_model``-sized product is formed and nothing is decomposed. Flat ``bmm`` calls: a
    broadcasting ``@`` of many small matrices is far slower on a busy CPU."""
    shape = torch.broadcast_shapes(gx.shape[:-2], m.shape[:-2], gy.shape[:-2])
    rows, cols = m.shape[-2:]
    mm = m.expand(*shape, rows, cols).reshape(-1, rows, cols)
    left, right = (
        gx.expand(*shape, rows, rows).reshape(-1, rows, rows),
        gy.expand(*shape, cols, cols).reshape(-1, cols, cols),
    )
    return (mm * torch.bmm(torch.bmm(left, mm), right)).sum((-2, -1)).clamp_min(0).sqrt().view(shape)


def _positivity(m: torch.Tensor) -> list[float]:
    """``Re(sum lambda) / sum |lambda|`` of each ``[e, e]`` matrix in ``m [head, e, e]``; ``nan`` where the
    eigenvalues vanish (below ``1e-9`` of the matrix's Frobenius norm: a head that writes nothing)."""
    eig = torch.linalg.eigvals(m)
    scores = []
    for total, size, value in zip(eig.abs().sum(-1), torch.linalg.matrix_norm(m), eig.sum(-1).real):
        scores.append(float(value / total) if float(size) > 0 and float(total) > 1e-9 * float(size) else float("nan"))
    return scores


_READ = {"k": ("K", "GQ"), "q": ("Q", "GK"), "v": ("V", "GO")}  # kind -> (X read through O_p, Gram of Y)


def _compositions(weights: HeadWeights, factors: list[dict], kinds: list[str]) -> dict[str, torch.Tensor]:
    """``{kind: [later head, earlier head]}`` composition scores (``nan`` off the earlier layers):
    ``|V_p (O_p X_h) Y_h^T|_F / (|V_p O_p|_F |X_h Y_h^T|_F)`` with ``X, Y = K, Q`` (K), ``Q, K`` (Q) or ``V, O^T``
    (V): per pair of layers one matrix product ``O_p X_h`` for every kind and head pair at once."""
    sizes = [layer.n_heads for layer in weights.layers]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    out = {k: torch.full((sum(sizes), sum(sizes)), float("nan"), dtype=torch.float64) for k in kinds}
    writes = [_norm(f["GV"], _eye(f["GV"]), f["GO"]) for f in factors]  # |W_OV| of each head
    for i, (later, fl) in enumerate(zip(weights.layers, factors)):
        qk, ov = _norm(fl["GK"], _eye(fl["GK"]), fl["GQ"]), _norm(fl["GV"], _eye(fl["GV"]), fl["GO"])
        reads = torch.cat([ov if k == "v" else qk for k in kinds])  # [kinds * head]
        x = torch.cat([fl[_READ[k][0]].permute(1, 0, 2).flatten(1) for k in kinds], 1)  # [d_model, kinds*head*e]
        gy = torch.cat([fl[_READ[k][1]] for k in kinds])  # [kinds * head, e, e]
        for j, (earlier, fe) in enumerate(zip(weights.layers, factors)):
            if earlier.layer >= later.layer:
                continue
            o = fe["O"]
            inner = (o.flatten(0, 1) @ x).view(len(o), o.shape[1], len(gy), -1).transpose(1, 2)  # [p, kinds*h, e, e]
            score = (_norm(fe["GV"][:, None], inner, gy[None]) / (writes[j][:, None] * reads[None])).T.cpu()
            rows, cols = slice(starts[i], starts[i] + sizes[i]), slice(starts[j], starts[j] + sizes[j])
            for kind, block in zip(kinds, score.split(sizes[i])):
                out[kind][rows, cols] = block
    return out


def _eye(like: torch.Tensor) -> torch.Tensor:
    return torch.eye(like.shape[-1], dtype=like.dtype, device=like.device)


def _baseline(weights: HeadWeights, n: int, seed: int) -> torch.Tensor:
    """K-composition scores ``[n]`` of Gaussian ``V, Q, K [d_model, d_head]`` and ``O [d_head, d_model]`` (the
    model's most common ``d_head``; the same distribution for Q- and V-composition), computed like the heads'."""
    widths = [layer.W_Q.shape[2] for layer in weights.layers for _ in range(layer.n_heads)]
    e, d = max(set(widths), key=widths.count), weights.d_model
    g = torch.Generator().manual_seed(seed)
    V, K, Q, OT = torch.randn(4, n, d, e, generator=g, dtype=torch.float64)  # OT: O transposed
    GV, GK, GQ, GO = (x.transpose(1, 2) @ x for x in (V, K, Q, OT))
    eye = torch.eye(e, dtype=torch.float64)
    return _norm(GV, OT.transpose(1, 2) @ K, GQ) / (_norm(GV, eye, GO) * _norm(GQ, eye, GK))


def _qk_matching(weights: HeadWeights, factors: list[dict], k_comp: torch.Tensor, E: torch.Tensor) -> tuple[dict, dict]:
    """``({head: QK matching}, {head: the earlier head it is measured through})``: the eigenvalues of
    ``(E V_p O_p K_h)^T (E Q_h)`` ``[e, e]``, batched per layer (module docstring)."""
    heads = list(weights.heads)
    index = {layer.layer: (i, f) for i, (layer, f) in enumerate(zip(weights.layers, factors))}
    matching, source = {}, {}
    for layer, fl in zip(weights.layers, factors):
        rows = [heads.index((layer.layer, h)) for h in range(layer.n_heads)]
        found = [(h, heads[int(torch.argmax(torch.nan_to_num(k_comp[r], nan=-1.0)))]) for h, r in enumerate(rows)]
        found = [(h, p) for (h, p), r in zip(found, rows) if not bool(torch.isnan(k_comp[r]).all())]
        if not found:
            continue
        hs = [h for h, _ in found]
        ev = torch.stack([index[p[0]][1]["EV"][p[1]] for _, p in found])  # [h, n, e]: the tokens through V_p
        ok = torch.stack([index[p[0]][1]["O"][p[1]] for _, p in found]) @ fl["K"][hs]  # [h, e, e]: O_p K_h
        m = (ev @ ok).transpose(1, 2) @ (E @ fl["Q"][hs])
        for (h, p), score in zip(found, _positivity(m)):
            matching[(layer.layer, h)], source[(layer.layer, h)] = score, p
    return matching, source


@dataclass(frozen=True)
class CircuitAgreement:
    """The weights' evidence against the behavioural circuit (``causal.find_circuit``), per induction head:
    ``rows``: ``(induction head, top K-composing earlier head, top feeding head by ablation, whether they are
    the same head, the K-composition score of the weights' top, that score / baseline)``, both tops taken
    among the earlier heads the circuit ablated; ``agreement``: the share of induction heads whose tops agree;
    ``top_k_overlap``: the mean share of the ``k`` strongest earlier heads that both rankings hold.
    ``str()`` prints the per-head table.

    Attributes:
        rows: one tuple per induction head of the circuit, in head order: ``(induction head, top K-composing
            earlier head by the weights, top feeding head by ablation, whether they are the same head, the
            K-composition score of the weights' top, that score / the random baseline)``; the weights' top is
            ``None`` (its score ``nan``) where no ablated earlier head has a K-composition score.
        agreement: the share of induction heads (in [0, 1]) whose two tops are the same head.
        top_k_overlap: the mean over induction heads of the share (in [0, 1]) of the ``k`` strongest earlier
            heads by ablation that are also among the ``k`` strongest by K-composition.
        k: the depth of the top-k overlap.

    Examples:
        >>> from induction_nb import HandBuiltInduction, compare_with_circuit, find_circuit, weight_evidence
        >>> model = HandBuiltInduction()
        >>> circuit = find_circuit(model, [(1, 0)], sequence_length=32)
        >>> agreement = compare_with_circuit(weight_evidence(model, compositions="k"), circuit)
        >>> agreement.rows[0][:4], agreement.agreement, agreement.k
        (((1, 0), (0, 0), (0, 0), True), 1.0, 3)
    """

    rows: tuple[tuple[Head, Head | None, Head | None, bool, float, float], ...]
    agreement: float
    top_k_overlap: float
    k: int

    def __str__(self) -> str:
        name = lambda h: "-" if h is None else f"L{h[0]}H{h[1]}"  # noqa: E731
        lines = [
            f"weights vs ablation circuit: top feeding head agrees for {self.agreement:.0%} of the induction heads; "
            f"top-{self.k} overlap {self.top_k_overlap:.2f}",
            "  induction head  weights' top K-composer (x baseline)  ablation's top feeder  same",
        ]
        for head, weights, circuit, same, _, ratio in self.rows:
            lines.append(f"  {name(head):>14}  {name(weights):>10} ({ratio:.1f}x){'':>19}{name(circuit):>10}  {same}")
        return "\n".join(lines)


def compare_with_circuit(evidence: WeightEvidence, circuit: Any, k: int = 3) -> CircuitAgreement:
    """Whether the weights' top K-composing earlier head of each induction head is its top feeder by ablation.

    Whether each induction head of ``circuit`` (a ``causal.CircuitResult``: ``edges``, ``baseline``) has as
    its top K-composing earlier head (``evidence``) the head whose ablation lowers its prefix matching most;
    ``k``: the depth of the top-k overlap. Both rankings are taken among the earlier heads the circuit
    ablated; heads whose K-composition is ``nan`` (they write nothing) are left out of the weights' ranking.
    K-composition as in Elhage et al. (2021, "A Mathematical Framework for Transformer Circuits").

    Args:
        evidence: the ``WeightEvidence`` of the model (``weight_evidence``); its ``k_composition`` is read.
        circuit: the behavioural circuit of the same model (``find_circuit``'s ``CircuitResult``): its
            ``edges`` ``(earlier head, induction head, drop of prefix matching when the earlier head is
            removed)``.
        k: the depth of the top-k overlap (an integer >= 1; default 3).

    Returns:
        CircuitAgreement: per induction head, the weights' top K-composer and the ablation's top feeder
            (``rows``), the share of induction heads where they agree (``agreement``) and the mean top-``k``
            overlap of the two rankings (``top_k_overlap``).

    Raises:
        InputError: where the circuit has no edge, its heads are not in ``evidence`` (a circuit of another
            model), or ``k`` is not an integer >= 1.

    Examples:
        >>> from induction_nb import HandBuiltInduction, compare_with_circuit, find_circuit, weight_evidence
        >>> model = HandBuiltInduction()
        >>> evidence = weight_evidence(model, compositions="k")
        >>> circuit = find_circuit(model, [(1, 0)], sequence_length=32)  # ablate each layer-0 head
        >>> agreement = compare_with_circuit(evidence, circuit)
        >>> agreement.rows[0][:4]  # L1H0: weights' top K-composer, ablation's top feeder, same?
        ((1, 0), (0, 0), (0, 0), True)
        >>> agreement.agreement
        1.0
    """
    check_int("k", k, minimum=1)
    targets = sorted({dst for _, dst, _ in getattr(circuit, "edges", ())})
    if not targets:
        raise InputError("the circuit has no edges (no earlier head was ablated): nothing to compare")
    index = {head: i for i, head in enumerate(evidence.heads)}
    rows, overlaps = [], []
    for target in targets:
        drops = {src: drop for src, dst, drop in circuit.edges if dst == target}
        if target not in index or any(src not in index for src in drops):
            raise InputError(f"the circuit names heads that the evidence does not have (L{target[0]}H{target[1]}...)")
        row = evidence.k_composition[index[target]]
        weights = {src: float(row[index[src]]) for src in drops if not bool(torch.isnan(row[index[src]]))}
        by_weights = sorted(weights, key=lambda s: -weights[s])
        by_drop = sorted(drops, key=lambda s: -drops[s])
        top_w, top_c = (by_weights or [None])[0], (by_drop or [None])[0]
        score = weights.get(top_w, float("nan"))
        rows.append((target, top_w, top_c, top_w is not None and top_w == top_c, score, score / evidence.baseline))
        overlaps.append(len(set(by_weights[:k]) & set(by_drop[:k])) / min(k, len(by_drop)))
    agree = sum(r[3] for r in rows) / len(rows)
    return CircuitAgreement(tuple(rows), agree, sum(overlaps) / len(overlaps), k)
