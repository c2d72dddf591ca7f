"""bestiary.train.adamw: the right parameters decayed, and the fused update equals torch's reference AdamW."""

import pytest
import torch
from torch import nn

from bestiary.train import adamw, decay_groups


def _train_side_by_side(pairs, x: torch.Tensor, steps: int) -> None:
    """Step each (model, optimizer) pair on the same loss, ``steps`` times, interleaved."""
    for _ in range(steps):
        for model, optimizer in pairs:
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(10, 8), nn.LayerNorm(8), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))


def test_decay_groups_split_matrices_from_vectors():
    model = _model()
    decayed, undecayed = decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decayed["params"]) == ["0.weight", "2.weight", "4.weight"]
    assert sorted(names[id(p)] for p in undecayed["params"]) == ["1.bias", "1.weight", "2.bias", "4.bias"]
    assert decayed["weight_decay"] == 0.1 and undecayed["weight_decay"] == 0.0


def test_frozen_parameters_are_left_out():
    model = _model()
    model[0].weight.requires_grad_(False)
    opt = adamw(model)
    assert all(p is not model[0].weight for g in opt.param_groups for p in g["params"])


@pytest.mark.parametrize("fused", [True, False])
def test_trajectory_matches_unfused_torch_adamw(fused):
    """30 steps of ours (fused or not) == torch.optim.AdamW(foreach=False) with the same groups."""
    ours, ref = _model(), _model()
    opt = adamw(ours, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), fused=fused)
    ref_opt = torch.optim.AdamW(
        [{"params": [p for p in ref.parameters() if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in ref.parameters() if p.dim() < 2], "weight_decay": 0.0}],
        lr=1e-2, betas=(0.9, 0.95), foreach=False,
    )  # fmt: skip
    assert opt.defaults["fused"] is fused
    _train_side_by_side([(ours, opt), (ref, ref_opt)], torch.randint(0, 10, (16,)), steps=30)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    assert not torch.equal(ours[2].weight, _model()[2].weight)  # it did train


def test_auto_fused_on_cpu_and_bad_arguments():
    assert adamw(_model()).defaults["fused"] is True
    with pytest.raises(ValueError, match="lr"):
        adamw(_model(), lr=0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        adamw(_model(), weight_decay=-1)
    model = _model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        adamw(model)


# --- Muon -------------------------------------------------------------------------------------------

from bestiary.train import Muon, OptimizerChain, muon_with_adamw, newton_schulz_orthogonalize  # noqa: E402
from bestiary.train.optim import NS_COEFFICIENTS  # noqa: E402


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (7, 7)])
def test_newton_schulz_acts_on_singular_values_only(shape):
    """Oracle: the matrix iteration == SVD, the scalar quintic on each singular value, reassemble."""
    torch.manual_seed(0)
    g = torch.randn(*shape, dtype=torch.float64)
    ours = newton_schulz_orthogonalize(g, steps=5)
    u, s, vh = torch.linalg.svd(g / g.norm(), full_matrices=False)
    a, b, c = NS_COEFFICIENTS
    for _ in range(5):
        s = a * s + b * s**3 + c * s**5
    torch.testing.assert_close(ours, u @ torch.diag(s) @ vh, atol=1e-10, rtol=1e-10)
    # and it is close to orthogonal: every singular value pushed into roughly [0.6, 1.3]
    sv = torch.linalg.svdvals(ours)
    assert sv.min() > 0.6 and sv.max() < 1.3, sv


def test_newton_schulz_rejects_non_matrices():
    with pytest.raises(ValueError, match="2-D"):
        newton_schulz_orthogonalize(torch.ones(3))


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_trajectory_matches_torch_muon_on_matrices(nesterov):
    """With bfloat16 Newton-Schulz (what torch.optim.Muon does) 20 steps == torch.optim.Muon."""
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(12, 8, bias=False), nn.Tanh(), nn.Linear(8, 16, bias=False))
    ref = nn.Sequential(nn.Linear(12, 8, bias=False), nn.Tanh(), nn.Linear(8, 16, bias=False))
    ref.load_state_dict(ours.state_dict())
    kw = dict(lr=0.02, momentum=0.9, nesterov=nesterov, weight_decay=0.1)
    opt = Muon(ours.parameters(), ns_dtype=torch.bfloat16, **kw)
    ref_opt = torch.optim.Muon(ref.parameters(), **kw)
    _train_side_by_side([(ours, opt), (ref, ref_opt)], torch.randn(32, 12), steps=20)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    torch.manual_seed(0)
    assert not torch.equal(ours[0].weight, nn.Linear(12, 8, bias=False).weight)  # it did train


def test_muon_on_a_conv_kernel_is_muon_on_its_flattened_matrix():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, bias=False)
    flat = nn.Parameter(conv.weight.detach().reshape(4, 27).clone())
    conv_opt, flat_opt = Muon([conv.weight], lr=0.1), Muon([flat], lr=0.1)
    for _ in range(3):
        grad = torch.randn(4, 3, 3, 3)
        conv.weight.grad, flat.grad = grad.clone(), grad.reshape(4, 27).clone()
        conv_opt.step()
        flat_opt.step()
    torch.testing.assert_close(conv.weight.detach().reshape(4, 27), flat.detach(), atol=1e-6, rtol=1e-6)


def test_muon_rejects_vectors_with_a_pointer_to_adamw():
    with pytest.raises(ValueError, match="muon_with_adamw"):
        Muon([nn.Parameter(torch.ones(3))])
    with pytest.raises(ValueError, match="lr"):
        Muon([nn.Parameter(torch.ones(3, 3))], lr=0)


def test_muon_with_adamw_splits_kernels_from_the_rest_and_schedules_both():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    chain = muon_with_adamw(model, lr=0.05, adamw_lr=1e-3, weight_decay=0.01)
    assert isinstance(chain, OptimizerChain)
    muon, adam = chain.optimizers
    assert isinstance(muon, Muon) and isinstance(adam, torch.optim.AdamW)
    assert [p for g in muon.param_groups for p in g["params"]] == [model[0].weight]
    assert {id(p) for g in adam.param_groups for p in g["params"]} == {
        id(p) for p in model.parameters() if p is not model[0].weight
    }
    assert [g["initial_lr"] for g in chain.param_groups] == [0.05, 1e-3, 1e-3]
    before = [p.detach().clone() for p in model.parameters()]
    chain.zero_grad()
    model(torch.randn(8, 1, 6, 6)).logsumexp(-1).mean().backward()
    chain.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    state = chain.state_dict()
    chain.load_state_dict(state)
    with pytest.raises(ValueError, match="no trainable"):
        muon_with_adamw(nn.Linear(3, 3))
