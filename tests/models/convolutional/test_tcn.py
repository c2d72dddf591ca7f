"""TCN: causal, with exactly the receptive field the dilations give; output width and bad input."""

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError


def test_tcn_is_causal_and_receptive_field_is_exact():
    torch.manual_seed(0)
    model = bestiary.build(
        "tcn", in_dim=2, d_model=4, n_layers=3, kernel_size=2, use_weight_norm=False
    ).eval()
    rf = model.receptive_field  # 1 + 2 * 1 * (2^3 - 1) = 15
    assert rf == 15
    T = 40
    x = torch.randn(1, T, 2)
    with torch.no_grad():
        base = model(x)
        future = x.clone()
        future[:, 30:] += 1.0  # change the future only
        torch.testing.assert_close(model(future)[:, :30], base[:, :30], rtol=0, atol=0)
        # an input more than rf - 1 steps in the past cannot reach the output; one inside can
        for t_in, reaches in ((30 - rf, False), (30 - rf + 1, True)):
            probe = x.clone()
            probe[:, t_in] += 10.0
            changed = not torch.equal(model(probe)[:, 30], base[:, 30])
            assert changed == reaches, (t_in, changed)


def test_tcn_output_and_bad_input():
    model = bestiary.build("tcn", tiny=True)
    assert model.num_features == 8
    assert model(torch.randn(2, 7, 4)).shape == (2, 7, 8)
    with pytest.raises(ShapeError, match="D=4"):
        model(torch.randn(2, 7, 5))


def test_tcn_step_by_step_equals_the_whole_sequence():
    """Read in pieces with a cache (1 to 5 steps at a time), the outputs equal the full forward."""
    torch.manual_seed(0)
    model = bestiary.build("tcn", in_dim=3, d_model=6, n_layers=3, kernel_size=3).eval()
    x = torch.randn(2, 20, 3)
    with torch.no_grad():
        full = model(x)
        cache = model.init_cache(2)
        pieces = [model(x[:, start:stop], cache=cache) for start, stop in ((0, 5), (5, 6), (6, 9), (9, 20))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-6)
    assert len(cache) == 20
    # the cache is a fixed-size state: (k - 1) * dilation inputs per conv, whatever the length read
    assert [p.shape[-1] for p in cache.pasts] == [2, 2, 4, 4, 8, 8]
