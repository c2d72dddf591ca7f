"""GatedSSM: a simplified, Mamba-inspired gated temporal network, as a language model.

Source: the Elixir library Edifice (hexdocs.pm/edifice, module "GatedSSM"). The design is Edifice's
own and has no paper; Edifice says plainly that it is NOT Mamba but a simplification of the block
of "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (Gu & Dao, 2023,
arXiv:2312.00752). Where Mamba has a learned depthwise convolution, GatedSSM has a mean pooling;
where Mamba has the discretised SSM h_t = exp(dt A) h_{t-1} + dt B x_t, GatedSSM has a sigmoid gate.

Edifice documents the block as: Linear (expand) -> [branch 1: MeanPool + SiLU -> gated context]
times [branch 2: SiLU], then Linear (project back); num_layers of them. The documentation leaves
the details open; this file's reading of it, every choice written out (E = expand * d_model, N =
d_state, k = kernel_size):

    u, z   = in_proj(x)                                      two (B, T, E) halves, no bias (as Mamba)
    v_t    = SiLU( (u_t + u_{t-1} + ... + u_{t-k+1}) / k )   causal mean pooling; u before the first
                                                             position counts as 0 and the divisor is
                                                             always k (a fixed 1/k depthwise conv)
    g_t    = sigmoid(W_g v_t + b_g + s)                      (E, N): a data-dependent decay logit per
                                                             channel (like Mamba's dt) plus a learned
                                                             per-(channel, state) offset s (like A)
    B_t    = W_B v_t,  C_t = W_C v_t                         (N,) each, input-dependent (as Mamba)
    h_t    = g_t * h_{t-1} + (1 - g_t) * (v_t B_t^T)         (E, N): the "gated context" state
    y_t    = (h_t C_t + D * v_t) * SiLU(z_t)                 read out over N plus a per-channel skip
                                                             D (Mamba's; ours, Edifice documents
                                                             none), gated by branch 2
    out    = out_proj(y)                                     (B, T, D)

So the gated context is the "sigmoid gating approximation" of h = A h + B x: a decay in (0, 1) that
depends on the input, and an input share 1 - g that keeps the state a running average (bounded by
its inputs). s starts at logit(1 - 1/tau) for timescales tau spread from 2 to 256 positions over
the N states, so the states remember over different horizons, as Mamba's A = -(1..N) does.

Forms (`mode`): "sequential" runs h_t in a loop; "parallel" with the Hillis-Steele scan
(`bestiary.layers.scan`; the input term has either sign, so the log-space scan does not apply).
Decoding keeps a constant-size state per layer: the last k - 1 inputs of the pooling and h (E, N).
The LM: pre-norm residual blocks of this mixer alone, no MLP (Edifice's diagram has none; Mamba's
block has its own gated expansion the same way), a final norm and the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_shape
from bestiary.layers.scan import scan_hillis_steele, scan_sequential
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register

MODES = ("parallel", "sequential")


def causal_mean_pool(
    u: torch.Tensor, past: torch.Tensor | None, kernel_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of the last kernel_size inputs at every position, (B, T, E) -> (B, T, E).

    past: the kernel_size - 1 inputs before u (B, k - 1, E), or None: zeros (nothing read yet, so the
    first positions average over fewer real inputs, still divided by k). Returns the means and the
    new past, the last k - 1 inputs, for the next call."""
    if past is None:
        past = u.new_zeros(u.shape[0], kernel_size - 1, u.shape[2])
    window = torch.cat([past, u], dim=1)  # (B, k - 1 + T, E)
    means = window.unfold(1, kernel_size, 1).mean(dim=-1)  # (B, T, E, k) -> (B, T, E)
    return means, window[:, window.shape[1] - (kernel_size - 1) :]


