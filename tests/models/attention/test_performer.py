"""performer: FAVOR+ is an unbiased estimate of the softmax kernel whose error falls with the number
of features (fixed seeds), and with many features the causal layer approaches exact softmax
attention; the three forms agree; decoding keeps a fixed state."""

import torch
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64

from bestiary.layers.linear_attention import favor_features, orthogonal_random_features

D = 4


def _kernel_estimates(q, k, n_features, draws, seed):
    g = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(draws):
        w = orthogonal_random_features(n_features, D, generator=g, dtype=torch.float64)
        estimates.append((favor_features(q, w) * favor_features(k, w)).sum(-1))
    return torch.stack(estimates)  # (draws, pairs)


def test_the_mean_over_feature_draws_is_the_softmax_kernel():
    g = torch.Generator().manual_seed(0)
    q, k = (
        0.5 * torch.randn(3, D, generator=g, dtype=torch.float64),
        0.5 * torch.randn(3, D, generator=g, dtype=torch.float64),
    )
    exact = torch.exp((q * k).sum(-1))  # (3,)
    estimates = _kernel_estimates(q, k, n_features=4, draws=4000, seed=1)
    standard_error = estimates.std(0) / 4000**0.5
    assert torch.all((estimates.mean(0) - exact).abs() < 4 * standard_error)  # unbiased
    assert standard_error.max() < 0.05 * exact.min()  # and the test has the power to see a bias


def test_the_error_falls_as_the_number_of_features_grows():
    g = torch.Generator().manual_seed(2)
    q, k = (
        0.5 * torch.randn(5, D, generator=g, dtype=torch.float64),
        0.5 * torch.randn(5, D, generator=g, dtype=torch.float64),
    )
    exact = torch.exp((q * k).sum(-1))
    errors = [
        (_kernel_estimates(q, k, m, draws=300, seed=3) - exact).pow(2).mean().item() for m in (4, 16, 64, 256)
    ]
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < errors[0] / 20  # roughly 1/m: 64 times more features, ~64 times less error


def test_many_features_approach_exact_causal_softmax_attention():
    model = build_float64("performer", n_features=8192)
    mixer = model.blocks[0].mixer
    B, T, H, Dh = 1, 8, 2, 8
    x = 0.5 * torch.randn(B, T, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    q, k, v = (p(x).view(B, T, H, Dh).transpose(1, 2) for p in (mixer.q_proj, mixer.k_proj, mixer.v_proj))
    exact = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    exact = mixer.out_proj(exact.transpose(1, 2).reshape(B, T, 16))
    approx = mixer(x)
    assert (approx - exact).norm() < 0.05 * exact.norm()
    few = build_float64("performer", n_features=8).blocks[0].mixer
    few.load_state_dict({**mixer.state_dict(), "projection": few.projection})
    assert (few(x) - exact).norm() > (approx - exact).norm()  # 8 features are worse than 8192


def test_redraw_changes_the_features():
    mixer = build_float64("performer").blocks[0].mixer
    before = mixer.projection.clone()
    mixer.redraw(torch.Generator().manual_seed(5))
    assert not torch.equal(before, mixer.projection)


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("performer"))


def test_cached_decoding_equals_the_whole():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("performer"))
    assert before == after == 2 * (2 * 2 * 16 * 9 * 8)  # (B, H, m, Dh + 1) float64 per layer
