"""HGRN: a gated linear RNN whose forget gates have a lower bound that rises with depth.

Paper: "Hierarchically Gated Recurrent Neural Network for Sequence Modeling" (Qin, Yang & Zhong,
2023, arXiv:2311.04823).

Each channel runs an elementwise linear recurrence (no matrix state, no nonlinearity between
steps, so it trains in parallel with a scan, `bestiary.layers.scan`):

    f_t = gamma_l + (1 - gamma_l) sigmoid(x_t W_f)        forget gate, at least gamma_l
    h_t = f_t ⊙ h_{t-1} + (1 - f_t) ⊙ c_t,   c_t = silu(x_t W_c)
    y_t = (RMSNorm(h_t) ⊙ silu(x_t W_g)) W_o

The lower bound gamma_l is the paper's idea: gamma = cumsum(softmax(Gamma over layers)) - its first
row, learned, so the first layer can forget at once (local patterns) and higher layers are forced
to remember longer (long-range dependencies): a hierarchy of time scales. In the complex form
(`state_kind="complex"`), the gate also rotates the state by a learned angle theta per channel,
f_t e^{i theta}, and both halves of h_t (real, imaginary) feed the output.

Simplified: one RMSNorm and swish output gate (the paper's exact output-gate nonlinearity differs
between its versions); no token-shift or short convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import ForgetGateLowerBounds, bounded_forget_gate
from bestiary.layers.norms import RMSNorm
from bestiary.layers.scan import scan_hillis_steele, scan_sequential
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50272
    d_model: int = 1024
    n_layers: int = 24
    d_ff: int = 2816
    mlp: str = "swiglu"
    state_kind: str = option("real", choices=("real", "complex"))
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    mode: str = option("parallel", choices=("parallel", "recurrent"))  # log-depth scan or the loop


class HGRNMixer(nn.Module):
    """(B, T, D) -> (B, T, D): the gated elementwise recurrence of layer `layer`, whose forget gate
    is bounded below by row `layer` of the shared `lower_bounds` (None: no bound)."""

    def __init__(
        self,
        d_model: int,
        *,
        layer: int = 0,
        lower_bounds: ForgetGateLowerBounds | None = None,
        state_kind: str = "real",
        norm_eps: float = 1e-6,
        mode: str = "parallel",
    ):
        super().__init__()
        self.d_model, self.layer, self.state_kind, self.mode = d_model, layer, state_kind, mode
        self.lower_bounds = lower_bounds
        width = 2 * d_model if state_kind == "complex" else d_model  # real and imaginary halves
        self.forget_proj = nn.Linear(d_model, d_model, bias=True)
        self.input_proj = nn.Linear(d_model, width, bias=False)
        self.gate_proj = nn.Linear(d_model, width, bias=False)
        self.norm = RMSNorm(width, eps=norm_eps)
        self.out_proj = nn.Linear(width, d_model, bias=False)
        if state_kind == "complex":
            self.theta = nn.Parameter(torch.zeros(d_model))

    def init_weights(self) -> None:
        if self.state_kind == "complex":  # angles spread over scales, as RoPE's frequencies
            with torch.no_grad():
                self.theta.copy_(10000.0 ** (-torch.arange(self.d_model) / self.d_model))

    def init_cache(self, batch: int) -> RecurrentState:
        """h, (B, D) (complex for the complex form)."""
        return RecurrentState(self, batch, ("h",))

    def lower_bound(self) -> torch.Tensor:
        if self.lower_bounds is None:
            return torch.zeros(self.d_model, device=self.forget_proj.weight.device)
        return self.lower_bounds(self.layer)

    def forget_gate(self, x: torch.Tensor) -> torch.Tensor:
        """f_t = lb + (1 - lb) sigmoid(x W_f), (B, T, D), in [lb, 1)."""
        return bounded_forget_gate(self.forget_proj(x), self.lower_bound().to(x.dtype))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        f = self.forget_gate(x)  # (B, T, D)
        c = F.silu(self.input_proj(x))  # (B, T, D or 2D)
        if self.state_kind == "complex":
            c = torch.complex(*c.chunk(2, dim=-1))  # (B, T, D) complex
            a = f * torch.exp(1j * self.theta.to(x.dtype))  # decay and rotate
        else:
            a = f
        b = (1 - f) * c  # the input gate is tied to the forget gate
        h0 = None if cache is None else cache["h"]
        step_by_step = self.mode == "recurrent" or x.shape[1] == 1
        h = (scan_sequential if step_by_step else scan_hillis_steele)(a, b, h0)  # (B, T, D)
        if cache is not None:
            cache["h"] = h[:, -1]
            cache.length += x.shape[1]
        if self.state_kind == "complex":
            h = torch.cat([h.real, h.imag], dim=-1)  # (B, T, 2D)
        return self.out_proj(self.norm(h) * F.silu(self.gate_proj(x)))


@register(
    "hgrn",
    family="attention",
    config=Config,
    summary="Gated linear RNN with forget-gate lower bounds rising with depth (real or complex), elementwise scan.",
    paper="Hierarchically Gated Recurrent Neural Network for Sequence Modeling",
    year=2023,
    arxiv="2311.04823",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_ff=32),
    outputs="logits (B, T, vocab_size)",
)
class HGRN(CausalLM):
    def __init__(self, config: Config):
        c = config
        bounds = ForgetGateLowerBounds(c.n_layers, c.d_model)  # one learned table, shared by the layers
        blocks = prenorm_blocks(
            c,
            lambda i: HGRNMixer(
                c.d_model,
                layer=i,
                lower_bounds=bounds,
                state_kind=c.state_kind,
                norm_eps=c.norm_eps,
                mode=c.mode,
            ),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
