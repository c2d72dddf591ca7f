"""Infini-attention: softmax attention inside a segment, plus a compressive memory of every earlier
segment, read and written with linear attention.

Paper: "Leave No Context Behind: Efficient Infinite Context Transformers with Infini-attention"
(Munkhdalai, Faruqui & Gopal, 2024, arXiv:2404.07143).

The sequence is read in segments of N = `segment_size` tokens. Within a segment, causal softmax
attention as usual (A_dot). Across segments, each head keeps a memory matrix M (d_k x d_v) and a
normaliser z (d_k), the state of linear attention with σ = ELU + 1:

    retrieve   A_mem = σ(Q) M_{s-1} / (σ(Q) z_{s-1})
    update     M_s = M_{s-1} + σ(K)ᵀ V                                          ("linear")
               M_s = M_{s-1} + σ(K)ᵀ (V - σ(K) M_{s-1} / (σ(K) z_{s-1}))        ("delta": only
                     what the memory cannot already retrieve is written)
               z_s = z_{s-1} + Σ_t σ(K_t)
    mix        A = sigmoid(β) A_mem + (1 - sigmoid(β)) A_dot,      β a learned scalar per head

So memory costs O(d_k d_v) per head whatever the context length. Two forms, `mode`:
"recurrent" (segment after segment; the only one for the delta update) and "parallel" (linear
update: M_{s-1} is the sum over earlier segments, a prefix sum computed for all segments at once);
tested equal in values and gradients. Decoding keeps M, z and the keys/values of the unfinished
segment (at most N - 1 of each): a bounded state.

Choices not fixed by the paper: RoPE inside the segment (queries and keys rotated by their offset
in the segment, for the local attention only; the memory reads and writes unrotated q and k, so
content matches across any distance); an empty memory (z = 0) retrieves 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import elu_plus_one
from bestiary.layers.positions import RotaryEmbedding, apply_rotary
from bestiary.layers.state import RecurrentState
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 352
    max_seq_len: int | None = None  # any length: the memory is fixed-size
    segment_size: int = option(2048, min=1)  # N (the paper: 2048 for its 1M-token passkey runs)
    memory_update: str = option("delta", choices=("linear", "delta"))
    mode: str = option("recurrent", choices=("recurrent", "parallel"))
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


RULES = (
    Rule(
        lambda c: not (c.mode == "parallel" and c.memory_update == "delta"),
        "mode='parallel' needs memory_update='linear': the delta update reads the memory it writes",
        ("mode", "memory_update"),
    ),
)


def retrieve(q: torch.Tensor, memory: torch.Tensor, normaliser: torch.Tensor) -> torch.Tensor:
    """σ(q) M / (σ(q) z): q (B, H, T, Dk), M (B, H, Dk, Dv), z (B, H, Dk) -> (B, H, T, Dv)."""
    sigma_q = elu_plus_one(q)
    denominator = (sigma_q @ normaliser[..., None]).clamp(min=1e-6)  # (B, H, T, 1); 0 only if z = 0
    return sigma_q @ memory / denominator


def update_memory(
    memory: torch.Tensor, normaliser: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rule: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Write one segment's keys and values (B, H, N, D) into (M, z)."""
    sigma_k = elu_plus_one(k)
    if rule == "delta":  # write only the part of v the memory does not already return for k
        v = v - retrieve(k, memory, normaliser)
    return memory + sigma_k.transpose(-2, -1) @ v, normaliser + sigma_k.sum(dim=-2)


