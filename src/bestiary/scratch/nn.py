"""Neural-network layers and losses on the NumPy `Tensor` engine (no torch).

Everything here mirrors a `torch.nn` counterpart closely enough that weights copy 1:1 and the
`state_dict()` keys are the same (tested against torch with copied weights):

    Linear            torch.nn.Linear              weight (out, in), bias (out,)
    Embedding         torch.nn.Embedding           weight (num, dim)
    RNN / RNNCell     torch.nn.RNN / RNNCell       tanh; weight_ih_l0 (H, in), weight_hh_l0 (H, H), ...
    LSTM / LSTMCell   torch.nn.LSTM / LSTMCell     gates stacked in torch's order (i, f, g, o)
    MultiHeadAttention torch.nn.MultiheadAttention in_proj_weight (3E, E), out_proj.weight (E, E)

RNN and LSTM are batch-first: input (B, T, in) -> outputs (B, T, H) and the final state(s)
(num_layers, B, H), like torch with ``batch_first=True``.

Masks in attention follow `torch.nn.functional.scaled_dot_product_attention`: a boolean `mask`
is True where a query MAY attend to a key. (`MultiHeadAttention` additionally accepts
`key_padding_mask`, True at padding positions, exactly like torch's argument of that name.)

References: Elman, "Finding structure in time" (1990); Hochreiter & Schmidhuber, "Long short-term
memory" (1997); Vaswani et al., "Attention is all you need" (2017, arXiv:1706.03762).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bestiary.scratch.tensor import ArrayLike, Tensor, stack


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], bound: float) -> Tensor:
    """U(-bound, bound) parameter, torch's default rule for Linear / RNN / LSTM weights."""
    return Tensor(rng.uniform(-bound, bound, size=shape), requires_grad=True)


def _as_tensor(x: Tensor | ArrayLike) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _check_last_dim(name: str, x: Tensor, ndim: int, last: int, what: str) -> None:
    if x.ndim != ndim or x.shape[-1] != last:
        raise ValueError(f"{name} expects input of shape {what} with last dim {last}, got {x.shape}")


# -- Module base ---------------------------------------------------------------------------------
class Module:
    """Base class: finds parameters (trainable `Tensor`s) in attributes, lists and sub-modules.

    Parameter names follow torch's `state_dict` convention: ``"layers.0.weight"``.
    """

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for name, value in vars(self).items():
            yield from _named_params(value, prefix + name)

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Name -> copy of the parameter's array (same keys as the torch module)."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, ArrayLike]) -> None:
        """Copy arrays (NumPy, or anything with ``.numpy()``/``np.asarray``) into the parameters."""
        own = dict(self.named_parameters())
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state.items():
            arr = np.asarray(value.detach().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
            if arr.shape != own[name].shape:
                raise ValueError(f"load_state_dict: {name} has shape {own[name].shape}, got {arr.shape}")
            own[name].data = arr.copy()


def _named_params(value: Any, name: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        if value.requires_grad:
            yield name, value
    elif isinstance(value, Module):
        yield from value.named_parameters(name + ".")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _named_params(item, f"{name}.{i}")


# -- basic layers --------------------------------------------------------------------------------
class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) as in torch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, seed: Any = None):
        rng = _rng(seed)
        bound = 1.0 / math.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = _uniform(rng, (out_features, in_features), bound)
        self.bias = _uniform(rng, (out_features,), bound) if bias else None

    def forward(self, x: Tensor | ArrayLike) -> Tensor:
        x = _as_tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear expects input (..., {self.in_features}), got {x.shape}")
        y = x @ self.weight.T  # (..., out)
        return y + self.bias if self.bias is not None else y


_ACTS = {
    "relu": Tensor.relu,
    "tanh": Tensor.tanh,
    "sigmoid": Tensor.sigmoid,
    "gelu": Tensor.gelu,
}


class MLP(Module):
    """Linear layers with an activation between them (none after the last)."""

    def __init__(self, sizes: Sequence[int], activation: str = "relu", seed: Any = None):
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least [in, out] sizes, got {list(sizes)}")
        if activation not in _ACTS:
            raise ValueError(f"activation must be one of {sorted(_ACTS)}, got {activation!r}")
        rng = _rng(seed)
        self.layers = [Linear(a, b, seed=rng) for a, b in zip(sizes[:-1], sizes[1:])]
        self.activation = activation

    def forward(self, x: Tensor | ArrayLike) -> Tensor:
        h = _as_tensor(x)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = _ACTS[self.activation](h)
        return h


