"""Conformer: a Transformer block with a convolution module inside, sandwiched by two half-step FFNs.

Paper: "Conformer: Convolution-augmented Transformer for Speech Recognition" (Gulati, Qin, Chiu
et al., Google, 2020, arXiv:2005.08100).

Self-attention captures global context, convolution captures local patterns (in speech: the
formants of neighbouring frames); the Conformer block does both, in a "macaron" sandwich:

    x = x + ½ FFN(x)                   a half-step feed-forward first ...
    x = x + MHSA(x)                    relative-position self-attention (Transformer-XL's)
    x = x + Conv(x)                    LN -> pointwise (2C) -> GLU -> depthwise (k) -> BatchNorm -> swish -> pointwise
    x = x + ½ FFN(x)                   ... and a half-step after
    y = LayerNorm(x)

Relative positions (Transformer-XL, Dai et al. 2019): the score of query i and key j is
((q_i + u) · k_j + (q_i + v) · W_pos PE(i - j)) / √d with PE a sinusoid of the signed distance and
u, v learned per head: content and distance terms, no absolute positions at all. Computed here
by projecting the 2T - 1 distances once and gathering (q_i + v) · P(i - j) for every pair (the
"skew" trick of the reference implementations does the same with a pad and a reshape).

Bidirectional sequence model: (B, T, in_dim) -> Linear -> n_layers Conformer blocks -> (B, T, d_model).
Simplified: the paper's convolutional subsampling front end (4x in time) and its LSTM decoder
are left out. Oracle: transformers' Wav2Vec2ConformerEncoderLayer with position_embeddings_type
"relative", weights copied (tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import make_mlp
from bestiary.layers.checks import check_shape
from bestiary.layers.mlp import make_activation
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 80  # log-mel filterbank features
    d_model: int = 144  # Conformer (S)
    n_layers: int = 16
    n_heads: int = 4
    d_ff: int = 576  # 4 d_model
    kernel_size: int = 31  # depthwise convolution (odd: same padding)
    activation: str = "silu"  # swish, in the FFNs and the convolution module
    norm_eps: float = 1e-5
    dropout: float = option(0.0, min=0.0, lt=1.0)


def relative_sinusoids(
    t: int, dim: int, dtype: torch.dtype, device: torch.device | None = None
) -> torch.Tensor:
    """PE(r) for the signed distances r = t-1, ..., 0, ..., -(t-1): (2t - 1, dim), sin/cos interleaved."""
    distances = torch.arange(t - 1, -t, -1, device=device, dtype=torch.float64)[:, None]  # (2t - 1, 1)
    frequencies = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float64) * -(math.log(10000.0) / dim)
    )
    table = torch.zeros(2 * t - 1, dim, dtype=torch.float64, device=device)
    table[:, 0::2] = torch.sin(distances * frequencies)
    table[:, 1::2] = torch.cos(distances * frequencies)
    return table.to(dtype)


class RelPositionSelfAttention(nn.Module):
    """Bidirectional multi-head self-attention with Transformer-XL relative positions."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.pos_proj = nn.Linear(d_model, d_model, bias=False)  # W_pos
        self.pos_bias_u = nn.Parameter(torch.zeros(n_heads, self.head_dim))  # content bias
        self.pos_bias_v = nn.Parameter(torch.zeros(n_heads, self.head_dim))  # distance bias
        self.out_proj = nn.Linear(d_model, d_model)

    def scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> attention scores (B, H, T, T) and values (B, H, T, Dh)."""
        B, T, _ = x.shape
        heads = (B, T, self.n_heads, self.head_dim)
        q = self.q_proj(x).view(heads).transpose(1, 2)  # (B, H, T, Dh)
        k = self.k_proj(x).view(heads).transpose(1, 2)
        v = self.v_proj(x).view(heads).transpose(1, 2)
        pe = self.pos_proj(relative_sinusoids(T, self.d_model, x.dtype, x.device))  # (2T - 1, D)
        pe = pe.view(2 * T - 1, self.n_heads, self.head_dim).transpose(0, 1)  # (H, 2T - 1, Dh)
        content = (q + self.pos_bias_u[:, None, :]) @ k.transpose(-2, -1)  # (B, H, T, T)
        by_distance = (q + self.pos_bias_v[:, None, :]) @ pe.transpose(-2, -1)  # (B, H, T, 2T - 1)
        # row r of pe is the distance T - 1 - r: pair (i, j) reads row T - 1 - (i - j)
        positions = torch.arange(T, device=x.device)
        rows = (T - 1 - (positions[:, None] - positions[None, :])).expand(B, self.n_heads, T, T)
        return (content + by_distance.gather(-1, rows)) / math.sqrt(self.head_dim), v

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D); mask (B, T) bool, True for real frames (padding keys are ignored)."""
        B, T, _ = x.shape
        scores, v = self.scores(x)  # (B, H, T, T), (B, H, T, Dh)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        out = scores.softmax(dim=-1) @ v  # (B, H, T, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_model))