class InfiniAttention(nn.Module):
    """Segment-local causal softmax attention + compressive linear-attention memory, gated per head."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        segment_size: int,
        memory_update: str = "delta",
        mode: str = "recurrent",
        rope: RotaryEmbedding | None = None,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if mode == "parallel" and memory_update == "delta":
            raise ValueError("mode='parallel' needs memory_update='linear'")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.segment_size, self.memory_update, self.mode, self.rope = segment_size, memory_update, mode, rope
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.memory_gate = nn.Parameter(torch.zeros(n_heads))  # β: sigmoid(0) = an even mix at init

    def init_cache(self, batch: int, **_: object) -> RecurrentState:
        return RecurrentState(self, batch, ("memory", "normaliser", "segment_keys", "segment_values"))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def local_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal softmax attention inside one segment. q (B, H, Tq, Dh) are the LAST Tq positions
        of the segment's keys k, v (B, H, Tk, Dh) (earlier ones came in an earlier call)."""
        t_query, t_key = q.shape[-2], k.shape[-2]
        if self.rope is not None:  # offsets inside the segment
            offsets = torch.arange(t_key, device=q.device)
            k = apply_rotary(k, *self.rope.cos_sin(offsets))
            q = apply_rotary(q, *self.rope.cos_sin(offsets[t_key - t_query :]))
        scores = q @ k.transpose(-2, -1) * self.head_dim**-0.5  # (B, H, Tq, Tk)
        causal = torch.ones(t_query, t_key, dtype=torch.bool, device=q.device).tril(t_key - t_query)
        return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1) @ v

    def _mix(self, local: torch.Tensor, from_memory: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.memory_gate)[:, None, None]  # (H, 1, 1)
        return gate * from_memory + (1 - gate) * local

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        if self.mode == "parallel" and cache is None:
            out = self._parallel(q, k, v)
        else:
            out = self._recurrent(q, k, v, cache)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_model))

    def _recurrent(self, q, k, v, cache):
        """Segment after segment, carrying (M, z) and the unfinished segment's keys and values."""
        B, H, T, Dh = q.shape
        memory = None if cache is None else cache["memory"]
        memory = q.new_zeros(B, H, Dh, Dh) if memory is None else memory
        normaliser = None if cache is None else cache["normaliser"]
        normaliser = q.new_zeros(B, H, Dh) if normaliser is None else normaliser
        seg_k = None if cache is None else cache["segment_keys"]
        seg_k = q.new_zeros(B, H, 0, Dh) if seg_k is None else seg_k
        seg_v = None if cache is None else cache["segment_values"]
        seg_v = q.new_zeros(B, H, 0, Dh) if seg_v is None else seg_v
        outputs, t = [], 0
        while t < T:
            take = min(self.segment_size - seg_k.shape[-2], T - t)  # up to the end of this segment
            q_piece = q[..., t : t + take, :]
            seg_k = torch.cat([seg_k, k[..., t : t + take, :]], dim=-2)  # (B, H, filled, Dh)
            seg_v = torch.cat([seg_v, v[..., t : t + take, :]], dim=-2)
            local = self.local_attention(q_piece, seg_k, seg_v)
            outputs.append(self._mix(local, retrieve(q_piece, memory, normaliser)))
            if seg_k.shape[-2] == self.segment_size:  # segment complete: into the memory, start afresh
                memory, normaliser = update_memory(memory, normaliser, seg_k, seg_v, self.memory_update)
                seg_k, seg_v = seg_k[..., :0, :], seg_v[..., :0, :]
            t += take
        if cache is not None:
            cache["memory"], cache["normaliser"] = memory, normaliser
            cache["segment_keys"], cache["segment_values"] = seg_k, seg_v
            cache.length += T
        return torch.cat(outputs, dim=-2)  # (B, H, T, Dh)

    def _parallel(self, q, k, v):
        """Linear update, all segments at once: M_{s-1} = Σ_{r<s} σ(K_r)ᵀ V_r (an exclusive prefix sum)."""
        B, H, T, Dh = q.shape
        N = self.segment_size
        pad = -T % N  # the last segment may be short; zero rows add nothing (σ(0) keys get zero values)
        q_seg, k_seg, v_seg = (
            torch.nn.functional.pad(t, (0, 0, 0, pad)).unflatten(2, (-1, N)) for t in (q, k, v)
        )  # (B, H, S, N, Dh)
        real = (torch.arange(T + pad, device=q.device) < T).view(-1, N)[..., None]  # (S, N, 1)
        sigma_k = elu_plus_one(k_seg) * real  # padding keys write nothing
        writes = sigma_k.transpose(-2, -1) @ v_seg  # (B, H, S, Dh, Dh): one segment's σ(K)ᵀ V
        memories = writes.cumsum(dim=2) - writes  # (B, H, S, Dh, Dh): everything before segment s
        normalisers = sigma_k.sum(dim=-2).cumsum(dim=2) - sigma_k.sum(dim=-2)  # (B, H, S, Dh)
        from_memory = retrieve(q_seg, memories, normalisers)  # (B, H, S, N, Dh)
        local = self.local_attention(q_seg, k_seg, v_seg)  # each segment alone (padding is after)
        out = self._mix(local.flatten(2, 3), from_memory.flatten(2, 3))  # (B, H, T + pad, Dh)
        return out[..., :T, :]


@register(
    "infini_attention",
    family="attention",
    config=Config,
    rules=RULES,
    summary="Infini-attention: segment-local softmax attention plus a linear-attention compressive memory, gated.",
    paper="Leave No Context Behind: Efficient Infinite Context Transformers with Infini-attention",
    year=2024,
    arxiv="2404.07143",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, segment_size=4),
    outputs="logits (B, T, vocab_size)",
)
class InfiniTransformer(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: InfiniAttention(
                c.d_model,
                c.n_heads,
                segment_size=c.segment_size,
                memory_update=c.memory_update,
                mode=c.mode,
                rope=rope,
            ),
        )
        super().__init__(config, blocks)
