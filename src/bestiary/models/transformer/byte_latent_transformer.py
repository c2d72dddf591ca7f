"""Byte Latent Transformer (BLT): a language model over raw bytes that thinks in patches.

"Byte Latent Transformer: Patches Scale Better Than Tokens" (Pagnoni et al., 2024, arXiv:2412.09871).

No tokenizer: the input is UTF-8 bytes (vocabulary 256). Bytes are grouped into variable-length
patches, and the expensive "latent" transformer runs once per PATCH instead of once per byte:

  bytes (B, T) --byte embeddings + hashed n-gram embeddings--> (B, T, d_local)
    --local encoder: small causal transformer over bytes-->            h (B, T, d_local)
    --pool each patch: cross-attention, query = mean of its bytes-->   (B, P, d_model)
    --latent transformer: causal over patches-->                       z (B, P, d_model)
    --local decoder: byte t cross-attends to z of the patches BEFORE its own (plus a learned
      start vector), then a small causal transformer over bytes-->    logits (B, T, 256)

Patching ("where do patches start?"):
  "fixed":   every `patch_size` bytes;
  "entropy": a small byte language model (`entropy_model`, a `decoder_only`) predicts each next
             byte; a patch starts where its prediction entropy exceeds `entropy_threshold`
             (hard-to-predict bytes such as the first letters of a word get more compute).
             The paper trains the entropy model separately first; do the same: train
             `model.entropy_model` as an ordinary byte LM (it runs under no_grad inside BLT).

Causality: byte t only sees bytes <= t in the local encoder, and only latents of patches that
end before t's patch starts, so logits[t] depends on bytes <= t only (tested).

Simplified w.r.t. the paper (scaled down for learning): one local encoder/decoder layer each by
default, cross-attention only once on each side (the paper interleaves it in every local layer),
hashed n-grams for n in (3, 4) with a simple polynomial hash instead of n = 3..8 with a rolling
hash, RoPE everywhere, and no patch-size-dependent FLOP matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import (
    CrossAttention,
    RotaryEmbedding,
    check_shape,
    check_tokens,
    make_norm,
    transformer_block,
)
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256  # bytes
    d_model: int = 128  # latent (patch) transformer width
    d_local: int = option(64, min=1)  # byte-level encoder/decoder width
    n_layers: int = 4  # latent transformer blocks
    n_local_layers: int = option(1, min=0)  # blocks in the local encoder and in the local decoder
    n_heads: int = 4
    d_ff: int = 352
    max_seq_len: int = 1024  # in bytes
    dropout: float = 0.0
    patching: str = option("fixed", choices=("fixed", "entropy"))  # "fixed" or "entropy"
    patch_size: int = 4  # bytes per patch for fixed patching
    entropy_threshold: float = 2.0  # nats; entropy patching starts a patch above this
    n_hash_buckets: int = option(4096, min=0)  # hashed byte n-gram embeddings (0 disables them)
    ngram_sizes: tuple[int, ...] = option((3, 4), min=1)


class ByteLM(nn.Module):
    """The small byte-level language model whose next-byte entropy decides where patches start:
    one causal transformer block (RoPE, SwiGLU, RMSNorm). (B, T) bytes -> (B, T, vocab) logits."""

    def __init__(self, vocab_size: int, d_model: int, n_heads: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.block = transformer_block(
            d_model, n_heads, 2 * d_model, rope=RotaryEmbedding(d_model // n_heads)
        )
        self.norm = make_norm("rmsnorm", d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, byte_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.block(self.embed(byte_ids))))


@register(
    "byte_latent_transformer",
    family="transformer",
    config=Config,
    summary="Byte-level LM: local byte encoder, patch-level latent transformer, local byte decoder; "
    "fixed or entropy-based patches.",
    paper="Byte Latent Transformer: Patches Scale Better Than Tokens",
    year=2024,
    arxiv="2412.09871",
    input_kind="tokens",
    causal=True,
    tiny=dict(d_model=32, d_local=16, n_layers=1, n_heads=2, d_ff=64, max_seq_len=64, n_hash_buckets=64),
    outputs="byte logits (B, T, 256)",
)
class ByteLatentTransformer(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if config.patching not in ("fixed", "entropy"):
            raise ValueError(f"patching must be 'fixed' or 'entropy', got {config.patching!r}")
        self.config = c = config
        self.num_features = c.d_local
        self.byte_embed = nn.Embedding(c.vocab_size, c.d_local)
        self.hash_embeds = nn.ModuleList(
            nn.Embedding(c.n_hash_buckets, c.d_local) for _ in (c.ngram_sizes if c.n_hash_buckets else ())
        )
        # no parameters: one RoPE per width, shared by the blocks of that width
        local_rope, latent_rope = (
            RotaryEmbedding(c.d_local // c.n_heads),
            RotaryEmbedding(c.d_model // c.n_heads),
        )

        def blocks(n: int, d: int, rope: RotaryEmbedding) -> nn.ModuleList:
            d_ff = c.d_ff * d // c.d_model
            return nn.ModuleList(
                transformer_block(d, c.n_heads, d_ff, rope=rope, dropout=c.dropout) for _ in range(n)
            )

        self.local_encoder = blocks(c.n_local_layers, c.d_local, local_rope)
        self.pool_norm = make_norm("rmsnorm", c.d_local)
        self.pool_attn = CrossAttention(c.d_local, c.n_heads, bias=False)
        self.to_latent = nn.Linear(c.d_local, c.d_model, bias=False)
        self.latent = blocks(c.n_layers, c.d_model, latent_rope)
        self.latent_norm = make_norm("rmsnorm", c.d_model)
        self.start_latent = nn.Parameter(torch.zeros(c.d_model))  # what the first patch's bytes see
        self.from_latent = nn.Linear(c.d_model, c.d_local, bias=False)
        self.dec_norm = make_norm("rmsnorm", c.d_local)
        self.dec_attn = CrossAttention(c.d_local, c.n_heads, bias=False)
        self.local_decoder = blocks(c.n_local_layers, c.d_local, local_rope)
        self.norm = make_norm("rmsnorm", c.d_local)
        self.head = nn.Linear(c.d_local, c.vocab_size, bias=False)
        self.entropy_model = None
        if c.patching == "entropy":
            self.entropy_model = ByteLM(c.vocab_size, c.d_local, c.n_heads)

    # ------------------------------------------------------------------------------ patching
    def patch_starts(self, byte_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: True where a new patch begins (always at t = 0)."""
        B, T = byte_ids.shape
        if self.config.patching == "fixed":
            starts = torch.arange(T, device=byte_ids.device) % self.config.patch_size == 0
            return starts.expand(B, T)
        with torch.no_grad():
            logp = self.entropy_model(byte_ids).log_softmax(-1)  # (B, T, V): predicts byte t+1 at t
            entropy = -(logp.exp() * logp).sum(-1)  # (B, T)
        # the entropy of predicting byte t is computed at t-1: a hard-to-guess byte opens a patch
        starts = torch.zeros(B, T, dtype=torch.bool, device=byte_ids.device)
        starts[:, 1:] = entropy[:, :-1] > self.config.entropy_threshold
        starts[:, 0] = True
        return starts

    def patch_ids(self, byte_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) long: index of the patch each byte belongs to (0, 0, 0, 1, 1, 2, ...)."""
        return self.patch_starts(byte_ids).long().cumsum(dim=1) - 1

    def _ngram_embeddings(self, byte_ids: torch.Tensor) -> torch.Tensor:
        """Sum over n of an embedding of a hash of the n bytes ending at t (causal)."""
        out = torch.zeros(*byte_ids.shape, self.config.d_local, device=byte_ids.device)
        for n, table in zip(self.config.ngram_sizes, self.hash_embeds):
            padded = nn.functional.pad(byte_ids, (n - 1, 0))  # (B, T + n - 1): zeros before the start
            grams = padded.unfold(1, n, 1)  # (B, T, n): the n bytes ending at each t
            code = torch.zeros_like(byte_ids)
            for i in range(n):  # polynomial hash, reduced at every step so it never overflows
                code = (code * 257 + grams[..., i]) % 1_000_000_007
            out = out + table(code % self.config.n_hash_buckets)
        return out

    # ------------------------------------------------------------------------------- forward
    def forward(self, byte_ids: torch.Tensor, patch_ids: torch.Tensor | None = None) -> torch.Tensor:
        """byte_ids (B, T) in 0..255 -> next-byte logits (B, T, 256). `patch_ids` overrides patching."""
        return self.forward_head(self.forward_features(byte_ids, patch_ids))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, T, 256)

    def forward_features(self, byte_ids: torch.Tensor, patch_ids: torch.Tensor | None = None) -> torch.Tensor:
        """byte_ids (B, T) -> the local decoder's normed states (B, T, d_local), one per byte."""
        c = self.config
        check_tokens(byte_ids, c.vocab_size, name="byte_ids")
        B, T = byte_ids.shape
        if c.max_seq_len < T:
            raise ValueError(f"sequence of {T} bytes exceeds max_seq_len={c.max_seq_len}")
        if patch_ids is None:
            patch_ids = self.patch_ids(byte_ids)
        check_shape(patch_ids, "B T", name="patch_ids", B=B, T=T)
        P = int(patch_ids.max()) + 1
        # local encoder over bytes
        h = self.byte_embed(byte_ids) + (self._ngram_embeddings(byte_ids) if self.hash_embeds else 0)
        for blk in self.local_encoder:
            h = blk(h)  # (B, T, d_local)
        # bytes -> patches: each patch query (mean of its bytes) attends to its own bytes only
        member = patch_ids[:, None, :] == torch.arange(P, device=h.device)[None, :, None]  # (B, P, T)
        counts = member.sum(-1, keepdim=True).clamp(min=1)  # (B, P, 1); 0 for patches past the end
        pooled = (member.float() @ h) / counts  # (B, P, d_local)
        pooled = pooled + self.pool_attn(self.pool_norm(pooled), self.pool_norm(h), mask=member[:, None])
        z = self.to_latent(pooled)  # (B, P, d_model)
        for blk in self.latent:
            z = blk(z)  # one step per patch, not per byte
        z = self.latent_norm(z)
        # patches -> bytes: byte t in patch p may read the start vector and latents 0 .. p-1
        context = torch.cat([self.start_latent.expand(B, 1, -1), z], dim=1)  # (B, P + 1, d_model)
        context = self.from_latent(context)  # (B, P + 1, d_local)
        visible = torch.arange(P + 1, device=h.device)[None, None, :] <= patch_ids[:, :, None]  # (B, T, P+1)
        d = h + self.dec_attn(self.dec_norm(h), context, mask=visible[:, None])
        for blk in self.local_decoder:
            d = blk(d)
        return self.norm(d)

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        return torch.randint(0, config.vocab_size, (batch, min(16, config.max_seq_len)))
