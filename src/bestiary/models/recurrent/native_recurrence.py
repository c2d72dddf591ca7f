"""Native Recurrence: three minimal gated recurrences behind one interface, as a language model.

Source: the Elixir library Edifice (hexdocs.pm/edifice, module "Native Recurrence"). The design is
Edifice's own and has no paper; it builds on "Were RNNs All We Needed?" (Feng, Tung, Ahmed, Bengio &
Hajimirsadeghi, 2024, arXiv:2410.01201: minGRU, gates that read x_t only) and "Resurrecting
Recurrent Neural Networks for Long Sequences" (Orvieto et al., 2023, arXiv:2303.06349: a diagonal
linear recurrence is enough when the nonlinearity sits outside it).

Every variant is the elementwise linear recurrence h_t = a_t * h_{t-1} + b_t, with a_t and b_t
computed from x_t alone (`bestiary.layers.scan`), so a whole sequence can be run by a parallel scan:

    elu_gru      z = sigmoid(W_z x),  c = 1 + elu(W_c x),  h = (1 - z) * h + z * c   (c > 0 always)
    real_gru     z = sigmoid(W_z x),  c = W_c x,           h = (1 - z) * h + z * c   (c of any sign)
    diag_linear  a = sigmoid(W_a x),  b = W_b x,           h = a * h + b             (a, b independent)

The two GRUs interpolate between the old state and the candidate, so the state stays within the
range of the candidates; diag_linear adds its input on top of the decayed state (no 1 - a on the
input), as in the LRU. Forms (`mode`): "sequential" is the loop; "parallel" is a scan. elu_gru's
a = 1 - z and b = z * c are both positive, so it uses the log-space scan of the minGRU paper
(logcumsumexp, where nothing under- or overflows); real_gru and diag_linear have inputs of either
sign, which have no logarithm, so they use the Hillis-Steele scan (log2 T rounds). Decoding one
token at a time always uses the loop, with a state of d_model numbers per layer.

The model, as Edifice documents it: an input projection to the hidden width (here the token
embedding), then per layer pre-norm -> gate and candidate projections -> scan -> residual, then a
final norm (and the LM head). There is no MLP and no output projection in a layer: the state h is
the layer's output. Both projections have a bias (Edifice's dense layers do). Simplified: nothing
beyond what the documentation states; Edifice's default sizes are not documented, so the defaults
here are our own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_shape
from bestiary.layers.scan import scan_hillis_steele, scan_log_space, scan_sequential
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register

RECURRENCES = ("elu_gru", "real_gru", "diag_linear")
MODES = ("parallel", "sequential")


def one_plus_elu(c: torch.Tensor) -> torch.Tensor:
    """elu_gru's candidate 1 + elu(c), written so that it stays > 0 in floating point: for c <= 0 it
    is 1 + (e^c - 1) = e^c, which 1 + F.elu(c) rounds to exactly 0 below c = -17 (float32) or -37
    (float64). (The clamp keeps the unused branch finite, so its gradient is 0, not NaN.)"""
    return torch.where(c > 0, 1 + c, torch.exp(c.clamp(max=0)))


def log_one_plus_elu(c: torch.Tensor) -> torch.Tensor:
    """log(1 + elu(c)) without forming a tiny 1 + elu(c): for c <= 0, 1 + (e^c - 1) = e^c, so the log
    is c itself; for c > 0 it is log1p(c)."""
    return torch.where(c > 0, torch.log1p(F.relu(c)), c)


class NativeRecurrenceMixer(nn.Module):
    """One recurrence layer: x (B, T, D) -> h (B, T, D), with h_t = a_t * h_{t-1} + b_t.

    recurrence: "elu_gru", "real_gru" or "diag_linear" (see the module docstring).
    mode: "parallel" (a scan) or "sequential" (the loop). Cache: ("h",), the last state (B, D).
    Parameters: gate_proj (W_z, or W_a for diag_linear) and input_proj (W_c, or W_b), each D -> D."""

    def __init__(self, d_model: int, recurrence: str = "elu_gru", mode: str = "parallel"):
        super().__init__()
        if recurrence not in RECURRENCES:
            raise ValueError(f"recurrence must be one of {RECURRENCES}, got {recurrence!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.d_model, self.recurrence, self.mode = d_model, recurrence, mode
        self.gate_proj = nn.Linear(d_model, d_model)  # the gate z (GRUs) or the decay a (diag_linear)
        self.input_proj = nn.Linear(d_model, d_model)  # the candidate c (GRUs) or the input b (diag_linear)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("h",))

    def coefficients(self, gate: torch.Tensor, candidate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence's a_t and b_t from the two projections (B, T, D) each."""
        if self.recurrence == "diag_linear":
            return torch.sigmoid(gate), candidate
        z = torch.sigmoid(gate)
        if self.recurrence == "elu_gru":
            candidate = one_plus_elu(candidate)  # in (0, inf): elu > -1
        return 1 - z, z * candidate

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        if cache is not None:
            cache.check(self, x)
        gate, candidate = self.gate_proj(x), self.input_proj(x)  # (B, T, D) each
        h0 = None if cache is None else cache["h"]  # (B, D) or None (zeros: nothing read yet)
        if self.mode == "sequential" or x.shape[1] == 1:  # single steps always use the recurrence
            h = scan_sequential(*self.coefficients(gate, candidate), h0)  # (B, T, D)
        elif self.recurrence == "elu_gru":
            # log(1 - z) = -softplus(k) and log z = -softplus(-k) for the gate's logit k; after the
            # first step h is a positive mix of positive candidates, so log h0 exists
            log_a = -F.softplus(gate)
            log_b = -F.softplus(-gate) + log_one_plus_elu(candidate)
            h = scan_log_space(log_a, log_b, None if h0 is None else torch.log(h0)).exp()
        else:  # inputs of either sign: no logarithm, a scan on the values themselves
            h = scan_hillis_steele(*self.coefficients(gate, candidate), h0)
        if cache is not None:
            cache["h"] = h[:, -1]
            cache.length += x.shape[1]
        return h


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 256  # Edifice's hidden_size: the embedding, every state and the residual stream
    n_layers: int = 4
    recurrence: str = option("elu_gru", choices=RECURRENCES)  # Edifice's recurrence_type
    mode: str = option("parallel", choices=MODES)  # training form; single steps use the recurrence
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    dropout: float = 0.0  # on each layer's output, before the residual sum
    tie_embeddings: bool = False


@register(
    "native_recurrence",
    family="recurrent",
    config=Config,
    summary="Native Recurrence (Edifice): ELU-GRU, real minGRU or diagonal linear recurrence, scan-trained.",
    paper=(
        "Edifice library design (no paper); builds on 'Were RNNs All We Needed?' (Feng et al., 2024, "
        "arXiv:2410.01201) and 'Resurrecting Recurrent Neural Networks for Long Sequences' "
        "(Orvieto et al., 2023, arXiv:2303.06349)"
    ),
    year=None,
    arxiv=None,
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=32, d_model=16, n_layers=2),
    outputs="logits (B, T, vocab_size)",
)
class NativeRecurrence(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: NativeRecurrenceMixer(c.d_model, c.recurrence, c.mode),
            mlp=None,  # no MLP: pre-norm -> recurrence -> residual, as documented
            norm=c.norm,
            dropout=c.dropout,
        )
        super().__init__(config, blocks)
