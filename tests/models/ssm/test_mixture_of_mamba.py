"""Mixture-of-Mamba: with identical experts it is exactly Mamba (same weights, same logits); each
token uses its own modality's projections (a change to expert 1 moves nothing before the first
modality-1 token; text-only input sends no gradient to expert 1), while conv and A are shared."""

import pytest
import torch

import bestiary

DIMS = dict(vocab_size=64, d_model=16, n_layers=2, d_state=4)


def _mom(seed=0):
    torch.manual_seed(seed)
    return bestiary.build("mixture_of_mamba", **DIMS, modality_boundaries=(48,)).double()


def _mixed_tokens():
    text = torch.randint(0, 48, (2, 6), generator=torch.Generator().manual_seed(0))
    image = torch.randint(48, 64, (2, 5), generator=torch.Generator().manual_seed(1))
    return torch.cat([text, image, text[:, :3]], dim=1)  # text, then image tokens, then text again


def test_with_identical_experts_it_is_exactly_mamba():
    torch.manual_seed(0)
    mamba = bestiary.build("mamba", **DIMS).double()
    mom = _mom()
    state = mamba.state_dict()
    with torch.no_grad():
        for name, tensor in mom.state_dict().items():
            parts = name.split(".")
            if parts[-2].isdigit() and parts[-3].endswith("proj"):  # blocks.i.mixer.in_proj.<m>.weight
                source = ".".join(parts[:-2] + parts[-1:])  # every modality gets Mamba's projection
            else:
                source = name
            tensor.copy_(state[source])
    x = _mixed_tokens()
    with torch.no_grad():
        torch.testing.assert_close(mom(x), mamba(x))


def test_each_token_uses_its_modality_projections():
    mom, x = _mom(), _mixed_tokens()
    with torch.no_grad():
        before = mom(x)
        for block in mom.blocks:  # change modality 1's (image) projections only
            block.mixer.in_proj[1].weight.mul_(1.5)
            block.mixer.out_proj[1].weight.mul_(0.5)
        after = mom(x)
    torch.testing.assert_close(after[:, :6], before[:, :6], rtol=0, atol=0)  # text before any image
    assert (after[:, 6:] - before[:, 6:]).abs().amax() > 1e-4  # image tokens and what follows them


def test_text_only_input_trains_only_the_text_expert_and_the_shared_parts():
    mom = _mom()
    mom(torch.randint(0, 48, (2, 9))).logsumexp(-1).sum().backward()
    mixer = mom.blocks[0].mixer
    assert mixer.in_proj[0].weight.grad.abs().sum() > 0 and mixer.conv1d.weight.grad.abs().sum() > 0
    assert mixer.A_log.grad.abs().sum() > 0
    for projections in (mixer.in_proj, mixer.x_proj, mixer.dt_proj, mixer.out_proj):
        assert projections[1].weight.grad is None or projections[1].weight.grad.abs().sum() == 0


def test_modality_comes_from_the_token_ids_or_is_given():
    mom, x = _mom(), _mixed_tokens()
    modality = mom.modality_of(x)
    assert modality[:, :6].eq(0).all() and modality[:, 6:11].eq(1).all() and modality[:, 11:].eq(0).all()
    with torch.no_grad():
        torch.testing.assert_close(mom(x, modality=modality), mom(x))
        assert not torch.allclose(mom(x, modality=torch.zeros_like(x)), mom(x))
        with pytest.raises(ValueError, match="modality ids must be in 0..1"):
            mom(x, modality=torch.full_like(x, 2))


def test_cached_decoding_across_modalities_equals_the_full_forward():
    mom, x = _mom(), _mixed_tokens()
    with torch.no_grad():
        full = mom(x)
        cache = mom.init_cache(2)
        steps = [mom(x[:, :4], cache=cache)] + [
            mom(x[:, t : t + 1], cache=cache) for t in range(4, x.shape[1])
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full)


def test_boundaries_must_match_the_number_of_modalities():
    with pytest.raises(bestiary.ConfigError, match="n_experts - 1"):
        bestiary.build("mixture_of_mamba", **DIMS, n_experts=3, modality_boundaries=(48,))
    with pytest.raises(bestiary.ConfigError, match="below vocab_size"):
        bestiary.build("mixture_of_mamba", **DIMS, modality_boundaries=(70,))
