"""A configurable hybrid language model: any token mixers, stacked in the order a pattern string says.

Not one paper but the recipe behind a family of them: Jamba ("Jamba: A Hybrid Transformer-Mamba
Language Model", Lieber et al., 2024, arXiv:2403.19887), Zamba, Samba, Griffin, Nemotron-H and
others all stack residual blocks whose token mixer is sometimes attention and sometimes a
recurrence (an SSM, an RG-LRU, an LSTM). They differ mainly in WHICH mixer sits in WHICH layer, and
the studies behind them ask exactly that question (how much attention is enough? where should it
go?). This builder answers it with one string, one letter per layer:

    pattern="MMMA"    Mamba, Mamba, Mamba, attention (Jamba's 1 attention layer in 4 when tiled)

    letter  mixer                                             from
    A       causal attention, grouped-query (n_kv_heads), RoPE    layers/attention.py
    W       the same over a sliding window of `sliding_window`    layers/attention.py
    M       Mamba-1 selective SSM (`MambaMixer`)                  layers/mamba.py
    2       Mamba-2 SSD (`Mamba2Mixer`, heads of `ssm_head_dim`)  layers/mamba.py
    R       Griffin's recurrent block (conv + RG-LRU)             layers/rg_lru.py
    L       an LSTM layer (`LSTMMixer`)                           layers/rnn.py
    G       a GRU layer (`GRUMixer`)                              layers/rnn.py
    X       the xLSTM paper's mLSTM layer (`mLSTMMixer`)          layers/xlstm.py

The pattern REPEATS to fill n_layers: layer i gets pattern[i % len(pattern)], so "MMMA" with
n_layers=8 is MMMAMMMA, and a pattern as long as n_layers spells every layer out. An unknown letter
is refused (a `ConfigError` naming it and this table) before anything is built.

Every layer is a pre-norm `Block(mixer, mlp)`; mlp is the `mlp` kind of width d_ff, or none at all
when d_ff=None (a mixer-only stack like Mamba's). Decoding uses each mixer's own cache (a KVCache for
attention, a fixed-size RecurrentState for the rest), so any pattern generates token by token.
Simplified: one width and one MLP for all layers; no MoE (see jamba for that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, make_mlp
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.mamba import SCANS, SSD_MODES, Mamba2Mixer, MambaMixer
from bestiary.layers.positions import RotaryEmbedding
from bestiary.layers.rg_lru import RecurrentBlock
from bestiary.layers.rnn import GRUMixer, LSTMMixer
from bestiary.layers.xlstm import mLSTMMixer
from bestiary.options import ConfigError, Range, Rule, option
from bestiary.registry import register

#: the pattern letters and what each builds (one token mixer per layer)
MIXERS = {
    "A": "causal attention (GQA + RoPE)",
    "W": "sliding-window causal attention (GQA + RoPE)",
    "M": "Mamba-1 (MambaMixer)",
    "2": "Mamba-2 (Mamba2Mixer)",
    "R": "Griffin's RG-LRU recurrent block",
    "L": "LSTM layer",
    "G": "GRU layer",
    "X": "mLSTM layer (xLSTM)",
}
TABLE = ", ".join(f"{letter!r} = {what}" for letter, what in MIXERS.items())


@dataclass(frozen=True)
class PatternRange(Range):
    """The allowed values of `pattern`: a non-empty string. Its letters are checked by the rule
    `known_letters`, whose error names the unknown ones (a range can only say the whole value is wrong)."""

    def allows(self, value: object) -> bool:
        return isinstance(value, str) and len(value) > 0

    def describe(self) -> str:
        return f"a non-empty string, each letter one of {TABLE}"


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 8
    pattern: str = field(default="MMMA", metadata={"range": PatternRange(choices=tuple(MIXERS))})
    d_ff: int | None = 256  # the MLP after every mixer; None: mixer-only blocks
    mlp: str = "swiglu"
    n_heads: int = 4  # attention (A, W) and mLSTM (X) heads
    n_kv_heads: int | None = None  # grouped-query attention; None: as many as n_heads
    rope_theta: float = 10000.0
    sliding_window: int = option(64, min=1)  # the span of W layers
    d_state: int = 16  # N of the Mamba layers (M, 2)
    d_conv: int = option(4, min=2)  # the short causal conv of M, 2, R and X layers
    expand: int = option(2, min=1)  # d_inner = expand * d_model in M and 2 layers
    ssm_head_dim: int = option(16, min=1)  # P, the head size of Mamba-2 (2) layers
    scan: str = option("sequential", choices=SCANS)  # how M layers run a sequence
    ssd_mode: str = option("chunked", choices=SSD_MODES)  # how 2 layers run a sequence
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


def layer_letters(c: Config) -> str:
    """The letter of each layer: the pattern repeated to n_layers ("MA", 5 -> "MAMAM")."""
    unknown = sorted(set(c.pattern) - set(MIXERS))
    if unknown or not c.pattern:
        raise ConfigError(
            f"hybrid_builder: option pattern={c.pattern!r} has unknown letter(s) {unknown}: each letter "
            f"must be one of {TABLE}"
        )
    return "".join(c.pattern[i % len(c.pattern)] for i in range(c.n_layers))


def known_letters(c: Config) -> bool:
    """A rule for `bestiary.build`: raises `layer_letters`' ConfigError, which names the bad letters."""
    layer_letters(c)
    return True