class Embedding(Module):
    """A lookup table: integer ids (any shape) -> rows of `weight` (num, dim), init N(0, 1) like torch."""

    def __init__(self, num_embeddings: int, embedding_dim: int, seed: Any = None):
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Tensor(_rng(seed).standard_normal((num_embeddings, embedding_dim)), requires_grad=True)

    def forward(self, ids: ArrayLike) -> Tensor:
        idx = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if not np.issubdtype(idx.dtype, np.integer):
            if not np.all(idx == np.round(idx)):
                raise TypeError(f"Embedding expects integer ids, got dtype {idx.dtype}")
            idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValueError(
                f"Embedding ids must be in [0, {self.num_embeddings}), got {idx.min()}..{idx.max()}"
            )
        # Gather rows; repeated ids get their gradients summed by Tensor.__getitem__.
        return self.weight[idx]  # (*ids.shape, dim)


# -- recurrent layers ----------------------------------------------------------------------------
def rnn_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """One Elman step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh). x (B, in), h (B, H) -> (B, H)."""
    return (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).tanh()


def lstm_cell(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """One LSTM step with torch's gate order (i, f, g, o) stacked in W_ih (4H, in), W_hh (4H, H).

    i (input gate), f (forget gate), o (output gate) squash to (0, 1) and scale information
    flows; g is the candidate content. The cell update c' = f*c + i*g is ADDITIVE, which is why
    gradients survive many more steps than through an RNN's repeated tanh(W h).
    """
    H = h.shape[-1]
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H)
    i = gates[:, 0 * H : 1 * H].sigmoid()
    f = gates[:, 1 * H : 2 * H].sigmoid()
    g = gates[:, 2 * H : 3 * H].tanh()
    o = gates[:, 3 * H : 4 * H].sigmoid()
    c_next = f * c + i * g  # (B, H)
    h_next = o * c_next.tanh()  # (B, H)
    return h_next, c_next