class GatedSSMMixer(nn.Module):
    """The GatedSSM block's mixer: x (B, T, D) -> (B, T, D) (the equations of the module docstring).

    d_state: N, the state's width per channel. expand: E = expand * d_model. kernel_size: the mean
    pooling's window. mode: "parallel" (scan) or "sequential" (loop). Cache: ("pool", "h"), the last
    k - 1 pooling inputs (B, k - 1, E) and the state (B, E, N)."""

    def __init__(
        self, d_model: int, d_state: int = 16, expand: int = 2, kernel_size: int = 4, mode: str = "parallel"
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.d_model, self.d_state, self.kernel_size, self.mode = d_model, d_state, kernel_size, mode
        self.d_inner = d_inner = expand * d_model
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)  # [u; z]
        self.gate_proj = nn.Linear(d_inner, d_inner)  # W_g, b_g: the decay's data-dependent logit
        self.state_offset = nn.Parameter(torch.empty(d_inner, d_state))  # s: each state's timescale
        self.B_proj = nn.Linear(d_inner, d_state, bias=False)  # what is written into the N states
        self.C_proj = nn.Linear(d_inner, d_state, bias=False)  # how they are read out
        # the skip D: without it the state path (a product of four small projections) carries almost
        # nothing at initialisation and the block starts as a near-zero map
        self.skip = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.init_weights()

    def init_weights(self) -> None:
        """Decays 1 - 1/tau for timescales tau from 2 to 256 positions, log-spaced over the N states."""
        tau = torch.logspace(math.log10(2.0), math.log10(256.0), self.d_state)  # (N,)
        decay = 1 - 1 / tau
        with torch.no_grad():
            self.state_offset.copy_(torch.logit(decay).expand(self.d_inner, -1))

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("pool", "h"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        if cache is not None:
            cache.check(self, x)
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, E) each
        pooled, past = causal_mean_pool(u, None if cache is None else cache["pool"], self.kernel_size)
        v = F.silu(pooled)  # (B, T, E)

        # the gated context: h_t = g_t * h_{t-1} + (1 - g_t) * v_t B_t^T, per channel and state
        g = torch.sigmoid(self.gate_proj(v).unsqueeze(-1) + self.state_offset)  # (B, T, E, N)
        written = v.unsqueeze(-1) * self.B_proj(v).unsqueeze(-2)  # (B, T, E, 1) * (B, T, 1, N)
        a, b = g, (1 - g) * written  # (B, T, E, N) each
        h0 = None if cache is None else cache["h"]  # (B, E, N) or None (zeros)
        if self.mode == "sequential" or x.shape[1] == 1:  # single steps always use the recurrence
            h = scan_sequential(a, b, h0)
        else:
            h = scan_hillis_steele(a, b, h0)  # (B, T, E, N)
        readout = torch.einsum("bten,btn->bte", h, self.C_proj(v)) + self.skip * v  # (B, T, E)
        y = readout * F.silu(z)  # branch 1 times branch 2

        if cache is not None:
            cache["pool"], cache["h"] = past, h[:, -1]
            cache.length += x.shape[1]
        return self.out_proj(y)  # (B, T, D)


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 256  # Edifice's hidden_size
    n_layers: int = 4  # Edifice's num_layers
    d_state: int = 16  # Edifice's state_size (default 16)
    expand: int = option(2, min=1)  # Edifice's expand_factor (default 2): E = expand * d_model
    kernel_size: int = 4  # the mean pooling's window (not documented by Edifice; Mamba's conv width)
    mode: str = option("parallel", choices=MODES)  # training form; single steps use the recurrence
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    dropout: float = 0.0  # on each block's output, before the residual sum
    tie_embeddings: bool = True


@register(
    "gated_ssm",
    family="ssm",
    config=Config,
    summary="GatedSSM (Edifice): Mamba-like block with mean pooling and a sigmoid-gated state, not a true SSM.",
    paper=(
        "Edifice library design (no paper); a simplification of 'Mamba: Linear-Time Sequence Modeling "
        "with Selective State Spaces' (Gu & Dao, 2023, arXiv:2312.00752)"
    ),
    year=None,
    arxiv=None,
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=32, d_model=16, n_layers=2, d_state=4),
    outputs="logits (B, T, vocab_size)",
)
class GatedSSM(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: GatedSSMMixer(c.d_model, c.d_state, c.expand, c.kernel_size, c.mode),
            mlp=None,  # no MLP: Edifice's block is the mixer alone (its gated expansion plays that part)
            norm=c.norm,
            dropout=c.dropout,
        )
        super().__init__(config, blocks)
