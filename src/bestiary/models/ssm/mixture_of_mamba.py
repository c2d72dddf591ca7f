"""Mixture-of-Mamba: Mamba with modality-specific projections (modality-aware sparsity).

Paper: "Mixture-of-Mamba: Enhancing Multi-Modal State-Space Models with Modality-Aware Sparsity"
(Weixin Liang, Junhong Shen, Genghan Zhang, Ning Dong, Luke Zettlemoyer & Lili Yu, 2025,
arXiv:2501.16295).

A multi-modal model (text interleaved with image or speech tokens, as in Chameleon or Transfusion)
feeds very different kinds of tokens through the same weights. Mixture-of-Transformers gave each
modality its own attention and FFN weights; Mixture-of-Mamba does the same for the Mamba block:
the projections (in_proj, x_proj, dt_proj, out_proj) are one set per modality, chosen by each
token's modality (a fixed rule, no learned router, so no load balancing and no dropped tokens),
while the causal conv and the state dynamics (A, D) are shared, so the one recurrent state still
runs across the whole interleaved sequence. Compute per token is that of a plain Mamba.

The modality of a token is read from its id: modalities own contiguous ranges of one shared
vocabulary (ids >= modality_boundaries[i] belong to modality i + 1), as in token-based multi-modal
models; `forward(tokens, modality=...)` can also pass (B, T) modality ids explicitly. n_experts is
the number of modalities. Simplified: Mamba-1 blocks only (the paper also builds on Mamba-2), and
no modality-specific loss weighting; with identical experts the model is exactly `mamba` (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.checks import check_shape, check_tokens
from bestiary.layers.kv_cache import Cache
from bestiary.layers.mamba import SCANS, causal_conv, inverse_softplus, sample_dt, selective_scan
from bestiary.layers.norms import make_norm
from bestiary.layers.state import NonFiniteStateError, RecurrentState
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_state: int = 16
    d_conv: int = option(4, min=1)
    expand: int = option(2, min=1)
    n_experts: int = 2  # modalities, each with its own projections
    modality_boundaries: tuple[int, ...] = option((192,), min=1)  # first id of modality 1, 2, ...
    scan: str = option("sequential", choices=SCANS)
    chunk_size: int = option(64, min=1)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


RULES = [
    Rule(
        lambda c: len(c.modality_boundaries) == c.n_experts - 1,
        "modality_boundaries={modality_boundaries} needs n_experts - 1 = {n_experts} - 1 entries",
    ),
    Rule(
        lambda c: (
            list(c.modality_boundaries) == sorted(set(c.modality_boundaries))
            and all(b < c.vocab_size for b in c.modality_boundaries)
        ),
        "modality_boundaries={modality_boundaries} must increase and stay below vocab_size={vocab_size}",
    ),
]


def routed(projections: nn.ModuleList, x: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
    """Each position through its modality's projection: x (B, T, d_in), modality (B, T) -> (B, T, d_out)."""
    out = x.new_zeros(*x.shape[:-1], projections[0].out_features)
    for index, projection in enumerate(projections):
        chosen = modality == index  # (B, T)
        out[chosen] = projection(x[chosen])  # (n_chosen, d_out)
    return out


