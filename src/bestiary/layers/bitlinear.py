"""BitLinear: a Linear layer trained with ternary weights and 8-bit activations.

"BitNet: Scaling 1-bit Transformers for Large Language Models" (Wang et al., 2023, arXiv:2310.11453)
and "The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits" (Ma et al., 2024,
arXiv:2402.17764), which makes the weights ternary {-1, 0, +1} (log2(3) = 1.58 bits).

Training keeps full-precision "latent" weights. Every forward pass quantises them (absmean) and
quantises the normalised activations (per-token absmax, 8 bits); the backward pass pretends the
rounding was the identity (the straight-through estimator, STE), so the latent weights receive the
gradient the quantised ones would have had and can slowly cross a rounding boundary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.norms import make_norm


def absmean_quantize(w: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary weights: W_q = clip(round(W / (mean|W| + eps)), -1, 1); W ≈ W_q * scale.

    Returns (W_q with values in {-1, 0, 1}, same dtype as w; scale = mean|W| + eps, a 0-d tensor).
    The mean of |W| (rather than the max) sets the scale so that about a third of the weights
    round to zero: the zeros are what b1.58 adds over the binary BitNet.
    """
    scale = w.abs().mean() + eps
    return (w / scale).round().clamp(-1, 1), scale


def absmax_quantize(x: torch.Tensor, bits: int = 8, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token (last dim) symmetric integer quantisation: x ≈ x_q / scale.

    scale = (2^(bits-1) - 1) / max|x| over the last dim, so the largest entry of each token maps to
    127 (8 bits); x_q = clip(round(x * scale), -2^(bits-1), 2^(bits-1) - 1). Returns (x_q, scale)
    with scale of shape (..., 1).
    """
    q_max = 2 ** (bits - 1) - 1
    scale = q_max / x.abs().amax(dim=-1, keepdim=True).clamp(min=eps)  # (..., 1)
    return (x * scale).round().clamp(-q_max - 1, q_max), scale


def straight_through(x: torch.Tensor, x_quantized: torch.Tensor) -> torch.Tensor:
    """x_quantized in the forward pass, identity in the backward pass (the STE).

    x + (q - x).detach() has the value q, but autograd sees only the `x` term.
    """
    return x + (x_quantized - x).detach()


class BitLinear(nn.Module):
    """norm -> 8-bit activations -> ternary-weight matmul, with STE gradients.

    x (..., in_dim) -> (..., out_dim). The norm in front (RMSNorm, as in BitNet b1.58) keeps the
    activations' range stable so that 8 bits are enough.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = False,
        norm: str = "rmsnorm",
        activation_bits: int = 8,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.activation_bits, self.eps = activation_bits, eps
        self.norm = make_norm(norm, in_dim)
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))  # the latent full-precision weights
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None

    def quantized_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ternary weights as int8, scale): what a deployment would store (1.58 bits per weight)."""
        w_q, scale = absmean_quantize(self.weight.detach(), self.eps)
        return w_q.to(torch.int8), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        x_q, x_scale = absmax_quantize(x, self.activation_bits, self.eps)
        w_q, w_scale = absmean_quantize(self.weight, self.eps)
        # dequantise so the matmul runs in floating point; an int8 kernel would compute the same
        # x_q @ w_q^T in integers and multiply by w_scale / x_scale once at the end
        x = straight_through(x, x_q / x_scale)
        w = straight_through(self.weight, w_q * w_scale)
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, bias={self.bias is not None}, activation_bits={self.activation_bits}"
