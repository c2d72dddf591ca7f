"""Attention: manual path vs SDPA, our MHA vs torch.nn.MultiheadAttention, masks, GQA/MQA, caching.

Everything about positions is a construction option of the mixer (causal, window, rope, alibi), so
comparisons build two layers with the same weights (`_twin`) rather than passing flags per call."""

import pytest
import torch
import torch.nn.functional as F

from bestiary.layers import (
    CrossAttention,
    KVCache,
    MultiHeadAttention,
    RotaryEmbedding,
    ShapeError,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
    sliding_window_mask,
)

ATOL = 1e-5  # float32 reductions in a different order


def _twin(attn: MultiHeadAttention, cls=MultiHeadAttention, **options) -> MultiHeadAttention:
    """A layer with attn's sizes and weights but other construction options."""
    other = cls(
        attn.d_model, attn.n_heads, n_kv_heads=attn.n_kv_heads, head_dim=attn.head_dim,
        fused_qkv=attn.fused_qkv, bias=attn.out_proj.bias is not None, **options,
    )  # fmt: skip
    other.load_state_dict(attn.state_dict())
    return other.to(attn.out_proj.weight.dtype).train(attn.training)


def _qkv(B=2, H=3, Tq=5, Tk=5, D=8):
    return torch.randn(B, H, Tq, D), torch.randn(B, H, Tk, D), torch.randn(B, H, Tk, D)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("tq,tk", [(5, 5), (2, 7)])
def test_manual_equals_sdpa(causal, tq, tk):
    q, k, v = _qkv(Tq=tq, Tk=tk)
    mask = torch.rand(2, 1, tq, tk) > 0.3
    bias = torch.randn(3, tq, tk)
    for kwargs in [{}, {"attn_bias": bias}, {"scale": 1.0}]:
        a = scaled_dot_product_attention(q, k, v, mask, causal, 0.0, False, **kwargs)
        b = scaled_dot_product_attention(q, k, v, mask, causal, 0.0, True, **kwargs)
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


def test_manual_path_matches_the_formula_in_float64():
    q, k, v = (t.double() for t in _qkv())
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, manual=True), weights @ v)