class MoMMixer(nn.Module):
    """A Mamba-1 mixer whose in_proj, x_proj, dt_proj and out_proj are one per modality; the conv,
    A and D are shared. forward(x, modality) with modality (B, T) ids in 0..n_modalities - 1."""

    def __init__(
        self,
        d_model: int,
        n_modalities: int,
        *,
        d_state: int,
        d_conv: int,
        expand: int,
        scan: str,
        chunk_size: int,
    ):
        super().__init__()
        self.d_model, self.d_state, self.scan, self.chunk_size = d_model, d_state, scan, chunk_size
        self.d_inner = d_inner = expand * d_model
        self.dt_rank = dt_rank = math.ceil(d_model / 16)

        def per_modality(d_in: int, d_out: int, bias: bool = False) -> nn.ModuleList:
            return nn.ModuleList(nn.Linear(d_in, d_out, bias=bias) for _ in range(n_modalities))

        self.in_proj = per_modality(d_model, 2 * d_inner)
        self.x_proj = per_modality(d_inner, dt_rank + 2 * d_state)
        self.dt_proj = per_modality(dt_rank, d_inner, bias=True)
        self.out_proj = per_modality(d_inner, d_model)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner)  # shared
        self.A_log = nn.Parameter(torch.empty(d_inner, d_state))  # shared state dynamics
        self.D = nn.Parameter(torch.empty(d_inner))
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Mamba's: S4D-real A, D = 1, each modality's dt log-uniform in [0.001, 0.1]."""
        if self.A_log.is_meta:
            return
        self.A_log.copy_(
            torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).expand_as(self.A_log)
        )
        self.D.fill_(1.0)
        for dt_proj in self.dt_proj:
            nn.init.uniform_(dt_proj.weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
            dt_proj.bias.copy_(inverse_softplus(sample_dt(self.d_inner, 0.001, 0.1)))

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "ssm"))

    def forward(
        self, x: torch.Tensor, modality: torch.Tensor, *, cache: RecurrentState | None = None
    ) -> torch.Tensor:
        """x (B, T, d_model), modality (B, T) -> (B, T, d_model)."""
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        u, z = routed(self.in_proj, x, modality).chunk(2, dim=-1)  # (B, T, d_inner) each
        u, window = causal_conv(u, self.conv1d, None if cache is None else cache["conv"])
        u = F.silu(u)
        dt_low, B, C = routed(self.x_proj, u, modality).split([self.dt_rank, self.d_state, self.d_state], -1)
        dt = F.softplus(routed(self.dt_proj, dt_low, modality))  # (B, T, d_inner)
        h0 = None if cache is None else cache["ssm"]
        A = -torch.exp(self.A_log)
        y, h_last = selective_scan(u, dt, A, B, C, self.D, h0=h0, scan=self.scan, chunk_size=self.chunk_size)
        if cache is not None:
            cache["conv"], cache["ssm"] = window, h_last
            cache.length += x.shape[1]
        return routed(self.out_proj, y * F.silu(z), modality)


class MoMBlock(nn.Module):
    """x + MoMMixer(norm(x), modality): Mamba's mixer-only residual block, with the modality ids."""

    def __init__(self, mixer: MoMMixer, norm: str, norm_eps: float):
        super().__init__()
        self.mixer_norm, self.mixer = make_norm(norm, mixer.d_model, norm_eps), mixer

    def init_cache(self, batch: int) -> RecurrentState:
        return self.mixer.init_cache(batch)

    def forward(
        self, x: torch.Tensor, modality: torch.Tensor, *, cache: RecurrentState | None = None
    ) -> torch.Tensor:
        return x + self.mixer(self.mixer_norm(x), modality, cache=cache)


@register(
    "mixture_of_mamba",
    family="ssm",
    config=Config,
    summary="Mamba with modality-specific projections (one set per modality, routed by token modality); conv and A shared.",
    paper="Mixture-of-Mamba: Enhancing Multi-Modal State-Space Models with Modality-Aware Sparsity",
    year=2025,
    arxiv="2501.16295",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=4, modality_boundaries=(24,)),
    outputs="logits (B, T, vocab_size)",
    rules=RULES,
)
class MixtureOfMamba(CausalLM):
    """tokens (B, T) -> logits (B, T, vocab_size); each token's modality from its id (or `modality`)."""

    def __init__(self, config: Config):
        c = config
        mixer_options = dict(
            d_state=c.d_state, d_conv=c.d_conv, expand=c.expand, scan=c.scan, chunk_size=c.chunk_size
        )
        blocks = [
            MoMBlock(MoMMixer(c.d_model, c.n_experts, **mixer_options), c.norm, c.norm_eps)
            for _ in range(c.n_layers)
        ]
        super().__init__(config, blocks)
        self.register_buffer(
            "boundaries", torch.tensor(c.modality_boundaries, dtype=torch.long), persistent=False
        )

    def modality_of(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T) modality ids: how many boundaries each id has reached."""
        return torch.bucketize(tokens.contiguous(), self.boundaries, right=True)

    def forward_features(
        self,
        tokens: torch.Tensor,
        *,
        cache: Cache | None = None,
        modality: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens (B, T) (and optionally modality (B, T)) -> final-normed features (B, T, d_model)."""
        check_tokens(tokens, self.config.vocab_size)
        if padding_mask is not None:
            raise ValueError(
                "MixtureOfMamba reads tokens left to right with a running state and cannot skip padding"
            )
        if modality is None:
            modality = self.modality_of(tokens)
        check_shape(modality, "B T", name="modality", B=tokens.shape[0], T=tokens.shape[1])
        if modality.numel() and not (
            int(modality.min()) >= 0 and int(modality.max()) < self.config.n_experts
        ):
            raise ValueError(f"modality ids must be in 0..{self.config.n_experts - 1}")
        if cache is not None and len(cache.layers) != len(self.blocks):
            raise ValueError("this cache was made by another model; use model.init_cache(batch)")
        x = self.tok_embed(tokens)  # (B, T, d_model)
        for i, block in enumerate(self.blocks):
            try:
                x = block(x, modality, cache=None if cache is None else cache[i])
            except NonFiniteStateError as error:
                raise NonFiniteStateError(f"blocks.{i}: {error}") from None
        if cache is not None:
            cache.advance(tokens.shape[1])
        return self.norm(x)

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        cache: Cache | None = None,
        modality: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens (B, T) long -> logits (B, T, vocab_size)."""
        features = self.forward_features(tokens, cache=cache, modality=modality, padding_mask=padding_mask)
        return self.forward_head(features)
