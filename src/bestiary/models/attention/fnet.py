"""FNet: a BERT-style encoder whose attention is replaced by a Fourier transform.

Paper: "FNet: Mixing Tokens with Fourier Transforms" (Lee-Thorp, Ainslie, Eckstein & Ontañón,
2021, arXiv:2105.03824).

Attention mixes tokens with weights computed from the input. FNet asks how much of that is needed
and mixes with a fixed, parameter-free linear map instead: the real part of a 2-D discrete
Fourier transform, over the hidden dimension and then over the sequence,

    y = Re(FFT_seq(FFT_hidden(x)))

Every output position is a fixed combination of every input position, so information still
flows across the whole sequence, in O(T log T) and with no parameters. The paper reports 92-97% of
BERT's GLUE accuracy while training 80% faster on GPUs. The rest is BERT: post-norm blocks, a
GELU MLP, token + position + segment embeddings (followed by a projection), a tanh pooler.

Bidirectional (each output reads the whole sequence, future included), so no cache, and no
padding mask either: the transform mixes padding in, as in the paper (pad to a fixed length).
Weights map one for one from `transformers`' FNetModel (`HF_FNET_NAMES`); preset `fnet_base`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import Block, make_mlp
from bestiary.layers.checks import check_tokens
from bestiary.layers.positions import LearnedPositions
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32000
    d_model: int = 768
    n_layers: int = 12
    d_ff: int = 3072
    max_seq_len: int = 512
    type_vocab_size: int = option(4, min=1)  # segments
    dropout: float = 0.1
    norm_eps: float = 1e-12
    mlp: str = "gelu_tanh"  # FNet's "gelu_new"


class FourierMixer(nn.Module):
    """x (B, T, D) -> Re(FFT over T of FFT over D of x): parameter-free token mixing."""

    def forward(self, x: torch.Tensor, *, cache: object = None) -> torch.Tensor:
        if cache is not None:
            raise ValueError("FNet's Fourier mixing reads the whole sequence: it cannot decode step by step")
        wide = x if x.dtype in (torch.float32, torch.float64) else x.float()  # no half-precision FFT on CPU
        return torch.fft.fft(torch.fft.fft(wide, dim=-1), dim=-2).real.type_as(x)  # (B, T, D)

    def init_cache(self, batch: int) -> None:
        raise ValueError("FNet's Fourier mixing is bidirectional: there is no cache to decode with")


class FNetEmbeddings(nn.Module):
    """token + position + segment embeddings, LayerNorm, a projection, dropout: (B, T) -> (B, T, D)."""

    def __init__(self, c: Config):
        super().__init__()
        self.tok = nn.Embedding(c.vocab_size, c.d_model)
        self.pos = LearnedPositions(c.max_seq_len, c.d_model)
        self.segment = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.projection = nn.Linear(c.d_model, c.d_model)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, tokens: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(tokens)
        x = self.tok(tokens) + self.pos(tokens.shape[1]) + self.segment(token_type_ids)  # (B, T, D)
        return self.drop(self.projection(self.norm(x)))


FNET_BASE = dict(vocab_size=32000, d_model=768, n_layers=12, d_ff=3072, max_seq_len=512, type_vocab_size=4)


@register(
    "fnet",
    family="attention",
    config=Config,
    summary="FNet: a BERT-style encoder mixing tokens with a parameter-free 2-D Fourier transform.",
    paper="FNet: Mixing Tokens with Fourier Transforms",
    year=2021,
    arxiv="2105.03824",
    input_kind="tokens",
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, d_ff=64, max_seq_len=32, dropout=0.0),
    presets={
        "fnet_base": Preset(
            FNET_BASE, params=82_861_056, source="google/fnet-base: transformers FNetModel, pooler included"
        )
    },
    outputs="hidden states (B, T, d_model); pool(hidden) -> (B, d_model)",
)
class FNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.embed = FNetEmbeddings(c)
        self.blocks = nn.ModuleList(
            Block(
                c.d_model,
                FourierMixer(),
                make_mlp(c.mlp, c.d_model, c.d_ff, bias=True, dropout=c.dropout),
                norm="layernorm",
                norm_eps=c.norm_eps,
                dropout=c.dropout,
                pre_norm=False,  # post-norm, as BERT
            )
            for _ in range(c.n_layers)
        )
        self.pooler = nn.Linear(c.d_model, c.d_model)
        for module in self.modules():  # BERT's initialisation
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) long -> hidden states (B, T, d_model)."""
        check_tokens(tokens, self.config.vocab_size)
        if tokens.shape[1] > self.config.max_seq_len:
            raise ValueError(f"{tokens.shape[1]} tokens exceed max_seq_len={self.config.max_seq_len}")
        x = self.embed(tokens, token_type_ids)
        for block in self.blocks:
            x = block(x)
        return x

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The encoder has no head: its features are its hidden states (B, T, d_model)."""
        return self(tokens)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """tanh(W h_first + b), (B, T, d) -> (B, d), as BERT's pooler."""
        return torch.tanh(self.pooler(hidden[:, 0]))


# ---------------------------------------------- transformers FNetModel names -> ours (one for one)
HF_FNET_NAMES = [
    (r"embeddings\.word_embeddings\.weight", r"embed.tok.weight"),
    (r"embeddings\.position_embeddings\.weight", r"embed.pos.weight"),
    (r"embeddings\.token_type_embeddings\.weight", r"embed.segment.weight"),
    (r"embeddings\.LayerNorm\.(weight|bias)", r"embed.norm.\1"),
    (r"embeddings\.projection\.(weight|bias)", r"embed.projection.\1"),
    (r"encoder\.layer\.(\d+)\.fourier\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.mixer_norm.\2"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"blocks.\1.mlp.up.\2"),
    (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"blocks.\1.mlp.down.\2"),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.mlp_norm.\2"),
    (r"pooler\.dense\.(weight|bias)", r"pooler.\1"),
]
