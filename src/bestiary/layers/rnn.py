"""Recurrent token mixers: the LSTM, the GRU, and their minimal, parallel-trainable versions.

    LSTMMixer    "Long Short-Term Memory" (Hochreiter & Schmidhuber, 1997), with the forget gate of
                 Gers, Schmidhuber & Cummins (2000): a cell c carried by a gated sum, h = o * tanh(c)
    GRUMixer     "Learning Phrase Representations using RNN Encoder-Decoder" (Cho et al., 2014,
                 arXiv:1406.1078): one state, an update gate z interpolating old and new, a reset gate r
    MinGRUMixer  "Were RNNs All We Needed?" (Feng et al., 2024, arXiv:2410.01201): drop the
    MinLSTMMixer gates' dependence on h_{t-1}, and the recurrence becomes h_t = a_t h_{t-1} + b_t with
                 a_t, b_t computed from x_t alone: a linear scan, trainable in parallel

The LSTM and GRU follow torch.nn.LSTM / torch.nn.GRU exactly (gate order i, f, g, o and r, z, n; an
input bias and a recurrent bias), so weights copy across one to one. Their loop over time is the
definition; only the input half of the gates (W x_t for every t) is computed in one matmul up front.

All four are token mixers (`bestiary.layers.mixer`): (B, T, D) -> (B, T, D), with a
`RecurrentState` cache holding the last state, so a sequence read whole, in chunks, or token by
token gives the same outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.layers.kv_cache import Cache
from bestiary.layers.scan import scan_log_space, scan_sequential
from bestiary.layers.short_conv import CausalDepthwiseConv
from bestiary.layers.state import RecurrentState, zeros_or

MIN_RNN_MODES = ("parallel", "sequential")


def _torch_rnn_init(module: nn.Module, hidden: int) -> None:
    """torch.nn.LSTM/GRU's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


class LSTMMixer(nn.Module):
    """One LSTM layer over a sequence. x (B, T, in_dim) -> h (B, T, d_model).

    i, f, o = sigmoid(.), g = tanh(.)   of  W_ih x_t + b_ih + W_hh h_{t-1} + b_hh  (split in 4)
    c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)

    in_dim defaults to d_model (a mixer inside a residual block). Cache: ("h", "c")."""

    n_gates = 4

    def __init__(self, d_model: int, in_dim: int | None = None):
        super().__init__()
        self.d_model, self.in_dim = d_model, in_dim or d_model
        # two biases, as in torch.nn.LSTM (cuDNN's layout): redundant, but weights copy one to one
        self.input_proj = nn.Linear(self.in_dim, self.n_gates * d_model)  # W_ih, b_ih
        self.hidden_proj = nn.Linear(d_model, self.n_gates * d_model)  # W_hh, b_hh
        self.init_weights()

    def init_weights(self) -> None:
        _torch_rnn_init(self, self.d_model)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("h", "c"))

    def step(
        self, gates_x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from the input's share of the gates (B, 4H) and the state (B, H) each."""
        gates = gates_x + self.hidden_proj(h)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # (B, H) each
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.in_dim)
        if cache is not None:
            cache.check(self, x)
        B = x.shape[0]

        def zeros() -> torch.Tensor:
            return x.new_zeros(B, self.d_model)

        h, c = zeros_or(cache, "h", zeros), zeros_or(cache, "c", zeros)
        gates_x = self.input_proj(x)  # (B, T, 4H): the input half of every gate, in one matmul
        outputs = []
        for t in range(x.shape[1]):
            h, c = self.step(gates_x[:, t], h, c)
            outputs.append(h)
        if cache is not None:
            cache["h"], cache["c"] = h, c
            cache.length += x.shape[1]
        return torch.stack(outputs, dim=1)  # (B, T, H)


