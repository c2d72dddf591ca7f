"""bestiary.train.adamw: the right parameters decayed, and the fused update equals torch's reference AdamW."""

import pytest
import torch
from torch import nn

from bestiary.train import adamw, decay_groups


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
    x = torch.randint(0, 10, (16,))
    for _ in range(30):
        for model, optimizer in ((ours, opt), (ref, ref_opt)):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
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
