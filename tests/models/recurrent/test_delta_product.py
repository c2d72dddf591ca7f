"""DeltaProduct: n_h = 1 is DeltaNet (same weights, same logits); a token's state transition is the
product of its n_h generalized Householder factors (checked against the explicit matrices); the
chunkwise form equals the recurrence; the cache continues the sequence."""

import functools

import torch
import torch.nn.functional as F
from delta_helpers import assert_cache_steps_equal_full, assert_chunkwise_equals_recurrent, randomize

import bestiary
from bestiary.models.recurrent.delta_product import Config, DeltaProductMixer

D = 12


def _mixer(mode="chunkwise", chunk_size=4, **options):
    config = Config(
        **{"d_model": D, "n_heads": 2, "kernel_size": 3, "mode": mode, "chunk_size": chunk_size, **options}
    )
    return DeltaProductMixer(config)


def test_chunkwise_equals_recurrent_outputs_and_gradients():
    for options in (dict(n_householder=3), dict(n_householder=2, gated=True, allow_neg_eigval=True)):
        assert_chunkwise_equals_recurrent(functools.partial(_mixer, **options), D, chunk_sizes=(4, 5))


def test_cache_steps_equal_the_full_sequence():
    assert_cache_steps_equal_full(_mixer(n_householder=3, gated=True), D)


def test_one_householder_step_per_token_is_delta_net():
    torch.manual_seed(0)
    product = bestiary.build("delta_product", tiny=True, n_householder=1).eval()
    delta_net = bestiary.build("delta_net", tiny=True).eval()
    delta_net.load_state_dict(product.state_dict())  # the same parameter names and shapes
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(product(tokens), delta_net(tokens), rtol=0, atol=0)


def test_a_token_applies_the_product_of_its_householder_factors():
    """With kernel_size 1 (no mixing across tokens): after token t the memory (keys x values) is
    S_t = H_{n_h} ... H_1 S_{t-1} + sum_j (H_{n_h} ... H_{j+1}) beta_j k_j v_j^T, H_j = I - beta_j k_j k_j^T,
    and the output reads S_t with the token's query; beta_j in (0, 2) with allow_neg_eigval."""
    torch.manual_seed(0)
    n_h, H, d = 3, 2, D // 2
    m = randomize(
        _mixer("recurrent", kernel_size=1, n_householder=n_h, allow_neg_eigval=True), scale=0.5
    ).double()
    x = torch.randn(1, 4, D, dtype=torch.float64)
    scale = m.conv.conv.weight[:, 0, 0]  # kernel_size 1: the conv is a per-channel scale
    q, k, v = F.silu(torch.cat([m.q_proj(x), m.k_proj(x), m.v_proj(x)], -1) * scale).split(
        [H * d, n_h * H * d, n_h * H * d], -1
    )
    k, v = k.view(4, n_h, H, d), v.view(4, n_h, H, d)
    beta = 2 * torch.sigmoid(m.b_proj(x)).view(4, n_h, H)
    S = torch.zeros(H, d, d, dtype=torch.float64)
    expected = []
    for t in range(4):
        heads = []
        for h in range(H):
            for j in range(n_h):
                kj = k[t, j, h] / (k[t, j, h].pow(2).sum() + 1e-6).sqrt()
                householder = torch.eye(d, dtype=torch.float64) - beta[t, j, h] * torch.outer(kj, kj)
                S[h] = householder @ S[h] + beta[t, j, h] * torch.outer(kj, v[t, j, h])
            qh = q[0, t].view(H, d)[h]
            o = S[h].T @ (qh / (qh.pow(2).sum() + 1e-6).sqrt() / d**0.5)
            heads.append(o / o.pow(2).mean().add(m.out_norm.eps).sqrt() * m.out_norm.weight)
        expected.append(torch.cat(heads) @ m.out_proj.weight.T)
    torch.testing.assert_close(m(x)[0], torch.stack(expected), rtol=1e-10, atol=1e-12)