def test_causal_matches_torch_sdpa_is_causal():
    q, k, v = _qkv()
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, is_causal=True, manual=True), ref, atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_torch_multihead_attention(causal):
    torch.manual_seed(0)
    d, h, T = 16, 4, 6
    base = MultiHeadAttention(d, h).eval()
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True).eval()
    with torch.no_grad():  # torch packs q, k, v into one in_proj matrix
        ref.in_proj_weight.copy_(torch.cat([base.q_proj.weight, base.k_proj.weight, base.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([base.q_proj.bias, base.k_proj.bias, base.v_proj.bias]))
        ref.out_proj.weight.copy_(base.out_proj.weight)
        ref.out_proj.bias.copy_(base.out_proj.bias)
    x = torch.randn(2, T, d)
    keep = torch.ones(2, T, dtype=torch.bool)
    keep[1, -2:] = False  # the second sequence has two padding tokens at the end
    attn_mask = torch.ones(T, T).triu(1).bool() if causal else None  # torch: True = NOT allowed
    expected, _ = ref(x, x, x, key_padding_mask=~keep, attn_mask=attn_mask, need_weights=False)
    for manual in (False, True):
        ours = _twin(base, causal=causal, manual=manual).eval()
        torch.testing.assert_close(ours(x, mask=keep), expected, atol=ATOL, rtol=1e-5)
        # a (B, T) padding mask and its (B, 1, 1, T) broadcast form are the same thing
        torch.testing.assert_close(ours(x, mask=padding_mask(keep)), expected, atol=ATOL, rtol=1e-5)


def test_cross_attention_matches_torch():
    d, h = 16, 2
    ours = CrossAttention(d, h).eval()
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.load_state_dict(ours.out_proj.state_dict())
    x, ctx = torch.randn(2, 3, d), torch.randn(2, 7, d)
    keep = torch.ones(2, 7, dtype=torch.bool)
    keep[0, 5:] = False
    expected = ref(x, ctx, ctx, key_padding_mask=~keep, need_weights=False)[0]
    torch.testing.assert_close(ours(x, ctx, mask=keep), expected, atol=ATOL, rtol=1e-5)
    with pytest.raises(ValueError, match="no per-token cache"):
        ours.init_cache(1)


def test_cross_attention_with_rope_rotates_each_sequence_by_its_own_positions():
    """Causal cross-attention over a second sequence on the same positions (the Free Transformer's
    injection) equals self-attention when that sequence is x itself."""
    torch.manual_seed(0)
    rope = RotaryEmbedding(4)
    self_attn = MultiHeadAttention(16, 4, causal=True, rope=rope).eval()
    cross = _twin(self_attn, CrossAttention, causal=True, rope=rope).eval()
    x = torch.randn(2, 6, 16)
    torch.testing.assert_close(cross(x, x), self_attn(x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_gqa_equals_mha_with_repeated_kv_weights(n_kv_heads):
    """GQA/MQA is MHA whose key/value heads are copies within each group."""
    d, h, dh = 24, 4, 6
    gqa = MultiHeadAttention(d, h, n_kv_heads=n_kv_heads, bias=False, causal=True).eval()
    mha = MultiHeadAttention(d, h, bias=False, causal=True).eval()
    rep = h // n_kv_heads
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.out_proj.weight.copy_(gqa.out_proj.weight)
        for name in ("k_proj", "v_proj"):
            w = getattr(gqa, name).weight.view(n_kv_heads, dh, d)  # (Hkv, Dh, d)
            getattr(mha, name).weight.copy_(w.repeat_interleave(rep, dim=0).reshape(h * dh, d))
    x = torch.randn(2, 5, d)
    torch.testing.assert_close(gqa(x), mha(x), atol=ATOL, rtol=1e-5)
    assert gqa.k_proj.weight.numel() == mha.k_proj.weight.numel() // rep


def test_causal_attention_ignores_the_future():
    attn = MultiHeadAttention(8, 2, causal=True).eval()
    bidirectional = _twin(attn).eval()
    x = torch.randn(1, 6, 8)
    y = x.clone()
    y[:, 4:] = torch.randn(1, 2, 8)  # change only positions 4 and 5
    torch.testing.assert_close(attn(x)[:, :4], attn(y)[:, :4])
    assert not torch.allclose(bidirectional(x)[:, :4], bidirectional(y)[:, :4])  # without the mask it leaks


def test_masks_follow_their_definitions():
    m = causal_mask(3, 5)  # 3 new queries at absolute positions 2, 3, 4
    for i in range(3):
        for j in range(5):
            assert m[i, j] == (j <= i + 2)
    w = sliding_window_mask(4, 6, window=2)
    for i in range(4):
        for j in range(6):
            assert w[i, j] == (0 <= (i + 2) - j < 2)
    with pytest.raises(ValueError, match="window"):
        sliding_window_mask(2, 2, 0)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        padding_mask(torch.ones(3))


def test_sliding_window_attention_is_local():
    causal = MultiHeadAttention(8, 2, causal=True).eval()
    x = torch.randn(1, 8, 8)
    torch.testing.assert_close(_twin(causal, causal=True, window=8)(x), causal(x), atol=ATOL, rtol=0)
    local = _twin(causal, causal=True, window=3).eval()
    y = x.clone()
    y[:, 0] = torch.randn(8)  # position 0 is outside the window of positions >= 3 (window 3)
    torch.testing.assert_close(local(x)[:, 3:], local(y)[:, 3:])
    assert not torch.allclose(causal(x)[:, 3:], causal(y)[:, 3:])  # a full causal layer does see it
    with pytest.raises(ValueError, match="causal"):
        MultiHeadAttention(8, 2, window=3)  # a window without causality is not a sliding window


def test_left_padding_does_not_change_real_positions():
    attn = MultiHeadAttention(8, 2, causal=True).eval()
    x = torch.randn(1, 4, 8)
    padded = torch.cat([torch.randn(1, 2, 8), x], dim=1)  # two garbage pad tokens on the left
    keep = torch.tensor([[False, False, True, True, True, True]])
    out = attn(padded, mask=keep)
    assert torch.isfinite(out).all()  # fully masked pad rows stay finite
    torch.testing.assert_close(out[:, 2:], attn(x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("positions", ["rope", "alibi", "window"])
def test_kv_cache_gives_the_same_outputs(n_kv_heads, positions):
    options = {"rope": {"rope": RotaryEmbedding(4)}, "alibi": {"alibi": True}, "window": {"window": 3}}
    attn = MultiHeadAttention(16, 4, n_kv_heads=n_kv_heads, causal=True, **options[positions]).eval()
    x = torch.randn(2, 7, 16)
    full = attn(x)
    cache = attn.init_cache(2)
    parts, pos = [], 0
    for n in (3, 1, 1, 2):  # a prompt, then single tokens, then two at once
        parts.append(attn(x[:, pos : pos + n], cache=cache))
        pos += n
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=ATOL, rtol=0)
    assert cache.length == 7 and cache.keys.shape == (2, n_kv_heads, 7, 4)


def test_bidirectional_attention_cannot_decode_incrementally():
    with pytest.raises(ValueError, match="causal=True"):
        MultiHeadAttention(8, 2).init_cache(1)


def test_kv_cache_bookkeeping():
    cache = KVCache()
    assert cache.length == 0 and len(cache) == 0
    k = torch.randn(1, 2, 3, 4)
    out_k, _ = cache.update(k, k)
    assert out_k is k and cache.length == 3
    out_k, _ = cache.update(torch.ones(1, 2, 2, 4), torch.ones(1, 2, 2, 4))
    assert out_k.shape == (1, 2, 5, 4)
    torch.testing.assert_close(out_k[..., :3, :], k)
    cache.crop(4)
    assert cache.length == 4
    assert cache.nbytes() == 2 * 4 * 2 * 4 * 4  # keys + values, 4 positions, float32
    with pytest.raises(ValueError, match="shape"):
        cache.update(k, torch.randn(1, 2, 3, 5))
    with pytest.raises(ValueError, match="shape"):
        cache.update(torch.randn(1, 3, 1, 4), torch.randn(1, 3, 1, 4))  # other head count


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        MultiHeadAttention(8, 2, 1)  # n_kv_heads must be named
    attn = MultiHeadAttention(8, 2, n_kv_heads=1, head_dim=4, bias=False)
    assert attn.q_proj.bias is None and attn.k_proj.out_features == 4
    q, k, v = _qkv()
    out = scaled_dot_product_attention(q, k, v, None, True, 0.0, True)
    assert out.shape == q.shape


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        MultiHeadAttention(12, 4, n_kv_heads=3)
    with pytest.raises(ValueError, match="shape"):
        MultiHeadAttention(8, 2)(torch.randn(2, 3, 9))


@pytest.mark.parametrize("causal", [False, True])
def test_grouped_kv_heads_manual_equals_sdpa_and_explicit_repeat(causal):
    q, k, v = torch.randn(2, 6, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    mask = torch.rand(2, 1, 5, 5) > 0.3
    expected = F.scaled_dot_product_attention(
        q,
        k.repeat_interleave(3, dim=1),  # query heads 0-2 use k/v head 0, heads 3-5 use head 1
        v.repeat_interleave(3, dim=1),
        attn_mask=(mask & causal_mask(5, 5)) if causal else mask,
    )
    for manual in (False, True):
        got = scaled_dot_product_attention(q, k, v, mask, causal, 0.0, manual)
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        scaled_dot_product_attention(q, torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8))


@pytest.mark.parametrize("bias", [True, False, "k_only_missing"])
@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_stacked_qkv_training_path_equals_three_projections(bias, n_kv_heads):
    """With gradients on, q/k/v come from one matmul against the stacked weights; without, from three.
    Both must give the same outputs, and the stacked path the same gradients as three F.linear calls."""
    torch.manual_seed(0)
    # DINOv3: q and v have biases, k has none
    qkv_bias = (True, False, True) if bias == "k_only_missing" else bool(bias)
    attn = MultiHeadAttention(32, 4, n_kv_heads=n_kv_heads, qkv_bias=qkv_bias, causal=True).double()
    assert (attn.k_proj.bias is None) == (bias != True)  # noqa: E712
    x = torch.randn(2, 7, 32, dtype=torch.float64, requires_grad=True)
    out = attn(x)
    with torch.no_grad():
        out_nograd = attn(x)
    torch.testing.assert_close(out, out_nograd, atol=1e-12, rtol=0)
    out.square().sum().backward()
    stacked_grads = [p.grad.clone() for p in attn.parameters()] + [x.grad.clone()]

    attn.zero_grad()
    x.grad = None
    B, T, _ = x.shape
    q = attn.q_proj(x).view(B, T, 4, 8).transpose(1, 2)  # (B, H, T, Dh)
    k = attn.k_proj(x).view(B, T, n_kv_heads, 8).transpose(1, 2)
    v = attn.v_proj(x).view(B, T, n_kv_heads, 8).transpose(1, 2)
    ref = scaled_dot_product_attention(q, k, v, is_causal=True)
    ref = attn.out_proj(ref.transpose(1, 2).reshape(B, T, 32))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    ref.square().sum().backward()
    for got, want in zip(stacked_grads, [p.grad for p in attn.parameters()] + [x.grad], strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("n_kv_heads", [4, 2])
@pytest.mark.parametrize("cross", [False, True])
def test_fused_qkv_equals_three_projections_with_the_same_weights(n_kv_heads, cross):
    """fused_qkv=True (one q|k|v Linear, GPT-2's c_attn) == three projections holding its row blocks."""
    torch.manual_seed(0)
    cls = CrossAttention if cross else MultiHeadAttention
    three = cls(32, 4, n_kv_heads=n_kv_heads, bias=True, causal=not cross).double()
    fused = cls(32, 4, n_kv_heads=n_kv_heads, bias=True, causal=not cross, fused_qkv=True).double()
    assert not hasattr(fused, "q_proj") and fused.qkv_proj.out_features == (4 + 2 * n_kv_heads) * 8
    with torch.no_grad():
        fused.qkv_proj.weight.copy_(
            torch.cat([three.q_proj.weight, three.k_proj.weight, three.v_proj.weight])
        )
        fused.qkv_proj.bias.copy_(torch.cat([three.q_proj.bias, three.k_proj.bias, three.v_proj.bias]))
        fused.out_proj.load_state_dict(three.out_proj.state_dict())
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    inputs = (x, torch.randn(2, 7, 32, dtype=torch.float64)) if cross else (x,)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(fused(*inputs), three(*inputs), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "mask, error, message",
    [
        (torch.ones(2, 5), TypeError, "must be boolean"),  # a float mask: additive or keep? refused
        (torch.ones(2, 4, dtype=torch.bool), ShapeError, r"\(B, T_keys\) = \(2, 5\)"),
        (torch.ones(3, 5, dtype=torch.bool), ShapeError, r"\(B, T_keys\) = \(2, 5\)"),
        (torch.ones(5, dtype=torch.bool), ShapeError, "broadcastable"),
        (torch.ones(2, 3, 5, 5, dtype=torch.bool), ShapeError, "broadcastable"),  # 3 heads, not 4
    ],
)
def test_masks_of_the_wrong_dtype_or_shape_are_refused_by_name(mask, error, message):
    attention = MultiHeadAttention(16, 4, causal=True)
    with pytest.raises(error, match=message):
        attention(torch.randn(2, 5, 16), mask=mask)


def test_integer_padding_masks_from_tokenizers_still_work():
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 4).eval()
    x, keep = torch.randn(2, 5, 16), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    torch.testing.assert_close(attention(x, mask=keep), attention(x, mask=keep.bool()))
