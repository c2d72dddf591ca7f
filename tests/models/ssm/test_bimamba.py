"""BiMamba: every output depends on the future (unlike Mamba), the block equals the two directional
Mamba scans combined (forward on x, backward on the reversed x), with shared x/z and out projections."""

import pytest
import torch

import bestiary
from bestiary.layers.mamba import MambaMixer
from bestiary.models.ssm.bimamba import BiMambaMixer

TINY = dict(in_dim=6, d_model=16, n_layers=2, d_state=4)


def _x(T=11, seed=0):
    return torch.randn(2, T, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_outputs_depend_on_the_future():
    torch.manual_seed(0)
    model = bestiary.build("bimamba", **TINY).double().eval()
    x = _x()
    changed = x.clone()
    changed[:, -1] += 1.0  # only the last position changes
    with torch.no_grad():
        delta = (model(changed) - model(x)).abs().amax(dim=-1)  # (B, T)
    assert (delta[:, 0] > 1e-6).all()  # the first output sees the last input


def test_the_block_is_the_two_directional_scans_combined():
    torch.manual_seed(0)
    mixer = BiMambaMixer(16, d_state=4, d_conv=3, expand=2, scan="sequential").double()
    forward, backward = (MambaMixer(16, d_state=4, d_conv=3).double() for _ in range(2))
    forward.load_state_dict(mixer.forward_ssm.state_dict())
    backward.load_state_dict(mixer.backward_ssm.state_dict())
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    with torch.no_grad():
        expected = (forward(x) + backward(x.flip(1)).flip(1)) / 2
        torch.testing.assert_close(mixer(x), expected)


def test_the_forward_direction_alone_is_causal_and_the_projections_are_shared():
    torch.manual_seed(0)
    mixer = BiMambaMixer(16, d_state=4, d_conv=3, expand=2, scan="cumsum").double()
    x = torch.randn(1, 9, 16, dtype=torch.float64)
    changed = x.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        assert torch.equal(mixer.forward_ssm(changed)[:, :-1], mixer.forward_ssm(x)[:, :-1])
    assert mixer.backward_ssm.in_proj.weight is mixer.forward_ssm.in_proj.weight
    assert mixer.backward_ssm.out_proj.weight is mixer.forward_ssm.out_proj.weight
    assert mixer.backward_ssm.A_log is not mixer.forward_ssm.A_log  # each direction its own SSM


def test_mean_pooling_gives_one_label_per_sequence():
    model = bestiary.build("bimamba", **TINY, num_classes=3, pool="mean").double()
    assert model(_x()).shape == (2, 3)
    assert bestiary.build("bimamba", **TINY, num_classes=3).double()(_x()).shape == (2, 11, 3)


def test_no_decoding_cache():
    with pytest.raises(ValueError, match="both directions"):
        BiMambaMixer(8, d_state=4, d_conv=3, expand=2, scan="sequential").init_cache(1)
