"""TMRoPE: Time-aligned Multimodal RoPE, rotary positions with three axes (time, height, width), with
audio and video interleaved by their timestamps.

Paper: "Qwen2.5-Omni Technical Report" (Xu, Guo, He et al., Qwen team, 2025, arXiv:2503.20215);
M-RoPE from Qwen2-VL (arXiv:2409.12191).

A token's position is a triple (t, h, w). The head dimension's rotary frequencies are split into
three sections, rotated by t, h and w respectively (`mrope_sections`; Qwen2.5-Omni: 16, 24, 24 of
the 64 frequencies of a 128-wide head):

- text: t = h = w = the usual running index, so a text-only sequence is exactly ordinary RoPE
  (tested);
- an image of (h x w) merged patches: t constant, h and w the patch's row and column;
- video: t advances with real time, `position_per_second` (25) IDs per second, i.e. one ID per
  40 ms, whatever the frame rate; audio: one token per 40 ms, t = its index;
- video with its audio: both are cut into chunks of `seconds_per_chunk` (2 s) and laid out
  video chunk, audio chunk, video chunk, ... so the tokens of the same 2 seconds sit together in
  the sequence, and their t IDs (shared time axis) align;
- after each multimodal segment, the next position starts at (the largest ID so far) + 1.

`tmrope_position_ids(segments)` builds the (3, T) IDs from a description of the sequence; it
equals transformers' Qwen2.5-Omni `get_rope_index` on the same layout (tested). The model is a
Llama-style decoder whose attention rotates q and k with these IDs: `model(tokens,
position_ids=ids)` with ids (3, B, T); without them, text positions. After a multimodal prompt,
decoding continues with the caller's IDs (max + 1, max + 2, ...), as in transformers.

Simplified: the vision and audio encoders that produce the media tokens are out of scope; media
positions are token embeddings here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import make_mlp
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_shape, check_tokens
from bestiary.layers.kv_cache import Cache, KVCache
from bestiary.layers.norms import make_norm
from bestiary.layers.positions import apply_rotary
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = 2
    d_ff: int = 352
    max_seq_len: int | None = None  # positions are IDs, not table rows
    position_per_second: int = option(25, min=1)  # t IDs per second of audio / video
    seconds_per_chunk: int = option(2, min=1)  # audio / video interleaving unit
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


def mrope_sections(head_dim: int) -> tuple[int, int, int]:
    """How many of the head_dim / 2 frequencies each axis (t, h, w) gets: 1/4, then halves of the
    rest (Qwen2.5-Omni: 16, 24, 24 of 64)."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return t, h, half - t - h


