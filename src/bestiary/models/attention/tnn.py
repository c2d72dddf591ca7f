"""TNN: the Toeplitz Neural Network, token mixing by a learned relative-position (Toeplitz) matrix.

Paper: "Toeplitz Neural Network for Sequence Modeling" (Zhen Qin et al.,
2023, arXiv:2305.04749).

Attention mixes tokens with a content-dependent matrix; TNN with a position-dependent one: per
channel c, y_i = sum_j t_{i-j, c} x_j, a Toeplitz matrix (constant along diagonals). Two ideas make
it work:
- the coefficients t_k are not free parameters (that would fix the length) but the output of a
  small MLP, the relative position encoder (RPE), read at each offset k: any length works;
- an exponential decay t_k = λ^k RPE(k) (λ = 0.99) biases the layer towards nearby tokens and
  lets it extrapolate to longer sequences than seen in training.
A Toeplitz matrix-vector product is a convolution, so it costs O(n log n) with FFTs instead of
O(n²) (`mode="fft"`; `mode="matmul"` builds the matrix, the definition; a test checks they agree).
The Gated Toeplitz Unit is the token mixer: W_o(silu(W_u x) * TNO(silu(W_v x))).

Simplified: the causal (language-model) form only; the RPE is Linear -> (ReLU -> Linear) x L ->
ReLU -> Linear, without the paper's normalisation layers; the channel mixer is SwiGLU. The cache
keeps every past input (like attention's KV cache): decoding a token costs O(n).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention_variants import KVExtrasCache
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.ssm_kernels import direct_causal_conv, fft_causal_conv
from bestiary.options import option
from bestiary.registry import register


class RelativePositionEncoder(nn.Module):
    """Offset k (a number) -> the Toeplitz coefficient of every channel at that offset (MLP)."""

    def __init__(self, channels: int, hidden: int, n_hidden_layers: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(1, hidden)]
        for _ in range(n_hidden_layers):
            layers += [nn.ReLU(), nn.Linear(hidden, hidden)]
        layers += [nn.ReLU(), nn.Linear(hidden, channels)]
        self.net = nn.Sequential(*layers)

    def forward(self, offsets: torch.Tensor) -> torch.Tensor:
        return self.net(offsets[:, None])  # (n, channels)


class GatedToeplitzUnit(nn.Module):
    """x (B, T, d_model) -> W_o(silu(W_u x) * T silu(W_v x)), T the causal Toeplitz operator."""

    def __init__(self, d_model: int, *, rpe_dim: int, rpe_layers: int, decay: float, mode: str = "fft"):
        super().__init__()
        if mode not in ("fft", "matmul"):
            raise ValueError(f"mode must be 'fft' or 'matmul', got {mode!r}")
        self.d_model, self.decay, self.mode = d_model, decay, mode
        self.u_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rpe = RelativePositionEncoder(d_model, rpe_dim, rpe_layers)

    def init_cache(self, batch: int, **_: object) -> KVExtrasCache:
        return KVExtrasCache(("inputs",))  # every past silu(W_v x): the Toeplitz product reads them all

    def coefficients(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """t_k = λ^k RPE(k) for k = 0 .. n-1: (n, d_model)."""
        offsets = torch.arange(n, device=like.device, dtype=like.dtype)
        return self.decay ** offsets[:, None] * self.rpe(offsets)

    def forward(self, x: torch.Tensor, *, cache: KVExtrasCache | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        T = x.shape[1]
        gate, inputs = F.silu(self.u_proj(x)), F.silu(self.v_proj(x))  # (B, T, D) each
        if cache is not None:
            inputs = cache.update_extra("inputs", inputs)  # (B, n, D): the cached ones first
        n = inputs.shape[1]
        t = self.coefficients(n, inputs)  # (n, D)
        if T == 1 and n > 1:  # one new token: y_n = sum_k t_k x_{n-1-k}, a dot product
            mixed = (t.flip(0) * inputs).sum(dim=1, keepdim=True)  # (B, 1, D)
        elif self.mode == "fft":
            mixed = fft_causal_conv(inputs, t.T)[:, n - T :]  # (B, T, D): the new positions
        else:
            mixed = direct_causal_conv(inputs, t.T)[:, n - T :]
        return self.out_proj(gate * mixed)


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_ff: int = 352
    max_seq_len: int = 1024
    rpe_dim: int = option(32, min=1)  # width of the relative position encoder
    rpe_layers: int = option(2, min=0)  # hidden layers of the encoder
    decay: float = option(0.99, gt=0.0, max=1.0)  # λ of t_k = λ^k RPE(k)
    mode: str = option("fft", choices=("fft", "matmul"))  # the Toeplitz product: FFT or explicit matrix
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "tnn",
    family="attention",
    config=Config,
    summary="Toeplitz Neural Network: per-channel causal Toeplitz mixing, coefficients from a decayed relative-position MLP.",
    paper="Toeplitz Neural Network for Sequence Modeling",
    year=2023,
    arxiv="2305.04749",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, d_ff=64, max_seq_len=64, rpe_dim=16, rpe_layers=1),
    outputs="logits (B, T, vocab_size)",
)
class TNN(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: GatedToeplitzUnit(
                c.d_model, rpe_dim=c.rpe_dim, rpe_layers=c.rpe_layers, decay=c.decay, mode=c.mode
            ),
        )
        super().__init__(config, blocks)
