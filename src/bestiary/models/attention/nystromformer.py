"""Nyströmformer: softmax attention approximated through a few landmark tokens, in O(T) time.

Paper: "Nyströmformer: A Nyström-Based Algorithm for Approximating Self-Attention" (Xiong, Zeng,
Chakraborty et al., 2021, arXiv:2102.03902).

The attention matrix S = softmax(Q Kᵀ / √d) (T x T) is approximated with m << T landmarks: the
means of m consecutive segments of the queries (Q̃) and of the keys (K̃). The Nyström method
rebuilds a matrix from a few of its rows and columns:

    S ≈ softmax(Q K̃ᵀ) · pinv(softmax(Q̃ K̃ᵀ)) · softmax(Q̃ Kᵀ)
        (T x m)          (m x m)                 (m x T)

multiplied right to left with V, so nothing T x T is ever formed. The pseudo-inverse of the small
m x m matrix is computed iteratively, with matmuls only (GPU-friendly, no SVD):

    Z_0 = Aᵀ / max_j Σ_i A_ij,      Z_{k+1} = ¼ Z_k (13 I - A Z_k (15 I - A Z_k (7 I - A Z_k)))

which converges to pinv(A) (tested against torch.linalg.pinv). A depthwise convolution of the
values along the sequence (one kernel per head, `kernel_size` long) is added as a skip: a cheap
local term the landmarks blur out. The encoder around it is BERT's (post-norm, GELU MLP).

Differences from transformers' NystromformerModel (the oracle, equal with copied weights): the
initial Z_0 is scaled per (batch, head) (transformers' default takes one max over the whole batch,
which couples the rows of a batch; its `inv_coeff_init_option` is ours); positions are a plain
table of max_seq_len rows (transformers keeps 2 unused rows for RoBERTa-style offsets); any
length T works (segments of T / m tokens, rounded), where transformers needs T = segment_means_seq_len.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import Block, make_mlp
from bestiary.layers.checks import check_shape, check_tokens
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 30000
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    max_seq_len: int = 512
    num_landmarks: int = option(64, min=1)  # m
    kernel_size: int = 65  # the depthwise convolution skip over the values
    pinv_iterations: int = option(6, min=1)
    type_vocab_size: int = option(2, min=1)
    mlp: str = "gelu_tanh"
    norm_eps: float = 1e-5
    dropout: float = 0.0


def iterative_pinv(a: torch.Tensor, n_iter: int = 6) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse of each (m x m) matrix in a (..., m, m) by the paper's iteration."""
    identity = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    z = a.transpose(-2, -1) / a.sum(dim=-2).amax(dim=-1)[..., None, None]  # Z_0 = Aᵀ / ‖A‖_1 (per matrix)
    for _ in range(n_iter):
        az = a @ z
        z = 0.25 * z @ (13 * identity - az @ (15 * identity - az @ (7 * identity - az)))
    return z


def segment_means(x: torch.Tensor, n_segments: int) -> torch.Tensor:
    """x (B, H, T, D) -> (B, H, n_segments, D): means of consecutive segments of about T / n tokens."""
    T = x.shape[-2]
    bounds = (
        torch.linspace(0, T, n_segments + 1, device=x.device).round().long()
    )  # segment i: bounds[i]..bounds[i+1]
    positions = torch.arange(T, device=x.device)
    member = (positions[None, :] >= bounds[:-1, None]) & (positions[None, :] < bounds[1:, None])  # (n, T)
    averaging = member.to(x.dtype) / member.sum(dim=-1, keepdim=True)  # each row sums to 1
    return averaging @ x


