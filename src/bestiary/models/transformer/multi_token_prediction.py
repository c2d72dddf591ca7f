"""Multi-token prediction: one shared trunk, n independent heads predicting tokens t+1 .. t+n.

"Better & Faster Large Language Models via Multi-token Prediction" (Gloeckle, Youbi Idrissi,
Rozière, Lopez-Paz & Synnaeve, 2024, arXiv:2404.19737).

A causal transformer trunk turns tokens into hidden states z_t. Head k (k = 0 .. n_future-1) is
one more transformer block of its own, followed by the SHARED final norm and unembedding, and
predicts token t+k+1 from z_t. Training sums the n cross-entropies, which pushes the trunk to
encode what comes several tokens ahead; at inference head 0 is an ordinary next-token model and
heads 1.. can draft tokens for self-speculative decoding.

The paper saves memory by running the heads' forward/backward one after another; here all heads
run in one go (simpler, same gradients).

    out = model(tokens)                       # MTPOutput(logits (B, n_future, T, vocab))
    loss = mtp_loss(out.logits, tokens)       # mean over heads of next-(k+1) cross-entropy
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers import Block, RotaryEmbedding, check_tokens, make_norm, transformer_block
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4  # trunk blocks (the heads add n_future more)
    n_heads: int = 4
    n_kv_heads: int | None = None
    d_ff: int = 352
    max_seq_len: int = 512
    dropout: float = 0.0
    n_future: int = option(4, min=1)  # number of heads: predict t+1 .. t+n_future (the paper's n)
    rope_theta: float = 10000.0


@dataclass
class MTPOutput:
    logits: torch.Tensor  # (B, n_future, T, vocab): [:, k, t] predicts token t + k + 1


@register(
    "multi_token_prediction",
    family="transformer",
    config=Config,
    summary="Shared causal trunk with n independent transformer-block heads predicting tokens t+1..t+n.",
    paper="Better & Faster Large Language Models via Multi-token Prediction",
    year=2024,
    arxiv="2404.19737",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=32, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=32, n_future=2),
    outputs="MTPOutput(logits (B, n_future, T, vocab_size)); loss: mtp_loss(logits, tokens)",
)
class MultiTokenPrediction(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if config.n_future < 1:
            raise ValueError(f"n_future must be >= 1, got {config.n_future}")
        self.config = c = config
        self.num_features = c.d_model
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)  # shared, no parameters

        def block() -> Block:
            return transformer_block(
                c.d_model, c.n_heads, c.d_ff, n_kv_heads=c.n_kv_heads, rope=self.rope, dropout=c.dropout
            )

        self.trunk = nn.ModuleList(block() for _ in range(c.n_layers))
        self.heads = nn.ModuleList(block() for _ in range(c.n_future))  # one block per future offset
        self.norm = make_norm("rmsnorm", c.d_model)  # shared by all heads
        self.unembed = nn.Linear(c.d_model, c.vocab_size, bias=False)  # shared by all heads

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) -> the shared trunk's states z (B, T, d_model), which every head reads."""
        check_tokens(tokens, self.config.vocab_size)
        if tokens.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence of {tokens.shape[1]} exceeds max_seq_len={self.config.max_seq_len}")
        z = self.embed(tokens)  # (B, T, d_model)
        for blk in self.trunk:
            z = blk(z)
        return z

    def forward(self, tokens: torch.Tensor) -> MTPOutput:
        z = self.forward_features(tokens)
        # every head reads the same trunk state z_t; head k is trained on token t + k + 1
        logits = [self.unembed(self.norm(head(z))) for head in self.heads]
        return MTPOutput(torch.stack(logits, dim=1))  # (B, n_future, T, vocab)

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        return torch.randint(0, config.vocab_size, (batch, min(16, config.max_seq_len)))


def mtp_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean over heads k of the cross-entropy of logits[:, k, t] against tokens[:, t + k + 1]."""
    B, n_future, T, V = logits.shape
    if n_future >= T:
        raise ValueError(f"need more than n_future={n_future} tokens per sequence, got T={T}")
    losses = []
    for k in range(n_future):
        pred = logits[:, k, : T - k - 1]  # (B, T-k-1, V): positions that have a target k+1 ahead
        target = tokens[:, k + 1 :]  # (B, T-k-1)
        losses.append(F.cross_entropy(pred.reshape(-1, V), target.reshape(-1)))
    return torch.stack(losses).mean()
