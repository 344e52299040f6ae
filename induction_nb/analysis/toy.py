"""A 2-layer attention-only transformer whose weights are set by hand (no training): ground truth for
tests and tutorials, since we know exactly which head does what.

Residual stream = [token one-hot | position one-hot | previous-token one-hot | output one-hot].
* Layer 0, head 0: previous-token head. Query = position p, key = position p' shifted by one, so
  position q attends to q-1; it copies that token's one-hot into the previous-token subspace.
* Layer 1, head 0: induction head by K-composition. Query = the current token t[q], key = the
  previous-token subspace at k (t[k-1], written by layer 0), so it attends to k with t[k-1] == t[q]
  and copies t[k] into the output subspace, which the unembedding reads: it predicts the next token.
* Layer 1, head 1: positional-only head: attends to q - P + 1 by position alone, whatever the tokens
  (high prefix-matching on repeated blocks of period P, no contrast). Writes nothing.
* Other heads: random small query/key weights (near-uniform attention) and zero output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validate import check_int, check_period

__all__ = ["HandBuiltInduction", "ToyAttention", "V", "T_MAX"]

V, T_MAX, BETA = 40, 48, 30.0  # vocabulary, positions, attention sharpness


class ToyAttention(torch.nn.Module):
    """Per-head query/key/value weights ``[head, d_model, d_head]``; the heads' outputs are concatenated
    ``[batch, seq, head * d_head]`` and mixed by ``o_proj`` (so heads can be ablated at its input).
    ``smeared_keys``: each key a learned per-head mix of its own and the previous position's (``smear``
    ``[head]``, through a sigmoid), which lets one layer form induction heads (Olsson et al. 2022)."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, smeared_keys: bool = False):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.W_Q = torch.nn.Parameter(torch.zeros(n_heads, d_model, d_head))
        self.W_K = torch.nn.Parameter(torch.zeros(n_heads, d_model, d_head))
        self.W_V = torch.nn.Parameter(torch.zeros(n_heads, d_model, d_head))
        self.o_proj = torch.nn.Linear(n_heads * d_head, d_model, bias=False)
        # smeared keys (Olsson et al. 2022, co-perturbation): key_j = s k_j + (1 - s) k_{j-1}, s = sigmoid(smear)
        # learned per head (an equal mix at initialisation); the first position keeps its own key
        self.smear = torch.nn.Parameter(torch.zeros(n_heads)) if smeared_keys else None

    def set_output(self, head: int, block: torch.Tensor) -> None:
        """Write head ``head``'s output map ``[d_head, d_model]`` into ``o_proj``."""
        with torch.no_grad():
            self.o_proj.weight[:, head * self.d_head : (head + 1) * self.d_head] = block.T

    def _project(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x [batch, seq, d_model]`` through every head's ``w [head, d_model, d_head]`` as one matrix
        product: ``[batch, head, seq, d_head]`` (an einsum here is several times slower on a CPU)."""
        h, d, e = w.shape
        return (x @ w.permute(1, 0, 2).reshape(d, h * e)).view(*x.shape[:2], h, e).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._project(x, w) for w in (self.W_Q, self.W_K, self.W_V))
        if self.smear is not None:
            s = torch.sigmoid(self.smear).view(1, -1, 1, 1)
            k = s * k + (1 - s) * torch.cat([k[:, :, :1], k[:, :, :-1]], dim=2)
        n = x.shape[1]
        # one SDPA call (unscaled scores, causal): the capture reads its query, key and value vectors
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
        return self.o_proj(z.transpose(1, 2).reshape(x.shape[0], n, -1))  # [batch, seq, head * d_head]


def _block(d_model: int, rows: slice, cols: slice) -> torch.Tensor:
    """A ``[T_MAX, d_model]`` head output map copying head dims ``rows`` onto residual dims ``cols``."""
    block = torch.zeros(T_MAX, d_model)
    block[rows, cols] = torch.eye(rows.stop - rows.start)
    return block


class HandBuiltInduction(torch.nn.Module):
    """A 2-layer attention-only transformer whose weights are set by hand (no training, no download): ground
    truth for tests, tutorials and the examples of these pages, since we know exactly which head does what.

    Residual stream = [token one-hot | position one-hot | previous-token one-hot | output one-hot]
    (``d_model = 3 x 40 + 48 = 168``); vocabulary 40 token ids, 48 positions (``block_size``), so probes of
    ``sequence_length=32`` or less fit without a warning. No BOS token and no tokenizer (pass token ids).

    - Layer 0, head 0 (L0H0): previous-token head. Position ``q`` attends to ``q-1`` and copies that token's
      one-hot into the previous-token subspace.
    - Layer 1, head 0 (L1H0): induction head by K-composition with L0H0. Query = the current token ``t[q]``,
      key = the previous-token subspace at ``k`` (``t[k-1]``), so it attends to ``k`` with
      ``t[k-1] == t[q]`` and copies ``t[k]`` into the output subspace, which the unembedding reads: it
      predicts the next token.
    - Layer 1, head 1 (L1H1): positional-only head: attends to ``q - period + 1`` by position alone, whatever
      the tokens (high prefix-matching on repeated blocks of period ``period``, no contrast). Writes nothing.
    - Other heads: random small query/key weights (near-uniform attention) and zero output.

    At the repeat's first token L1H0 splits its attention between positions 0 and 1 (position 0's
    previous-token slot holds its own token), so it copies from the second repeated token on (copying 14/15
    on a 32-token probe). Sharp attention (logit scale 30). The model is put in eval mode.
    ``forward(tokens [batch, seq])`` returns logits ``[batch, seq, 40]``.

    Args:
        period: the period ``P`` the positional head L1H1 is tuned to (default 16: a 32-token probe of a
            16-token block repeated twice); an integer in [1, 47]: its stripe ``k = q - P + 1`` needs a query
            ``q = P`` inside the 48 positions (the key then follows an earlier copy).
        n_heads: heads per layer (default 4); an integer >= 2 (L0H0, L1H0 and L1H1 are always built).
        seed: seeds the random query/key weights of the other heads (an integer >= 0; default 0).

    Raises:
        InputError: when ``period`` is not an integer in [1, 47], ``n_heads`` not one >= 2 or ``seed`` not
            one >= 0.

    Examples:
        >>> import torch
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads
        >>> model = HandBuiltInduction()
        >>> block = torch.arange(4, 20)  # 16 distinct token ids
        >>> tokens = torch.cat([block, block])[None]  # [1, 32]: the block, repeated
        >>> logits = model(tokens)
        >>> tuple(logits.shape)  # [batch, seq, vocabulary]
        (1, 32, 40)
        >>> bool((logits[0, 17:-1].argmax(-1) == tokens[0, 18:]).all())  # the repeat is predicted
        True
        >>> detect_induction_heads(model, sequence_length=32, n_bootstrap=100).induction_heads
        [(1, 0)]
    """

    def __init__(self, period: int = 16, n_heads: int = 4, seed: int = 0):
        check_period(period, 0, T_MAX)  # [1, 47]: 0 would wrap to the last position, 48 leave no repeat
        check_int("n_heads", n_heads, 2)  # L1H1, the positional head, is head 1
        check_int("seed", seed, 0)
        super().__init__()
        self.block_size = T_MAX
        tok, pos, prev, out = 0, V, V + T_MAX, 2 * V + T_MAX
        d = 3 * V + T_MAX
        self.embed = torch.nn.Embedding(V, d)
        self.pos_embed = torch.nn.Embedding(T_MAX, d)
        self.layers = torch.nn.ModuleList(ToyAttention(d, n_heads, T_MAX) for _ in range(2))
        self.unembed = torch.nn.Linear(d, V, bias=False)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()
            self.embed.weight[:, tok : tok + V] = torch.eye(V)
            self.pos_embed.weight[:, pos : pos + T_MAX] = torch.eye(T_MAX)
            l0, l1 = self.layers
            for p_ in range(T_MAX):  # previous-token head: q at p attends k at p-1
                l0.W_Q[0, pos + p_, p_] = BETA
                if p_ + 1 < T_MAX:
                    l0.W_K[0, pos + p_, p_ + 1] = 1.0
            l0.W_V[0, tok : tok + V, :V] = torch.eye(V)
            l0.set_output(0, _block(d, slice(0, V), slice(prev, prev + V)))
            l1.W_Q[0, tok : tok + V, :V] = BETA * torch.eye(V)  # induction head: t[q] against t[k-1]
            l1.W_K[0, prev : prev + V, :V] = torch.eye(V)
            l1.W_V[0, tok : tok + V, :V] = torch.eye(V)
            l1.set_output(0, _block(d, slice(0, V), slice(out, out + V)))
            for p_ in range(T_MAX):  # positional-only head: q at p attends k at p - period + 1
                l1.W_Q[1, pos + p_, p_] = BETA
                if p_ + period - 1 < T_MAX:
                    l1.W_K[1, pos + p_, p_ + period - 1] = 1.0
            for layer, heads in ((l0, range(1, n_heads)), (l1, range(2, n_heads))):
                for h in heads:
                    layer.W_Q[h] = 0.1 * torch.randn(d, T_MAX, generator=g)
                    layer.W_K[h] = 0.1 * torch.randn(d, T_MAX, generator=g)
            self.unembed.weight[:, out : out + V] = torch.eye(V)
        self.eval()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits.

        Args:
            tokens: token ids ``[batch, seq]`` in ``[0, 40)``, ``seq <= 48``.

        Returns:
            torch.Tensor: logits ``[batch, seq, 40]``.
        """
        x = self.embed(tokens) + self.pos_embed(torch.arange(tokens.shape[1], device=tokens.device))
        for layer in self.layers:
            x = x + layer(x)
        return self.unembed(x)