class NystromAttention(nn.Module):
    """Bidirectional multi-head attention, Nyström-approximated with m landmarks. (B, T, D) -> (B, T, D)."""

    def __init__(
        self, d_model: int, n_heads: int, *, num_landmarks: int, kernel_size: int, pinv_iterations: int = 6
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.num_landmarks, self.pinv_iterations = num_landmarks, pinv_iterations
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        # one kernel per head along the sequence, shared by the head's channels: (T, Dh) is an image
        self.conv = nn.Conv2d(
            n_heads, n_heads, (kernel_size, 1), padding=(kernel_size // 2, 0), groups=n_heads, bias=False
        )
        self.out_proj = nn.Linear(d_model, d_model)

    def init_cache(self, batch: int, **_: object) -> None:
        raise ValueError("Nyströmformer attention is bidirectional: it cannot decode token by token")

    def forward(
        self, x: torch.Tensor, *, cache: object = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, D); mask (B, T) bool, True for real tokens (padding keys are ignored)."""
        check_shape(x, "B T D", name="x", D=self.d_model)
        B, T, _ = x.shape
        if mask is not None:
            check_shape(mask, "B T", name="mask", B=B, T=T)
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be bool (True = a real token), got {mask.dtype}")
        heads = (B, T, self.n_heads, self.head_dim)
        # splitting 1/√d between q and k keeps both landmark products on the same scale
        q = self.q_proj(x).view(heads).transpose(1, 2) / self.head_dim**0.25  # (B, H, T, Dh)
        k = self.k_proj(x).view(heads).transpose(1, 2) / self.head_dim**0.25
        v = self.v_proj(x).view(heads).transpose(1, 2)
        key_bias = None
        if mask is not None:  # padding keys get -inf wherever keys are compared with queries
            key_bias = torch.zeros(B, 1, 1, T, dtype=x.dtype, device=x.device).masked_fill(
                ~mask[:, None, None, :], float("-inf")
            )
        if self.num_landmarks >= T:  # as many landmarks as tokens: exact softmax attention
            scores = q @ k.transpose(-2, -1)  # (B, H, T, T)
            out = (scores if key_bias is None else scores + key_bias).softmax(-1) @ v
        else:
            q_land = segment_means(q, self.num_landmarks)  # (B, H, m, Dh)
            k_land = segment_means(k, self.num_landmarks)
            kernel_1 = (q @ k_land.transpose(-2, -1)).softmax(-1)  # (B, H, T, m)
            kernel_2 = (q_land @ k_land.transpose(-2, -1)).softmax(-1)  # (B, H, m, m)
            scores_3 = q_land @ k.transpose(-2, -1)  # (B, H, m, T)
            kernel_3 = (scores_3 if key_bias is None else scores_3 + key_bias).softmax(-1)
            # right to left: (m x T)(T x Dh) first, so the cost is O(T m Dh)
            out = kernel_1 @ (iterative_pinv(kernel_2, self.pinv_iterations) @ (kernel_3 @ v))
        out = out + self.conv(v)  # (B, H, T, Dh): the local skip
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_model))


class NystromformerEmbeddings(nn.Module):
    """token + position + token-type embeddings, LayerNorm: (B, T) -> (B, T, D)."""

    def __init__(self, c: Config):
        super().__init__()
        self.tok = nn.Embedding(c.vocab_size, c.d_model)
        self.pos = nn.Embedding(c.max_seq_len, c.d_model)
        self.token_type = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(positions) + self.token_type(torch.zeros_like(tokens))  # (B, T, D)
        return self.drop(self.norm(x))


@register(
    "nystromformer",
    family="attention",
    config=Config,
    summary="Nyströmformer: BERT-style encoder whose attention is a landmark Nyström approximation (O(T)).",
    paper="Nyströmformer: A Nyström-Based Algorithm for Approximating Self-Attention",
    year=2021,
    arxiv="2102.03902",
    input_kind="tokens",
    tiny=dict(
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        d_ff=64,
        max_seq_len=32,
        num_landmarks=4,
        kernel_size=3,
    ),
    presets={
        "nystromformer_512": Preset(
            dict(max_seq_len=510),
            params=108_498_576,
            source="transformers NystromformerModel(NystromformerConfig()) = uw-madison/nystromformer-512: "
            "108,500,112 less the 2 unused offset rows of its position table (2 x 768)",
        )
    },
    outputs="hidden states (B, T, d_model)",
)
class Nystromformer(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.embed = NystromformerEmbeddings(c)
        self.blocks = nn.ModuleList(
            Block(
                c.d_model,
                NystromAttention(
                    c.d_model,
                    c.n_heads,
                    num_landmarks=c.num_landmarks,
                    kernel_size=c.kernel_size,
                    pinv_iterations=c.pinv_iterations,
                ),
                make_mlp(c.mlp, c.d_model, c.d_ff, bias=True, dropout=c.dropout),
                norm="layernorm",
                norm_eps=c.norm_eps,
                dropout=c.dropout,
                pre_norm=False,  # post-norm, as BERT
            )
            for _ in range(c.n_layers)
        )

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) long, padding_mask (B, T) bool -> hidden states (B, T, d_model)."""
        check_tokens(tokens, self.config.vocab_size)
        if tokens.shape[1] > self.config.max_seq_len:
            raise ValueError(f"{tokens.shape[1]} tokens exceed max_seq_len={self.config.max_seq_len}")
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, mask=padding_mask)
        return x

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The encoder has no head: its features are its hidden states (B, T, d_model)."""
        return self(tokens)
