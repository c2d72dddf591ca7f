"""MambaMixer and Mamba2Mixer: every form of the recurrence gives the same outputs and gradients,
a sequence fed whole, in pieces or token by token through the cache gives the same outputs, and
the initialisation is the paper's. (The transformers oracles are in tests/models/ssm/.)"""

import math

import pytest
import torch

import bestiary.layers.mamba as mamba_layer
from bestiary.layers.mamba import SCANS, Mamba2Mixer, MambaMixer, safe_chunk, segment_sum


def _mamba(scan, chunk_size=8, seed=0):
    torch.manual_seed(seed)
    return MambaMixer(12, d_state=5, d_conv=3, expand=2, scan=scan, chunk_size=chunk_size).double()


def _mamba2(mode, chunk_size=8, seed=0, n_groups=2):
    torch.manual_seed(seed)
    mixer = Mamba2Mixer(
        12, d_state=5, d_conv=3, expand=2, head_dim=6, n_groups=n_groups, chunk_size=chunk_size
    )
    return mixer.double()


def _x(T=29, seed=1):
    return torch.randn(2, T, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _output_and_grads(mixer, x):
    x = x.clone().requires_grad_()
    y = mixer(x)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return y.detach(), x.grad, {n: p.grad for n, p in mixer.named_parameters()}


def _assert_same(first, second):
    torch.testing.assert_close(first[0], second[0])
    torch.testing.assert_close(first[1], second[1])
    for name, grad in first[2].items():
        torch.testing.assert_close(second[2][name], grad, msg=name)


@pytest.mark.parametrize("scan", ["cumsum", "hillis_steele"])
def test_parallel_scans_equal_the_loop_outputs_and_gradients(scan):
    x = _x()  # 29 positions: chunks of 8 leave a short last one
    _assert_same(_output_and_grads(_mamba("sequential"), x), _output_and_grads(_mamba(scan), x))


@pytest.mark.parametrize("scan", SCANS)
def test_whole_equals_pieces_equals_token_by_token(scan):
    mixer, x = _mamba(scan), _x(T=13)
    with torch.no_grad():
        whole = mixer(x)
        cache = mixer.init_cache(2)
        pieces = [mixer(x[:, :5], cache=cache), mixer(x[:, 5:9], cache=cache)]
        pieces += [mixer(x[:, t : t + 1], cache=cache) for t in range(9, 13)]
    torch.testing.assert_close(torch.cat(pieces, 1), whole)
    assert cache.length == 13
    assert cache["ssm"].shape == (2, 24, 5) and cache["conv"].shape == (2, 24, 2)  # constant size


def test_the_cumsum_chunk_shrinks_when_the_decay_is_steep(monkeypatch):
    # trained models reach dt * |A| of several units per step: 64 such steps underflow float32
    mixer = MambaMixer(12, d_state=5, scan="cumsum", chunk_size=64)
    with torch.no_grad():
        mixer.dt_proj.bias.fill_(3.0)  # dt ~ 3, A down to -5: up to -15 per step
        x = torch.randn(1, 200, 12)
        assert safe_chunk(3.05 * 5, torch.float32, 64) == int(43.6 / (3.05 * 5))
        assert safe_chunk(3.05 * 5, torch.float64, 64) == 23  # 354 / 15.25
        y = mixer(x)
        assert torch.isfinite(y).all()
        mixer.scan = "sequential"
        torch.testing.assert_close(y, mixer(x), atol=1e-5, rtol=1e-4)
        mixer.scan = "cumsum"
        monkeypatch.setattr(mamba_layer, "safe_chunk", lambda steepest, dtype, chunk_size: chunk_size)
        assert not torch.isfinite(mixer(x)).all()  # a fixed chunk of 64 breaks


def test_initialisation_follows_the_paper():
    torch.manual_seed(0)
    mixer = MambaMixer(64, d_state=16, dt_min=0.001, dt_max=0.1)
    torch.testing.assert_close(-torch.exp(mixer.A_log[3]), -torch.arange(1.0, 17.0))  # S4D-real
    assert mixer.dt_rank == 4 and torch.all(mixer.D == 1)
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 0.001 - 1e-6 and dt.max() <= 0.1 + 1e-6
    # log-uniform: about half the step sizes below the geometric mean of the range
    assert 0.35 < (dt < math.sqrt(0.001 * 0.1)).float().mean() < 0.65


def test_a_cache_from_another_mixer_is_refused():
    mixer, other = _mamba("sequential"), _mamba("sequential")
    with pytest.raises(ValueError, match="made by another MambaMixer"):
        mixer(_x(T=2), cache=other.init_cache(2))


def test_unknown_scan_is_refused():
    with pytest.raises(ValueError, match="scan must be one of"):
        MambaMixer(8, scan="blelloch")


def test_segment_sum_is_the_sum_between_positions():
    log_a = torch.randn(5, dtype=torch.float64)
    out = segment_sum(log_a)
    for t in range(5):
        for s in range(5):
            expected = log_a[s + 1 : t + 1].sum() if s <= t else -math.inf
            assert math.isclose(out[t, s].item(), float(expected), abs_tol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 29, 64])
def test_chunked_ssd_equals_the_recurrence_outputs_and_gradients(chunk_size):
    x = _x()  # 29 positions: 4 and 7 leave a padded last chunk, 64 is one padded chunk
    reference = _output_and_grads(_mamba2("recurrent"), x)
    _assert_same(reference, _output_and_grads(_mamba2("chunked", chunk_size), x))


@pytest.mark.parametrize("mode", ["chunked", "recurrent"])
def test_mamba2_whole_equals_pieces_equals_token_by_token(mode):
    mixer, x = _mamba2(mode, chunk_size=4), _x(T=14)
    with torch.no_grad():
        whole = mixer(x)
        cache = mixer.init_cache(2)
        pieces = [mixer(x[:, :6], cache=cache), mixer(x[:, 6:11], cache=cache)]
        pieces += [mixer(x[:, t : t + 1], cache=cache) for t in range(11, 14)]
    torch.testing.assert_close(torch.cat(pieces, 1), whole)
    assert cache["ssm"].shape == (2, 4, 6, 5)  # (B, heads, head_dim, N)


def test_mamba2_heads_of_a_group_share_b_and_c():
    mixer = _mamba2("recurrent", n_groups=2)  # 4 heads, 2 groups
    assert mixer.in_proj.out_features == 24 + (24 + 2 * 2 * 5) + 4  # z, x|B|C, dt
    assert mixer.A_log.shape == (4,)  # one scalar decay per head


def test_mamba2_refuses_a_head_dim_that_does_not_divide():
    with pytest.raises(ValueError, match="multiple of head_dim"):
        Mamba2Mixer(12, expand=2, head_dim=7)