def make_mixer(letter: str, c: Config, rope: RotaryEmbedding) -> nn.Module:
    """The token mixer a pattern letter stands for, built from the config."""
    if letter in "AW":
        return MultiHeadAttention(
            c.d_model,
            c.n_heads,
            n_kv_heads=c.n_kv_heads,
            bias=False,
            causal=True,
            window=c.sliding_window if letter == "W" else None,
            rope=rope,
        )
    if letter == "M":
        return MambaMixer(c.d_model, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand, scan=c.scan)
    if letter == "2":
        return Mamba2Mixer(
            c.d_model,
            d_state=c.d_state,
            d_conv=c.d_conv,
            expand=c.expand,
            head_dim=c.ssm_head_dim,
            mode=c.ssd_mode,
        )
    if letter == "R":
        return RecurrentBlock(c.d_model, lru_width=c.d_model, n_heads=c.n_heads, conv_width=c.d_conv)
    if letter == "L":
        return LSTMMixer(c.d_model)
    if letter == "G":
        return GRUMixer(c.d_model)
    return mLSTMMixer(c.d_model, c.n_heads, kernel_size=c.d_conv)  # "X"


@register(
    "hybrid_builder",
    family="meta",
    config=Config,
    summary="A hybrid LM built from a pattern string: one letter per layer picks its token mixer "
    "(attention, sliding-window attention, Mamba, Mamba-2, RG-LRU, LSTM, GRU, mLSTM).",
    paper="Jamba: A Hybrid Transformer-Mamba Language Model (the hybrid recipe, generalised)",
    year=2024,
    arxiv="2403.19887",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, pattern="MA", d_ff=32, n_heads=2, d_state=4),
    outputs="logits (B, T, vocab_size)",
    rules=[Rule(known_letters, "pattern={pattern!r} has an unknown letter")],
)
class HybridLM(CausalLM):
    def __init__(self, config: Config):
        c = config
        letters = layer_letters(c)
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)  # no parameters: one for all layers
        blocks = [
            Block(
                c.d_model,
                make_mixer(letter, c, rope),
                None if c.d_ff is None else make_mlp(c.mlp, c.d_model, c.d_ff),
                norm=c.norm,
                norm_eps=c.norm_eps,
            )
            for letter in letters
        ]
        super().__init__(config, blocks)
        self.letters = letters  # the mixer of each layer, one letter each
