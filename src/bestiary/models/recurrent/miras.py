"""MIRAS: a sequence model is an online learner, chosen by its attentional bias (the loss its
memory minimises) and its retention gate (how it holds on to what it learned).

Paper: "It's All Connected: A Journey Through Test-Time Memorization, Attentional Bias, Retention,
and Online Optimization" (Behrouz, Razaviyayn, Zhong & Mirrokni, 2025, arXiv:2504.13173).

Attention, linear attention, DeltaNet, Titans all keep a memory M that maps keys to values and
update it by one step of online optimisation per token. MIRAS names the choices: the *attentional
bias* l(M; k_t, v_t) (linear attention: a dot product; DeltaNet, Titans: ||M(k) - v||^2), the
*retention* (what keeps M close to its past: weight decay, a normalisation, a KL divergence), and
the optimiser. Here, with an MLP memory M(k) = SiLU(k W1) W2 per head and one gradient step per
token, the update is

    A_t = alpha_t A_{t-1} - eta_t grad l(W_{t-1}; k_t, v_t),     W_t = N(A_t),     y_t = M_{W_t}(q_t)

`loss`:      "l2"    ||M(k) - v||^2
             "lp"    ||M(k) - v||_p^p                            (Moneta, p = `p_norm`)
             "huber" 1/2 ||e||^2 if ||e|| <= delta, else delta (||e|| - delta / 2)   (Yaad)
`retention`: "l2"    N = identity: alpha_t is weight decay       (Yaad, and Titans without momentum)
             "lq"    N(A) = A / ||A||_q^(q-2): an l_q-normalised memory  (Moneta, q = `q_norm`)
             "kl"    N(A) = softmax over each row: the update is the mirror-descent step
                     W_t = softmax(alpha_t log W_{t-1} - eta_t grad), KL retention to W_{t-1}  (Memora)
The paper's three models are (lp, lq), (huber, l2) and (l2, kl). alpha_t, eta_t are sigmoids of
projections of x_t. As in Titans/TTT, the gradients of a chunk of tokens are taken at the weights of
the chunk's start, so they are parallel; A_t is then a linear recurrence (`scan_sequential`).

Simplified: Yaad's delta is a fixed option (the paper makes it data-dependent), no momentum, the
memory is a 2-layer MLP without residual or norm, no hybrid attention layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.delta_rule import (
    GatedRMSNorm,
    ShortConv,
    l2_normalize,
    mlp_memory_grads,
    mlp_memory_read,
)
from bestiary.layers.scan import scan_sequential
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register

LOSSES = ("l2", "lp", "huber")
RETENTIONS = ("l2", "lq", "kl")


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 352
    mlp: str = "swiglu"
    kernel_size: int = 4  # taps of the short convolution on q, k, v
    loss: str = option("lp", choices=LOSSES)  # the attentional bias
    retention: str = option("lq", choices=RETENTIONS)  # the retention gate's normalisation
    p_norm: float = option(3.0, min=2.0)  # p of the l_p loss (>= 2: a smooth gradient)
    q_norm: float = option(4.0, gt=1.0)  # q of the l_q retention
    huber_delta: float = option(1.0, gt=0.0)  # where the Huber loss turns from quadratic to linear
    memory_expansion: int = option(2, min=1)  # the memory MLP's hidden width, in head_dims
    chunk_size: int = option(16, min=1)  # tokens whose memory gradients share one set of weights
    base_lr: float = option(1.0, gt=0.0)  # eta_t = base_lr * sigmoid(.)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True


def attentional_bias_grad(error: torch.Tensor, loss: str, p: float = 3.0, delta: float = 1.0) -> torch.Tensor:
    """dl/dM(k) for error e = M(k) - v (..., d): the loss's gradient at the memory's output."""
    if loss == "l2":  # ||e||^2
        return 2 * error
    if loss == "lp":  # sum |e_i|^p
        return p * error.abs().pow(p - 1) * error.sign()
    norm = error.norm(dim=-1, keepdim=True)  # Huber on ||e||: e inside the ball, delta e / ||e|| outside
    return torch.where(norm <= delta, error, delta * error / norm.clamp_min(torch.finfo(error.dtype).tiny))


def retention_map(A: torch.Tensor, retention: str, q: float = 4.0) -> torch.Tensor:
    """W = N(A) for a batch of per-head weight matrices A (..., rows, cols)."""
    if retention == "l2":
        return A
    if retention == "lq":  # ||A||_q over each whole matrix
        norm = A.abs().pow(q).sum(dim=(-2, -1), keepdim=True).pow(1 / q)
        return A / norm.pow(q - 2)
    return torch.softmax(A, dim=-1)  # kl: every row of W on the simplex


class MirasMemory(nn.Module):
    """x (B, T, d_model) -> (B, T, d_model). Cache: the conv window, the accumulators A1, A2 of the
    memory's two weight matrices, and their values at the current chunk's start."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.n_heads = c.d_model, c.n_heads
        self.head_dim = d = c.d_model // c.n_heads
        hidden = d * c.memory_expansion
        self.loss, self.retention = c.loss, c.retention
        self.p, self.q, self.delta = c.p_norm, c.q_norm, c.huber_delta
        self.chunk_size, self.base_lr = c.chunk_size, c.base_lr
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.k_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.v_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.conv = ShortConv(3 * c.d_model, c.kernel_size)
        self.gate_proj = nn.Linear(c.d_model, 2 * c.n_heads)  # alpha (retention), eta (learning rate)
        self.A1_init = nn.Parameter(torch.zeros(c.n_heads, d, hidden))  # W1 = N(A1) before any token
        self.A2_init = nn.Parameter(torch.zeros(c.n_heads, hidden, d))
        self.out_norm = GatedRMSNorm(d, c.norm_eps)
        self.out_proj = nn.Linear(c.d_model, c.d_model, bias=False)

    def init_weights(self) -> None:
        """A random initial memory; alpha ~ 0.99 (retain), eta ~ 0.12 base_lr."""
        with torch.no_grad():
            nn.init.normal_(self.A1_init, std=self.A1_init.shape[1] ** -0.5)
            nn.init.normal_(self.A2_init, std=self.A2_init.shape[1] ** -0.5)
            self.gate_proj.bias.view(2, self.n_heads).copy_(torch.tensor([[5.0], [-2.0]]))

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "A1", "A2", "A1_start", "A2_start"))

    def views(self, x: torch.Tensor, window: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """x (B, T, D) -> q, k, v (B, T, H, d), the gates alpha, eta (B, T, H), the conv window."""
        B, T, _ = x.shape
        qkv = torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)  # (B, T, 3 D)
        qkv, window = self.conv(qkv, window)
        q, k, v = qkv.view(B, T, 3, self.n_heads, self.head_dim).unbind(dim=2)  # each (B, T, H, d)
        alpha, eta = torch.sigmoid(self.gate_proj(x)).view(B, T, 2, self.n_heads).unbind(dim=2)
        return l2_normalize(q), l2_normalize(k), v, alpha, self.base_lr * eta, window

    def weights(self, A: torch.Tensor) -> torch.Tensor:
        return retention_map(A, self.retention, self.q)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k, v, alpha, eta, window = self.views(x, None if cache is None else cache["conv"])

        def cached(name: str, initial: torch.Tensor) -> torch.Tensor:
            return initial if cache is None or cache[name] is None else cache[name]

        A1 = cached("A1", self.A1_init.expand(B, -1, -1, -1))  # (B, H, d, m)
        A2 = cached("A2", self.A2_init.expand(B, -1, -1, -1))  # (B, H, m, d)
        A1_start, A2_start = cached("A1_start", A1), cached("A2_start", A2)
        seen = 0 if cache is None else cache.length
        outputs, t = [], 0
        while t < T:  # one (part of a) chunk at a time, aligned to absolute positions
            done = (seen + t) % self.chunk_size
            L = min(self.chunk_size - done, T - t)
            part = slice(t, t + L)
            W1, W2 = self.weights(A1_start), self.weights(A2_start)  # the memory at the chunk's start
            recalled, pre, hidden = mlp_memory_read(k[:, part], W1, W2)
            grad_out = attentional_bias_grad(recalled - v[:, part], self.loss, self.p, self.delta)
            grad1, grad2 = mlp_memory_grads(k[:, part], W2, pre, hidden, grad_out)  # (B, L, H, ., .)
            keep, lr = alpha[:, part, :, None, None], eta[:, part, :, None, None]
            A1_t = scan_sequential(keep, -lr * grad1, A1)  # A_t = alpha_t A_{t-1} - eta_t grad_t
            A2_t = scan_sequential(keep, -lr * grad2, A2)
            outputs.append(mlp_memory_read(q[:, part], self.weights(A1_t), self.weights(A2_t))[0])
            A1, A2 = A1_t[:, -1], A2_t[:, -1]
            if done + L == self.chunk_size:  # the chunk is complete: the next one differentiates here
                A1_start, A2_start = A1, A2
            t += L
        if cache is not None:
            cache["conv"], cache["A1"], cache["A2"] = window, A1, A2
            cache["A1_start"], cache["A2_start"] = A1_start, A2_start
            cache.length += T
        y = self.out_norm(torch.cat(outputs, dim=1))  # (B, T, H, d)
        return self.out_proj(y.reshape(B, T, -1))


@register(
    "miras",
    family="recurrent",
    config=Config,
    summary="Test-time memorisation framework: attentional-bias loss + retention gate (Moneta, Yaad, Memora).",
    paper=(
        "It's All Connected: A Journey Through Test-Time Memorization, Attentional Bias, Retention, "
        "and Online Optimization"
    ),
    year=2025,
    arxiv="2504.13173",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class Miras(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(c, lambda _: MirasMemory(c), mlp=c.mlp, norm=c.norm)
        super().__init__(config, blocks)
