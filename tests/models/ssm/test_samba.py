"""Samba: the Mamba / sliding-window-attention alternation, the window written out naively in
float64, and whole-sequence == chunked == token-by-token decoding past the window."""

import math

import torch

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.mamba import MambaMixer
from bestiary.layers.mlp import SwiGLU
from bestiary.layers.positions import apply_rotary

SMALL = dict(vocab_size=64, d_model=16, n_heads=4, n_kv_heads=2, d_ff=24, sliding_window=3, d_state=4)


def test_blocks_alternate_mamba_and_sliding_window_attention_each_with_an_mlp():
    model = bestiary.build("samba", **SMALL, n_layers=6)
    kinds = [type(b.mixer) for b in model.blocks]
    assert kinds == [MambaMixer, MultiHeadAttention] * 3
    assert all(isinstance(b.mlp, SwiGLU) for b in model.blocks)
    assert all(b.mixer.window == 3 and b.mixer.causal for b in model.blocks[1::2])


def _naive_window_attention(attn, x, window):
    """softmax over keys t - window + 1 .. t only, one query at a time (the definition)."""
    B, T, _ = x.shape
    H, Hkv, Dh = attn.n_heads, attn.n_kv_heads, attn.head_dim
    q = attn.q_proj(x).view(B, T, H, Dh).transpose(1, 2)
    k = attn.k_proj(x).view(B, T, Hkv, Dh).transpose(1, 2)
    v = attn.v_proj(x).view(B, T, Hkv, Dh).transpose(1, 2)
    cos, sin = attn.rope.cos_sin(torch.arange(T))
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    out = torch.zeros(B, H, T, Dh, dtype=x.dtype)
    for h in range(H):
        g = h // (H // Hkv)  # the key/value head this query head shares
        for t in range(T):
            lo = max(0, t - window + 1)
            scores = q[:, h, t : t + 1] @ k[:, g, lo : t + 1].transpose(-1, -2) / math.sqrt(Dh)
            out[:, h, t] = (scores.softmax(-1) @ v[:, g, lo : t + 1])[:, 0]
    return attn.out_proj(out.transpose(1, 2).reshape(B, T, H * Dh))


def test_sliding_window_layer_equals_the_windowed_softmax_written_out():
    torch.manual_seed(0)
    model = bestiary.build("samba", **SMALL, n_layers=2).double()
    attn = model.blocks[1].mixer
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    torch.testing.assert_close(attn(x), _naive_window_attention(attn, x, window=3))


def test_decoding_past_the_window_equals_the_full_forward():
    torch.manual_seed(0)
    model = bestiary.build("samba", **SMALL, n_layers=4).double().eval()
    tokens = torch.randint(0, 64, (2, 11))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache), model(tokens[:, 5:7], cache=cache)]
        steps += [model(tokens[:, t : t + 1], cache=cache) for t in range(7, 11)]
    torch.testing.assert_close(torch.cat(steps, 1), full)
