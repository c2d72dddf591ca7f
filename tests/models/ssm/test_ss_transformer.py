"""SPADE (ss_transformer): the bottom mixer written naively (windowed softmax attention and the S4D
kernel as a Toeplitz product, float64) is the oracle; only the bottom layer has an SSM; the window
is respected; whole == chunked == token by token."""

import torch
import torch.nn.functional as F
from ssm_helpers import assert_cache_steps_equal_full

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.ssm_kernels import direct_causal_conv
from bestiary.models.ssm.ss_transformer import SPADEMixer


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("ss_transformer", tiny=True, **overrides).double().eval()


def test_bottom_layer_is_local_attention_beside_an_ssm():
    model = _build(n_layers=3)
    assert isinstance(model.blocks[0].mixer, SPADEMixer)
    assert all(type(b.mixer) is MultiHeadAttention for b in model.blocks[1:])
    mixer = model.blocks[0].mixer
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    att = mixer.attention
    q, k, v = (p(x).view(2, 10, 2, 8).transpose(1, 2) for p in (att.q_proj, att.k_proj, att.v_proj))
    scores = q @ k.transpose(-1, -2) / 8**0.5  # (B, H, T, T)
    t = torch.arange(10)
    visible = (t[:, None] - t[None, :] >= 0) & (t[:, None] - t[None, :] < 4)  # window 4
    local = (scores.masked_fill(~visible, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(2, 10, 16)
    local = att.out_proj(local)
    global_ = direct_causal_conv(x, mixer.ssm.kernel(10)) + mixer.ssm.D * x
    expected = mixer.merge(torch.cat([local, F.gelu(global_)], -1))
    torch.testing.assert_close(mixer(x), expected)


def test_whole_equals_chunks_equals_token_steps():
    for mode in ("convolution", "recurrent"):
        cache = assert_cache_steps_equal_full(_build(mode=mode, n_layers=3), 64, length=12)
        assert cache[0].ssm["h"].shape == (2, 16, 4) and cache[0].attention.length == 12
