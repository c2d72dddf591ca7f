"""TabNet: sequential attention over tabular features, with sparse, inspectable feature masks.

Paper: "TabNet: Attentive Interpretable Tabular Learning" (Sercan Ö. Arık & Tomas Pfister, 2019,
arXiv:1908.07442).

At each of `n_steps` decision steps TabNet
1. picks features: an *attentive transformer* maps the previous step's attention vector to one
   score per input feature, multiplies by a *prior* (features already used count less), and turns
   the scores into a sparse mask with sparsemax (most features get exactly 0);
2. processes only the masked features: a *feature transformer* (GLU layers, the first `n_shared`
   shared by every step, the next `n_independent` owned by the step) outputs a decision part
   d (d_model wide) and an attention part a (d_attention wide) for the next step;
3. adds ReLU(d) to the running decision; the logits are a Linear map of the sum.

The prior starts at 1 and becomes P <- P * (gamma - M) after each mask M: with relaxation gamma = 1 a
feature can be used at one step only; larger gamma lets steps reuse features. A sparsity regulariser
(the mean entropy of the masks) pushes the masks further towards few features; add
`lambda_sparse * output.sparsity_loss` to the task loss (`tabnet_loss` does it).

Ghost batch norm (Hoffer et al., 2017, arXiv:1705.08741) normalises each chunk of
`virtual_batch_size` rows separately in training, which regularises large-batch training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers import check_shape
from bestiary.layers.sparsemax import sparsemax
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 2  # input features
    num_classes: int = 3
    d_model: int = 8  # N_d in the paper: width of the decision output of each step
    d_attention: int = option(
        8, min=1
    )  # N_a in the paper: width of the attention output fed to the next mask
    n_steps: int = option(3, min=1)  # N_steps: decision steps (masks)
    gamma: float = 1.3  # relaxation of the prior: 1 = use each feature once, larger = reuse
    n_shared: int = option(2, min=0)  # GLU layers shared by all steps' feature transformers
    n_independent: int = option(2, min=0)  # GLU layers owned by each step
    virtual_batch_size: int = option(
        128, min=1
    )  # ghost batch norm chunk size (training only; >= batch size = plain BN)
    momentum: float = 0.02  # batch-norm running-statistics momentum
    dropout: float = 0.0  # not in the paper; kept for a uniform option set (applied to the decision)


@dataclass
class TabNetOutput:
    """What TabNet returns.

    logits: (B, num_classes). masks: (B, n_steps, in_dim), each row on the simplex (sums to 1,
    mostly zeros). feature_importance: (B, in_dim), the masks weighted by how much each step
    contributed to the decision (sum of ReLU(d)), normalised to sum to 1 per row — the paper's
    aggregate mask. step_weights: (B, n_steps), each step's contribution (the paper's eta_b).
    sparsity_loss: scalar, mean entropy of the masks.
    """

    logits: torch.Tensor
    masks: torch.Tensor
    feature_importance: torch.Tensor
    step_weights: torch.Tensor
    sparsity_loss: torch.Tensor


class GhostBatchNorm(nn.Module):
    """BatchNorm1d over chunks of the batch in training; over the whole batch (running stats) in eval.

    The number of chunks is B // virtual_batch_size (at least 1), split as evenly as possible, so
    every chunk has at least `virtual_batch_size` rows (or the whole batch) — never a single row,
    whose variance batch norm cannot compute.
    """

    def __init__(self, dim: int, virtual_batch_size: int = 128, momentum: float = 0.02):
        super().__init__()
        self.virtual_batch_size = virtual_batch_size
        self.bn = nn.BatchNorm1d(dim, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.bn(x)
        n_chunks = max(1, x.shape[0] // self.virtual_batch_size)
        return torch.cat([self.bn(chunk) for chunk in x.tensor_split(n_chunks, dim=0)], dim=0)


class GLULayer(nn.Module):
    """Linear -> ghost BN -> gated linear unit: out = h[:, :d] * sigmoid(h[:, d:])."""

    def __init__(self, in_dim: int, out_dim: int, fc: nn.Linear | None, config: Config):
        super().__init__()
        self.out_dim = out_dim
        # a shared layer passes its (shared) Linear; the ghost BN is always the step's own
        self.fc = fc if fc is not None else nn.Linear(in_dim, 2 * out_dim, bias=False)
        self.bn = GhostBatchNorm(2 * out_dim, config.virtual_batch_size, config.momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.fc(x))  # (B, 2 * out_dim)
        return h[:, : self.out_dim] * torch.sigmoid(h[:, self.out_dim :])  # (B, out_dim)


class FeatureTransformer(nn.Module):
    """A stack of GLU layers with scaled residuals: x <- (x + GLU(x)) * sqrt(1/2) after the first.

    `shared_fcs` are the Linear layers shared across steps (they come first); the rest are new.
    The sqrt(1/2) keeps the variance of the residual sum from growing with depth.
    """

    def __init__(self, in_dim: int, shared_fcs: nn.ModuleList, config: Config):
        super().__init__()
        width = config.d_model + config.d_attention
        layers = []
        for i in range(len(shared_fcs) + config.n_independent):
            fc = shared_fcs[i] if i < len(shared_fcs) else None
            layers.append(GLULayer(in_dim if i == 0 else width, width, fc, config))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers[0](x)  # (B, d_model + d_attention): no residual, the widths differ
        for layer in self.layers[1:]:
            x = (x + layer(x)) * math.sqrt(0.5)
        return x


class AttentiveTransformer(nn.Module):
    """a (B, d_attention) -> Linear -> ghost BN -> * prior -> sparsemax -> mask (B, in_dim)."""

    def __init__(self, config: Config):
        super().__init__()
        self.fc = nn.Linear(config.d_attention, config.in_dim, bias=False)
        self.bn = GhostBatchNorm(config.in_dim, config.virtual_batch_size, config.momentum)

    def forward(self, a: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return sparsemax(self.bn(self.fc(a)) * prior, dim=-1)


@register(
    "tabnet",
    family="feedforward",
    config=Config,
    summary="Sequential sparse feature selection (sparsemax masks) with GLU feature transformers.",
    paper="TabNet: Attentive Interpretable Tabular Learning",
    year=2019,
    arxiv="1908.07442",
    input_kind="vector",
    tiny=dict(in_dim=4, num_classes=3, d_model=4, d_attention=4, n_steps=2, n_shared=1, n_independent=1),
    outputs="TabNetOutput(logits (B, num_classes), masks (B, n_steps, in_dim), "
    "feature_importance (B, in_dim), step_weights (B, n_steps), sparsity_loss scalar)",
)
class TabNet(nn.Module):
    eps = 1e-15  # inside log(M + eps): masks have exact zeros

    def __init__(self, config: Config):
        super().__init__()
        if config.n_shared + config.n_independent < 1:
            raise ValueError("TabNet needs at least one GLU layer (n_shared + n_independent >= 1)")
        if config.gamma < 1:
            raise ValueError(f"gamma must be >= 1 (the prior must stay non-negative), got {config.gamma}")
        self.config = config
        width = config.d_model + config.d_attention
        self.input_bn = nn.BatchNorm1d(config.in_dim, momentum=config.momentum)
        shared = [
            nn.Linear(config.in_dim if i == 0 else width, 2 * width, bias=False)
            for i in range(config.n_shared)
        ]
        self.shared_fcs = nn.ModuleList(shared)
        # step 0 only produces the first attention vector; steps 1..n_steps each produce a decision
        self.feature_transformers = nn.ModuleList(
            FeatureTransformer(config.in_dim, self.shared_fcs, config) for _ in range(config.n_steps + 1)
        )
        self.attentive_transformers = nn.ModuleList(
            AttentiveTransformer(config) for _ in range(config.n_steps)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.num_features = config.d_model
        self.head = nn.Linear(config.d_model, config.num_classes, bias=False)

    def _decision_steps(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the n_steps decision steps: (decision (B, d_model), masks (B, n_steps, F),
        step weights (B, n_steps, 1), summed mask entropy)."""
        c = self.config
        check_shape(x, "B F", name="x", F=c.in_dim)
        x = self.input_bn(x)  # (B, F)
        prior = torch.ones_like(x)  # (B, F): every feature fully available at the first step
        a = self.feature_transformers[0](x)[:, c.d_model :]  # (B, d_attention)
        decision = x.new_zeros(x.shape[0], c.d_model)  # (B, d_model)
        masks, step_weights, entropy = [], [], x.new_zeros(())
        for step in range(c.n_steps):
            mask = self.attentive_transformers[step](a, prior)  # (B, F), rows on the simplex
            prior = prior * (c.gamma - mask)  # used features become less available
            entropy = entropy + (-mask * torch.log(mask + self.eps)).sum(dim=1).mean()
            out = self.feature_transformers[step + 1](mask * x)  # (B, d_model + d_attention)
            d = F.relu(out[:, : c.d_model])  # (B, d_model)
            decision = decision + d
            a = out[:, c.d_model :]  # (B, d_attention)
            masks.append(mask)
            step_weights.append(d.sum(dim=1, keepdim=True))  # (B, 1): eta_b, this step's contribution
        return decision, torch.stack(masks, dim=1), torch.stack(step_weights, dim=1), entropy

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> the summed decision (B, d_model): what the final Linear map reads."""
        return self._decision_steps(x)[0]

    def forward(self, x: torch.Tensor) -> TabNetOutput:
        decision, masks, weights, entropy = self._decision_steps(x)  # masks (B, n_steps, F)
        importance = (weights * masks).sum(dim=1)  # (B, F)
        importance = importance / importance.sum(dim=1, keepdim=True).clamp(min=self.eps)
        return TabNetOutput(
            logits=self.head(self.dropout(decision)),  # (B, num_classes)
            masks=masks,
            feature_importance=importance,
            step_weights=weights.squeeze(-1),  # (B, n_steps)
            sparsity_loss=entropy / self.config.n_steps,
        )


def tabnet_loss(output: TabNetOutput, targets: torch.Tensor, lambda_sparse: float = 1e-3) -> torch.Tensor:
    """Cross-entropy on the logits plus `lambda_sparse` times the mask entropy (the paper's L_sparse)."""
    return F.cross_entropy(output.logits, targets) + lambda_sparse * output.sparsity_loss