class GRUMixer(nn.Module):
    """One GRU layer over a sequence. x (B, T, in_dim) -> h (B, T, d_model).

    r, z = sigmoid(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z})
    n    = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))     (r gates the recurrent term only)
    h_t  = (1 - z) * n + z * h_{t-1}

    Cache: ("h",)."""

    def __init__(self, d_model: int, in_dim: int | None = None):
        super().__init__()
        self.d_model, self.in_dim = d_model, in_dim or d_model
        self.input_proj = nn.Linear(self.in_dim, 3 * d_model)  # W_ih, b_ih (r, z, n)
        self.hidden_proj = nn.Linear(d_model, 3 * d_model)  # W_hh, b_hh (b_hn must stay inside r * (.))
        self.init_weights()

    def init_weights(self) -> None:
        _torch_rnn_init(self, self.d_model)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("h",))

    def step(self, gates_x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step from the input's share of the gates (B, 3H) and the state (B, H)."""
        x_r, x_z, x_n = gates_x.chunk(3, dim=-1)  # (B, H) each
        h_r, h_z, h_n = self.hidden_proj(h).chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.in_dim)
        if cache is not None:
            cache.check(self, x)
        h = zeros_or(cache, "h", lambda: x.new_zeros(x.shape[0], self.d_model))
        gates_x = self.input_proj(x)  # (B, T, 3H)
        outputs = []
        for t in range(x.shape[1]):
            h = self.step(gates_x[:, t], h)
            outputs.append(h)
        if cache is not None:
            cache["h"] = h
            cache.length += x.shape[1]
        return torch.stack(outputs, dim=1)  # (B, T, H)


