"""The sparse mixture-of-experts MLP against a dense computation of its definition, and its
load-balancing loss against transformers' (Switch Transformers, as used for Mixtral and Jamba)."""

import pytest
import torch

from bestiary.layers.moe import MoE


def _dense_reference(moe, x, normalize):
    """Every expert on every token, weighted by the router's probability where the expert is in the
    token's top-k and by zero elsewhere: the definition, without any gathering."""
    probs = torch.softmax(moe.router(x), dim=-1)  # (N, E)
    top = probs.topk(moe.top_k, dim=-1)
    weights = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
    if normalize:
        weights = weights / weights.sum(-1, keepdim=True)
    outputs = torch.stack([expert(x) for expert in moe.experts], dim=1)  # (N, E, D)
    return (weights.unsqueeze(-1) * outputs).sum(1)


@pytest.mark.parametrize("normalize", [False, True])
def test_sparse_routing_equals_the_dense_definition_in_values_and_gradients(normalize):
    torch.manual_seed(0)
    moe = MoE(8, 12, n_experts=4, top_k=2, normalize_top_k=normalize).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    y = moe(x)
    expected = _dense_reference(moe, x.reshape(-1, 8), normalize).reshape(2, 5, 8)
    torch.testing.assert_close(y, expected)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    (g_ref,) = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_shared_experts_are_added_for_every_token():
    torch.manual_seed(0)
    moe = MoE(8, 12, n_experts=4, top_k=1, n_shared_experts=2, d_ff_shared=6).double()
    assert moe.shared_experts.up.out_features == 12  # one MLP of width n_shared * d_ff_shared
    x = torch.randn(7, 8, dtype=torch.float64)
    routed = _dense_reference(moe, x, normalize=False)
    torch.testing.assert_close(moe(x), routed + moe.shared_experts(x))


def test_aux_loss_matches_transformers_and_is_top_k_when_balanced():
    jamba = pytest.importorskip("transformers.models.jamba.modeling_jamba")
    torch.manual_seed(0)
    moe = MoE(8, 12, n_experts=4, top_k=2)
    x = torch.randn(3, 6, 8)
    moe(x)
    expected = jamba.load_balancing_loss_func((moe.router_logits,), num_experts=4, top_k=2)
    torch.testing.assert_close(moe.aux_loss, expected)
    assert moe.aux_loss.requires_grad  # it trains the router
    with torch.no_grad():
        moe.router.weight.zero_()  # uniform probabilities: P_e = 1/E, f_e sums to k
    moe(x)
    torch.testing.assert_close(moe.aux_loss, torch.tensor(2.0))


def test_bad_top_k_is_refused():
    with pytest.raises(ValueError, match="top_k=5 must be between 1 and n_experts=4"):
        MoE(8, 12, n_experts=4, top_k=5)
