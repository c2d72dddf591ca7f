"""TTT (TTT-Linear, TTT-MLP): a recurrent layer whose hidden state is a model, trained by gradient
descent on the sequence while it reads it.

Paper: "Learning to (Learn at Test Time): RNNs with Expressive Hidden States" (Sun, Li, Dalal, Xu,
Vikram, Zhang, Dubois, Chen, Wang, Koyejo, Hashimoto & Guestrin, 2024, arXiv:2407.04620).

An RNN compresses the past into a hidden state; TTT makes the hidden state the weights W of a small
model f and the update rule a step of self-supervised learning. Each token x_t gives a training
view k_t = theta_K x_t, a label view v_t = theta_V x_t and a test view q_t = theta_Q x_t:

    loss_t(W) = 1/2 || f(k_t; W) - v_t ||^2,   f(k; W, b) = k + LN(k W + b)   (TTT-Linear;
                                               TTT-MLP: k + LN(GELU(k W1 + b1) W2 + b2), 4x hidden)
    W_t = W_{t-1} - eta_t grad loss_t(W_{t-1}),   z_t = f(q_t; W_t)
    eta_t = base_lr * sigmoid(theta_lr x_t) / head_dim   (a learned, per-token learning rate)

(the residual k + ... makes the loss reconstruct v - k with a LayerNorm'd linear map). Online GD is
sequential; *mini-batch TTT* takes all gradients of a mini-batch of b tokens at the weights W_0 of
its start, so they are independent: W_t = W_0 - (1/i) sum_{s<=t} eta_s grad loss_s(W_0), i the
token's index in the mini-batch (the 1/i averaging of the authors' code). The *dual form* never
materialises the per-token W_t: with G_s = dloss_s/dZ, q_t W_t = q_t W_0 - (1/i) sum_s eta_s (q_t k_s)
G_s, a masked matmul. `mode="primal"` builds every W_t explicitly (the definition); both give the
same outputs. mini_batch_size=1 is online gradient descent.

The gradient of the LayerNorm'd loss is written in closed form (`ln_reconstruction_grad`, then
backpropagated through the MLP's layers), as in the paper; the dual form applies layer by layer.
Tests check all of it against torch.autograd.

Simplified: no RoPE on q/k and no output gate; exact GELU (the authors' code uses the tanh form);
the hidden model's initial weights and its LayerNorm are learned per head, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 352
    mlp: str = "swiglu"
    mini_batch_size: int = option(16, min=1)  # b: tokens whose gradients share one set of weights
    base_lr: float = option(1.0, gt=0.0)  # eta's scale (the paper's ttt_base_lr)
    mode: str = option("dual", choices=("dual", "primal"))  # same outputs; dual never builds W_t
    hidden_model: str = option("linear", choices=("linear", "mlp"))  # TTT-Linear or TTT-MLP (d -> 4d -> d)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True


def layer_norm(
    Z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, ...]:
    """LayerNorm over the last axis, also returning what its backward needs: (y, x_hat, std)."""
    mean = Z.mean(dim=-1, keepdim=True)
    std = (Z.var(dim=-1, unbiased=False, keepdim=True) + eps).sqrt()
    x_hat = (Z - mean) / std
    return weight * x_hat + bias, x_hat, std


def ln_reconstruction_grad(
    Z: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """d/dZ of 1/2 ||LN(Z) - target||^2, in closed form (LayerNorm's backward written out).

    With g = (LN(Z) - target) * weight (the gradient reaching x_hat) and n = Z.shape[-1]:
    dZ = (n g - sum(g) - x_hat sum(g x_hat)) / (n std)."""
    y, x_hat, std = layer_norm(Z, weight, bias, eps)
    g = (y - target) * weight
    n = Z.shape[-1]
    total = g.sum(dim=-1, keepdim=True)
    along_x_hat = (g * x_hat).sum(dim=-1, keepdim=True)
    return (n * g - total - x_hat * along_x_hat) / (n * std)


def gelu_grad(x: torch.Tensor) -> torch.Tensor:
    """d/dx of the exact GELU, x Phi(x): Phi(x) + x phi(x)."""
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


class TTTLayer(nn.Module):
    """x (B, T, d_model) -> (B, T, d_model). The hidden model is a list of linear layers (W_l, b_l)
    per head, GELU between them: one for TTT-Linear, two (d -> 4d -> d) for TTT-MLP. Cache: the
    hidden model at its mini-batch's start and the learning-rate-weighted gradients gathered so far
    in that mini-batch."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.n_heads = c.d_model, c.n_heads
        self.head_dim = d = c.d_model // c.n_heads
        self.mini_batch_size, self.base_lr, self.mode = c.mini_batch_size, c.base_lr, c.mode
        self.ln_eps = 1e-6
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=False)  # test view
        self.k_proj = nn.Linear(c.d_model, c.d_model, bias=False)  # training view
        self.v_proj = nn.Linear(c.d_model, c.d_model, bias=False)  # label view
        self.lr_proj = nn.Linear(c.d_model, c.n_heads)  # per-token, per-head learning rate
        # the hidden model's initial weights (learned, shared by every sequence) and its LayerNorm
        widths = [d, d] if c.hidden_model == "linear" else [d, 4 * d, d]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(c.n_heads, n_in, n_out)) for n_in, n_out in zip(widths, widths[1:])
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(c.n_heads, n_out)) for n_out in widths[1:])
        self.ttt_norm_weight = nn.Parameter(torch.ones(c.n_heads, 1, d))
        self.ttt_norm_bias = nn.Parameter(torch.zeros(c.n_heads, 1, d))
        self.out_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.out_proj = nn.Linear(c.d_model, c.d_model, bias=False)

    def init_weights(self) -> None:
        with torch.no_grad():
            for weight, bias in zip(self.weights, self.biases):
                nn.init.normal_(weight, std=0.02)
                nn.init.zeros_(bias)
            nn.init.ones_(self.ttt_norm_weight)
            nn.init.zeros_(self.ttt_norm_bias)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("weights", "grads"))

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x (B, T, D) -> q, k, v (B, H, T, d) and eta (B, H, T)."""
        B, T, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)

        eta = self.base_lr * torch.sigmoid(self.lr_proj(x)).transpose(1, 2) / self.head_dim  # (B, H, T)
        return heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)), eta

    def _pack(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """The hidden model's tensors, flattened into one (B, H, n) state for the cache."""
        return torch.cat([t.flatten(2) for t in tensors], dim=2)

    def _unpack(self, flat: torch.Tensor) -> list[torch.Tensor]:
        shapes = [p.shape for pair in zip(self.weights, self.biases) for p in pair]  # W_1, b_1, W_2, b_2, ...
        pieces = flat.split([math.prod(shape[1:]) for shape in shapes], dim=2)
        return [piece.reshape(flat.shape[0], *shape) for piece, shape in zip(pieces, shapes)]

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        size, n_layers = self.mini_batch_size, len(self.weights)
        q, k, v, eta = self.views(x)
        if cache is None or cache["weights"] is None:
            params = [p.expand(B, *p.shape) for pair in zip(self.weights, self.biases) for p in pair]
            grads = [torch.zeros_like(p) for p in params]
        else:
            params, grads = self._unpack(cache["weights"]), self._unpack(cache["grads"])
        seen = 0 if cache is None else cache.length
        outputs, t = [], 0
        while t < T:  # one (part of a) mini-batch at a time, aligned to absolute positions
            done = (seen + t) % size  # tokens of this mini-batch already read (by an earlier call)
            L = min(size - done, T - t)
            q_mb, k_mb, v_mb, eta_mb = (a[:, :, t : t + L] for a in (q, k, v, eta))
            Ws, bs, grad_Ws, grad_bs = params[0::2], params[1::2], grads[0::2], grads[1::2]
            # every gradient of the mini-batch is taken at its start weights: independent of each other
            inputs, pre = [], []  # each layer's input X_l and output Z_l for the training view
            for layer in range(n_layers):
                inputs.append(F.gelu(pre[-1]) if layer else k_mb)
                pre.append(inputs[-1] @ Ws[layer] + bs[layer][:, :, None])  # (B, H, L, width)
            # dloss/dZ of the last layer (the residual k + LN(.) makes the target v - k), then backprop
            grads_Z = [
                ln_reconstruction_grad(
                    pre[-1], v_mb - k_mb, self.ttt_norm_weight, self.ttt_norm_bias, self.ln_eps
                )
            ]
            for layer in range(n_layers - 1, 0, -1):
                grads_Z.insert(0, (grads_Z[0] @ Ws[layer].transpose(-1, -2)) * gelu_grad(pre[layer - 1]))
            inv_index = 1.0 / torch.arange(done + 1, done + L + 1, dtype=x.dtype, device=x.device)  # 1/i
            Z_q = q_mb  # the test view goes through the same layers, each with its W_t
            for layer in range(n_layers):
                h = F.gelu(Z_q) if layer else q_mb  # (B, H, L, width_in): this layer's input
                eta_grads = eta_mb[..., None] * grads_Z[layer]  # (B, H, L, width)
                X = inputs[layer]
                if self.mode == "primal":  # the definition: build W_t and b_t for every token
                    W_t = Ws[layer][:, :, None] - inv_index[:, None, None] * (
                        grad_Ws[layer][:, :, None]
                        + torch.cumsum(X[..., :, None] * eta_grads[..., None, :], dim=2)
                    )  # (B, H, L, width_in, width_out)
                    b_t = bs[layer][:, :, None] - inv_index[:, None] * (
                        grad_bs[layer][:, :, None] + torch.cumsum(eta_grads, dim=2)
                    )
                    Z_q = torch.einsum("bhli,bhlio->bhlo", h, W_t) + b_t
                else:  # the dual form: h_t W_t = h_t W_0 - (1/i) (h_t grad_W + sum_{s<=t} eta_s (h_t . X_s) G_s)
                    scores = (h @ X.transpose(-1, -2) + 1).tril()  # (B, H, L, L); the +1 is the bias's
                    correction = h @ grad_Ws[layer] + grad_bs[layer][:, :, None] + scores @ eta_grads
                    Z_q = h @ Ws[layer] + bs[layer][:, :, None] - inv_index[:, None] * correction
                # gather this mini-batch's gradients: sum_s eta_s X_s^T G_s, (B, H, width_in, width_out)
                grad_Ws[layer] = grad_Ws[layer] + X.transpose(-1, -2) @ eta_grads
                grad_bs[layer] = grad_bs[layer] + eta_grads.sum(dim=2)
            outputs.append(q_mb + layer_norm(Z_q, self.ttt_norm_weight, self.ttt_norm_bias, self.ln_eps)[0])
            params = [p for pair in zip(Ws, bs) for p in pair]
            grads = [g for pair in zip(grad_Ws, grad_bs) for g in pair]
            if done + L == size:  # the mini-batch is complete: take its gradient step
                params = [p - g / size for p, g in zip(params, grads)]
                grads = [torch.zeros_like(g) for g in grads]
            t += L
        if cache is not None:
            cache["weights"], cache["grads"] = self._pack(params), self._pack(grads)
            cache.length += T
        z = torch.cat(outputs, dim=2).transpose(1, 2).reshape(B, T, -1)  # (B, T, H d)
        return self.out_proj(self.out_norm(z))


@register(
    "ttt",
    family="recurrent",
    config=Config,
    summary="TTT-Linear / TTT-MLP: the hidden state is a model trained by mini-batch gradient descent as it reads.",
    paper="Learning to (Learn at Test Time): RNNs with Expressive Hidden States",
    year=2024,
    arxiv="2407.04620",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, mini_batch_size=4),
    outputs="logits (B, T, vocab_size)",
)
class TTT(CausalLM):
    def __init__(self, config: Config):
        blocks = prenorm_blocks(config, lambda _: TTTLayer(config), mlp=config.mlp, norm=config.norm)
        super().__init__(config, blocks)