class RNNCell(Module):
    """A single tanh RNN step as a module (weight names as torch.nn.RNNCell)."""

    def __init__(self, input_size: int, hidden_size: int, seed: Any = None):
        rng = _rng(seed)
        k = 1.0 / math.sqrt(hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = _uniform(rng, (hidden_size, input_size), k)
        self.weight_hh = _uniform(rng, (hidden_size, hidden_size), k)
        self.bias_ih = _uniform(rng, (hidden_size,), k)
        self.bias_hh = _uniform(rng, (hidden_size,), k)

    def forward(self, x: Tensor | ArrayLike, h: Tensor | ArrayLike | None = None) -> Tensor:
        x = _as_tensor(x)
        _check_last_dim("RNNCell", x, 2, self.input_size, "(B, input_size)")
        h = Tensor(np.zeros((x.shape[0], self.hidden_size))) if h is None else _as_tensor(h)
        return rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTMCell(Module):
    """A single LSTM step as a module (weight names as torch.nn.LSTMCell). Returns (h, c)."""

    def __init__(self, input_size: int, hidden_size: int, seed: Any = None):
        rng = _rng(seed)
        k = 1.0 / math.sqrt(hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = _uniform(rng, (4 * hidden_size, input_size), k)
        self.weight_hh = _uniform(rng, (4 * hidden_size, hidden_size), k)
        self.bias_ih = _uniform(rng, (4 * hidden_size,), k)
        self.bias_hh = _uniform(rng, (4 * hidden_size,), k)

    def forward(
        self, x: Tensor | ArrayLike, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        x = _as_tensor(x)
        _check_last_dim("LSTMCell", x, 2, self.input_size, "(B, input_size)")
        if state is None:
            zeros = np.zeros((x.shape[0], self.hidden_size))
            state = (Tensor(zeros), Tensor(zeros))
        h, c = (_as_tensor(s) for s in state)
        return lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class _Recurrent(Module):
    """Shared machinery of RNN and LSTM: per-layer weights named like torch (weight_ih_l0, ...)."""

    gate_multiplier = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, seed: Any = None):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        rng = _rng(seed)
        k = 1.0 / math.sqrt(hidden_size)
        G = self.gate_multiplier * hidden_size
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size
            # setattr with torch's names so that state_dict() keys match torch.nn.RNN / LSTM.
            setattr(self, f"weight_ih_l{layer}", _uniform(rng, (G, n_in), k))
            setattr(self, f"weight_hh_l{layer}", _uniform(rng, (G, hidden_size), k))
            setattr(self, f"bias_ih_l{layer}", _uniform(rng, (G,), k))
            setattr(self, f"bias_hh_l{layer}", _uniform(rng, (G,), k))

    def _weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return tuple(getattr(self, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))  # type: ignore[return-value]

    def _check(self, x: Tensor) -> None:
        _check_last_dim(type(self).__name__, x, 3, self.input_size, "(B, T, input_size)")

    def _initial(self, state: Tensor | ArrayLike | None, batch: int) -> Tensor:
        expected = (self.num_layers, batch, self.hidden_size)
        if state is None:
            return Tensor(np.zeros(expected))
        state = _as_tensor(state)
        if state.shape != expected:
            raise ValueError(
                f"{type(self).__name__} initial state must have shape {expected}, got {state.shape}"
            )
        return state


class RNN(_Recurrent):
    """Multi-layer Elman RNN with tanh, batch-first.

    forward(x (B, T, input_size), h0 (num_layers, B, H) or None)
        -> (outputs (B, T, H) of the last layer, h_n (num_layers, B, H))
    Backpropagation through time is simply `backward()` through the unrolled loop.
    """

    def forward(self, x: Tensor | ArrayLike, h0: Tensor | ArrayLike | None = None) -> tuple[Tensor, Tensor]:
        x = _as_tensor(x)
        self._check(x)
        B, T, _ = x.shape
        h0 = self._initial(h0, B)
        inputs = [x[:, t] for t in range(T)]  # T tensors of (B, in)
        finals = []
        for layer in range(self.num_layers):
            w = self._weights(layer)
            h = h0[layer]  # (B, H)
            outputs = []
            for x_t in inputs:
                h = rnn_cell(x_t, h, *w)
                outputs.append(h)
            finals.append(h)
            inputs = outputs  # the next layer reads this layer's hidden states
        return stack(inputs, axis=1), stack(finals, axis=0)  # (B, T, H), (L, B, H)


class LSTM(_Recurrent):
    """Multi-layer LSTM, batch-first, torch's gate order (i, f, g, o) and weight layout.

    forward(x (B, T, input_size), (h0, c0) each (num_layers, B, H) or None)
        -> (outputs (B, T, H), (h_n, c_n) each (num_layers, B, H))
    """

    gate_multiplier = 4

    def forward(
        self, x: Tensor | ArrayLike, state: tuple[Tensor | ArrayLike, Tensor | ArrayLike] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x = _as_tensor(x)
        self._check(x)
        B, T, _ = x.shape
        h0, c0 = (None, None) if state is None else state
        h0, c0 = self._initial(h0, B), self._initial(c0, B)
        inputs = [x[:, t] for t in range(T)]  # T tensors of (B, in)
        final_h, final_c = [], []
        for layer in range(self.num_layers):
            w = self._weights(layer)
            h, c = h0[layer], c0[layer]  # (B, H) each
            outputs = []
            for x_t in inputs:
                h, c = lstm_cell(x_t, h, c, *w)
                outputs.append(h)
            final_h.append(h)
            final_c.append(c)
            inputs = outputs
        return stack(inputs, axis=1), (stack(final_h, axis=0), stack(final_c, axis=0))


# -- attention -----------------------------------------------------------------------------------
def causal_mask(t_q: int, t_k: int | None = None) -> np.ndarray:
    """Boolean (t_q, t_k) mask, True where query i may attend to key j (j <= i): lower triangle."""
    return np.tril(np.ones((t_q, t_q if t_k is None else t_k), dtype=bool))


def scaled_dot_product_attention(
    q: Tensor | ArrayLike,
    k: Tensor | ArrayLike,
    v: Tensor | ArrayLike,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d)) v over the last two axes.

    Args:
        q: (..., T_q, d); k: (..., T_k, d); v: (..., T_k, d_v).
        mask: boolean, broadcastable to (..., T_q, T_k); True = may attend (torch's convention
            for a boolean `attn_mask`). A float mask is ADDED to the scores instead.
        is_causal: also forbid attending to later positions (upper-left aligned, like torch).
        return_weights: also return the attention weights (..., T_q, T_k), e.g. for heatmaps.

    Returns:
        (..., T_q, d_v), and the weights if asked. A query row with no allowed key gives NaN
        (as torch does): there is nothing to average.
    """
    q, k, v = _as_tensor(q), _as_tensor(k), _as_tensor(v)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"attention expects (..., T, d) inputs, got q {q.shape}, k {k.shape}, v {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: q and k need the same last dim, got q {q.shape} and k {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: k and v need the same length, got k {k.shape} and v {v.shape}")
    d = q.shape[-1]
    scores = (q @ k.swapaxes(-1, -2)) / math.sqrt(d)  # (..., T_q, T_k)
    # Scaling by 1/sqrt(d) keeps the scores' variance ~1, so softmax does not saturate.
    if is_causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2]), -np.inf)
    if mask is not None:
        m = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        scores = scores.masked_fill(~m, -np.inf) if m.dtype == np.bool_ else scores + m
    weights = scores.softmax(axis=-1)  # each query's weights sum to 1 over the keys
    out = weights @ v  # (..., T_q, d_v)
    return (out, weights) if return_weights else out


class SingleHeadAttention(Module):
    """One attention head with its own query/key/value projections: (B, T, d_model) -> (B, T, head_dim)."""

    def __init__(self, d_model: int, head_dim: int | None = None, seed: Any = None):
        rng = _rng(seed)
        head_dim = head_dim or d_model
        self.d_model, self.head_dim = d_model, head_dim
        self.query = Linear(d_model, head_dim, seed=rng)
        self.key = Linear(d_model, head_dim, seed=rng)
        self.value = Linear(d_model, head_dim, seed=rng)

    def forward(
        self,
        x: Tensor | ArrayLike,
        mask: ArrayLike | None = None,
        is_causal: bool = False,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        x = _as_tensor(x)
        _check_last_dim("SingleHeadAttention", x, 3, self.d_model, "(B, T, d_model)")
        return scaled_dot_product_attention(
            self.query(x),
            self.key(x),
            self.value(x),
            mask=mask,
            is_causal=is_causal,
            return_weights=return_weights,
        )


class MultiHeadAttention(Module):
    """Multi-head attention with torch.nn.MultiheadAttention's parameters (batch_first=True).

    Parameters: in_proj_weight (3E, E) = [W_q; W_k; W_v], in_proj_bias (3E,), out_proj (Linear E->E).

    forward(query (B, T_q, E), key (B, T_k, E) = query, value = key, mask=None, key_padding_mask=None,
            is_causal=False, return_weights=False) -> (B, T_q, E) [, weights (B, n_heads, T_q, T_k)]
    `mask`: True = may attend (SDPA convention, NOT torch MHA's inverted attn_mask);
    `key_padding_mask` (B, T_k): True = padding, ignored (same as torch).
    """

    def __init__(self, embed_dim: int, num_heads: int, seed: Any = None):
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        rng = _rng(seed)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        # torch initialises in_proj with xavier_uniform and zero biases; any init works for copying.
        bound = math.sqrt(6.0 / (embed_dim + embed_dim))
        self.in_proj_weight = _uniform(rng, (3 * embed_dim, embed_dim), bound)
        self.in_proj_bias = Tensor(np.zeros(3 * embed_dim), requires_grad=True)
        self.out_proj = Linear(embed_dim, embed_dim, seed=rng)

    def _split_heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.reshape(B, T, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)  # (B, h, T, d)

    def forward(
        self,
        query: Tensor | ArrayLike,
        key: Tensor | ArrayLike | None = None,
        value: Tensor | ArrayLike | None = None,
        mask: ArrayLike | None = None,
        key_padding_mask: ArrayLike | None = None,
        is_causal: bool = False,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        query = _as_tensor(query)
        key = query if key is None else _as_tensor(key)
        value = key if value is None else _as_tensor(value)
        for name, t in (("query", query), ("key", key), ("value", value)):
            _check_last_dim(f"MultiHeadAttention {name}", t, 3, self.embed_dim, "(B, T, embed_dim)")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"MultiHeadAttention: query {query.shape}, key {key.shape}, value {value.shape} mismatch"
            )
        E = self.embed_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        q = query @ w[0:E].T + b[0:E]  # (B, T_q, E)
        k = key @ w[E : 2 * E].T + b[E : 2 * E]  # (B, T_k, E)
        v = value @ w[2 * E :].T + b[2 * E :]  # (B, T_k, E)
        allowed = None if mask is None else np.asarray(mask, dtype=bool)
        if key_padding_mask is not None:
            kpm = np.asarray(key_padding_mask, dtype=bool)
            if kpm.shape != (key.shape[0], key.shape[1]):
                raise ValueError(f"key_padding_mask must be (B, T_k) = {key.shape[:2]}, got {kpm.shape}")
            keep = ~kpm[:, None, None, :]  # (B, 1, 1, T_k): broadcast over heads and queries
            allowed = keep if allowed is None else allowed & keep
        out, weights = scaled_dot_product_attention(
            self._split_heads(q),
            self._split_heads(k),
            self._split_heads(v),
            mask=allowed,
            is_causal=is_causal,
            return_weights=True,
        )  # (B, h, T_q, d)
        B, _, T_q, _ = out.shape
        out = out.transpose(0, 2, 1, 3).reshape(B, T_q, E)  # (B, T_q, h*d): heads side by side
        out = self.out_proj(out)
        return (out, weights) if return_weights else out


# -- losses --------------------------------------------------------------------------------------
def mse_loss(pred: Tensor | ArrayLike, target: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error; shapes must match exactly (no silent broadcasting)."""
    pred, target = _as_tensor(pred), _as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: pred {pred.shape} and target {target.shape} must have the same shape")
    sq = (pred - target) ** 2
    if reduction == "mean":
        return sq.mean()
    if reduction == "sum":
        return sq.sum()
    if reduction == "none":
        return sq
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(
    logits: Tensor | ArrayLike, targets: ArrayLike, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    """Softmax cross-entropy from raw logits, computed stably via log_softmax.

    Args:
        logits: (N, C) or (..., C) — classes on the LAST axis (e.g. (B, T, vocab) for a language model).
        targets: integer class ids of shape logits.shape[:-1]; entries equal to `ignore_index`
            (padding) contribute nothing and are left out of the mean, as in torch (if EVERY
            target is ignored the mean is 0 here, NaN in torch).
    """
    logits = _as_tensor(logits)
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy targets must be integer class ids, got dtype {t.dtype}")
    if logits.ndim < 1 or t.shape != logits.shape[:-1]:
        raise ValueError(
            f"cross_entropy: logits {logits.shape} need targets of shape {logits.shape[:-1]}, got {t.shape}"
        )
    C = logits.shape[-1]
    valid = t != ignore_index
    if np.any((t[valid] < 0) | (t[valid] >= C)):
        raise ValueError(
            f"cross_entropy: targets must be in [0, {C}) (or ignore_index), got {t.min()}..{t.max()}"
        )
    logp = logits.reshape(-1, C).log_softmax(axis=-1)  # (N, C)
    flat_t = np.where(valid, t, 0).reshape(-1)
    picked = logp[np.arange(flat_t.size), flat_t]  # (N,) log-probability of the right class
    nll = -picked * valid.reshape(-1)  # padding positions contribute 0
    if reduction == "mean":
        return nll.sum() / max(int(valid.sum()), 1)
    if reduction == "sum":
        return nll.sum()
    if reduction == "none":
        return nll.reshape(t.shape)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


__all__ = [
    "LSTM",
    "MLP",
    "RNN",
    "Embedding",
    "LSTMCell",
    "Linear",
    "Module",
    "MultiHeadAttention",
    "RNNCell",
    "SingleHeadAttention",
    "causal_mask",
    "cross_entropy",
    "lstm_cell",
    "mse_loss",
    "rnn_cell",
    "scaled_dot_product_attention",
]
