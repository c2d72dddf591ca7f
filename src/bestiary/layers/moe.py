"""A sparse mixture-of-experts MLP: a router sends each token to its top-k experts.

"Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer" (Shazeer et al.,
2017, arXiv:1701.06538); the load-balancing loss of "Switch Transformers" (Fedus, Zoph & Shazeer,
2021, arXiv:2101.03961); top-2 routing over SwiGLU experts as in Mixtral (Jiang et al., 2024,
arXiv:2401.04088) and Jamba; always-on shared experts from DeepSeekMoE (Dai et al., 2024,
arXiv:2401.06066).

An MLP holds most of a transformer's parameters, and every token pays for all of them. A mixture of
experts keeps n_experts MLPs but runs only top_k of them per token, so the model has n_experts / top_k
times the parameters for the same compute per token:

    p = softmax(router(x))                       (n_experts,) per token: how much each expert fits
    w, e = top_k(p)                              the chosen experts and their weights
    y = sum_j w_j expert_{e_j}(x)  [+ shared(x)] each expert a SwiGLU (or any `make_mlp` kind) MLP

The router learns by the weights w (the top-k choice itself has no gradient). Left alone it tends to
favour a few experts, which then train faster and are favoured more; the auxiliary loss pushes the
other way (Switch Transformers, eq. 4-6, as transformers computes it for Mixtral and Jamba):

    aux_loss = n_experts * sum_e f_e P_e
    f_e = (tokens whose top-k includes e) / tokens,  P_e = mean over tokens of p_e

It equals top_k when routing is uniform and grows as tokens crowd onto a few experts. Each forward stores it in `moe.aux_loss` (a
scalar tensor with gradient to the router); a model adds `coef * sum of its layers' aux_loss` to the
language-model loss while training (coef ~ 0.001-0.01).

This layer is computed token-exactly (no capacity limit, no dropped tokens): each expert runs on the
tokens that chose it, gathered with `torch.where`, and the results are scattered back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import make_mlp


class MoE(nn.Module):
    """x (..., d_model) -> (..., d_model): a sparse mixture of `n_experts` MLPs, top_k per token.

    d_ff: hidden width of each expert. mlp: the experts' kind (`make_mlp`: "swiglu" by default).
    normalize_top_k: rescale the chosen weights to sum to 1 (Mixtral) or keep the raw softmax
    probabilities (Jamba, Switch). n_shared_experts: experts that every token goes through,
    DeepSeekMoE-style, stored as ONE MLP of width n_shared_experts * d_ff_shared (d_ff_shared
    defaults to d_ff) and added unweighted. After each forward, `aux_loss` holds the load-balancing
    loss of that call and `router_logits` (tokens, n_experts) the router's scores.
    Submodules: router (Linear d_model -> n_experts, no bias), experts[e], shared_experts (or None).
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        n_experts: int,
        top_k: int,
        *,
        mlp: str = "swiglu",
        normalize_top_k: bool = False,
        n_shared_experts: int = 0,
        d_ff_shared: int | None = None,
        bias: bool = False,
    ):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k={top_k} must be between 1 and n_experts={n_experts}")
        if n_shared_experts < 0:
            raise ValueError(f"n_shared_experts must be >= 0, got {n_shared_experts}")
        self.d_model, self.n_experts, self.top_k = d_model, n_experts, top_k
        self.normalize_top_k = normalize_top_k
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(make_mlp(mlp, d_model, d_ff, bias) for _ in range(n_experts))
        self.shared_experts = (
            make_mlp(mlp, d_model, n_shared_experts * (d_ff_shared or d_ff), bias)
            if n_shared_experts
            else None
        )
        self.aux_loss: torch.Tensor | None = None
        self.router_logits: torch.Tensor | None = None

    def route(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (N, d_model) -> probabilities (N, E) (float32 at least), top-k weights (N, k) and
        expert indices (N, k)."""
        self.router_logits = logits = self.router(tokens)  # (N, E)
        probs = F.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        weights, index = probs.topk(self.top_k, dim=-1)  # (N, k) each
        if self.normalize_top_k:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return probs, weights.to(tokens.dtype), index

    def load_balancing_loss(self, probs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """n_experts * sum_e f_e P_e (see the module docstring); top_k when routing is uniform."""
        chosen = F.one_hot(index, self.n_experts).sum(dim=1).to(probs.dtype)  # (N, E): 1 where e is in top-k
        fraction_routed = chosen.mean(dim=0)  # f_e (E,): no gradient (a count)
        mean_prob = probs.mean(dim=0)  # P_e (E,): differentiable, through the router
        return self.n_experts * (fraction_routed * mean_prob).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])  # (N, d_model): routing is per token, whatever the layout
        probs, weights, index = self.route(tokens)
        self.aux_loss = self.load_balancing_loss(probs, index)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token_ids, slot = torch.where(index == e)  # the tokens that chose expert e, and in which slot
            if token_ids.numel() == 0:
                continue
            expert_out = expert(tokens[token_ids]) * weights[token_ids, slot, None]  # (n_e, d_model)
            out = out.index_add(0, token_ids, expert_out)  # scatter back (a token can get k experts)
        if self.shared_experts is not None:
            out = out + self.shared_experts(tokens)
        return out.reshape(shape)