class ConvolutionModule(nn.Module):
    """LN -> pointwise conv to 2C -> GLU -> depthwise conv -> BatchNorm -> activation -> pointwise conv."""

    def __init__(self, d_model: int, kernel_size: int, activation: str, norm_eps: float):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd (same padding keeps the length)")
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.pointwise_in = nn.Conv1d(d_model, 2 * d_model, 1, bias=False)
        self.depthwise = nn.Conv1d(
            d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model, bias=False
        )
        self.batch_norm = nn.BatchNorm1d(d_model)
        self.act = make_activation(activation)
        self.pointwise_out = nn.Conv1d(d_model, d_model, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).transpose(1, 2)  # (B, D, T): channels first for Conv1d
        h = nn.functional.glu(self.pointwise_in(h), dim=1)  # (B, 2D, T) -> (B, D, T): a gate per channel
        h = self.act(self.batch_norm(self.depthwise(h)))
        return self.pointwise_out(h).transpose(1, 2)  # (B, T, D)


class ConformerBlock(nn.Module):
    """½ FFN, relative MHSA, convolution module, ½ FFN, each with a residual; a final LayerNorm."""

    def __init__(self, c: Config):
        super().__init__()

        def norm() -> nn.LayerNorm:
            return nn.LayerNorm(c.d_model, eps=c.norm_eps)

        self.ffn1_norm, self.ffn1 = (
            norm(),
            make_mlp(c.activation, c.d_model, c.d_ff, bias=True, dropout=c.dropout),
        )
        self.attn_norm, self.attn = norm(), RelPositionSelfAttention(c.d_model, c.n_heads)
        self.conv = ConvolutionModule(c.d_model, c.kernel_size, c.activation, c.norm_eps)
        self.ffn2_norm, self.ffn2 = (
            norm(),
            make_mlp(c.activation, c.d_model, c.d_ff, bias=True, dropout=c.dropout),
        )
        self.final_norm = norm()
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(self.ffn1_norm(x))  # macaron: half of the FFN before ...
        x = x + self.drop(self.attn(self.attn_norm(x), mask))
        x = x + self.drop(self.conv(x))
        x = x + 0.5 * self.ffn2(self.ffn2_norm(x))  # ... and half after
        return self.final_norm(x)


@register(
    "conformer",
    family="attention",
    config=Config,
    summary="Conformer: macaron FFN halves around relative-position self-attention and a depthwise convolution module.",
    paper="Conformer: Convolution-augmented Transformer for Speech Recognition",
    year=2020,
    arxiv="2005.08100",
    input_kind="sequence",
    causal=False,
    tiny=dict(in_dim=8, d_model=16, n_layers=2, n_heads=2, d_ff=32, kernel_size=3),
    outputs="features (B, T, d_model)",
)
class Conformer(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.input_proj = nn.Linear(c.in_dim, c.d_model)
        self.blocks = nn.ModuleList(ConformerBlock(c) for _ in range(c.n_layers))

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, in_dim); mask (B, T) bool, True for real frames -> (B, T, d_model)."""
        check_shape(x, "B T D", name="x", D=self.config.in_dim)
        if mask is not None:
            check_shape(mask, "B T", name="mask", B=x.shape[0], T=x.shape[1])
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be bool (True = a real frame), got {mask.dtype}")
        x = self.input_proj(x)
        for block in self.blocks:
            x = block(x, mask)
        return x

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(x, mask)