def vision_ids(start: int, t_ids: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(3, frames * height * width) IDs of a grid: t per frame, h per row, w per column, from `start`."""
    n = len(t_ids)
    t = t_ids.view(-1, 1).expand(-1, height * width).flatten()
    h = torch.arange(height).view(1, -1, 1).expand(n, -1, width).flatten()
    w = torch.arange(width).view(1, 1, -1).expand(n, height, -1).flatten()
    return torch.stack([t, h, w]) + start


def tmrope_position_ids(
    segments: list[tuple],
    *,
    position_per_second: int = 25,
    seconds_per_chunk: int = 2,
    spatial_merge: int = 2,
) -> torch.Tensor:
    """(3, T) position IDs for a sequence described segment by segment:

    ("text", n); ("image", frames, h, w); ("video", frames, h, w, seconds_per_frame);
    ("audio", n_audio_tokens); ("video_audio", frames, h, w, seconds_per_frame, n_audio_tokens).
    h, w are patch grids before the spatial merge (tokens: h * w / spatial_merge² per frame). Each
    media segment is wrapped in one start and one end marker token (video_audio: two of each, at
    the same position), which take text positions."""
    pieces: list[torch.Tensor] = []

    def next_id() -> int:
        return int(pieces[-1].max()) + 1 if pieces else 0

    def text(n: int, copies: int = 1) -> None:
        if n:
            start = next_id()
            for _ in range(copies):
                pieces.append(torch.arange(n).expand(3, -1) + start)

    for kind, *sizes in segments:
        if kind == "text":
            text(sizes[0])
            continue
        text(1, copies=2 if kind == "video_audio" else 1)  # start marker(s)
        start = next_id()
        if kind == "audio":
            pieces.append(torch.arange(sizes[0]).expand(3, -1) + start)
        else:
            frames, h, w = sizes[0], sizes[1] // spatial_merge, sizes[2] // spatial_merge
            seconds_per_frame = 1.0 if kind == "image" else sizes[3]
            t_ids = (torch.arange(frames) * seconds_per_frame * position_per_second).long()
            video = vision_ids(start, t_ids, h, w)  # (3, frames * h * w)
            if kind != "video_audio":
                pieces.append(video)
            else:  # interleave by time: chunk j holds the tokens with t in [j, j + 1) * ids_per_chunk
                audio = torch.arange(sizes[4]).expand(3, -1) + start
                ids_per_chunk = position_per_second * seconds_per_chunk
                last = max(int(video[0].max()), int(audio[0].max())) - start  # the latest time, relative
                for j in range(last // ids_per_chunk + 1):
                    for media in (video, audio):
                        in_chunk = (media[0] - start) // ids_per_chunk == j
                        pieces.append(media[:, in_chunk])
        text(1, copies=2 if kind == "video_audio" else 1)  # end marker(s)
    return torch.cat(pieces, dim=1)


class MultimodalRotary(nn.Module):
    """RoPE whose frequency sections turn by the t, h and w IDs. cos/sin for ids (3, B, T)."""

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        self.sections = mrope_sections(head_dim)
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def cos_sin(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = ids[..., None].float() * self.inv_freq  # (3, B, T, Dh/2): every axis, every frequency
        # frequency section a turns by axis a: t for the first, h for the second, w for the third
        angles = torch.cat(
            [part[axis] for axis, part in enumerate(angles.split(self.sections, dim=-1))], dim=-1
        )
        angles = torch.cat([angles, angles], dim=-1)  # (B, T, Dh): pair i uses dims i and i + Dh/2
        return angles.cos(), angles.sin()


class TMRoPEAttention(MultiHeadAttention):
    """Causal GQA attention with q and k rotated by 3-axis position IDs."""

    def __init__(self, d_model: int, n_heads: int, *, rotary: MultimodalRotary, **kwargs):
        super().__init__(d_model, n_heads, causal=True, **kwargs)
        self.rotary = rotary

    def forward(
        self, x: torch.Tensor, *, cache: KVCache | None = None, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, D); position_ids (3, B, T) long (None: text positions after the cache)."""
        check_shape(x, "B T D", name="x", D=self.d_model)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        if position_ids is None:
            position_ids = torch.arange(start, start + T, device=x.device).expand(3, B, T)
        check_shape(position_ids, "A B T", name="position_ids", A=3, B=B, T=T)
        q, k, v = self._project_qkv(x)
        q = self._split_heads(q, self.n_heads)  # (B, H, T, Dh)
        k = self._split_heads(k, self.n_kv_heads)  # (B, Hkv, T, Dh)
        v = self._split_heads(v, self.n_kv_heads)
        cos, sin = self.rotary.cos_sin(position_ids)  # (B, T, Dh)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)
        return self._attend(q, k, v, None, start)


class TMRoPEBlock(nn.Module):
    """Pre-norm block whose attention takes position IDs: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, c: Config, rotary: MultimodalRotary):
        super().__init__()
        self.mixer_norm = make_norm("rmsnorm", c.d_model, c.norm_eps)
        self.mixer = TMRoPEAttention(c.d_model, c.n_heads, n_kv_heads=c.n_kv_heads, bias=False, rotary=rotary)
        self.mlp_norm = make_norm("rmsnorm", c.d_model, c.norm_eps)
        self.mlp = make_mlp("swiglu", c.d_model, c.d_ff)

    def init_cache(self, batch: int, **kwargs) -> KVCache:
        return self.mixer.init_cache(batch, **kwargs)

    def forward(self, x, *, cache=None, position_ids=None):
        x = x + self.mixer(self.mixer_norm(x), cache=cache, position_ids=position_ids)
        return x + self.mlp(self.mlp_norm(x))


@register(
    "tmrope",
    family="attention",
    config=Config,
    summary="TMRoPE: 3-axis (time, height, width) rotary positions; audio and video interleaved in time-aligned chunks.",
    paper="Qwen2.5-Omni Technical Report",
    year=2025,
    arxiv="2503.20215",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, d_ff=64),
    outputs="logits (B, T, vocab_size)",
)
class TMRoPELM(CausalLM):
    def __init__(self, config: Config):
        c = config
        rotary = MultimodalRotary(c.d_model // c.n_heads, c.rope_theta)
        super().__init__(config, [TMRoPEBlock(c, rotary) for _ in range(c.n_layers)])

    def forward_features(
        self,
        tokens: torch.Tensor,
        *,
        cache: Cache | None = None,
        padding_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens (B, T), position_ids (3, B, T) or None -> final-normed hidden states (B, T, d_model)."""
        if padding_mask is not None:
            raise ValueError("TMRoPELM takes no padding mask: batch prompts of equal length")
        check_tokens(tokens, self.config.vocab_size)
        if cache is not None:
            cache.check(self, tokens.shape[0])
        x = self.tok_embed(tokens)  # (B, T, d_model)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if cache is None else cache[i], position_ids=position_ids)
        if cache is not None:
            cache.advance(tokens.shape[1])
        return self.norm(x)

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        cache: Cache | None = None,
        padding_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        features = self.forward_features(
            tokens, cache=cache, padding_mask=padding_mask, position_ids=position_ids
        )
        return self.forward_head(features)
