"""Free Transformer: a decoder that conditions on per-token random latents injected mid-stack.

"The Free Transformer" (François Fleuret, 2025, arXiv:2510.17558).

A decoder-only transformer models P(S) one token at a time; it never "decides" anything that is
not a token. The Free Transformer adds a random latent Z_t per position, trained as a conditional
VAE, cheaply:

  1. the first L/2 blocks run as usual on the tokens: X = blocks[:L/2](embed(S));
  2. Z_t is a one-hot vector over C = 2^H values (H random bits). A linear map turns it into
     R_t in R^D, and R is added to X only where block L/2+1 computes its KEYS AND VALUES
     (its queries still come from X); the remaining blocks run as usual;
  3. generation: every Z_t is drawn uniformly (the prior);
     training: Z is drawn from an encoder Q(Z | S) = ONE extra non-causal block whose queries are
     a learned constant vector ζ (plus RoPE positions) and whose keys/values are X, followed by a
     linear readout to H bit logits. The encoder sees the WHOLE sequence, so Z can carry
     information about the future that the decoder then learns to use;
  4. the "Binary Mapper" samples the H bits, forms the one-hot Z, and passes gradients with the
     straight-through trick Y = onehot(Z) + G - stop_grad(G), G = the probabilities of all C codes;
  5. loss = cross-entropy + (1/T) Σ_t max(0, KL(Q(Z_t | S) || uniform) - κ)   ("free bits" κ).

Scaled down: H = `n_latent_bits` (the paper uses 16, i.e. 65,536 codes; 8 here), a small Llama-style
stack, and the KV-cache prefill path of the paper is left out (forward always recomputes).

    out = model(tokens)                        # training mode: Z from the encoder
    loss = free_transformer_loss(out, tokens, kappa=model.config.free_bits)
    model.eval(); out = model(tokens, z=model.sample_prior(B, T))   # generation-time latents
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers import (
    Block,
    CrossAttention,
    RotaryEmbedding,
    check_shape,
    check_tokens,
    make_mlp,
    make_norm,
    transformer_block,
)
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4  # decoder blocks; Z is injected before block n_layers // 2
    n_heads: int = 4
    n_kv_heads: int | None = None
    d_ff: int = 352
    max_seq_len: int = 512
    dropout: float = 0.0
    n_latent_bits: int = option(8, min=1, max=16)  # H: Z_t takes one of 2^H values
    free_bits: float = 0.5 * math.log(2)  # κ: KL per token below this is free (nats)
    rope_theta: float = 10000.0


@dataclass
class FreeTransformerOutput:
    logits: torch.Tensor  # (B, T, vocab)
    kl: torch.Tensor  # (B, T): KL(Q(Z_t|S) || uniform) in nats (zeros when Z came from the caller)
    bit_logits: torch.Tensor | None  # (B, T, H) encoder logits, None when Z came from the caller


@register(
    "free_transformer",
    family="transformer",
    config=Config,
    summary="Decoder conditioned on per-token random latents injected mid-stack, trained as a conditional VAE.",
    paper="The Free Transformer",
    year=2025,
    arxiv="2510.17558",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=32, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=32, n_latent_bits=3),
    outputs="FreeTransformerOutput(logits (B, T, vocab), kl (B, T), bit_logits (B, T, H)); "
    "loss: free_transformer_loss",
)
class FreeTransformer(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if config.n_layers < 2:
            raise ValueError("the Free Transformer needs n_layers >= 2 (Z goes in the middle)")
        self.config = c = config
        self.num_features = c.d_model
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)  # shared, no parameters
        half = c.n_layers // 2

        def block(i: int) -> Block:
            if i != half:
                return transformer_block(
                    c.d_model, c.n_heads, c.d_ff, n_kv_heads=c.n_kv_heads, rope=self.rope, dropout=c.dropout
                )
            # the injection block: its attention reads keys and values from another sequence
            # (x + R) on the same positions, so it is causal cross-attention
            injection = CrossAttention(
                c.d_model, c.n_heads, n_kv_heads=c.n_kv_heads, bias=False, causal=True, rope=self.rope
            )
            return Block(c.d_model, injection, make_mlp("swiglu", c.d_model, c.d_ff), norm="rmsnorm")

        self.blocks = nn.ModuleList(block(i) for i in range(c.n_layers))
        self.norm = make_norm("rmsnorm", c.d_model)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        # encoder Q(Z | S): one non-causal block with a learned constant query ζ
        self.zeta = nn.Parameter(torch.randn(c.d_model) * 0.02)
        self.enc_norm_q = make_norm("rmsnorm", c.d_model)
        self.enc_norm_kv = make_norm("rmsnorm", c.d_model)
        self.enc_attn = CrossAttention(
            c.d_model, c.n_heads, n_kv_heads=c.n_kv_heads, bias=False, rope=self.rope
        )
        self.enc_mlp_norm = make_norm("rmsnorm", c.d_model)
        self.enc_mlp = make_mlp("swiglu", c.d_model, c.d_ff)
        self.enc_readout = nn.Linear(c.d_model, c.n_latent_bits)  # H bit logits
        # Z (one-hot over 2^H codes) -> R in R^D, added to the keys/values of the middle block
        self.latent_proj = nn.Linear(2**c.n_latent_bits, c.d_model, bias=False)
        codes = torch.arange(2**c.n_latent_bits)
        bits = (codes[:, None] >> torch.arange(c.n_latent_bits)) & 1  # (C, H): the bits of each code
        self.register_buffer("code_bits", bits.float(), persistent=False)

    @property
    def n_codes(self) -> int:
        return 2**self.config.n_latent_bits

    def sample_prior(
        self, batch: int, seq_len: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniform latent codes (B, T) in 0 .. 2^H - 1: what generation uses."""
        return torch.randint(0, self.n_codes, (batch, seq_len), generator=generator, device=self.zeta.device)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Middle-stack states (B, T, D) -> bit logits (B, T, H). Non-causal: sees the whole sequence."""
        B, T, D = x.shape
        q = self.zeta.expand(B, T, D)  # (B, T, D): the same query vector everywhere, RoPE adds position
        h = q + self.enc_attn(self.enc_norm_q(q), self.enc_norm_kv(x))
        h = h + self.enc_mlp(self.enc_mlp_norm(h))
        return self.enc_readout(h)  # (B, T, H)

    def binary_mapper(self, bit_logits: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Bit logits (B, T, H) -> Y (B, T, C): one-hot of the sampled code, with straight-through
        gradients from the probabilities G of all C codes (Y = onehot + G - G.detach())."""
        log_p1, log_p0 = F.logsigmoid(bit_logits), F.logsigmoid(-bit_logits)  # log P(bit=1), log P(bit=0)
        log_g = log_p1 @ self.code_bits.T + log_p0 @ (1 - self.code_bits).T  # (B, T, C): log P(code)
        g = log_g.exp()
        if sample:
            bits = torch.bernoulli(torch.sigmoid(bit_logits))  # (B, T, H)
        else:  # the most likely code, deterministic
            bits = (bit_logits > 0).float()
        index = (bits * 2 ** torch.arange(bits.shape[-1], device=bits.device)).sum(-1).long()  # (B, T)
        one_hot = F.one_hot(index, self.n_codes).to(g.dtype)  # (B, T, C)
        return one_hot + g - g.detach()

    def forward(self, tokens: torch.Tensor, z: torch.Tensor | None = None) -> FreeTransformerOutput:
        """tokens (B, T) -> FreeTransformerOutput.

        z: latent codes (B, T) long (e.g. `sample_prior`) to use instead of the encoder. Without z,
        the encoder infers them: sampled in training mode, the most likely code in eval mode.
        """
        hidden, kl, bit_logits = self._decode(tokens, z)
        return FreeTransformerOutput(self.lm_head(hidden), kl, bit_logits)

    def forward_features(self, tokens: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) -> the decoder's final normed states (B, T, d_model), before lm_head."""
        return self._decode(tokens, z)[0]

    def _decode(
        self, tokens: torch.Tensor, z: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(final normed states (B, T, D), KL (B, T), bit logits (B, T, H) or None)."""
        c = self.config
        check_tokens(tokens, c.vocab_size)
        B, T = tokens.shape
        if c.max_seq_len < T:
            raise ValueError(f"sequence of {T} exceeds max_seq_len={c.max_seq_len}")
        half = c.n_layers // 2
        x = self.embed(tokens)  # (B, T, D)
        for blk in self.blocks[:half]:
            x = blk(x)
        bit_logits = None
        if z is None:
            bit_logits = self.encode(x)  # (B, T, H)
            y = self.binary_mapper(bit_logits, sample=self.training)  # (B, T, C)
            kl = kl_to_uniform(bit_logits)  # (B, T)
        else:
            check_shape(z, "B T", name="z", B=B, T=T)
            y = F.one_hot(z, self.n_codes).float()
            kl = torch.zeros(B, T, device=x.device)
        r = self.latent_proj(y)  # (B, T, D)
        # the injection block: queries from x, keys and values from x + r
        mid = self.blocks[half]
        x = x + mid.mixer(mid.mixer_norm(x), mid.mixer_norm(x + r))
        x = x + mid.mlp(mid.mlp_norm(x))
        for blk in self.blocks[half + 1 :]:
            x = blk(x)
        return self.norm(x), kl, bit_logits

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        return torch.randint(0, config.vocab_size, (batch, min(16, config.max_seq_len)))


def kl_to_uniform(bit_logits: torch.Tensor) -> torch.Tensor:
    """KL(Q || uniform over 2^H codes) for H independent bits, (B, T, H) -> (B, T), in nats.

    Per bit with P(1) = p: p log(2p) + (1-p) log(2(1-p)) = log 2 - entropy(p); bits add up.
    """
    p = torch.sigmoid(bit_logits)
    entropy = -(p * F.logsigmoid(bit_logits) + (1 - p) * F.logsigmoid(-bit_logits))
    return (math.log(2) - entropy).sum(-1)


def free_transformer_loss(out: FreeTransformerOutput, tokens: torch.Tensor, kappa: float) -> torch.Tensor:
    """Next-token cross-entropy + mean over tokens of max(0, KL_t - κ)."""
    V = out.logits.shape[-1]
    ce = F.cross_entropy(out.logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))
    return ce + (out.kl - kappa).clamp(min=0).mean()
