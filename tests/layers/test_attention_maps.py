"""attention_weights / record_attention: the recomputed softmax, applied to the layer's values,
must reproduce the layer's own output for every position option (rope, window, alibi, GQA)."""

import pytest
import torch

import bestiary
from bestiary.layers import MultiHeadAttention, RotaryEmbedding
from bestiary.layers.attention_maps import attention_distance, attention_weights, record_attention


def _output_from_weights(attn: MultiHeadAttention, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    _, _, v = attn._project_qkv(x)
    v = attn._split_heads(v, attn.n_kv_heads).repeat_interleave(attn.n_heads // attn.n_kv_heads, dim=1)
    out = (w @ v).transpose(1, 2).flatten(2)  # (B, T, H * Dh)
    return attn.out_proj(out)


@pytest.mark.parametrize(
    "options",
    [
        dict(causal=True),
        dict(causal=False),
        dict(causal=True, rope=RotaryEmbedding(8)),
        dict(causal=True, window=3, rope=RotaryEmbedding(8)),
        dict(causal=True, alibi=True),
        dict(causal=True, n_kv_heads=2, rope=RotaryEmbedding(8, scaling_factor=2.0)),
        dict(causal=True, fused_qkv=True),
    ],
)
def test_weights_reproduce_the_layer_output(options):
    torch.manual_seed(0)
    attn = MultiHeadAttention(32, 4, **options).eval()
    x = torch.randn(2, 9, 32)
    w = attention_weights(attn, x)
    assert w.shape == (2, 4, 9, 9)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 9), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(_output_from_weights(attn, x, w), attn(x), atol=1e-5)
    if options.get("causal"):
        assert (w.triu(1) == 0).all()
    if options.get("window"):
        assert (w.tril(-options["window"]) == 0).all()


def test_record_attention_names_every_layer_and_removes_its_hooks():
    torch.manual_seed(0)
    model = bestiary.build(
        "rnope_swa", vocab_size=64, d_model=32, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=64,
        max_seq_len=64, sliding_window=4,
    )  # fmt: skip
    tokens = torch.randint(0, 64, (1, 12))
    with record_attention(model) as maps:
        model(tokens)
    assert sorted(maps) == [f"blocks.{i}.mixer" for i in range(4)]
    assert (maps["blocks.0.mixer"].tril(-4) == 0).all()  # a sliding-window RoPE layer
    assert maps["blocks.3.mixer"][0, :, -1, 0].gt(0).all()  # the NoPE layer sees the whole context
    model(tokens)  # hooks are gone: nothing recorded, nothing raised
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_attention_distance():
    w = torch.zeros(3, 3)
    w[0, 0] = 1.0
    w[1, 0] = 1.0  # one back
    w[2, 0], w[2, 2] = 0.5, 0.5  # half two back, half here
    assert torch.allclose(attention_distance(w), torch.tensor([0.0, 1.0, 1.0]))
