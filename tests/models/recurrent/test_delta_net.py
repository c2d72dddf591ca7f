"""DeltaNet: the mixer's chunkwise form equals its recurrence; the cache continues the sequence;
the layer is the paper's equations (checked against a naive float64 re-computation)."""

import pytest
import torch
import torch.nn.functional as F
from delta_helpers import assert_cache_steps_equal_full, assert_chunkwise_equals_recurrent, randomize

import bestiary
from bestiary.models.recurrent.delta_net import Config, DeltaNetMixer

D = 12


def _mixer(mode="chunkwise", chunk_size=4):
    return DeltaNetMixer(Config(d_model=D, n_heads=2, kernel_size=3, mode=mode, chunk_size=chunk_size))


def test_chunkwise_equals_recurrent_outputs_and_gradients():
    assert_chunkwise_equals_recurrent(_mixer, D)


def test_cache_steps_equal_the_full_sequence():
    assert_cache_steps_equal_full(_mixer(), D)


def test_layer_matches_the_naive_equations():
    """Oracle: conv + SiLU, L2-normed q, k, S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T,
    o_t = S_t^T q_t / sqrt(d), per-head RMSNorm, out projection, one token at a time in float64."""
    torch.manual_seed(1)
    m = randomize(_mixer()).double()
    x = torch.randn(1, 7, D, dtype=torch.float64)
    H, d = 2, D // 2
    qkv = torch.cat([x @ m.q_proj.weight.T, x @ m.k_proj.weight.T, x @ m.v_proj.weight.T], -1)
    qkv = F.silu(F.conv1d(F.pad(qkv.transpose(1, 2), (2, 0)), m.conv.conv.weight, groups=3 * D)).transpose(
        1, 2
    )
    beta = torch.sigmoid(x @ m.b_proj.weight.T)
    outs = []
    S = torch.zeros(H, d, d, dtype=torch.float64)
    for t in range(7):
        q, k, v = qkv[0, t].view(3, H, d)
        heads = []
        for h in range(H):
            kh = k[h] / (k[h].pow(2).sum() + 1e-6).sqrt()  # the layer's l2 norm with its eps
            qh = q[h] / (q[h].pow(2).sum() + 1e-6).sqrt() / d**0.5
            S[h] = S[h] + beta[0, t, h] * torch.outer(kh, v[h] - S[h].T @ kh)
            o = S[h].T @ qh
            heads.append(o / o.pow(2).mean().add(m.out_norm.eps).sqrt() * m.out_norm.weight)
        outs.append(torch.cat(heads) @ m.out_proj.weight.T)
    torch.testing.assert_close(m(x)[0], torch.stack(outs), rtol=1e-10, atol=1e-12)


def test_language_model_cache_and_bad_input():
    torch.manual_seed(0)
    model = bestiary.build("delta_net", tiny=True).eval()
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :4], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(4, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="D=12"):
        _mixer()(torch.randn(1, 3, 5))