# ------------------------------------------------------------------------------ minGRU / minLSTM
def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive activation for the candidate state: x + 0.5 for x >= 0, sigmoid(x) below
    (continuous at 0, always > 0, so the state can live in log space)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log g(x), computed without ever forming a tiny g(x): log(x + 0.5) or -softplus(-x)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class _MinRNN(nn.Module):
    """What minGRU and minLSTM share: projections in and out, the optional causal conv, the cache,
    and the choice of form. Subclasses give the recurrence's coefficients: a_t, b_t (sequential) or
    their logs (parallel), from the projected input alone.

    expansion: state width / d_model. mode: "parallel" (log-space scan) or "sequential" (the loop).
    conv_kernel: width of a causal depthwise conv applied before the recurrence (0: none)."""

    n_parts: int  # how many d_inner-wide chunks the input projection makes

    def __init__(self, d_model: int, expansion: float = 1.0, mode: str = "parallel", conv_kernel: int = 0):
        super().__init__()
        if mode not in MIN_RNN_MODES:
            raise ValueError(f"mode must be one of {MIN_RNN_MODES}, got {mode!r}")
        self.d_model, self.mode = d_model, mode
        self.d_inner = int(d_model * expansion)
        self.conv = CausalDepthwiseConv(d_model, conv_kernel) if conv_kernel > 0 else None
        self.in_proj = nn.Linear(d_model, self.n_parts * self.d_inner, bias=False)
        # the paper projects back only when the state is wider than the model
        self.out_proj = (
            nn.Linear(self.d_inner, d_model, bias=False) if self.d_inner != d_model else nn.Identity()
        )

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("h", "conv") if self.conv is not None else ("h",))

    def coefficients(self, parts: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def log_coefficients(self, parts: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        if cache is not None:
            cache.check(self, x)
        if self.conv is not None:
            x, past = self.conv(x, None if cache is None else cache["conv"])
            if cache is not None:
                cache["conv"] = past
        parts = self.in_proj(x).chunk(self.n_parts, dim=-1)  # n_parts x (B, T, d_inner)
        h0 = None if cache is None else cache["h"]  # (B, d_inner), positive, or None (zeros)
        if self.mode == "sequential" or x.shape[1] == 1:  # single steps always use the recurrence
            a, b = self.coefficients(parts)
            h = scan_sequential(a, b, h0)  # (B, T, d_inner)
        else:
            log_a, log_b = self.log_coefficients(parts)
            h = scan_log_space(log_a, log_b, None if h0 is None else torch.log(h0)).exp()
        if cache is not None:
            cache["h"] = h[:, -1]
            cache.length += x.shape[1]
        return self.out_proj(h)  # (B, T, D)


class MinGRUMixer(_MinRNN):
    """minGRU: z_t = sigmoid(W_z x_t), h~_t = g(W_h x_t), h_t = (1 - z_t) h_{t-1} + z_t h~_t.

    Log space: log(1 - z) = -softplus(k), log z = -softplus(-k) for the gate's logit k.
    Parameters: in_proj = [W_h; W_z] (hidden first, then gate), out_proj when expansion != 1."""

    n_parts = 2

    def coefficients(self, parts: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, gate = parts
        z = torch.sigmoid(gate)
        return 1 - z, z * g(hidden)

    def log_coefficients(self, parts: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, gate = parts
        return -F.softplus(gate), -F.softplus(-gate) + log_g(hidden)


class MinLSTMMixer(_MinRNN):
    """minLSTM: f_t = sigmoid(W_f x_t), i_t = sigmoid(W_i x_t), h~_t = g(W_h x_t); the gates are
    normalised, f' = f / (f + i), i' = i / (f + i), so the state's scale does not depend on time;
    h_t = f'_t h_{t-1} + i'_t h~_t.

    Log space: with d = softplus(-k_f) - softplus(-k_i) = log i - log f,
    log f' = -softplus(d) and log i' = -softplus(-d). in_proj = [W_h; W_f; W_i]."""

    n_parts = 3

    def coefficients(self, parts: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, forget, inp = parts
        f, i = torch.sigmoid(forget), torch.sigmoid(inp)
        return f / (f + i), i / (f + i) * g(hidden)

    def log_coefficients(self, parts: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, forget, inp = parts
        diff = F.softplus(-forget) - F.softplus(-inp)  # (B, T, d_inner)
        return -F.softplus(diff), -F.softplus(-diff) + log_g(hidden)


# ------------------------------------------------------------------------------ stacked sequence models
class RecurrentStack(nn.Module):
    """Recurrent layers applied one after another: x (B, T, in_dim) -> (B, T, d_model).

    Dropout between layers (not after the last), as torch.nn.LSTM's `dropout`. `residual_from`:
    layers with index >= it add their input to their output (GNMT's residual stack, Wu et al., 2016,
    arXiv:1609.08144); None: a plain stack. The cache is a `Cache` of the layers' states."""

    def __init__(
        self, layers: list[nn.Module], in_dim: int, dropout: float = 0.0, residual_from: int | None = None
    ):
        super().__init__()
        self.in_dim = in_dim
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.residual_from = residual_from

    def init_cache(self, batch: int = 1) -> Cache:
        """One fixed-size state per layer, and the count of positions read."""
        return Cache([layer.init_cache(batch) for layer in self.layers], owner=self, batch=batch)

    def forward_features(self, x: torch.Tensor, *, cache: Cache | None = None) -> torch.Tensor:
        """A sequence model has no head: its features are its output (B, T, d_model)."""
        return self.forward(x, cache=cache)

    def forward(self, x: torch.Tensor, *, cache: Cache | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.in_dim)
        if cache is not None:
            cache.check(self, x.shape[0])
        if cache is not None and len(cache.layers) != len(self.layers):
            raise ValueError(
                f"this cache has {len(cache.layers)} layers, the model {len(self.layers)}: "
                "make one with model.init_cache(batch)"
            )
        for index, layer in enumerate(self.layers):
            if index > 0:
                x = self.dropout(x)
            out = layer(x) if cache is None else layer(x, cache=cache[index])  # (B, T, d_model)
            residual = self.residual_from is not None and index >= self.residual_from
            x = x + out if residual else out
        if cache is not None:
            cache.advance(x.shape[1])
        return x
